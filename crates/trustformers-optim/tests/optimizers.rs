//! Every optimizer against `torch.optim` on the fixtures of `tools/gen_optim_fixtures.py`:
//! the parameters after each of 20 steps, the constructors' defaults and checks, state
//! save and load, clipping, and transformers' weight-decay groups.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use common::{meta, same, tensors, values, zeros};
use trustformers_optim::{by_name, Param};

const NAMES: [&str; 4] = ["w", "b", "t", "s"];
/// Relative tolerance. A value is compared relative to the larger of itself and its
/// parameter's largest magnitude: an element that an update brings near zero keeps the
/// rounding of the O(1) values it came from.
const RTOL: f32 = 1e-6;

/// `got` within [`RTOL`] of torch's `want`, element by element; `worst` keeps the largest
/// relative difference seen.
fn assert_close(what: &str, got: &[f32], want: &[f32], worst: &mut f32) {
    let scale = want.iter().fold(1e-2f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(want) {
        let rel = (a - b).abs() / b.abs().max(scale);
        *worst = worst.max(rel);
        assert!(
            rel <= RTOL,
            "{what}: {a} against torch's {b} (relative {rel:e})"
        );
    }
}

fn check(case: &str) {
    let spec = meta()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == case)
        .unwrap_or_else(|| panic!("no case `{case}` in torch.json"));
    let t = tensors();
    let params: Vec<Param> = NAMES
        .iter()
        .map(|n| {
            Param::new(
                *n,
                Var::from_tensor(&t[&format!("{case}/init/{n}")]).unwrap(),
            )
        })
        .collect();
    let mut opt = by_name(
        spec["optimizer"].as_str().unwrap(),
        params.clone(),
        &spec["kwargs"],
    )
    .unwrap();
    opt.train().unwrap();
    let steps = spec["steps"].as_u64().unwrap();
    let mut worst = 0f32;
    for step in 0..steps {
        let mut grads = GradStore::default();
        for p in &params {
            let g = t[&format!("{case}/grad/{step}/{}", p.name)].clone();
            grads.insert(p.var.as_tensor(), g);
        }
        opt.step(&grads).unwrap();
        for p in &params {
            assert_close(
                &format!("{case}: step {step}, `{}`", p.name),
                &values(p.var.as_tensor()),
                &values(&t[&format!("{case}/param/{step}/{}", p.name)]),
                &mut worst,
            );
        }
    }
    // Schedule-free optimizers: the evaluation weights after the last step.
    if t.contains_key(&format!("{case}/eval/w")) {
        opt.eval().unwrap();
        for p in &params {
            assert_close(
                &format!("{case}: eval `{}`", p.name),
                &values(p.var.as_tensor()),
                &values(&t[&format!("{case}/eval/{}", p.name)]),
                &mut worst,
            );
        }
    }
    eprintln!("{case}: worst relative difference {worst:e}");
}

/// One test per fixture case.
macro_rules! cases {
    ($($case:ident),+ $(,)?) => {$(
        #[test]
        fn $case() {
            check(stringify!($case));
        }
    )+};
}

cases!(
    sgd,
    sgd_momentum,
    sgd_nesterov_decay,
    sgd_dampening_maximize,
    adam,
    adam_amsgrad_decay,
    adam_betas_maximize,
    adam_decoupled,
    adamw,
    adamw_amsgrad,
    adamax,
    adamax_decay_maximize,
    nadam,
    nadam_decay,
    nadam_decoupled,
    radam,
    radam_decay,
    radam_decoupled_rectified,
    adagrad,
    adagrad_options,
    adadelta,
    adadelta_options,
    rmsprop,
    rmsprop_centered_momentum,
    rmsprop_momentum,
    rprop,
    rprop_options,
    asgd,
    asgd_averaging,
    adafactor,
    adafactor_options,
    hf_adafactor,
    hf_adafactor_warmup,
    hf_adafactor_manual,
    lion,
    lion_options,
    adabelief,
    adabelief_amsgrad_l2,
    adabelief_plain_fixed,
    adabelief_no_sgd,
    adan,
    adan_prox,
    adan_no_prox_caution,
    schedulefree,
    schedulefree_options,
    lars,
    lars_decay_momentum,
    lars_nesterov_clip,
    lookahead_adamw,
    lookahead_sgd,
    lamb,
    lamb_options,
    lamb_no_decay,
    madgrad,
    madgrad_no_momentum_decay,
    madgrad_decoupled,
    nvnovograd,
    nvnovograd_options,
    nvnovograd_decoupled,
    adamp,
    adamp_proj,
    adamp_proj_caution,
    sgdp,
    sgdp_proj,
    sgdp_proj_caution,
);

