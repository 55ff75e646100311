//! PEFT LoRA adapter directories (`adapter_config.json` + `adapter_model.safetensors`)
//! merged into the tiny LLaMA at load, as `--adapter` does.

use super::{Case, Expect};
use crate::expect;
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use std::path::Path;
use trustformers::{AutoConfig, Error, LoadOptions, Result};

/// Loads the tiny LLaMA with the adapter in `dir`.
fn load(dir: &Path) -> Result<()> {
    let opts = LoadOptions {
        adapter: Some(dir.to_path_buf()),
        ..LoadOptions::default()
    };
    let model = AutoConfig::from_pretrained(fixture_dir())?.load_causal_lm(&opts)?;
    super::forward_once(model.as_ref())
}

fn fixture_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llama")
}

fn config() -> Value {
    json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
        "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "bias": "none",
    })
}

/// Adapter weights for layer 0's q_proj (`[32, 32]` in the tiny LLaMA), with `b` as B's shape.
fn weights(a: Option<(usize, usize)>, b: (usize, usize)) -> Vec<u8> {
    let name = |p: &str| format!("base_model.model.model.layers.0.self_attn.q_proj.{p}.weight");
    let mut tensors = std::collections::HashMap::new();
    if let Some(a) = a {
        tensors.insert(
            name("lora_A"),
            Tensor::ones(a, DType::F32, &Device::Cpu).unwrap(),
        );
    }
    tensors.insert(
        name("lora_B"),
        Tensor::ones(b, DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adapter_model.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    std::fs::read(path).unwrap()
}

fn case(name: &str, config: Vec<u8>, weights: Option<Vec<u8>>, expect: Expect) -> Case {
    let mut files = vec![("adapter_config.json", config)];
    if let Some(w) = weights {
        files.push(("adapter_model.safetensors", w));
    }
    Case::dir("adapter", name, files, load, expect)
}

fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut c = config();
    edit(&mut c);
    serde_json::to_vec(&c).unwrap()
}

pub fn cases() -> Vec<Case> {
    let good = || Some(weights(Some((4, 32)), (32, 4)));
    let json_error = || expect!(Error::Json { .. });
    vec![
        case(
            "config not JSON",
            b"{\"peft_type\": ".to_vec(),
            good(),
            json_error(),
        ),
        case(
            "config is an array",
            b"[1, 2]".to_vec(),
            good(),
            json_error(),
        ),
        case(
            "another PEFT type",
            with(|c| c["peft_type"] = json!("IA3")),
            good(),
            json_error(),
        ),
        case("rank 0", with(|c| c["r"] = json!(0)), good(), json_error()),
        case(
            "rank negative",
            with(|c| c["r"] = json!(-4)),
            good(),
            json_error(),
        ),
        case(
            "rank a string",
            with(|c| c["r"] = json!("4")),
            good(),
            json_error(),
        ),
        case(
            "no target_modules",
            with(|c| {
                c.as_object_mut().unwrap().remove("target_modules");
            }),
            good(),
            json_error(),
        ),
        case(
            "target_modules of numbers",
            with(|c| c["target_modules"] = json!([1, 2])),
            good(),
            json_error(),
        ),
        case(
            "bias all",
            with(|c| c["bias"] = json!("all")),
            good(),
            json_error(),
        ),
        case(
            "dropout 1",
            with(|c| c["lora_dropout"] = json!(1.0)),
            good(),
            json_error(),
        ),
        case(
            "per-module ranks",
            with(|c| c["rank_pattern"] = json!({"q_proj": 8})),
            good(),
            json_error(),
        ),
        case(
            "modules_to_save not names",
            with(|c| c["modules_to_save"] = json!([3])),
            good(),
            json_error(),
        ),
        case(
            "modules_to_save without their weights",
            with(|c| c["modules_to_save"] = json!(["lm_head"])),
            good(),
            expect!(Error::MissingTensor { .. }),
        ),
        case(
            "targets nothing",
            with(|c| c["target_modules"] = json!(["no_such_proj"])),
            good(),
            expect!(Error::InvalidInput(_)),
        ),
        case(
            "no weights file",
            serde_json::to_vec(&config()).unwrap(),
            None,
            expect!(Error::Io { .. } | Error::Safetensors { .. }),
        ),
        case(
            "weights file truncated",
            serde_json::to_vec(&config()).unwrap(),
            Some(good().unwrap()[..40].to_vec()),
            expect!(Error::Safetensors { .. }),
        ),
        case(
            "B of the wrong shape",
            serde_json::to_vec(&config()).unwrap(),
            Some(weights(Some((4, 32)), (16, 4))),
            expect!(Error::ShapeMismatch { .. }),
        ),
        case(
            "A of another rank",
            serde_json::to_vec(&config()).unwrap(),
            Some(weights(Some((8, 32)), (32, 4))),
            expect!(Error::Candle(_) | Error::ShapeMismatch { .. }),
        ),
        case(
            "A missing",
            serde_json::to_vec(&config()).unwrap(),
            Some(weights(None, (32, 4))),
            expect!(Error::MissingTensor { .. }),
        ),
    ]
}
