//! `trustformers debug dump` end to end on a committed fixture.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn dump(model: &Path, inputs: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trustformers"))
        .args(["debug", "dump", "--model"])
        .arg(model)
        .arg("--inputs")
        .arg(inputs)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    trustformers::core::numeric::max_abs_diff(a, b).unwrap()
}

/// Largest difference over the unpadded span of each row (left- or right-padded).
fn max_diff_unpadded(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let mask: Vec<Vec<i64>> = mask.to_vec2().unwrap();
    let mut worst = 0f32;
    for (row, m) in mask.iter().enumerate() {
        let start = m.iter().position(|&x| x != 0).unwrap();
        let end = m.iter().rposition(|&x| x != 0).unwrap() + 1;
        let len = end - start;
        let x = a.narrow(0, row, 1).unwrap().narrow(1, start, len).unwrap();
        let y = b.narrow(0, row, 1).unwrap().narrow(1, start, len).unwrap();
        worst = worst.max(max_diff(&x, &y));
    }
    worst
}

#[test]
fn dump_matches_transformers_outputs() {
    // Every fixture with transformers' outputs: decoders (safetensors or GGUF), encoders and
    // encoder-decoders.
    let root = fixture("");
    let mut models: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| {
            let dir = e.unwrap().path();
            let name = dir.file_name()?.to_str()?.to_string();
            if !dir.join("expected.safetensors").is_file() {
                return None;
            }
            let model = match name.strip_suffix("_gguf") {
                Some(stem) => dir.join(format!("tiny-{stem}.gguf")),
                None if dir.join("config.json").is_file() => dir.clone(),
                None => return None,
            };
            Some((name, model))
        })
        .collect();
    models.sort();
    assert!(models.len() >= 40, "found only {} fixtures", models.len());
    for (name, model) in models {
        let expected = load(&fixture(&name).join("expected.safetensors"));
        let dir = tempfile::tempdir().unwrap();
        // Without position_ids: the tool derives them from the mask like generate() does.
        let inputs: HashMap<String, Tensor> = [
            "input_ids",
            "attention_mask",
            "token_type_ids",
            "decoder_input_ids",
            "pixel_values",
        ]
        .iter()
        .filter_map(|k| Some((k.to_string(), expected.get(*k)?.clone())))
        .collect();
        let inputs_path = dir.path().join("inputs.safetensors");
        candle_core::safetensors::save(&inputs, &inputs_path).unwrap();
        let out_path = dir.path().join("out.safetensors");
        let out = dump(
            &model,
            &inputs_path,
            &out_path,
            &["--dtype", "f32", "--layers"],
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = load(&out_path);
        let mask = expected.get("attention_mask");
        let mut compared = 0;
        for key in [
            "logits",
            "last_hidden_state",
            "pooler_output",
            "start_logits",
            "end_logits",
            "encoder_last_hidden_state",
            "hidden_states.0",
            "hidden_states.2",
            "logits_per_image",
            "logits_per_text",
            "text_embeds",
            "image_embeds",
            "text_last_hidden_state",
            "vision_last_hidden_state",
            "qformer_last_hidden_state",
            "image_features",
            "text_features",
        ] {
            let Some(want) = expected.get(key) else {
                continue;
            };
            let g = got
                .get(key)
                .unwrap_or_else(|| panic!("{name}: the dump has no `{key}`"));
            assert_eq!(g.dtype(), DType::F32);
            assert_eq!(g.dims(), want.dims(), "{name} {key}");
            // Per-token text outputs are compared over the real tokens only.
            let d = match mask {
                Some(mask)
                    if g.rank() >= 2
                        && g.dim(1).unwrap() == mask.dim(1).unwrap()
                        && !key.starts_with("vision") =>
                {
                    max_diff_unpadded(g, want, mask)
                }
                _ => max_diff(g, want),
            };
            assert!(d <= 1e-4, "{name} {key} differs by {d}");
            compared += 1;
        }
        assert!(compared >= 1, "{name}: nothing compared");
    }
}

#[test]
fn bad_inputs_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let inputs_path = dir.path().join("inputs.safetensors");
    let out_path = dir.path().join("out.safetensors");
    let floats = Tensor::zeros((1, 4), DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &HashMap::from([("input_ids".to_string(), floats)]),
        &inputs_path,
    )
    .unwrap();
    let out = dump(&fixture("llama"), &inputs_path, &out_path, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("input_ids"));

    let too_big = Tensor::new(&[[1i64, 100_000]], &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &HashMap::from([("input_ids".to_string(), too_big)]),
        &inputs_path,
    )
    .unwrap();
    let out = dump(&fixture("llama"), &inputs_path, &out_path, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));

    std::fs::write(&inputs_path, b"not safetensors").unwrap();
    let out = dump(&fixture("llama"), &inputs_path, &out_path, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("inputs.safetensors"));
}