/// Every fixture case has a test above.
#[test]
fn every_case_is_tested() {
    let source = include_str!("optimizers.rs");
    for case in meta()["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        assert!(
            source.contains(&format!("    {name},\n")),
            "case `{name}` has no test"
        );
    }
}

/// Our defaults are the constructors' (read from torch by the fixture script).
#[test]
fn defaults_are_torchs() {
    for (class, want) in meta()["defaults"].as_object().unwrap() {
        // An optimizer built from no arguments, its config read back as JSON.
        let config = trustformers_optim::default_kwargs(class).unwrap();
        for (key, value) in want.as_object().unwrap() {
            let ours = config
                .get(key)
                .unwrap_or_else(|| panic!("{class}: no `{key}` argument"));
            assert!(
                same(ours, value),
                "{class}.{key}: ours {ours}, torch's {value}"
            );
        }
        assert_eq!(
            config.as_object().unwrap().len(),
            want.as_object().unwrap().len(),
            "{class}: arguments {config} against torch's {want}"
        );
    }
}

/// Out-of-range arguments get torch's message, naming the argument.
#[test]
fn bad_arguments_are_named() {
    let p = || zeros("w", 2);
    for (class, kwargs, field) in [
        ("Adam", serde_json::json!({"lr": -1.0}), "lr"),
        ("AdamW", serde_json::json!({"betas": [0.9, 1.0]}), "betas"),
        ("SGD", serde_json::json!({"nesterov": true}), "nesterov"),
        ("RMSprop", serde_json::json!({"eps": -1e-8}), "eps"),
        ("Rprop", serde_json::json!({"etas": [1.5, 1.2]}), "etas"),
        ("Adadelta", serde_json::json!({"rho": 1.5}), "rho"),
    ] {
        let err = by_name(class, p(), &kwargs).err().unwrap();
        assert!(
            matches!(&err, trustformers_core::Error::Config { field: f, .. } if f == field),
            "{class} {kwargs}: {err}"
        );
    }
    let unknown = by_name("Adam", p(), &serde_json::json!({"betaz": [0.9, 0.99]}))
        .err()
        .unwrap();
    assert!(unknown.to_string().contains("betaz"), "{unknown}");
    assert!(by_name("Adamm", p(), &serde_json::json!({})).is_err());
}

/// `clip_grad_norm_` (2-, 1-, 0.5- and inf-norms) and `clip_grad_value_` against torch, on
/// gradients with a large outlier.
#[test]
fn clipping_matches_torch() {
    use trustformers_optim::{clip_grad_norm, clip_grad_value};
    let t = tensors();
    let setup = |key: &str| {
        let params: Vec<Param> = NAMES
            .iter()
            .map(|n| {
                let g = &t[&format!("{key}/grad/{n}")];
                Param::new(*n, Var::zeros(g.shape(), g.dtype(), &Device::Cpu).unwrap())
            })
            .collect();
        let mut grads = GradStore::default();
        for p in &params {
            grads.insert(
                p.var.as_tensor(),
                t[&format!("{key}/grad/{}", p.name)].clone(),
            );
        }
        (params, grads)
    };
    let compare = |key: &str, params: &[Param], grads: &GradStore| {
        for p in params {
            let got = values(grads.get(p.var.as_tensor()).unwrap());
            let want = values(&t[&format!("{key}/clipped/{}", p.name)]);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= RTOL * b.abs().max(1e-2),
                    "{key} `{}`: {a} against {b}",
                    p.name
                );
            }
        }
    };
    for clip in meta()["clips"].as_array().unwrap() {
        let key = clip["name"].as_str().unwrap();
        let norm_type: f64 = clip["norm_type"].as_str().unwrap().parse().unwrap();
        let (params, mut grads) = setup(key);
        let total = clip_grad_norm(
            &params,
            &mut grads,
            clip["max_norm"].as_f64().unwrap(),
            norm_type,
            true,
        )
        .unwrap();
        let want = clip["total"].as_f64().unwrap() as f32;
        assert!(
            (total - want).abs() <= RTOL * want,
            "{key}: total {total} against {want}"
        );
        compare(key, &params, &grads);
    }
    let (params, mut grads) = setup("clip_value");
    clip_grad_value(&params, &mut grads, 0.5).unwrap();
    compare("clip_value", &params, &grads);
    // A non-finite total is an error when asked.
    let (params, mut grads) = setup("clip_value");
    let w = params[0].var.as_tensor();
    let nan = (grads.get(w).unwrap() * f64::NAN).unwrap();
    grads.insert(w, nan);
    assert!(clip_grad_norm(&params, &mut grads, 1.0, 2.0, true).is_err());
}

