//! The fused CPU kernels against the tensor operations they replace, at decoder shapes:
//! attention (Gemma 3 270M: 4 query heads sharing 1 key/value head of 256; SmolLM2-135M:
//! 9 sharing 3 of 64) for one decode step over 128 cached positions and a causal 512-token
//! prefill, RMSNorm, and the gated GeLU of an MLP; and one decode step's attention over a
//! KV cache kept in f32 and in f16, at 128 and 2,048 cached positions.
//!
//! `cargo bench -p trustformers-nn --bench fused` (threads: `RAYON_NUM_THREADS`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::{Device, Tensor, D};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use trustformers_nn::attention::{causal_mask, sdpa};
use trustformers_nn::kernels::fused::{self, Act};
use trustformers_nn::kernels::sdpa::{self as cached, KvRows, SdpaShape};
use trustformers_nn::Dropout;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 2_654_435_761 % 1000) as f32 / 500.0 - 1.0) * 0.5)
        .collect()
}

fn tensor(dims: &[usize], seed: usize) -> Tensor {
    Tensor::from_vec(values(dims.iter().product(), seed), dims, &Device::Cpu).unwrap()
}

/// `sdpa` dispatches f32 CPU tensors to the fused kernel; the reference is the same
/// computation written as candle operations.
fn ops_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    groups: usize,
) -> Tensor {
    let (b, kv, t, d) = k.dims4().unwrap();
    let repeat = |x: &Tensor| {
        x.unsqueeze(2)
            .unwrap()
            .broadcast_as((b, kv, groups, t, d))
            .unwrap()
            .reshape((b, kv * groups, t, d))
            .unwrap()
    };
    let scores = (q.matmul(&repeat(k).t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
    let scores = match mask {
        Some(m) => scores.broadcast_add(m).unwrap(),
        None => scores,
    };
    candle_nn::ops::softmax_last_dim(&scores)
        .unwrap()
        .matmul(&repeat(v))
        .unwrap()
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group.sample_size(20);
    // (name, heads, kv heads, head dim)
    for (name, h, kv, d) in [("gemma3", 4, 1, 256), ("smollm2", 9, 3, 64)] {
        // (test, queries, keys)
        for (test, s, t) in [("decode t=128", 1, 128), ("prefill 512", 512, 512)] {
            let q = tensor(&[1, h, s, d], 1);
            let (k, v) = (tensor(&[1, kv, t, d], 2), tensor(&[1, kv, t, d], 3));
            let mask = causal_mask(None, 1, t - s, s, None, &Device::Cpu).unwrap();
            let scale = 1.0 / (d as f64).sqrt();
            let id = format!("{name} {test}");
            group.bench_function(BenchmarkId::new("fused", &id), |b| {
                b.iter(|| {
                    sdpa(
                        &q,
                        &k,
                        &v,
                        mask.as_ref(),
                        h / kv,
                        scale,
                        None,
                        Dropout::NONE,
                    )
                    .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("candle ops", &id), |b| {
                b.iter(|| ops_attention(&q, &k, &v, mask.as_ref(), h / kv))
            });
        }
    }
    group.finish();
}

/// One decode query per head over `t` cached keys and values, read where a KV cache keeps
/// them: f32, or f16 (half the bytes).
fn cache_attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache attention");
    group.sample_size(20);
    for (name, h, kv, d) in [("gemma3", 4, 1, 256), ("smollm2", 9, 3, 64)] {
        for t in [128, 2048] {
            let q = values(h * d, 1);
            let (k, v) = (values(kv * t * d, 2), values(kv * t * d, 3));
            let half = |x: &[f32]| -> Vec<half::f16> {
                x.iter().map(|&x| half::f16::from_f32(x)).collect()
            };
            let (k16, v16) = (half(&k), half(&v));
            let shape = SdpaShape {
                batch: 1,
                heads: h,
                kv_heads: kv,
                queries: 1,
                keys: t,
                head_dim: d,
                scale: 1.0 / (d as f32).sqrt(),
                softcap: None,
            };
            let id = format!("{name} decode t={t}");
            group.bench_function(BenchmarkId::new("f32", &id), |b| {
                b.iter(|| {
                    cached::sdpa(
                        &q,
                        KvRows::F32(&k),
                        KvRows::F32(&v),
                        t * d,
                        None,
                        None,
                        shape,
                    )
                    .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("f16", &id), |b| {
                b.iter(|| {
                    cached::sdpa(
                        &q,
                        KvRows::F16(&k16),
                        KvRows::F16(&v16),
                        t * d,
                        None,
                        None,
                        shape,
                    )
                    .unwrap()
                })
            });
        }
    }
    group.finish();
}

fn rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("rows");
    group.sample_size(30);
    // Gemma 3's hidden (640) and intermediate (2048) sizes, one decode row and 512 rows.
    for n in [1usize, 512] {
        let x = values(n * 640, 4);
        let w = values(640, 5);
        let xt = tensor(&[n, 640], 4);
        let wt = tensor(&[640], 5);
        group.bench_function(BenchmarkId::new("rms_norm fused", n), |b| {
            b.iter(|| {
                let mut x = x.clone();
                fused::rms_norm(&mut x, &w, 1e-6);
                x
            })
        });
        group.bench_function(BenchmarkId::new("rms_norm candle ops", n), |b| {
            b.iter(|| {
                let var = xt.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
                xt.broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap())
                    .unwrap()
                    .broadcast_mul(&wt)
                    .unwrap()
            })
        });
        let (gate, up) = (values(n * 2048, 6), values(n * 2048, 7));
        let (gt, ut) = (tensor(&[n, 2048], 6), tensor(&[n, 2048], 7));
        group.bench_function(BenchmarkId::new("gelu_tanh(gate) * up fused", n), |b| {
            b.iter(|| {
                let mut g = gate.clone();
                fused::gated(Act::GeluTanh, &mut g, &up);
                g
            })
        });
        group.bench_function(
            BenchmarkId::new("gelu_tanh(gate) * up candle ops", n),
            |b| b.iter(|| (gt.gelu().unwrap() * &ut).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, attention, cache_attention, rows);
criterion_main!(benches);
