//! ggml `Q8_0`: each 32-value block is `d * q` with 8-bit `q`. Against 8-bit activations a
//! block contributes `d_w d_x Σ q_w q_x`.

use super::{BlockQ8, WeightBlock};
use candle_core::quantized::GgmlDType;
use half::f16;

/// `block_q8_0`: f16 `d`, 32 signed bytes.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ8_0 {
    d: f16,
    qs: [i8; 32],
}

impl WeightBlock for BlockQ8_0 {
    const DTYPE: GgmlDType = GgmlDType::Q8_0;
    const BYTES: usize = 34;
    const MAX_UNSIGNED: u8 = 255;

    fn read(b: &[u8]) -> Self {
        let mut qs = [0i8; 32];
        for (q, &byte) in qs.iter_mut().zip(&b[2..34]) {
            *q = byte as i8;
        }
        Self {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = d * q as f32;
        }
    }

    /// Signed `q` as `q + 128` (flipping the sign bit), less `128 d`.
    fn unpack(&self, u: &mut [u32; 8]) -> (f32, f32) {
        for (u, q) in u.iter_mut().zip(self.qs.chunks_exact(4)) {
            *u = u32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]) ^ 0x8080_8080;
        }
        let d = self.d.to_f32();
        (d, -128.0 * d)
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn dot(w: &[Self], x: &[BlockQ8]) -> f32 {
        let mut acc = 0f32;
        for (w, x) in w.iter().zip(x) {
            acc += w.d.to_f32() * x.d * block_sum(w, x) as f32;
        }
        acc
    }

    /// In SIMD128: each block's integer sum exact, scaled as in the plain code.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn dot(w: &[Self], x: &[BlockQ8]) -> f32 {
        use super::simd128::{dot_i8x16, hsum_i32x4, load};
        use std::arch::wasm32::i32x4_add;
        let mut acc = 0f32;
        for (w, x) in w.iter().zip(x) {
            // SAFETY: both hold 32 bytes.
            let (w0, w1, x0, x1) = unsafe {
                (
                    load(w.qs.as_ptr()),
                    load(w.qs.as_ptr().add(16)),
                    load(x.qs.as_ptr()),
                    load(x.qs.as_ptr().add(16)),
                )
            };
            let sumi = hsum_i32x4(i32x4_add(dot_i8x16(w0, x0), dot_i8x16(w1, x1)));
            acc += w.d.to_f32() * x.d * sumi as f32;
        }
        acc
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequantize_avx2(&self, out: &mut [f32; 32]) {
        use std::arch::x86_64::*;
        // SAFETY: the caller has F16C; `qs` holds 32 bytes (unaligned load).
        let (d, q) = unsafe {
            (
                super::f16_to_f32(self.d),
                _mm256_loadu_si256(self.qs.as_ptr().cast()),
            )
        };
        // SAFETY: the caller has AVX2.
        unsafe { super::store_scaled(q, true, [d, d], None, out) };
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_avx2(w: &[Self], x: &[BlockQ8]) -> f32 {
        use std::arch::x86_64::*;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn block(w: &BlockQ8_0, x: &BlockQ8, acc: __m256) -> __m256 {
            // SAFETY: the caller has F16C.
            let d = unsafe { super::f16_to_f32(w.d) };
            // SAFETY: both hold 32 bytes; unaligned loads.
            let wq = unsafe { _mm256_loadu_si256(w.qs.as_ptr().cast()) };
            let xq = unsafe { _mm256_loadu_si256(x.qs.as_ptr().cast()) };
            // SAFETY: the caller has AVX2.
            let sums = unsafe { super::dot_i8(wq, xq) };
            _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(sums), acc)
        }
        // Four accumulators, so consecutive blocks' FMAs do not wait on each other.
        let mut acc = [_mm256_setzero_ps(); 4];
        let whole = w.len().min(x.len()) & !3;
        for (w, x) in w[..whole].chunks_exact(4).zip(x[..whole].chunks_exact(4)) {
            for k in 0..4 {
                // SAFETY: this function has AVX2, FMA and F16C.
                acc[k] = unsafe { block(&w[k], &x[k], acc[k]) };
            }
        }
        for (k, (w, x)) in w[whole..].iter().zip(&x[whole..]).enumerate() {
            // SAFETY: as above.
            acc[k] = unsafe { block(w, x, acc[k]) };
        }
        let acc = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        // SAFETY: AVX is part of AVX2.
        unsafe { super::hsum(acc) }
    }
}

/// `Σ q_w q_x` over one block (exact), in plain code.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn block_sum(w: &BlockQ8_0, x: &BlockQ8) -> i32 {
    w.qs.iter()
        .zip(&x.qs)
        .map(|(&a, &b)| a as i32 * b as i32)
        .sum()
}
