//! One AdamW step over SmolLM2-135M's parameter shapes (134.5M parameters), median of
//! `REPS` (default 5) after one warm-up step; prints the time and the bandwidth of the
//! 28 bytes per parameter the update must move (read p, g, m, v; write p, m, v), with the
//! gradient check on (the default) and off, then the machine's copy bandwidth.
//!
//! `cargo run --release -p trustformers-optim --example bench_adamw` (`scripts/bench_optim.sh`
//! runs it beside torch's AdamW).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use std::time::Instant;
use trustformers_optim::torch::{AdamW, AdamWConfig};
use trustformers_optim::{Optim, Optimizer, Param};

/// SmolLM2-135M: vocab 49152, hidden 576, 30 layers, 9 heads of 64 (3 kv heads), MLP 1536.
fn shapes() -> Vec<(String, Vec<usize>)> {
    let (h, kv, ff) = (576, 192, 1536);
    let mut s = vec![("embed".to_string(), vec![49152, h])];
    for l in 0..30 {
        for (n, shape) in [
            ("q", vec![h, h]),
            ("k", vec![kv, h]),
            ("v", vec![kv, h]),
            ("o", vec![h, h]),
            ("gate", vec![ff, h]),
            ("up", vec![ff, h]),
            ("down", vec![h, ff]),
            ("ln1", vec![h]),
            ("ln2", vec![h]),
        ] {
            s.push((format!("{l}.{n}"), shape));
        }
    }
    s.push(("norm".into(), vec![h]));
    s
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    let params: Vec<Param> = shapes()
        .into_iter()
        .map(|(n, s)| Param::new(n, Var::randn(0f32, 0.02, s, &dev).unwrap()))
        .collect();
    let count: usize = params.iter().map(|p| p.var.elem_count()).sum();
    let mut grads = GradStore::default();
    for p in &params {
        let g = Tensor::randn(0f32, 1e-3, p.var.shape(), &dev).unwrap();
        grads.insert(p.var.as_tensor(), g.to_dtype(DType::F32).unwrap());
    }
    // Checked (the default: every gradient read for NaN and infinity first) and unchecked
    // (as torch's AdamW, which does not check; what a training loop that clips the
    // gradients uses, the clipping norm having checked them).
    for check in [true, false] {
        let mut opt = Optimizer::<AdamW>::new(params.clone(), AdamWConfig::default())
            .unwrap()
            .check_finite(check);
        opt.step(&grads).unwrap();
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            opt.step(&grads).unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let gbs = 28.0 * count as f64 / median / 1e9;
        let system = if check {
            "trustformers AdamW"
        } else {
            "trustformers AdamW check_finite(false)"
        };
        println!(
            "{{\"system\": \"{system}\", \"params\": {count}, \"median_ms\": {:.1}, \"gb_s\": {gbs:.2}}}",
            median * 1e3
        );
    }
    copy_bandwidth(reps);
}

/// The machine's copy bandwidth on the same threads: 512 MiB copied in parallel blocks,
/// counting the bytes read and written, as the update's 28 bytes per parameter are.
fn copy_bandwidth(reps: usize) {
    use rayon::prelude::*;
    let n = 128 << 20;
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    let mut times = Vec::new();
    for _ in 0..reps + 1 {
        let t = Instant::now();
        dst.par_chunks_mut(1 << 16)
            .zip(src.par_chunks(1 << 16))
            .for_each(|(d, s)| d.copy_from_slice(s));
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0);
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"system\": \"copy (memcpy in parallel blocks)\", \"bytes\": {}, \"median_ms\": {:.1}, \"gb_s\": {:.2}}}",
        8 * n,
        median * 1e3,
        8.0 * n as f64 / median / 1e9
    );
}