/// A non-finite gradient is an error naming the parameter, or, when asked, a skipped and
/// counted step that moves no parameter.
#[test]
fn nonfinite_gradients_are_refused_or_skipped() {
    use trustformers_optim::torch::{Adam, AdamConfig};
    use trustformers_optim::{Optim, Optimizer};
    let make = || {
        ["a", "b"]
            .map(|n| {
                Param::new(
                    n,
                    Var::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
                )
            })
            .to_vec()
    };
    let grads = |params: &[Param]| {
        let mut g = GradStore::default();
        g.insert(
            params[0].var.as_tensor(),
            Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap(),
        );
        g.insert(
            params[1].var.as_tensor(),
            Tensor::new(&[1f32, f32::NAN, 3.0], &Device::Cpu).unwrap(),
        );
        g
    };
    let params = make();
    let mut opt = Optimizer::<Adam>::new(params.clone(), AdamConfig::default()).unwrap();
    let err = opt.step(&grads(&params)).unwrap_err().to_string();
    assert!(err.contains("`b`") && err.contains("not finite"), "{err}");
    let params = make();
    let mut opt = Optimizer::<Adam>::new(params.clone(), AdamConfig::default())
        .unwrap()
        .skip_nonfinite(true);
    opt.step(&grads(&params)).unwrap();
    assert_eq!(opt.skipped_steps(), 1);
    for p in &params {
        assert_eq!(
            values(p.var.as_tensor()),
            [1.0, 1.0, 1.0],
            "{} moved",
            p.name
        );
    }
    assert!(opt.state(0, 0).is_none(), "a skipped step made state");
    // Unchecked, as torch's Adam: the step is taken and the NaN reaches the parameter.
    let params = make();
    let mut opt = Optimizer::<Adam>::new(params.clone(), AdamConfig::default())
        .unwrap()
        .check_finite(false);
    opt.step(&grads(&params)).unwrap();
    let b = values(params[1].var.as_tensor());
    assert!(b[0] < 1.0 && b[1].is_nan() && b[2] < 1.0, "{b:?}");
    assert!(values(params[0].var.as_tensor()).iter().all(|v| *v < 1.0));
}

