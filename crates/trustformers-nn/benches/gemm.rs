//! The f32 GEMM against candle's matmul: dense weights at all-MiniLM-L6-v2's shapes (batches
//! of 32 x 16 and 32 x 128 tokens), int8 weights at the same shapes, and ggml-quantized
//! weights at prefill (128 rows, SmolLM2 / Gemma 3 shapes): dequantized panel by panel into
//! the f32 GEMM, unpacked for the integer one on each kernel this CPU runs, and candle's
//! `QMatMul`.
//!
//! `cargo bench -p trustformers-nn --bench gemm` (threads: `RAYON_NUM_THREADS`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::Arc;
use trustformers_nn::kernels::gemm::{gemm, PackedF32, Panels};
use trustformers_nn::kernels::int8::{Int8Matrix, Int8Simd};
use trustformers_nn::kernels::qgemm::{qgemm, IntPanels, QSimd};
use trustformers_nn::kernels::{BlockQ4_1, BlockQ5_0, KQuantPanels, QMatrix};

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 2_654_435_761 % 1000) as f32 / 500.0 - 1.0) * 0.05)
        .collect()
}

fn dense(c: &mut Criterion) {
    let mut group = c.benchmark_group("f32");
    group.sample_size(20);
    // (rows of activations, out, in): MiniLM's attention projection, up and down.
    for (m, n, k) in [
        (512, 384, 384),
        (512, 1536, 384),
        (512, 384, 1536),
        (4096, 384, 384),
        (4096, 1536, 384),
        (4096, 384, 1536),
        // Gemma 3 270M's gate/up shape, dense, next to its Q5_0 prefill below.
        (128, 2048, 640),
    ] {
        let (a, w) = (values(m * k), values(n * k));
        let packed = PackedF32::new(&w, n, k).unwrap();
        let at = Tensor::from_vec(a.clone(), (m, k), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let name = format!("{m}x{n}x{k}");
        group.throughput(Throughput::Elements((m * n * k) as u64));
        group.bench_with_input(BenchmarkId::new("ours", &name), &a, |b, a| {
            b.iter(|| gemm(a, m, &packed, None).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("candle", &name), &at, |b, at| {
            b.iter(|| at.matmul(&wt.t().unwrap()).unwrap())
        });
    }
    group.finish();
}

/// Dynamically quantized int8 (`--dtype q8`) at MiniLM's shapes, each micro-kernel this CPU
/// runs, next to the f32 GEMM in the group above.
fn int8(c: &mut Criterion) {
    let mut group = c.benchmark_group("int8");
    group.sample_size(20);
    for (m, n, k) in [
        (512, 384, 384),
        (512, 1536, 384),
        (512, 384, 1536),
        (4096, 384, 384),
        (4096, 1536, 384),
        (4096, 384, 1536),
    ] {
        let (a, w) = (values(m * k), values(n * k));
        let q = Int8Matrix::quantize(&w, n, k).unwrap();
        let name = format!("{m}x{n}x{k}");
        group.throughput(Throughput::Elements((m * n * k) as u64));
        for simd in [
            Int8Simd::Amx,
            Int8Simd::Vnni,
            Int8Simd::Avx2,
            Int8Simd::Portable,
        ] {
            if simd.available() && (simd != Int8Simd::Portable || m == 512) {
                group.bench_with_input(BenchmarkId::new(format!("{simd:?}"), &name), &a, |b, a| {
                    b.iter(|| q.matmul_with(simd, a, m, None, None).unwrap())
                });
            }
        }
    }
    group.finish();
}

fn quantized(c: &mut Criterion) {
    let m = 128;
    for (dtype, n, k) in [
        (GgmlDType::Q4_1, 1536, 576),
        // Gemma 3 270M's gate/up and q projections (most of its prefill arithmetic).
        (GgmlDType::Q5_0, 2048, 640),
        (GgmlDType::Q4K, 640, 1024),
        (GgmlDType::Q6K, 640, 2048),
    ] {
        let mut group = c.benchmark_group(format!("{dtype:?} prefill"));
        group.sample_size(20);
        let w = Tensor::from_vec(values(n * k), (n, k), &Device::Cpu).unwrap();
        let q = Arc::new(QTensor::quantize(&w, dtype).unwrap());
        // The weights' panels, for the f32 GEMM (dequantized) and the integer one.
        let (f32_panels, int_panels): (Box<dyn Panels>, Box<dyn IntPanels>) = match dtype {
            GgmlDType::Q4_1 => (
                Box::new(QMatrix::<BlockQ4_1>::from_qtensor(&q).unwrap()),
                Box::new(QMatrix::<BlockQ4_1>::from_qtensor(&q).unwrap()),
            ),
            GgmlDType::Q5_0 => (
                Box::new(QMatrix::<BlockQ5_0>::from_qtensor(&q).unwrap()),
                Box::new(QMatrix::<BlockQ5_0>::from_qtensor(&q).unwrap()),
            ),
            _ => (
                Box::new(KQuantPanels::new(q.clone()).unwrap().unwrap()),
                Box::new(KQuantPanels::new(q.clone()).unwrap().unwrap()),
            ),
        };
        let candle = QMatMul::from_arc(q).unwrap();
        let a = values(m * k);
        let at = Tensor::from_vec(a.clone(), (m, k), &Device::Cpu).unwrap();
        let name = format!("{m}x{n}x{k}");
        group.throughput(Throughput::Elements((m * n * k) as u64));
        group.bench_with_input(BenchmarkId::new("f32", &name), &a, |b, a| {
            b.iter(|| gemm(a, m, f32_panels.as_ref(), None).unwrap())
        });
        for simd in [QSimd::Avx2, QSimd::Vnni] {
            if simd.available() && simd.takes(int_panels.as_ref()) {
                let id = BenchmarkId::new(format!("int {simd:?}"), &name);
                group.bench_with_input(id, &a, |b, a| {
                    b.iter(|| qgemm(simd, a, m, int_panels.as_ref(), None).unwrap())
                });
            }
        }
        group.bench_with_input(BenchmarkId::new("candle", &name), &at, |b, at| {
            b.iter(|| candle.forward(at).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, dense, int8, quantized);
criterion_main!(benches);
