//! The Trainer against transformers' Trainer (`tools/gen_trainer_fixtures.py`): 30 steps of
//! AdamW with warmup, weight decay, clipping and gradient accumulation 2, data in file
//! order; every logged loss and grad norm within 1e-4 relative, every learning rate equal.
//! Then checkpoints: resuming continues bit-identically, `save_pretrained` loads back with
//! the same outputs, and a diverging run stops with the step number.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor};
use common::fixture;
use serde_json::Value;
use trustformers::train::collate::{self, Example, Padding};
use trustformers::train::{Collator, SaveSpec, Strategy, Trainer, TrainingArguments};
use trustformers::{AutoConfig, LoadOptions};

struct Run {
    checkpoint: String,
    args: TrainingArguments,
    examples: Vec<Example>,
    per_token: bool,
    lora: bool,
    reference: Vec<Value>,
}

fn reference(name: &str) -> Run {
    let path = fixture("train").join(format!("trainer_{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut args: TrainingArguments = serde_json::from_value(v["args"].clone()).unwrap();
    args.shuffle = false;
    args.save_strategy = Strategy::No;
    let per_token = !name.ends_with("seq_cls");
    let examples = v["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Example {
            input_ids: serde_json::from_value(e["input_ids"].clone()).unwrap(),
            labels: e.get("label").map(|l| vec![l.as_i64().unwrap()]),
            ..Default::default()
        })
        .collect();
    Run {
        checkpoint: v["checkpoint"].as_str().unwrap().to_string(),
        args,
        examples,
        per_token,
        lora: name.starts_with("lora"),
        reference: v["log_history"].as_array().unwrap().clone(),
    }
}

fn collator(per_token: bool) -> Collator {
    Box::new(move |examples: &[Example], _seed: u64| {
        let padding = Padding::default();
        if per_token {
            collate::causal_lm(examples, &padding)
        } else {
            collate::with_padding(examples, &padding)
        }
    })
}

/// Every `*dropout*` probability of the config set to 0, as the reference script does: the
/// masks are not torch's, so curves compare without dropout.
fn no_dropout(config: &mut trustformers::ModelConfig) {
    if let Some(obj) = config.json.as_object_mut() {
        for (k, v) in obj.iter_mut() {
            if (k.contains("dropout") || k.ends_with("pdrop")) && v.is_f64() {
                *v = serde_json::json!(0.0);
            }
        }
    }
}

fn trainer(run: &Run, args: TrainingArguments) -> Trainer {
    trainer_with(run, args, true)
}

fn trainer_with(run: &Run, args: TrainingArguments, dropout_off: bool) -> Trainer {
    let mut config = AutoConfig::from_pretrained(fixture(&run.checkpoint)).unwrap();
    if dropout_off {
        no_dropout(&mut config);
    }
    let (model, adapter_config) = if run.lora {
        let (init, task_type) = if run.per_token {
            ("train/lora_init", "CAUSAL_LM")
        } else {
            ("train/lora_seq_cls_init", "SEQ_CLS")
        };
        let (lora, start) = trustformers::read_adapter(&fixture(init)).unwrap();
        let json = lora.to_peft_json(task_type, &run.checkpoint);
        let model = config
            .load_trainable_lora(None, &LoadOptions::default(), lora, start)
            .unwrap();
        (model, Some(json))
    } else {
        (
            config
                .load_trainable(None, &LoadOptions::default())
                .unwrap(),
            None,
        )
    };
    let save = SaveSpec {
        config: config.json.clone(),
        extra_files: Vec::new(),
        adapter_config,
    };
    Trainer::new(
        args,
        model,
        run.examples.clone(),
        Vec::new(),
        collator(run.per_token),
        save,
    )
    .unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

fn check_loss_curve(name: &str) {
    let run = reference(name);
    let mut t = trainer(&run, run.args.clone());
    t.train().unwrap();
    let logs: Vec<&Value> = t
        .state()
        .log_history
        .iter()
        .filter(|e| e.get("loss").is_some())
        .collect();
    assert_eq!(logs.len(), run.reference.len(), "{name}: logged steps");
    for (ours, theirs) in logs.iter().zip(&run.reference) {
        let step = &theirs["step"];
        assert_eq!(&ours["step"], step);
        for (key, rel) in [("loss", 1e-4), ("grad_norm", 1e-4), ("learning_rate", 1e-9)] {
            let (a, b) = (ours[key].as_f64().unwrap(), theirs[key].as_f64().unwrap());
            assert!(
                close(a, b, rel),
                "{name} step {step}: {key} {a} vs transformers {b}"
            );
        }
    }
}

#[test]
fn causal_lm_loss_curve_matches_transformers() {
    check_loss_curve("causal_lm");
}

#[test]
fn classifier_loss_curve_matches_transformers() {
    check_loss_curve("seq_cls");
}

/// LoRA on q_proj and v_proj from PEFT's initial adapter: peft + transformers' Trainer as
/// the reference; only the 8 adapter matrices train.
#[test]
fn lora_loss_curve_matches_peft() {
    check_loss_curve("lora");
    let run = reference("lora");
    let t = trainer(&run, run.args.clone());
    assert_eq!(t.model().parameters.len(), 8);
    assert!(t.model().parameters.iter().all(|(name, _)| name
        .starts_with("base_model.model.model.layers.")
        && (name.ends_with("lora_A.weight") || name.ends_with("lora_B.weight"))));
}

/// LoRA on a classifier (PEFT's SEQ_CLS: `query` and `value` adapted, the classifier
/// trained in full as `modules_to_save`), against peft.
#[test]
fn lora_classifier_loss_curve_matches_peft() {
    let run = reference("lora_seq_cls");
    let t = trainer(&run, run.args.clone());
    let names: Vec<&str> = t
        .model()
        .parameters
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.contains(&"base_model.model.classifier.weight"));
    assert!(names.contains(&"base_model.model.classifier.bias"));
    check_loss_curve("lora_seq_cls");
}

/// A trained adapter is saved as PEFT saves one and merges into the base model at load:
/// the merged model gives the trained model's logits.
#[test]
fn saved_adapter_merges_into_the_base_model() {
    let run = reference("lora");
    let out = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: out.path().to_path_buf(),
        max_steps: 5,
        ..run.args.clone()
    };
    let mut t = trainer(&run, args);
    t.train().unwrap();
    let dir = out.path().join("adapter");
    t.save_pretrained(&dir).unwrap();
    assert!(dir.join("adapter_config.json").is_file());
    assert!(!dir.join("model.safetensors").exists());

    let ids = Tensor::new(&[[5u32, 9, 17, 33, 2, 8]], &Device::Cpu).unwrap();
    let pos = Tensor::new(&[[0u32, 1, 2, 3, 4, 5]], &Device::Cpu).unwrap();
    let trustformers::train::TaskModel::CausalLm(trained) = &t.model().model else {
        panic!("a causal LM");
    };
    let logits = |m: &dyn trustformers::CausalLM| {
        m.forward(&ids, &pos, &mut m.new_cache())
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    let opts = LoadOptions {
        adapter: Some(dir),
        ..LoadOptions::default()
    };
    let merged = AutoConfig::from_pretrained(fixture("llama"))
        .unwrap()
        .load_causal_lm(&opts)
        .unwrap();
    let base = AutoConfig::from_pretrained(fixture("llama"))
        .unwrap()
        .load_causal_lm(&LoadOptions::default())
        .unwrap();
    let (want, got) = (logits(trained.as_ref()), logits(merged.as_ref()));
    let diff = common::max_abs_diff(&want, &got);
    assert!(diff < 1e-4, "merged logits differ by {diff}");
    assert!(
        common::max_abs_diff(&logits(base.as_ref()), &got) > 1e-4,
        "the adapter changed nothing"
    );
}

fn weights(dir: &std::path::Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn resuming_a_checkpoint_continues_bit_identically() {
    check_resume("causal_lm", true);
}

/// BERT's dropout (0.1 in the fixture) active: the masks of the resumed steps are the
/// uninterrupted run's.
#[test]
fn resuming_with_dropout_continues_bit_identically() {
    check_resume("seq_cls", false);
}

/// Dropout acts in training (the curve differs from the one without it) and is seeded (the
/// same seed gives the same curve, another seed another).
#[test]
fn dropout_is_active_in_training_and_seeded() {
    let run = reference("seq_cls");
    let curve = |dropout_off: bool, seed: u64| -> Vec<f64> {
        let args = TrainingArguments {
            output_dir: tempfile::tempdir().unwrap().keep(),
            max_steps: 4,
            seed,
            ..run.args.clone()
        };
        let dir = args.output_dir.clone();
        let mut t = trainer_with(&run, args, dropout_off);
        t.train().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        t.state()
            .log_history
            .iter()
            .filter_map(|e| e.get("loss").and_then(Value::as_f64))
            .collect()
    };
    let plain = curve(true, 42);
    let dropped = curve(false, 42);
    assert_eq!(plain.len(), dropped.len());
    assert!(!plain.is_empty());
    assert_ne!(plain, dropped, "dropout changed nothing");
    assert_eq!(dropped, curve(false, 42), "the same seed, another curve");
    assert_ne!(dropped, curve(false, 7), "another seed, the same masks");
}

fn check_resume(name: &str, dropout_off: bool) {
    let run = reference(name);
    let trainer = |run: &Run, args| trainer_with(run, args, dropout_off);
    let out = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: out.path().to_path_buf(),
        max_steps: 6,
        save_strategy: Strategy::Steps,
        save_steps: 3,
        save_total_limit: Some(1),
        shuffle: true,
        ..run.args.clone()
    };
    let mut whole = trainer(&run, args.clone());
    whole.train().unwrap();
    let end = out.path().join("checkpoint-6");
    assert!(
        !out.path().join("checkpoint-3").exists(),
        "save_total_limit keeps one"
    );
    let uninterrupted = weights(&end);

    // Another run writes checkpoint-3; a fresh trainer continues from it.
    let out2 = tempfile::tempdir().unwrap();
    let args2 = TrainingArguments {
        output_dir: out2.path().to_path_buf(),
        save_total_limit: None,
        ..args
    };
    trainer(&run, args2.clone()).train().unwrap();
    let resumed_args = TrainingArguments {
        resume_from_checkpoint: Some(out2.path().join("checkpoint-3")),
        output_dir: tempfile::tempdir().unwrap().keep(),
        ..args2
    };
    let mut second = trainer(&run, resumed_args.clone());
    second.train().unwrap();
    assert_eq!(second.state().global_step, 6);
    let resumed = weights(&resumed_args.output_dir.join("checkpoint-6"));
    for (name, t) in &uninterrupted {
        let (a, b): (Vec<f32>, Vec<f32>) = (
            t.flatten_all().unwrap().to_vec1().unwrap(),
            resumed[name].flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} differs after resuming"
        );
    }
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(
            resumed_args
                .output_dir
                .join("checkpoint-6/trainer_state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(state["global_step"], 6);
    assert_eq!(
        state["log_history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e.get("loss").is_some())
            .count(),
        6
    );
    std::fs::remove_dir_all(&resumed_args.output_dir).unwrap();
}

#[test]
fn saved_model_loads_back_with_the_trained_outputs() {
    let run = reference("seq_cls");
    let out = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: out.path().to_path_buf(),
        max_steps: 4,
        ..run.args.clone()
    };
    let mut t = trainer(&run, args);
    t.train().unwrap();
    let dir = out.path().join("final");
    t.save_pretrained(&dir).unwrap();

    let ids = Tensor::new(&[[5u32, 9, 17, 33, 2]], &Device::Cpu).unwrap();
    let trained = common::trained_classifier_logits(&t.model().model, &ids);
    let loaded = AutoConfig::from_pretrained(&dir)
        .unwrap()
        .load_encoder(None, &LoadOptions::default())
        .unwrap();
    let reloaded = loaded
        .forward(&ids, None, None, false)
        .unwrap()
        .logits
        .unwrap();
    let diff = common::max_abs_diff(&trained.to_dtype(DType::F32).unwrap(), &reloaded);
    assert!(diff < 1e-5, "reloaded logits differ by {diff}");
    let before = AutoConfig::from_pretrained(fixture("bert_seqcls"))
        .unwrap()
        .load_encoder(None, &LoadOptions::default())
        .unwrap()
        .forward(&ids, None, None, false)
        .unwrap()
        .logits
        .unwrap();
    assert!(
        common::max_abs_diff(&before, &reloaded) > 1e-3,
        "training changed nothing"
    );
}

#[test]
fn a_diverging_run_stops_with_the_step_number() {
    let run = reference("causal_lm");
    let out = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: out.path().to_path_buf(),
        learning_rate: 1e30,
        warmup_steps: 0,
        max_grad_norm: 0.0,
        max_steps: 10,
        ..run.args.clone()
    };
    let err = trainer(&run, args).train().unwrap_err().to_string();
    assert!(err.contains("not finite at step"), "{err}");
}

/// Resuming from another model's checkpoint is refused before any step, naming the file.
#[test]
fn resuming_another_models_checkpoint_is_refused() {
    let classifier = reference("seq_cls");
    let out = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: out.path().to_path_buf(),
        max_steps: 2,
        save_strategy: Strategy::Steps,
        save_steps: 2,
        ..classifier.args.clone()
    };
    trainer(&classifier, args).train().unwrap();
    let lm = reference("causal_lm");
    let args = TrainingArguments {
        output_dir: out.path().join("lm"),
        resume_from_checkpoint: Some(out.path().join("checkpoint-2")),
        ..lm.args.clone()
    };
    let err = trainer(&lm, args).train().unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("not a checkpoint of this model"),
        "{err}"
    );
}