/// Saved after 10 steps and loaded into a new optimizer, every case continues exactly as
/// it would have: the same parameters after 20 steps, bit for bit.
#[test]
fn saved_state_resumes_bit_identically() {
    let t = tensors();
    // Removed when dropped, also when an assertion below fails.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for spec in meta()["cases"].as_array().unwrap() {
        let case = spec["name"].as_str().unwrap();
        let class = spec["optimizer"].as_str().unwrap();
        let fresh = || -> Vec<Param> {
            NAMES
                .iter()
                .map(|n| {
                    Param::new(
                        *n,
                        Var::from_tensor(&t[&format!("{case}/init/{n}")]).unwrap(),
                    )
                })
                .collect()
        };
        let run = |opt: &mut Box<dyn trustformers_optim::Optim>,
                   params: &[Param],
                   steps: std::ops::Range<u64>| {
            for step in steps {
                let mut grads = GradStore::default();
                for p in params {
                    grads.insert(
                        p.var.as_tensor(),
                        t[&format!("{case}/grad/{step}/{}", p.name)].clone(),
                    );
                }
                opt.step(&grads).unwrap();
            }
        };
        let straight = fresh();
        let mut opt = by_name(class, straight.clone(), &spec["kwargs"]).unwrap();
        opt.train().unwrap();
        run(&mut opt, &straight, 0..20);

        let first = fresh();
        let mut opt = by_name(class, first.clone(), &spec["kwargs"]).unwrap();
        opt.train().unwrap();
        run(&mut opt, &first, 0..10);
        let prefix = dir.join(case);
        opt.save(&prefix).unwrap();
        // A new optimizer over parameters holding the 10-step values.
        let resumed: Vec<Param> = first
            .iter()
            .map(|p| {
                Param::new(
                    p.name.clone(),
                    Var::from_tensor(&p.var.as_tensor().copy().unwrap()).unwrap(),
                )
            })
            .collect();
        // Built with the same arguments (Lookahead needs its inner optimizer's name); the
        // loaded state sets the hyper-parameters.
        let mut opt = by_name(class, resumed.clone(), &spec["kwargs"]).unwrap();
        opt.load(&prefix).unwrap();
        run(&mut opt, &resumed, 10..20);
        for (a, b) in resumed.iter().zip(&straight) {
            assert_eq!(
                values(a.var.as_tensor()),
                values(b.var.as_tensor()),
                "{case} `{}`",
                a.name
            );
        }
    }
    // The state of another optimizer, or of other parameters, is refused.
    let p = zeros("w", 2);
    let mut other = by_name("SGD", p, &serde_json::json!({})).unwrap();
    assert!(other.load(&dir.join("adam")).is_err());
}

/// A schedule-free optimizer refuses to step outside train mode, as the package does.
#[test]
fn schedule_free_steps_only_in_train_mode() {
    let p = vec![Param::new(
        "w",
        Var::ones(2, candle_core::DType::F32, &Device::Cpu).unwrap(),
    )];
    let mut opt = by_name("AdamWScheduleFree", p.clone(), &serde_json::json!({})).unwrap();
    let mut grads = GradStore::default();
    grads.insert(
        p[0].var.as_tensor(),
        Tensor::new(&[1f32, -1.0], &Device::Cpu).unwrap(),
    );
    let err = opt.step(&grads).unwrap_err().to_string();
    assert!(err.contains("train mode"), "{err}");
    opt.train().unwrap();
    opt.step(&grads).unwrap();
}

