//! Shared helpers for the parity tests: fixture paths, expected outputs, comparisons.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use trustformers::{Device, Tensor};

/// `tests/fixtures/<name>` at the repository root.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The tensors of `tests/fixtures/<name>/expected.safetensors`.
pub fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    trustformers::core::numeric::max_abs_diff(a, b).unwrap()
}

/// Positions `start..` of row `row` of a `[batch, seq, ...]` tensor.
pub fn row_from(t: &Tensor, row: usize, start: usize) -> Tensor {
    let seq = t.dim(1).unwrap();
    t.narrow(0, row, 1)
        .unwrap()
        .narrow(1, start, seq - start)
        .unwrap()
}

/// Index of the first unpadded position of every row of a `[batch, seq]` 0/1 mask.
pub fn first_real(mask: &Tensor) -> Vec<usize> {
    mask.to_dtype(candle_core::DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .iter()
        .map(|r| r.iter().position(|&m| m != 0).unwrap())
        .collect()
}

/// Checks that `actual` matches `expected` at every unpadded position, within `atol`.
pub fn assert_close_unpadded(
    name: &str,
    actual: &Tensor,
    expected: &Tensor,
    mask: &Tensor,
    atol: f32,
) {
    for (row, start) in first_real(mask).into_iter().enumerate() {
        let d = max_abs_diff(
            &row_from(actual, row, start),
            &row_from(expected, row, start),
        );
        assert!(d <= atol, "{name}: row {row} differs by {d} (atol {atol})");
    }
}

/// The logits of a classifier being trained (an encoder `TaskModel`) on `ids`.
pub fn trained_classifier_logits(model: &trustformers::train::TaskModel, ids: &Tensor) -> Tensor {
    let trustformers::train::TaskModel::Encoder { model, .. } = model else {
        panic!("a classifier");
    };
    model
        .forward(ids, None, None, false)
        .unwrap()
        .logits
        .unwrap()
}
