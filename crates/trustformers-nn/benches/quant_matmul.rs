//! The quantized kernels against candle's on the same weights: one decode step (one row of
//! activations) and a 16-row prefill chunk, at SmolLM2-135M's matrix shapes.
//!
//! `cargo bench -p trustformers-nn --bench quant_matmul` (threads: `RAYON_NUM_THREADS`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use trustformers_nn::kernels::for_qtensor;

/// (name, rows = out features, cols = in features) of SmolLM2-135M's linear layers.
const SHAPES: &[(&str, usize, usize)] = &[
    ("up 1536x576", 1536, 576),
    ("down 576x1536", 576, 1536),
    ("head 49152x576", 49152, 576),
];

fn weights(rows: usize, cols: usize, dtype: GgmlDType) -> QTensor {
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 2_654_435_761 % 1000) as f32 / 500.0 - 1.0) * 0.05)
        .collect();
    let w = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
    QTensor::quantize(&w, dtype).unwrap()
}

fn bench(c: &mut Criterion) {
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0] {
        let mut group = c.benchmark_group(format!("{dtype:?}"));
        group.sample_size(20);
        for &(name, rows, cols) in SHAPES {
            let q = weights(rows, cols, dtype);
            let ours = for_qtensor(&std::sync::Arc::new(q))
                .unwrap()
                .expect("a kernel for this format");
            let candle = QMatMul::from_qtensor(weights(rows, cols, dtype)).unwrap();
            for n in [1usize, 16] {
                let x: Vec<f32> = (0..n * cols)
                    .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
                    .collect();
                let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).unwrap();
                group.throughput(Throughput::Elements((rows * cols * n) as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("ours n={n}"), name),
                    &x,
                    |b, x| b.iter(|| ours.matmul(x).unwrap()),
                );
                group.bench_with_input(
                    BenchmarkId::new(format!("candle n={n}"), name),
                    &xt,
                    |b, xt| b.iter(|| candle.forward(xt).unwrap()),
                );
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
