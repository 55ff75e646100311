//! Learning-rate schedules against transformers' `get_scheduler` and torch's schedulers
//! (`ReduceLROnPlateau`, `OneCycleLR`, `CyclicLR`), on the fixtures of
//! `tools/gen_optim_fixtures.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{Device, Var};
use common::{meta, tensors, zeros};
use trustformers_optim::{by_name, Param};

/// A schedule over two parameter groups (lr 0.1 and 0.05) against transformers'
/// `get_scheduler`: the rates of 1,200 steps (warmup 100, training 1,000).
fn check_schedule(case: &str) {
    use trustformers_optim::torch::{Sgd, SgdConfig};
    use trustformers_optim::{get_scheduler, LambdaLr, Optim, Optimizer, ParamGroup};
    let m = meta();
    let spec = m["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == case)
        .unwrap_or_else(|| panic!("no schedule `{case}` in torch.json"));
    let steps = &m["schedule_steps"];
    let group = |i: usize, lr: f64| ParamGroup {
        params: vec![Param::new(
            format!("x{i}"),
            Var::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
        )],
        config: SgdConfig {
            lr,
            ..Default::default()
        },
    };
    let lrs: Vec<f64> = steps["lr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut opt = Optimizer::<Sgd>::with_groups(
        lrs.iter()
            .enumerate()
            .map(|(i, &lr)| group(i, lr))
            .collect(),
    )
    .unwrap();
    let schedule = match spec["torch"].as_str() {
        Some(class) => trustformers_optim::torch_scheduler(class, &spec["kwargs"]).unwrap(),
        None => get_scheduler(
            spec["scheduler"].as_str().unwrap(),
            lrs[0],
            steps["warmup"].as_u64(),
            steps["training"].as_u64(),
            &spec["kwargs"],
        )
        .unwrap(),
    };
    let mut sched = LambdaLr::new(&mut opt, schedule).unwrap();
    let want = tensors()[&format!("schedule/{case}")]
        .to_vec2::<f64>()
        .unwrap();
    for (step, row) in want.iter().enumerate() {
        let got = opt.learning_rates();
        for (g, (a, b)) in got.iter().zip(row).enumerate() {
            assert!(
                (a - b).abs() <= 1e-7 * b.abs().max(1e-12),
                "{case}: step {step}, group {g}: {a} against transformers' {b}"
            );
        }
        sched.step(&mut opt).unwrap();
    }
}

/// One test per schedule case.
macro_rules! schedules {
    ($($case:ident),+ $(,)?) => {$(
        #[test]
        fn $case() {
            check_schedule(stringify!($case));
        }
    )+};
}

mod schedules {
    use super::check_schedule;
    schedules!(
        linear,
        cosine,
        cosine_cycles,
        cosine_with_restarts,
        cosine_with_restarts_3,
        polynomial,
        polynomial_power,
        constant,
        constant_with_warmup,
        inverse_sqrt,
        inverse_sqrt_timescale,
        cosine_with_min_lr,
        cosine_with_min_lr_rate,
        cosine_warmup_with_min_lr,
        cosine_warmup_with_min_lr_rate,
        wsd,
        wsd_cosine_sqrt,
        wsd_sqrt_linear,
        step_lr,
        multi_step_lr,
        exponential_lr,
    );
}

/// `ReduceLROnPlateau` (both modes, absolute and relative thresholds, cooldown, a floor)
/// against torch on a metric that improves and then stalls.
#[test]
fn reduce_on_plateau_matches_torch() {
    use trustformers_optim::torch::{Sgd, SgdConfig};
    use trustformers_optim::{Optim, Optimizer, ParamGroup, ReduceLrOnPlateau};
    let metric = tensors()["plateau/metric"].to_vec1::<f64>().unwrap();
    for spec in meta()["plateaus"].as_array().unwrap() {
        let case = spec["name"].as_str().unwrap();
        let sign = spec["sign"].as_f64().unwrap();
        let groups = [0.1, 0.05]
            .iter()
            .enumerate()
            .map(|(i, &lr)| ParamGroup {
                params: vec![Param::new(
                    format!("x{i}"),
                    Var::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
                )],
                config: SgdConfig {
                    lr,
                    ..Default::default()
                },
            })
            .collect();
        let mut opt = Optimizer::<Sgd>::with_groups(groups).unwrap();
        let mut sched = ReduceLrOnPlateau::new(&spec["kwargs"]).unwrap();
        let want = tensors()[&format!("plateau/{case}")]
            .to_vec2::<f64>()
            .unwrap();
        for (step, (m, row)) in metric.iter().zip(&want).enumerate() {
            sched.step(&mut opt, sign * m).unwrap();
            for (a, b) in opt.learning_rates().iter().zip(row) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs(),
                    "{case}: step {step}: {a} against torch's {b}"
                );
            }
        }
    }
    assert!(ReduceLrOnPlateau::new(&serde_json::json!({"factor": 1.5})).is_err());
    assert!(ReduceLrOnPlateau::new(&serde_json::json!({"mode": "mid"})).is_err());
}

