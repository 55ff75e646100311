//! ggml `Q5_0`: each 32-value block is `d * (q - 16)` with 5-bit `q` (4 low bits in nibbles,
//! the fifth in a 32-bit mask). Against 8-bit activations a block contributes
//! `d_w d_x Σ (q_w - 16) q_x`.

use super::{BlockQ8, WeightBlock};
use candle_core::quantized::GgmlDType;
use half::f16;

/// `block_q5_0`: f16 `d`, 4 bytes `qh` (bit `j` is the high bit of value `j`), 16 bytes of
/// nibbles (low nibble of `qs[j]` is value `j`, high nibble value `j + 16`).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ5_0 {
    d: f16,
    qh: [u8; 4],
    qs: [u8; 16],
}

impl WeightBlock for BlockQ5_0 {
    const DTYPE: GgmlDType = GgmlDType::Q5_0;
    const BYTES: usize = 22;
    const MAX_UNSIGNED: u8 = 31;

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[6..22]);
        Self {
            d: f16::from_le_bytes([b[0], b[1]]),
            qh: [b[2], b[3], b[4], b[5]],
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32; 32]) {
        let d = self.d.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for (j, &q) in self.qs.iter().enumerate() {
            let lo = ((q & 0x0F) as u32 | ((qh >> j) & 1) << 4) as i32 - 16;
            let hi = ((q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4) as i32 - 16;
            out[j] = d * lo as f32;
            out[j + 16] = d * hi as f32;
        }
    }

    /// `d * (q - 16)` as `d * q + (-16 d)`.
    fn unpack(&self, u: &mut [u32; 8]) -> (f32, f32) {
        let qh = u32::from_le_bytes(self.qh);
        let (lo, hi) = u.split_at_mut(4);
        for (w, ((q, lo), hi)) in self.qs.chunks_exact(4).zip(lo).zip(hi).enumerate() {
            let q = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
            *lo = (q & 0x0F0F_0F0F) | spread_bits(qh >> (4 * w));
            *hi = ((q >> 4) & 0x0F0F_0F0F) | spread_bits(qh >> (4 * w + 16));
        }
        let d = self.d.to_f32();
        (d, -16.0 * d)
    }

    fn dot(w: &[Self], x: &[BlockQ8]) -> f32 {
        let mut acc = 0f32;
        for (w, x) in w.iter().zip(x) {
            let qh = u32::from_le_bytes(w.qh);
            let mut sumi = 0i32;
            for j in 0..16 {
                let lo = ((w.qs[j] & 0x0F) as u32 | ((qh >> j) & 1) << 4) as i32 - 16;
                let hi = ((w.qs[j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4) as i32 - 16;
                sumi += lo * x.qs[j] as i32 + hi * x.qs[j + 16] as i32;
            }
            acc += w.d.to_f32() * x.d * sumi as f32;
        }
        acc
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequantize_avx2(&self, out: &mut [f32; 32]) {
        use std::arch::x86_64::*;
        // SAFETY: AVX2 is required by this function.
        let c = unsafe { Consts::new() };
        let (wq, d) = unpack!(self, c);
        // SAFETY: as above.
        unsafe { super::store_scaled(wq, true, [d, d], None, out) };
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_avx2(w: &[Self], x: &[BlockQ8]) -> f32 {
        use std::arch::x86_64::*;
        // SAFETY: AVX2 is required by this function.
        let c = unsafe { Consts::new() };
        let mut acc = _mm256_setzero_ps();
        for (w, x) in w.iter().zip(x) {
            let (wq, d) = unpack!(w, c);
            acc = block_fma!(wq, d, x, acc);
        }
        // SAFETY: AVX is part of AVX2.
        unsafe { super::hsum(acc) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot4_avx2(w: &[Self], x: [&[BlockQ8]; 4]) -> [f32; 4] {
        use std::arch::x86_64::*;
        // SAFETY: AVX2 is required by this function.
        let c = unsafe { Consts::new() };
        let mut acc = [_mm256_setzero_ps(); 4];
        for (b, w) in w.iter().enumerate() {
            let (wq, d) = unpack!(w, c);
            for k in 0..4 {
                acc[k] = block_fma!(wq, d, &x[k][b], acc[k]);
            }
        }
        // SAFETY: AVX is part of AVX2.
        std::array::from_fn(|k| unsafe { super::hsum(acc[k]) })
    }
}

/// The constant vectors of the unpacking, built once per dot product.
#[cfg(target_arch = "x86_64")]
struct Consts {
    low: std::arch::x86_64::__m256i,
    shuffle: std::arch::x86_64::__m256i,
    bit: std::arch::x86_64::__m256i,
    high: std::arch::x86_64::__m256i,
    all: std::arch::x86_64::__m256i,
}

#[cfg(target_arch = "x86_64")]
impl Consts {
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn new() -> Self {
        use std::arch::x86_64::*;
        Self {
            low: _mm256_set1_epi8(0x0F),
            // Byte i of the broadcast mask word, then bit i of it: ggml's bytes_from_bits_32.
            shuffle: _mm256_set_epi64x(
                0x0303030303030303,
                0x0202020202020202,
                0x0101010101010101,
                0x0000000000000000,
            ),
            bit: _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe),
            high: _mm256_set1_epi8(0xF0u8 as i8),
            all: _mm256_set1_epi64x(-1),
        }
    }
}

/// A block's 32 values minus 16 as signed bytes, with its `d` (a macro, so that it inlines
/// into the AVX2 functions).
#[cfg(target_arch = "x86_64")]
macro_rules! unpack {
    ($w:expr, $c:expr) => {{
        let w: &BlockQ5_0 = $w;
        // SAFETY: F16C is required by the calling function.
        let d = unsafe { super::f16_to_f32(w.d) };
        // SAFETY: `qs` holds 16 bytes; unaligned load.
        let packed = unsafe { _mm_loadu_si128(w.qs.as_ptr().cast()) };
        let nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), $c.low);
        let bits = _mm256_shuffle_epi8(_mm256_set1_epi32(i32::from_le_bytes(w.qh)), $c.shuffle);
        let set = _mm256_cmpeq_epi8(_mm256_or_si256(bits, $c.bit), $c.all);
        // q - 16 as a signed byte: without the fifth bit the value is negative, so its high
        // nibble is all ones.
        (
            _mm256_or_si256(nibbles, _mm256_andnot_si256(set, $c.high)),
            d,
        )
    }};
}
#[cfg(target_arch = "x86_64")]
use unpack;

/// `acc + d * x.d * (wq . x.qs)` in eight lanes.
#[cfg(target_arch = "x86_64")]
macro_rules! block_fma {
    ($wq:expr, $d:expr, $x:expr, $acc:expr) => {{
        let x: &BlockQ8 = $x;
        // SAFETY: `qs` holds 32 bytes; unaligned load.
        let xq = unsafe { _mm256_loadu_si256(x.qs.as_ptr().cast()) };
        // SAFETY: AVX2 is required by the calling function.
        let sums = unsafe { super::dot_i8($wq, xq) };
        _mm256_fmadd_ps(_mm256_set1_ps($d * x.d), _mm256_cvtepi32_ps(sums), $acc)
    }};
}
#[cfg(target_arch = "x86_64")]
use block_fma;

/// The low four bits of `bits` as bit 4 of four bytes (bit `i` into byte `i`).
#[inline]
fn spread_bits(bits: u32) -> u32 {
    let b = bits & 0xF;
    ((b & 1) | (b & 2) << 7 | (b & 4) << 14 | (b & 8) << 21) << 4
}
