//! ggml `Q4_1` weights times f32 activations, the way llama.cpp computes it: each 32-value
//! block of a weight row is `d * q + m` with 4-bit `q`; the activations are quantized per
//! 32-block to 8 bits (`Q8_1`: scale and scaled sum), so a block's dot product is
//! `d_w * d_x * Σ q_w q_x + m_w * s_x` with the sum taken in integers.
//!
//! An AVX2 path is chosen at run time; the portable path computes the same integer sums, so
//! both give the same result up to float rounding. Work is split over output rows with rayon.

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;
use trustformers_core::{Error, Result};

/// Values per block.
const BLOCK: usize = 32;
/// Bytes of one ggml `block_q4_1`: f16 `d`, f16 `m`, 16 bytes of nibbles.
const BLOCK_BYTES: usize = 20;
/// Output rows per parallel work item.
const ROWS_PER_TASK: usize = 16;

/// One weight block. Nibble `j` of `qs[j]` (low) is value `j`, the high nibble value `j + 16`.
#[derive(Clone, Copy)]
#[repr(C)]
struct BlockQ41 {
    d: f16,
    m: f16,
    qs: [u8; 16],
}

/// One activation block: `x ≈ d * qs`, and `s = d * Σ qs`.
#[derive(Clone, Copy)]
#[repr(C)]
struct BlockQ81 {
    d: f32,
    s: f32,
    qs: [i8; BLOCK],
}

/// A `[rows, cols]` Q4_1 matrix (a linear layer's `[out, in]` weight).
pub struct Q41Matrix {
    rows: usize,
    cols: usize,
    blocks: Vec<BlockQ41>,
    avx2: bool,
}

impl Q41Matrix {
    /// Reads a Q4_1 tensor of shape `[rows, cols]`.
    pub fn from_qtensor(q: &QTensor) -> Result<Self> {
        if q.dtype() != GgmlDType::Q4_1 {
            return Err(Error::InvalidInput(format!(
                "expected a Q4_1 tensor, got {:?}",
                q.dtype()
            )));
        }
        let (rows, cols) = q.shape().dims2()?;
        Self::from_bytes(&q.data()?, rows, cols)
    }

    /// Reads `rows * cols / 32` ggml `block_q4_1` records.
    pub fn from_bytes(bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        if cols % BLOCK != 0 {
            return Err(Error::InvalidInput(format!(
                "a Q4_1 row must be a multiple of {BLOCK} values, got {cols}"
            )));
        }
        let n_blocks = rows
            .checked_mul(cols / BLOCK)
            .filter(|n| n.checked_mul(BLOCK_BYTES) == Some(bytes.len()))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{} bytes of Q4_1 data do not hold a [{rows}, {cols}] matrix",
                    bytes.len()
                ))
            })?;
        let mut blocks = Vec::with_capacity(n_blocks);
        for b in bytes.chunks_exact(BLOCK_BYTES) {
            let mut qs = [0u8; 16];
            qs.copy_from_slice(&b[4..]);
            blocks.push(BlockQ41 {
                d: f16::from_le_bytes([b[0], b[1]]),
                m: f16::from_le_bytes([b[2], b[3]]),
                qs,
            });
        }
        Ok(Self {
            rows,
            cols,
            blocks,
            avx2: has_avx2(),
        })
    }

    /// `[rows, cols]`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `y = x W^T` for `x` of `n * cols` values (row-major); returns `n * rows` values.
    pub fn matmul(&self, x: &[f32]) -> Result<Vec<f32>> {
        if self.cols == 0 || x.len() % self.cols != 0 {
            return Err(Error::InvalidInput(format!(
                "{} activation values are not a whole number of rows of {}",
                x.len(),
                self.cols
            )));
        }
        let n = x.len() / self.cols;
        let per_row = self.cols / BLOCK;
        let xq: Vec<BlockQ81> = x.chunks_exact(BLOCK).map(quantize_block).collect();
        // Computed as [rows, n] so each task owns a contiguous slice, then transposed.
        let mut out_t = vec![0f32; self.rows * n];
        out_t
            .par_chunks_mut(ROWS_PER_TASK * n)
            .enumerate()
            .for_each(|(task, chunk)| {
                let first = task * ROWS_PER_TASK;
                for (i, row_out) in chunk.chunks_exact_mut(n).enumerate() {
                    let w = &self.blocks[(first + i) * per_row..(first + i + 1) * per_row];
                    for (t, o) in row_out.iter_mut().enumerate() {
                        *o = self.dot(w, &xq[t * per_row..(t + 1) * per_row]);
                    }
                }
            });
        if n == 1 {
            return Ok(out_t);
        }
        let mut out = vec![0f32; n * self.rows];
        for (r, row) in out_t.chunks_exact(n).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                out[t * self.rows + r] = v;
            }
        }
        Ok(out)
    }

    fn dot(&self, w: &[BlockQ41], x: &[BlockQ81]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is only set when the CPU reports AVX2, FMA and F16C.
            return unsafe { x86::dot(w, x) };
        }
        dot_portable(w, x)
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ggml's `quantize_row_q8_1`, with `d` and `s` kept in f32.
fn quantize_block(x: &[f32]) -> BlockQ81 {
    let amax = x.iter().fold(0f32, |a, &v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; BLOCK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
        sum += *q as i32;
    }
    BlockQ81 {
        d,
        s: d * sum as f32,
        qs,
    }
}