/// transformers' Trainer rule for which parameters decay, on tiny LLaMA, GPT-2 and BERT
/// models (read from transformers by the fixture script), and its two groups.
#[test]
fn weight_decay_groups_follow_the_trainer() {
    use trustformers_optim::{by_name_with_groups, decays_weight, transformers_groups};
    for (family, spec) in meta()["decay"].as_object().unwrap() {
        let strs = |key: &str| -> Vec<&str> {
            spec[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect()
        };
        let (names, decay, norms) = (strs("names"), strs("decay"), strs("layer_norms"));
        for name in &names {
            assert_eq!(
                decays_weight(name, &norms),
                decay.contains(name),
                "{family}: `{name}`"
            );
        }
        let params: Vec<Param> = names
            .iter()
            .map(|n| {
                Param::new(
                    *n,
                    Var::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
                )
            })
            .collect();
        let groups = transformers_groups(params, 0.01, &norms);
        // transformers lists a tied head (GPT-2's `lm_head.weight`) that named_parameters
        // gives once, as the embedding.
        let decaying = names.iter().filter(|n| decay.contains(n)).count();
        assert_eq!(groups[0].params.len(), decaying, "{family}");
        let opt = by_name_with_groups("AdamW", groups, &serde_json::json!({"lr": 1e-3})).unwrap();
        assert_eq!(opt.learning_rates(), [1e-3, 1e-3]);
    }
}

/// torch's LBFGS on the Rosenbrock function from (-1.5, 2.0), with and without the
/// strong-Wolfe line search: the point (bit for bit) and the evaluation count after each of
/// 5 steps. The closure computes the loss and gradient in f32 as torch's autograd does.
#[test]
fn lbfgs_follows_torch_on_rosenbrock() {
    use trustformers_optim::{Lbfgs, LbfgsConfig};
    for spec in meta()["lbfgs"].as_array().unwrap() {
        let case = spec["name"].as_str().unwrap();
        let x = Var::from_tensor(&Tensor::new(&[-1.5f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        let config: LbfgsConfig = serde_json::from_value(spec["kwargs"].clone()).unwrap();
        let mut opt = Lbfgs::new(vec![Param::new("x", x.clone())], config).unwrap();
        let mut closure = || -> trustformers_core::Result<(f64, GradStore)> {
            let v = values(x.as_tensor());
            let (x0, x1) = (v[0], v[1]);
            // loss = (1 - x0) ** 2 + 100 * (x1 - x0 ** 2) ** 2, and its backward.
            let a = 1.0 - x0;
            let c = x1 - x0 * x0;
            let loss = a * a + 100.0 * (c * c);
            let gc = 100.0 * (2.0 * c);
            let g0 = -(2.0 * a) + (-gc) * (2.0 * x0);
            let mut grads = GradStore::default();
            grads.insert(x.as_tensor(), Tensor::new(&[g0, gc], &Device::Cpu).unwrap());
            Ok((f64::from(loss), grads))
        };
        let want = tensors()[&format!("lbfgs/{case}")]
            .to_vec2::<f64>()
            .unwrap();
        for (step, row) in want.iter().enumerate() {
            opt.step(&mut closure).unwrap();
            let v = values(x.as_tensor());
            eprintln!(
                "{case} {step}: {v:?} evals {} (torch {row:?})",
                opt.func_evals()
            );
            for (i, (a, b)) in v.iter().zip(row).enumerate() {
                // The same iterates, bit for bit.
                assert_eq!(*a, *b as f32, "{case}: step {step}, x{i}");
            }
            assert_eq!(
                opt.func_evals(),
                row[2] as u64,
                "{case}: step {step}: evaluations"
            );
        }
    }
}

/// LBFGS's arguments are checked as torch checks them.
#[test]
fn lbfgs_arguments_are_checked() {
    use trustformers_optim::{Lbfgs, LbfgsConfig};
    let p = || zeros("x", 2);
    let bad = |c: LbfgsConfig| Lbfgs::new(p(), c).err().unwrap().to_string();
    assert!(bad(LbfgsConfig {
        lr: -1.0,
        ..Default::default()
    })
    .contains("Invalid learning rate"));
    let wolfe = LbfgsConfig {
        line_search_fn: Some("wolfe".into()),
        ..Default::default()
    };
    assert!(bad(wolfe).contains("strong_wolfe"));
}

/// `OPTIMIZERS` names everything `by_name` builds, and Lookahead hands its parameter groups,
/// with their overrides, to the optimizer it wraps.
#[test]
fn every_listed_optimizer_builds_and_lookahead_keeps_groups() {
    use serde_json::json;
    use trustformers_optim::{by_name_with_groups, default_kwargs, GroupSpec, OPTIMIZERS};
    for name in OPTIMIZERS {
        let mut kwargs = default_kwargs(name).unwrap();
        if *name == "Lookahead" {
            kwargs["optimizer"] = json!("SGD");
        }
        if *name == "SGDP" {
            kwargs["lr"] = json!(0.1);
        }
        let opt = by_name(name, zeros("w", 2), &kwargs);
        assert!(opt.is_ok(), "{name}: {:?}", opt.err());
    }
    let message = by_name("Adamm", zeros("w", 2), &json!({}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("Lion") && message.contains("Lookahead"),
        "{message}"
    );
    let groups = vec![
        GroupSpec {
            params: zeros("a", 2),
            overrides: json!({}),
        },
        GroupSpec {
            params: zeros("b", 2),
            overrides: json!({"lr": 0.01}),
        },
    ];
    let kwargs = json!({"optimizer": "AdamW", "optimizer_kwargs": {"lr": 1e-3}, "k": 5});
    let opt = by_name_with_groups("Lookahead", groups, &kwargs).unwrap();
    assert_eq!(opt.learning_rates(), [1e-3, 1e-2]);
}
