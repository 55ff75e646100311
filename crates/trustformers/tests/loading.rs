//! Strict loading and bad input: every problem is a typed error that names the tensor, field
//! or file; nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixture, max_abs_diff};
use std::collections::HashMap;
use std::path::Path;
use trustformers::models::decoder::default_positions;
use trustformers::{AutoConfig, AutoModelForCausalLM, Error, LoadOptions};

fn opts() -> LoadOptions {
    LoadOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    }
}

fn fixture_tensors(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("model.safetensors"), &Device::Cpu).unwrap()
}

/// A temporary checkpoint with `name`'s config and the given tensors.
fn checkpoint_with(name: &str, tensors: &HashMap<String, Tensor>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture(name).join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    candle_core::safetensors::save(tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load_err(path: &Path) -> Error {
    match AutoModelForCausalLM::from_pretrained(path, &opts()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn a_missing_tensor_is_named() {
    let mut t = fixture_tensors("llama");
    t.remove("model.layers.1.mlp.up_proj.weight");
    let dir = checkpoint_with("llama", &t);
    match load_err(dir.path()) {
        Error::MissingTensor { name } => assert_eq!(name, "model.layers.1.mlp.up_proj.weight"),
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn an_unused_tensor_is_named() {
    let mut t = fixture_tensors("llama");
    t.insert(
        "model.layers.0.mlp.extra.weight".into(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = checkpoint_with("llama", &t);
    match load_err(dir.path()) {
        Error::UnusedTensors { names } => assert_eq!(names, ["model.layers.0.mlp.extra.weight"]),
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn ignored_buffers_are_accepted() {
    let mut t = fixture_tensors("llama");
    t.insert(
        "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = checkpoint_with("llama", &t);
    AutoModelForCausalLM::from_pretrained(dir.path(), &opts()).unwrap();
}

#[test]
fn a_wrong_shape_is_named() {
    let mut t = fixture_tensors("llama");
    t.insert(
        "model.layers.0.self_attn.k_proj.weight".into(),
        Tensor::zeros((8, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = checkpoint_with("llama", &t);
    match load_err(dir.path()) {
        Error::ShapeMismatch {
            name,
            expected,
            actual,
        } => {
            assert_eq!(name, "model.layers.0.self_attn.k_proj.weight");
            assert_eq!((expected, actual), (vec![16, 32], vec![8, 32]));
        }
        e => panic!("unexpected error {e}"),
    }
}

fn write_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    write_config_of("llama", dir, edit)
}

/// Fixture `name`'s config.json, edited, into `dir`.
fn write_config_of(name: &str, dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(name).join("config.json")).unwrap())
            .unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn config_layer_and_vocab_counts_are_checked_against_the_tensors() {
    let dir = checkpoint_with("llama", &fixture_tensors("llama"));
    write_config(dir.path(), |c| c["num_hidden_layers"] = 1.into());
    assert!(matches!(load_err(dir.path()), Error::UnusedTensors { .. }));
    write_config(dir.path(), |c| c["num_hidden_layers"] = 3.into());
    assert!(
        matches!(load_err(dir.path()), Error::MissingTensor { name } if name.starts_with("model.layers.2."))
    );
    write_config(dir.path(), |c| c["vocab_size"] = 100.into());
    assert!(
        matches!(load_err(dir.path()), Error::ShapeMismatch { name, .. } if name == "model.embed_tokens.weight")
    );
}

type ConfigEdit = dyn FnOnce(&mut serde_json::Value);

#[test]
fn bad_config_fields_are_named() {
    let dir = checkpoint_with("llama", &fixture_tensors("llama"));
    let cases: Vec<(&str, Box<ConfigEdit>)> = vec![
        (
            "hidden_size",
            Box::new(|c| drop(c.as_object_mut().unwrap().remove("hidden_size"))),
        ),
        ("hidden_size", Box::new(|c| c["hidden_size"] = 0.into())),
        ("hidden_size", Box::new(|c| c["hidden_size"] = (-32).into())),
        ("hidden_size", Box::new(|c| c["hidden_size"] = "32".into())),
        ("vocab_size", Box::new(|c| c["vocab_size"] = 1e15.into())),
        (
            "num_attention_heads",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("head_dim");
                c["num_attention_heads"] = 6.into();
            }),
        ),
        (
            "num_key_value_heads",
            Box::new(|c| c["num_key_value_heads"] = 3.into()),
        ),
        (
            "rms_norm_eps",
            Box::new(|c| c["rms_norm_eps"] = (-1.0).into()),
        ),
        (
            "rope_parameters.rope_type",
            Box::new(|c| c["rope_parameters"]["rope_type"] = "spiral".into()),
        ),
        (
            "rope_parameters.factor",
            Box::new(|c| {
                drop(
                    c["rope_parameters"]
                        .as_object_mut()
                        .unwrap()
                        .remove("factor"),
                )
            }),
        ),
        (
            "hidden_act",
            Box::new(|c| c["hidden_act"] = "swoosh".into()),
        ),
    ];
    for (field, edit) in cases {
        write_config(dir.path(), edit);
        match load_err(dir.path()) {
            Error::Config { field: f, .. } => assert_eq!(f, field),
            e => panic!("{field}: unexpected error {e}"),
        }
    }
    // 1e309 is not a finite f64: serde_json refuses it as JSON.
    std::fs::write(
        dir.path().join("config.json"),
        std::fs::read_to_string(fixture("llama").join("config.json"))
            .unwrap()
            .replace("\"rope_theta\": 10000.0", "\"rope_theta\": 1e309"),
    )
    .unwrap();
    assert!(matches!(load_err(dir.path()), Error::Json { .. }));
}

#[test]
fn bad_expert_and_layer_fields_are_named() {
    let cases: Vec<(&str, &str, Box<ConfigEdit>)> = vec![
        (
            "qwen2_moe",
            "num_experts_per_tok",
            Box::new(|c| c["num_experts_per_tok"] = 5.into()),
        ),
        (
            "qwen2_moe",
            "num_experts_per_tok",
            Box::new(|c| c["num_experts_per_tok"] = 0.into()),
        ),
        (
            "qwen2_moe",
            "moe_intermediate_size",
            Box::new(|c| c["moe_intermediate_size"] = 0.into()),
        ),
        (
            "qwen2_moe",
            "shared_expert_intermediate_size",
            Box::new(|c| c["shared_expert_intermediate_size"] = 0.into()),
        ),
        (
            "qwen3_moe",
            "decoder_sparse_step",
            Box::new(|c| c["decoder_sparse_step"] = 0.into()),
        ),
        (
            "qwen3_moe",
            "mlp_only_layers",
            Box::new(|c| c["mlp_only_layers"] = "all".into()),
        ),
        (
            "granitemoe",
            "num_experts_per_tok",
            Box::new(|c| c["num_experts_per_tok"] = 9.into()),
        ),
        (
            "granite",
            "logits_scaling",
            Box::new(|c| c["logits_scaling"] = (-2.0).into()),
        ),
        (
            "deepseek_v3",
            "n_group",
            Box::new(|c| c["n_group"] = 3.into()),
        ),
        (
            "deepseek_v3",
            "topk_group",
            Box::new(|c| c["topk_group"] = 5.into()),
        ),
        (
            "deepseek_v3",
            "num_experts_per_tok",
            Box::new(|c| c["num_experts_per_tok"] = 5.into()),
        ),
        (
            "deepseek_v3",
            "kv_lora_rank",
            Box::new(|c| c["kv_lora_rank"] = 0.into()),
        ),
        (
            "deepseek_v3",
            "q_lora_rank",
            Box::new(|c| c["q_lora_rank"] = 0.into()),
        ),
        (
            "deepseek_v2",
            "topk_method",
            Box::new(|c| c["topk_method"] = "noaux_tc_v9".into()),
        ),
        (
            "gpt_oss",
            "swiglu_limit",
            Box::new(|c| c["swiglu_limit"] = (-1.0).into()),
        ),
        (
            "gpt_oss",
            "num_experts_per_tok",
            Box::new(|c| c["num_experts_per_tok"] = 7.into()),
        ),
        (
            "smollm3",
            "no_rope_layers",
            Box::new(|c| c["no_rope_layers"] = serde_json::json!([1, 0])),
        ),
        (
            "smollm3",
            "no_rope_layers",
            Box::new(|c| c["no_rope_layers"] = serde_json::json!([1, "no", 1, 0])),
        ),
        (
            "cohere2",
            "layer_types",
            Box::new(|c| {
                c["layer_types"] =
                    serde_json::json!(["chunked_attention", "full_attention", "full_attention"])
            }),
        ),
    ];
    for (name, field, edit) in cases {
        let dir = checkpoint_with(name, &fixture_tensors(name));
        write_config_of(name, dir.path(), edit);
        match load_err(dir.path()) {
            Error::Config { field: f, .. } => assert_eq!(f, field, "{name}"),
            e => panic!("{name} {field}: unexpected error {e}"),
        }
    }
}

#[test]
fn non_utf8_or_missing_config_is_an_error() {
    let dir = checkpoint_with("llama", &fixture_tensors("llama"));
    std::fs::write(
        dir.path().join("config.json"),
        b"{\"model_type\": \"ll\xffama\"}",
    )
    .unwrap();
    assert!(matches!(load_err(dir.path()), Error::Json { reason, .. } if reason.contains("UTF-8")));
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    assert!(matches!(load_err(dir.path()), Error::Io { .. }));
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    assert!(matches!(load_err(dir.path()), Error::Config { field, .. } if field == "model_type"));
}

#[test]
fn unknown_model_type_lists_known_ones() {
    let dir = checkpoint_with("llama", &fixture_tensors("llama"));
    write_config(dir.path(), |c| c["model_type"] = "gpt5".into());
    match AutoConfig::from_pretrained(dir.path()) {
        Err(Error::UnknownModelType { model_type, known }) => {
            assert_eq!(model_type, "gpt5");
            assert!(known.contains(&"qwen3") && known.contains(&"llama"));
        }
        _ => panic!("expected UnknownModelType"),
    }
}

#[test]
fn transformers_4_configs_read_like_transformers_5_ones() {
    // Same model, config.json as transformers 4 wrote it: rope_theta + rope_scaling.
    let dir = checkpoint_with("llama", &fixture_tensors("llama"));
    write_config(dir.path(), |c| {
        let params = c
            .as_object_mut()
            .unwrap()
            .remove("rope_parameters")
            .unwrap();
        c["rope_theta"] = params["rope_theta"].clone();
        let mut scaling = params.clone();
        scaling.as_object_mut().unwrap().remove("rope_theta");
        scaling.as_object_mut().unwrap().remove("rope_type");
        scaling["type"] = "llama3".into();
        c["rope_scaling"] = scaling;
    });
    let v4 = AutoConfig::from_pretrained(dir.path())
        .unwrap()
        .decoder_spec()
        .unwrap();
    let v5 = AutoConfig::from_pretrained(fixture("llama"))
        .unwrap()
        .decoder_spec()
        .unwrap();
    assert_eq!(v4, v5);
}

#[test]
fn sharded_checkpoints_load_like_single_files() {
    let tensors = fixture_tensors("qwen2");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("qwen2").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let (mut a, mut b) = (HashMap::new(), HashMap::new());
    let mut weight_map = serde_json::Map::new();
    for (i, (name, t)) in tensors.iter().enumerate() {
        let (shard, file) = if i % 2 == 0 {
            (&mut a, "model-00001-of-00002.safetensors")
        } else {
            (&mut b, "model-00002-of-00002.safetensors")
        };
        shard.insert(name.clone(), t.clone());
        weight_map.insert(name.clone(), file.into());
    }
    candle_core::safetensors::save(&a, dir.path().join("model-00001-of-00002.safetensors"))
        .unwrap();
    candle_core::safetensors::save(&b, dir.path().join("model-00002-of-00002.safetensors"))
        .unwrap();
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();

    let exp = expected("qwen2");
    let ids = exp["input_ids"].narrow(0, 0, 1).unwrap();
    let pos = default_positions(1, 0, ids.dim(1).unwrap(), &Device::Cpu).unwrap();
    let model = AutoModelForCausalLM::from_pretrained(dir.path(), &opts()).unwrap();
    let logits = model.forward(&ids, &pos, &mut model.new_cache()).unwrap();
    assert!(max_abs_diff(&logits, &exp["logits"].narrow(0, 0, 1).unwrap()) <= 1e-4);

    // An index that points a tensor at the wrong shard, or outside the directory.
    let mut bad = index.clone();
    let first = tensors.keys().min().unwrap().clone();
    let other = if weight_map[&first] == "model-00001-of-00002.safetensors" {
        "model-00002-of-00002.safetensors"
    } else {
        "model-00001-of-00002.safetensors"
    };
    bad["weight_map"][&first] = other.into();
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        bad.to_string(),
    )
    .unwrap();
    assert!(
        matches!(load_err(dir.path()), Error::ShardIndex { reason, .. } if reason.contains(&first))
    );
    bad["weight_map"][&first] = "../../etc/passwd".into();
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        bad.to_string(),
    )
    .unwrap();
    assert!(matches!(load_err(dir.path()), Error::ShardIndex { .. }));
}

/// Builds a safetensors file by hand: `header` JSON, then `data`.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn malformed_safetensors_are_errors() {
    let good = std::fs::read(fixture("llama").join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("truncated header length".into(), good[..5].to_vec()),
        (
            "truncated header".into(),
            good[..8 + header_len / 2].to_vec(),
        ),
        ("truncated data".into(), good[..good.len() - 1].to_vec()),
        ("trailing bytes".into(), [good.clone(), vec![0; 4]].concat()),
    ];
    for len in [0u64, 7, good.len() as u64, 100_000_001, u64::MAX] {
        let mut b = good.clone();
        b[..8].copy_from_slice(&len.to_le_bytes());
        cases.push((format!("header length {len}"), b));
    }
    let tensor = |dtype: &str, shape: &str, offsets: &str| {
        format!("{{\"t\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":{offsets}}}}}")
    };
    cases.extend([
        ("non-UTF-8 header".into(), raw_safetensors("{\"\u{0}\"}", &[]).into_iter().map(|b| if b == 0 { 0xff } else { b }).collect()),
        ("non-object header".into(), raw_safetensors("[1, 2]", &[])),
        ("unknown dtype".into(), raw_safetensors(&tensor("Q4", "[2]", "[0,8]"), &[0; 8])),
        ("overflowing shape".into(), raw_safetensors(&tensor("F32", "[4294967296,4294967296,16]", "[0,8]"), &[0; 8])),
        ("end before begin".into(), raw_safetensors(&tensor("F32", "[2]", "[8,0]"), &[0; 8])),
        ("out of range".into(), raw_safetensors(&tensor("F32", "[2]", "[0,8]"), &[0; 4])),
        (
            "overlapping".into(),
            raw_safetensors(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                &[0; 12],
            ),
        ),
        (
            "gapped".into(),
            raw_safetensors(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                &[0; 12],
            ),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    for (what, bytes) in cases {
        std::fs::write(dir.path().join("model.safetensors"), &bytes).unwrap();
        match AutoModelForCausalLM::from_pretrained(dir.path(), &opts()) {
            Err(Error::Safetensors { path, .. }) => {
                assert!(path.ends_with("model.safetensors"), "{what}")
            }
            Err(e) => panic!("{what}: unexpected error {e}"),
            Ok(_) => panic!("{what}: loaded"),
        }
    }
}

#[test]
fn malformed_gguf_files_are_errors() {
    let good = std::fs::read(fixture("llama_gguf").join("tiny-llama.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    // Every truncation point up to the end of the header, then a sample through the data.
    let cuts = (0..2048.min(good.len())).chain((2048..good.len()).step_by(97));
    for cut in cuts {
        std::fs::write(&path, &good[..cut]).unwrap();
        match AutoModelForCausalLM::from_pretrained(&path, &opts()) {
            Err(Error::Gguf { .. }) => {}
            Err(e) => panic!("cut at {cut}: unexpected error {e}"),
            Ok(_) => panic!("cut at {cut}: loaded"),
        }
    }
    // A tensor the name table does not know is reported as unused, by its GGUF name.
    let mut renamed = good.clone();
    let at = renamed
        .windows(16)
        .position(|w| w == b"blk.1.ffn_down.w")
        .unwrap();
    renamed[at..at + 8].copy_from_slice(b"blk.1.xx");
    std::fs::write(&path, &renamed).unwrap();
    match AutoModelForCausalLM::from_pretrained(&path, &opts()) {
        Err(Error::MissingTensor { name }) => {
            assert_eq!(name, "model.layers.1.mlp.down_proj.weight")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("loaded"),
    }
}

#[test]
fn pytorch_bin_checkpoint_loads_like_safetensors() {
    let from_bin = AutoModelForCausalLM::from_pretrained(fixture("llama_bin"), &opts()).unwrap();
    let from_st = AutoModelForCausalLM::from_pretrained(fixture("llama"), &opts()).unwrap();
    let ids = Tensor::new(&[[1u32, 5, 9, 42]], &Device::Cpu).unwrap();
    let positions = default_positions(1, 0, 4, &Device::Cpu).unwrap();
    let a = from_bin
        .forward(&ids, &positions, &mut from_bin.new_cache())
        .unwrap();
    let b = from_st
        .forward(&ids, &positions, &mut from_st.new_cache())
        .unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn mixtral_experts_load_from_either_layout() {
    // transformers 5 keeps experts fused in memory (`mlp.experts.gate_up_proj` [E, 2I, H],
    // `mlp.experts.down_proj` [E, H, I]); the Hub (and save_pretrained) store them one by one.
    let tensors = fixture_tensors("mixtral");
    let mut fused: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in &tensors {
        if !name.contains(".block_sparse_moe.") {
            fused.insert(name.clone(), t.clone());
        } else if name.ends_with("block_sparse_moe.gate.weight") {
            fused.insert(name.replace(".block_sparse_moe.", ".mlp."), t.clone());
        }
    }
    for layer in 0..2 {
        let p = format!("model.layers.{layer}.block_sparse_moe.experts");
        let (mut gate_up, mut down) = (Vec::new(), Vec::new());
        for e in 0..4 {
            let w = |k: &str| tensors[&format!("{p}.{e}.{k}.weight")].clone();
            gate_up.push(Tensor::cat(&[w("w1"), w("w3")], 0).unwrap());
            down.push(w("w2"));
        }
        let q = format!("model.layers.{layer}.mlp.experts");
        fused.insert(
            format!("{q}.gate_up_proj"),
            Tensor::stack(&gate_up, 0).unwrap(),
        );
        fused.insert(format!("{q}.down_proj"), Tensor::stack(&down, 0).unwrap());
    }
    let dir = checkpoint_with("mixtral", &fused);
    let a = AutoModelForCausalLM::from_pretrained(dir.path(), &opts()).unwrap();
    let b = AutoModelForCausalLM::from_pretrained(fixture("mixtral"), &opts()).unwrap();
    let ids = Tensor::new(&[[1u32, 5, 9, 42, 7]], &Device::Cpu).unwrap();
    let positions = default_positions(1, 0, 5, &Device::Cpu).unwrap();
    let la = a.forward(&ids, &positions, &mut a.new_cache()).unwrap();
    let lb = b.forward(&ids, &positions, &mut b.new_cache()).unwrap();
    assert!(max_abs_diff(&la, &lb) < 1e-6);
}

#[test]
fn malformed_mxfp4_experts_are_named() {
    let tensors = fixture_tensors("gpt_oss_mxfp4");
    let blocks = "model.layers.0.mlp.experts.gate_up_proj_blocks";
    let scales = "model.layers.0.mlp.experts.down_proj_scales";
    // Blocks of the wrong shape: rows of 16 bytes cut to 8.
    let mut bad = tensors.clone();
    bad.insert(blocks.into(), tensors[blocks].narrow(3, 0, 8).unwrap());
    let dir = checkpoint_with("gpt_oss_mxfp4", &bad);
    assert!(
        matches!(load_err(dir.path()), Error::ShapeMismatch { name, .. } if name == blocks),
        "blocks of the wrong shape"
    );
    // Scales missing.
    let mut bad = tensors.clone();
    bad.remove(scales);
    let dir = checkpoint_with("gpt_oss_mxfp4", &bad);
    assert!(
        matches!(load_err(dir.path()), Error::MissingTensor { name } if name == scales),
        "missing scales"
    );
    // Every scale byte is a valid exponent: the extremes load.
    let mut extreme = tensors.clone();
    let s = &tensors[scales];
    extreme.insert(
        scales.into(),
        (s.ones_like().unwrap() * 255.0)
            .unwrap()
            .to_dtype(DType::U8)
            .unwrap(),
    );
    let dir = checkpoint_with("gpt_oss_mxfp4", &extreme);
    assert!(AutoModelForCausalLM::from_pretrained(dir.path(), &opts()).is_ok());
}