/// Gradient checkpointing recomputes each layer with the same dropout masks: the loss curve
/// with dropout on is the one without checkpointing.
#[test]
fn gradient_checkpointing_keeps_the_curve() {
    let run = reference("seq_cls");
    let curve = |checkpointing: bool| -> Vec<f64> {
        let args = TrainingArguments {
            output_dir: tempfile::tempdir().unwrap().keep(),
            max_steps: 6,
            gradient_checkpointing: checkpointing,
            ..run.args.clone()
        };
        let dir = args.output_dir.clone();
        let mut t = trainer_with(&run, args, false);
        t.train().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        t.state()
            .log_history
            .iter()
            .filter_map(|e| e.get("loss").and_then(Value::as_f64))
            .collect()
    };
    let (plain, checkpointed) = (curve(false), curve(true));
    assert_eq!(plain.len(), checkpointed.len());
    for (a, b) in plain.iter().zip(&checkpointed) {
        assert!(close(*a, *b, 1e-6), "{a} vs {b} with checkpointing");
    }
}

/// A classifier adapter saves its `modules_to_save` in PEFT's layout and loads back with
/// `adapter`: the merged encoder gives the trained model's logits.
#[test]
fn saved_classifier_adapter_loads_with_its_head() {
    let run = reference("lora_seq_cls");
    let out = tempfile::tempdir().unwrap();
    let args = TrainingArguments {
        output_dir: out.path().to_path_buf(),
        max_steps: 5,
        ..run.args.clone()
    };
    let mut t = trainer(&run, args);
    t.train().unwrap();
    let dir = out.path().join("adapter");
    t.save_pretrained(&dir).unwrap();
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["task_type"], "SEQ_CLS");
    assert_eq!(
        config["modules_to_save"],
        serde_json::json!(["classifier", "score"])
    );
    let saved = candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu)
        .unwrap();
    assert!(saved.contains_key("base_model.model.classifier.weight"));

    let ids = Tensor::new(&[[5u32, 9, 17, 33, 2, 8]], &Device::Cpu).unwrap();
    let trustformers::train::TaskModel::Encoder { model: trained, .. } = &t.model().model else {
        panic!("an encoder");
    };
    let logits = |m: &trustformers::models::EncoderForTask| {
        m.forward(&ids, None, None, false).unwrap().logits.unwrap()
    };
    let opts = LoadOptions {
        adapter: Some(dir),
        ..LoadOptions::default()
    };
    let mut config = AutoConfig::from_pretrained(fixture("bert_seqcls")).unwrap();
    no_dropout(&mut config);
    let merged = config.load_encoder(None, &opts).unwrap();
    let base = config.load_encoder(None, &LoadOptions::default()).unwrap();
    let (want, got) = (logits(trained), logits(&merged));
    let diff = common::max_abs_diff(&want, &got);
    assert!(diff < 1e-4, "merged logits differ by {diff}");
    assert!(common::max_abs_diff(&logits(&base), &got) > 1e-4);
}