/// Every schedule case has a test, and bad scheduler arguments are named.
#[test]
fn every_schedule_is_tested_and_bad_arguments_are_named() {
    let source = include_str!("schedules.rs");
    for case in meta()["schedules"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        assert!(
            source.contains(&format!("        {name},\n")),
            "schedule `{name}` has no test"
        );
    }
    use serde_json::json as j;
    use trustformers_optim::get_scheduler;
    for (name, warmup, kwargs, field) in [
        ("linearr", Some(10), j!({}), "lr_scheduler_type"),
        ("linear", None, j!({}), "num_warmup_steps"),
        ("cosine", Some(10), j!({"num_cycle": 1}), "num_cycle"),
        ("polynomial", Some(10), j!({"lr_end": 1.0}), "lr_end"),
        ("cosine_with_min_lr", Some(10), j!({}), "min_lr"),
        (
            "cosine_with_min_lr",
            Some(10),
            j!({"min_lr": 0.1, "min_lr_rate": 0.1}),
            "min_lr",
        ),
        (
            "warmup_stable_decay",
            Some(10),
            j!({"num_decay_steps": 10, "decay_type": "exp"}),
            "decay_type",
        ),
        ("inverse_sqrt", Some(10), j!({"timescale": -1}), "timescale"),
    ] {
        let err = get_scheduler(name, 0.1, warmup, Some(100), &kwargs)
            .err()
            .unwrap();
        assert!(
            matches!(&err, trustformers_core::Error::Config { field: f, .. } if f == field),
            "{name} {kwargs}: {err}"
        );
    }
}

/// torch's OneCycleLR and CyclicLR over two groups of SGD (momentum) or Adam (beta1): the
/// rate and the momentum of every step.
#[test]
fn cycles_match_torch() {
    use trustformers_optim::{by_name_with_groups, CyclicLr, GroupSpec, OneCycleLr};
    for spec in meta()["cycles"].as_array().unwrap() {
        let case = spec["name"].as_str().unwrap();
        let groups = vec![
            GroupSpec {
                params: zeros("a", 1),
                overrides: serde_json::json!({}),
            },
            GroupSpec {
                params: zeros("b", 1),
                overrides: serde_json::json!({"lr": 0.05}),
            },
        ];
        let mut kwargs = spec["optimizer_kwargs"].clone();
        kwargs["lr"] = 0.1.into();
        let mut opt =
            by_name_with_groups(spec["optimizer"].as_str().unwrap(), groups, &kwargs).unwrap();
        let want = tensors()[&format!("cycle/{case}")]
            .to_vec2::<f64>()
            .unwrap();
        let one_cycle = spec["scheduler"] == "OneCycleLR";
        let (mut a, mut b) = (None, None);
        if one_cycle {
            a = Some(OneCycleLr::new(opt.as_mut(), &spec["kwargs"]).unwrap());
        } else {
            b = Some(CyclicLr::new(opt.as_mut(), &spec["kwargs"]).unwrap());
        }
        for (step, row) in want.iter().enumerate() {
            let mut got = opt.learning_rates();
            got.extend(opt.momenta().into_iter().map(Option::unwrap));
            for (i, (x, y)) in got.iter().zip(row).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1e-12),
                    "{case}: step {step}, value {i}: {x} against torch's {y}"
                );
            }
            if step + 1 < want.len() {
                match (&mut a, &mut b) {
                    (Some(s), _) => s.step(opt.as_mut()).unwrap(),
                    (_, Some(s)) => s.step(opt.as_mut()).unwrap(),
                    _ => unreachable!(),
                }
            }
        }
    }
    // Momentum cycling needs an optimizer with momentum or beta1.
    let p = zeros("w", 1);
    let mut rprop = by_name("Rprop", p, &serde_json::json!({})).unwrap();
    assert!(OneCycleLr::new(
        rprop.as_mut(),
        &serde_json::json!({"max_lr": 0.1, "total_steps": 10})
    )
    .is_err());
}
