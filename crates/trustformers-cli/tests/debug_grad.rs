//! `trustformers debug grad` and `trustformers train` end to end on committed fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::Device;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn trustformers(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trustformers"))
        .args(args)
        .output()
        .unwrap()
}

/// The torch reference file holds the inputs and labels too: the command reads them and
/// writes torch's loss and gradients under the checkpoint's names.
#[test]
fn debug_grad_writes_torchs_gradients() {
    let out = tempfile::tempdir().unwrap();
    let reference = fixture("train/grads/gpt2.safetensors");
    let result = out.path().join("grads.safetensors");
    let run = trustformers(&[
        "debug",
        "grad",
        "--model",
        fixture("gpt2").to_str().unwrap(),
        "--inputs",
        reference.to_str().unwrap(),
        "--out",
        result.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let want = candle_core::safetensors::load(&reference, &Device::Cpu).unwrap();
    let got = candle_core::safetensors::load(&result, &Device::Cpu).unwrap();
    let diff = |a, b| trustformers::core::numeric::max_abs_diff(a, b).unwrap();
    assert!(diff(&got["loss"], &want["loss"]) < 1e-5);
    let grads = want.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(got.len(), grads + 1, "loss and one gradient per parameter");
    for (name, g) in &got {
        if name != "loss" {
            assert!(diff(g, &want[&format!("grad.{name}")]) < 1e-4, "{name}");
        }
    }
}

#[test]
fn debug_grad_names_what_is_missing() {
    let out = tempfile::tempdir().unwrap();
    let inputs = out.path().join("in.safetensors");
    let ids = candle_core::Tensor::new(&[[5i64, 6, 7]], &Device::Cpu).unwrap();
    candle_core::safetensors::save(&[("input_ids", ids)].into_iter().collect(), &inputs).unwrap();
    let run = trustformers(&[
        "debug",
        "grad",
        "--model",
        fixture("llama").to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        out.path().join("o.safetensors").to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("labels"), "{err}");
}

/// Bad training settings are refused before any step, naming the setting.
#[test]
fn train_refuses_bad_settings_by_name() {
    let out = tempfile::tempdir().unwrap();
    let model = fixture("bert_seqcls");
    let data = fixture("train/sentiment_train.jsonl");
    let base = [
        "train",
        "--model",
        model.to_str().unwrap(),
        "--train-file",
        data.to_str().unwrap(),
        "--output-dir",
        out.path().to_str().unwrap(),
    ];
    for (extra, name) in [
        (&["--task", "summarization"][..], "task"),
        (&["--task", "causal-lm"][..], "is an encoder"),
        (
            &[
                "--task",
                "text-classification",
                "--gradient-accumulation-steps",
                "0",
            ][..],
            "gradient_accumulation_steps",
        ),
        (
            &["--task", "text-classification", "--optim", "adamw_8bit"][..],
            "adamw_8bit",
        ),
        (
            &["--task", "text-classification", "--label-column", "stars"][..],
            "stars",
        ),
        (&["--task", "text-classification", "--bf16"][..], "bf16"),
        (
            &["--task", "question-answering", "--max-length", "64"][..],
            "doc_stride",
        ),
    ] {
        let run = trustformers(&[&base[..], extra].concat());
        assert!(!run.status.success(), "{extra:?} was accepted");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(name), "{extra:?}: {err}");
    }
}

/// Token classification (word labels by name: the label list comes from the data, as
/// run_ner.py makes it) and question answering (SQuAD columns) train end to end, with
/// gradient checkpointing, and save a model whose config names the labels (a new head on
/// the base checkpoint: the token-classification fixture's head has 5 labels, the data 7,
/// which is refused as transformers refuses it without `ignore_mismatched_sizes`).
#[test]
fn train_token_classification_and_question_answering() {
    for (task, model, data, extra) in [
        (
            "token-classification",
            "bert_base",
            "ner_train.jsonl",
            &["--max-length", "20"][..],
        ),
        (
            "question-answering",
            "bert_qa",
            "qa_train.jsonl",
            &["--max-length", "96", "--doc-stride", "32"][..],
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let model = fixture(model);
        let data = fixture("train").join(data);
        let run = trustformers(
            &[
                &[
                    "train",
                    "--task",
                    task,
                    "--model",
                    model.to_str().unwrap(),
                    "--train-file",
                    data.to_str().unwrap(),
                    "--output-dir",
                    out.path().to_str().unwrap(),
                    "--max-steps",
                    "3",
                    "--per-device-train-batch-size",
                    "2",
                    "--logging-steps",
                    "1",
                    "--gradient-checkpointing",
                ][..],
                extra,
            ]
            .concat(),
        );
        assert!(
            run.status.success(),
            "{task}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let log = std::fs::read_to_string(out.path().join("trainer_log.jsonl")).unwrap();
        let losses: Vec<f64> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e.get("loss").and_then(serde_json::Value::as_f64))
            .collect();
        assert_eq!(losses.len(), 3, "{task}: {log}");
        assert!(
            losses.iter().all(|l| l.is_finite() && *l > 0.0),
            "{task}: {losses:?}"
        );
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap())
                .unwrap();
        if task == "token-classification" {
            assert_eq!(config["id2label"]["0"], "B-LOC", "{config}");
            assert_eq!(config["id2label"].as_object().unwrap().len(), 7);
        }
    }
}

/// LoRA on a classifier from the CLI: BERT's default targets (query, value), the head in
/// `modules_to_save`, PEFT's SEQ_CLS adapter files.
#[test]
fn train_a_classifier_adapter() {
    let out = tempfile::tempdir().unwrap();
    let model = fixture("bert_seqcls");
    let data = fixture("train/sentiment_train.jsonl");
    let run = trustformers(&[
        "train",
        "--task",
        "text-classification",
        "--model",
        model.to_str().unwrap(),
        "--train-file",
        data.to_str().unwrap(),
        "--output-dir",
        out.path().to_str().unwrap(),
        "--max-steps",
        "2",
        "--lora-r",
        "2",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["task_type"], "SEQ_CLS");
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["query", "value"])
    );
    assert_eq!(
        config["modules_to_save"],
        serde_json::json!(["classifier", "score"])
    );
    let saved =
        candle_core::safetensors::load(out.path().join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(saved.contains_key("base_model.model.classifier.weight"));
    assert_eq!(saved.len(), 4 * 2 + 2);
}