/// PEFT adapters on models whose module names are not LLaMA's merge at load with peft's
/// outputs: GPT-2's Conv1D `c_attn` (`fan_in_fan_out`) and DistilBERT's `q_lin`/`v_lin`
/// (`tools/gen_lora_fixtures.py`, B non-zero).
#[test]
fn peft_adapters_under_checkpoint_names_merge() {
    for (name, checkpoint) in [("gpt2", "gpt2"), ("distilbert", "distilbert_base")] {
        let dir = fixture("train").join(format!("lora_{name}"));
        let reference =
            candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
                .unwrap();
        let ids = reference["input_ids"].to_dtype(DType::U32).unwrap();
        let want = &reference["output"];
        let opts = LoadOptions {
            adapter: Some(dir.clone()),
            ..LoadOptions::default()
        };
        let config = AutoConfig::from_pretrained(fixture(checkpoint)).unwrap();
        let run = |opts: &LoadOptions| {
            if name == "gpt2" {
                let m = config.load_causal_lm(opts).unwrap();
                let seq = ids.dim(1).unwrap() as u32;
                let pos = Tensor::arange(0u32, seq, &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                m.forward(&ids, &pos, &mut m.new_cache()).unwrap()
            } else {
                let m = config
                    .load_encoder(Some(trustformers::EncoderTask::Base), opts)
                    .unwrap();
                m.forward(&ids, None, None, false)
                    .unwrap()
                    .last_hidden_state
            }
        };
        let got = run(&opts);
        let diff = common::max_abs_diff(&got, want);
        assert!(
            diff < 1e-4,
            "{name}: merged outputs differ from peft's by {diff}"
        );
        let base = run(&LoadOptions::default());
        assert!(
            common::max_abs_diff(&base, want) > 1e-3,
            "{name}: the adapter changed nothing"
        );
    }
}
