//! What the optimizer and schedule parity tests share: the fixtures of
//! `tools/gen_optim_fixtures.py` and comparisons as Python makes them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::{Device, Tensor, Var};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use trustformers_optim::Param;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/optim")
}

pub fn meta() -> &'static Value {
    static META: OnceLock<Value> = OnceLock::new();
    META.get_or_init(|| {
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("torch.json")).unwrap())
            .unwrap()
    })
}

pub fn tensors() -> &'static HashMap<String, Tensor> {
    static T: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    T.get_or_init(|| {
        candle_core::safetensors::load(fixtures().join("torch.safetensors"), &Device::Cpu).unwrap()
    })
}

pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// JSON values equal as Python sees them: numbers by value (0 == 0.0), booleans, nulls,
/// and lists element by element.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        // serde_json's parser may be one unit in the last place off (1e-30).
        (Value::Number(_), Value::Number(_)) => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        _ => a == b,
    }
}

/// One zero parameter of `n` elements named `name`.
pub fn zeros(name: &str, n: usize) -> Vec<Param> {
    vec![Param::new(
        name,
        Var::zeros(n, candle_core::DType::F32, &Device::Cpu).unwrap(),
    )]
}