fn dot_portable(w: &[BlockQ41], x: &[BlockQ81]) -> f32 {
    let mut acc = 0f32;
    for (w, x) in w.iter().zip(x) {
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += (w.qs[j] & 0x0F) as i32 * x.qs[j] as i32;
            sumi += (w.qs[j] >> 4) as i32 * x.qs[j + 16] as i32;
        }
        acc += w.d.to_f32() * x.d * sumi as f32 + w.m.to_f32() * x.s;
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BlockQ41, BlockQ81};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot(w: &[BlockQ41], x: &[BlockQ81]) -> f32 {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        for (w, x) in w.iter().zip(x) {
            // d and m from f16 in one conversion.
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(
                (w.d.to_bits() as u32 | (w.m.to_bits() as u32) << 16) as i32,
            ));
            let d = _mm_cvtss_f32(dm);
            let m = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 1));
            mins += m * x.s;
            // SAFETY: `qs` holds 16 bytes and `x.qs` 32; unaligned loads.
            let packed = unsafe { _mm_loadu_si128(w.qs.as_ptr().cast()) };
            let wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
            let xq = unsafe { _mm256_loadu_si256(x.qs.as_ptr().cast()) };
            // u8 * i8 pairs summed to i16 (at most 2 * 15 * 128), then to i32.
            let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d), _mm256_cvtepi32_ps(sums), acc);
        }
        let quad = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let one = _mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1));
        _mm_cvtss_f32(one) + mins
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Tensor};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        // A small LCG: deterministic, no dependency.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_dequantized_matmul_and_both_paths_agree() {
        let (rows, cols, n) = (70, 256, 3);
        let w = Tensor::from_vec(random(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let m = Q41Matrix::from_qtensor(&q).unwrap();
        let x = random(n * cols, 2);
        let got = m.matmul(&x).unwrap();

        let wd = q.dequantize(&Device::Cpu).unwrap();
        let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).unwrap();
        let want: Vec<f32> = xt
            .matmul(&wd.t().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Only the 8-bit activation rounding separates the two: per value at most half a
        // step (|x|max / 254) times |w|, summed over `cols` values.
        let bound = cols as f32 * (1.0 / 254.0) * 1.0;
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < bound * 0.1, "max diff {worst}");

        // The portable path gives the same numbers as the SIMD one.
        let per_row = cols / BLOCK;
        let xq: Vec<BlockQ81> = x.chunks_exact(BLOCK).map(quantize_block).collect();
        for t in 0..n {
            for r in 0..rows {
                let w = &m.blocks[r * per_row..(r + 1) * per_row];
                let xs = &xq[t * per_row..(t + 1) * per_row];
                let (a, b) = (m.dot(w, xs), dot_portable(w, xs));
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
                assert_eq!(got[t * rows + r], a);
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Q41Matrix::from_bytes(&[0; 20], 1, 33).is_err());
        assert!(Q41Matrix::from_bytes(&[0; 19], 1, 32).is_err());
        assert!(Q41Matrix::from_bytes(&[0; 20], usize::MAX, 32).is_err());
        let m = Q41Matrix::from_bytes(&[0; 40], 2, 32).unwrap();
        assert!(m.matmul(&[0.0; 33]).is_err());
        assert_eq!(m.matmul(&[1.0; 64]).unwrap(), vec![0.0; 4]);
    }
}
