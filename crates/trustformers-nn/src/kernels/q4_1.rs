//! ggml `Q4_1`: each 32-value block is `d * q + m` with 4-bit `q`. Against 8-bit activations
//! a block contributes `d_w d_x Σ q_w q_x + m_w s_x`.

use super::{BlockQ8, WeightBlock};
use candle_core::quantized::GgmlDType;
use half::f16;

/// `block_q4_1`: f16 `d`, f16 `m`, 16 bytes of nibbles; the low nibble of `qs[j]` is value
/// `j`, the high nibble value `j + 16`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ4_1 {
    d: f16,
    m: f16,
    qs: [u8; 16],
}

impl WeightBlock for BlockQ4_1 {
    const DTYPE: GgmlDType = GgmlDType::Q4_1;
    const BYTES: usize = 20;
    const MAX_UNSIGNED: u8 = 15;

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[4..20]);
        Self {
            d: f16::from_le_bytes([b[0], b[1]]),
            m: f16::from_le_bytes([b[2], b[3]]),
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32; 32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = d * (q & 0x0F) as f32 + m;
            out[j + 16] = d * (q >> 4) as f32 + m;
        }
    }

    fn unpack(&self, u: &mut [u32; 8]) -> (f32, f32) {
        let (lo, hi) = u.split_at_mut(4);
        for ((q, lo), hi) in self.qs.chunks_exact(4).zip(lo).zip(hi) {
            let q = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
            *lo = q & 0x0F0F_0F0F;
            *hi = (q >> 4) & 0x0F0F_0F0F;
        }
        (self.d.to_f32(), self.m.to_f32())
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn dot(w: &[Self], x: &[BlockQ8]) -> f32 {
        let mut acc = 0f32;
        for (w, x) in w.iter().zip(x) {
            acc += w.d.to_f32() * x.d * block_sum(w, x) as f32 + w.m.to_f32() * x.s;
        }
        acc
    }

    /// In SIMD128: each block's integer sum exact, scaled as in the plain code.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn dot(w: &[Self], x: &[BlockQ8]) -> f32 {
        use super::simd128::{dot_i8x16, hsum_i32x4, load};
        use std::arch::wasm32::*;
        let mut acc = 0f32;
        for (w, x) in w.iter().zip(x) {
            // SAFETY: `qs` holds 16 bytes, `x.qs` 32.
            let (packed, x0, x1) = unsafe {
                (
                    load(w.qs.as_ptr().cast()),
                    load(x.qs.as_ptr()),
                    load(x.qs.as_ptr().add(16)),
                )
            };
            // Nibbles 0..=15 are the same numbers as signed bytes.
            let lo = v128_and(packed, u8x16_splat(0x0F));
            let hi = u8x16_shr(packed, 4);
            let sumi = hsum_i32x4(i32x4_add(dot_i8x16(lo, x0), dot_i8x16(hi, x1)));
            acc += w.d.to_f32() * x.d * sumi as f32 + w.m.to_f32() * x.s;
        }
        acc
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequantize_avx2(&self, out: &mut [f32; 32]) {
        // SAFETY: the same CPU features as this function.
        let (wq, d, m) = unsafe { unpack_avx2(self) };
        // SAFETY: as above.
        unsafe { super::store_scaled(wq, false, [d, d], Some(m), out) };
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_avx2(w: &[Self], x: &[BlockQ8]) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        for (w, x) in w.iter().zip(x) {
            // SAFETY: the same CPU features as this function.
            let (wq, d, m) = unsafe { unpack_avx2(w) };
            mins += m * x.s;
            // SAFETY: the same CPU features as this function.
            acc = unsafe { block_fma(wq, d, x, acc) };
        }
        // SAFETY: AVX is part of AVX2.
        unsafe { super::hsum(acc) + mins }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot4_avx2(w: &[Self], x: [&[BlockQ8]; 4]) -> [f32; 4] {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut mins = [0f32; 4];
        for (b, w) in w.iter().enumerate() {
            // SAFETY: the same CPU features as this function.
            let (wq, d, m) = unsafe { unpack_avx2(w) };
            for k in 0..4 {
                let xb = &x[k][b];
                mins[k] += m * xb.s;
                // SAFETY: the same CPU features as this function.
                acc[k] = unsafe { block_fma(wq, d, xb, acc[k]) };
            }
        }
        // SAFETY: AVX is part of AVX2.
        std::array::from_fn(|k| unsafe { super::hsum(acc[k]) } + mins[k])
    }
}

/// `Σ q_w q_x` over one block (exact), in plain code.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn block_sum(w: &BlockQ4_1, x: &BlockQ8) -> i32 {
    let mut sumi = 0i32;
    for j in 0..16 {
        sumi += (w.qs[j] & 0x0F) as i32 * x.qs[j] as i32;
        sumi += (w.qs[j] >> 4) as i32 * x.qs[j + 16] as i32;
    }
    sumi
}

/// A block's 32 values as unsigned bytes, with its `d` and `m`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_avx2(w: &BlockQ4_1) -> (std::arch::x86_64::__m256i, f32, f32) {
    use std::arch::x86_64::*;
    // d and m from f16 in one conversion.
    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(
        (w.d.to_bits() as u32 | (w.m.to_bits() as u32) << 16) as i32,
    ));
    // SAFETY: `qs` holds 16 bytes; unaligned load.
    let packed = unsafe { _mm_loadu_si128(w.qs.as_ptr().cast()) };
    let wq = _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
        _mm256_set1_epi8(0x0F),
    );
    (
        wq,
        _mm_cvtss_f32(dm),
        _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 1)),
    )
}

/// `acc + d * x.d * (wq . x.qs)` in eight lanes.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_fma(
    wq: std::arch::x86_64::__m256i,
    d: f32,
    x: &BlockQ8,
    acc: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // SAFETY: `qs` holds 32 bytes; unaligned load.
    let xq = unsafe { _mm256_loadu_si256(x.qs.as_ptr().cast()) };
    // u8 * i8 pairs summed to i16 (at most 2 * 15 * 128), then to i32.
    let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), _mm256_set1_epi16(1));
    _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(sums), acc)
}
