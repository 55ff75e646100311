//! Quantized weights as [`Panels`] for the f32 [`gemm`](super::gemm::gemm): each panel is
//! dequantized when the GEMM asks for it, so prefill multiplies in f32 (more exact than
//! 8-bit activations) while the weights stay quantized in memory.
//!
//! [`QMatrix`] formats dequantize through [`WeightBlock::dequantize_avx2`] (or the portable
//! [`WeightBlock::dequantize`]) a block of 16 rows at a time; ggml's K-quants that
//! candle runs for decode (`Q4_K`, `Q6_K`) are read from the tensor's own bytes.

use super::gemm::{Panels, NR};
use super::{QMatrix, WeightBlock, BLOCK};
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use std::sync::Arc;
use trustformers_core::{Error, Result};

impl<B: WeightBlock> Panels for QMatrix<B> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn panel<'a>(&'a self, j: usize, scratch: &'a mut [f32]) -> &'a [f32] {
        let per_row = self.cols / BLOCK;
        let panel = &mut scratch[..self.cols * NR];
        let present = NR.min(self.rows.saturating_sub(j * NR));
        // The panel's 16 rows of one block at a time, then written column-major; rows past
        // the matrix's end stay zero.
        let mut tile = [[0f32; BLOCK]; NR];
        for (b, out) in panel.chunks_exact_mut(BLOCK * NR).enumerate() {
            for (c, values) in tile.iter_mut().enumerate().take(present) {
                let block = &self.blocks[(j * NR + c) * per_row + b];
                #[cfg(target_arch = "x86_64")]
                if self.avx2 {
                    // SAFETY: `avx2` is only set when the CPU reports AVX2, FMA and F16C.
                    unsafe { block.dequantize_avx2(values) };
                    continue;
                }
                block.dequantize(values);
            }
            transpose_tile(&tile, out, self.avx2);
        }
        panel
    }
}

/// `out[t * NR + c] = tile[c][t]`: one block of a panel's rows, column-major as the GEMM
/// reads it.
fn transpose_tile<const W: usize>(tile: &[[f32; W]; NR], out: &mut [f32], avx2: bool) {
    let out = &mut out[..W * NR];
    #[cfg(target_arch = "x86_64")]
    if avx2 && W.is_multiple_of(8) {
        // SAFETY: `avx2` is only set when the CPU reports AVX2; `out` holds `W * NR` values
        // and `W` is a multiple of 8.
        unsafe { transpose_tile_avx2(tile, out) };
        return;
    }
    let _ = avx2;
    for (t, column) in out.chunks_exact_mut(NR).enumerate() {
        for (c, v) in column.iter_mut().enumerate() {
            *v = tile[c][t];
        }
    }
}

// The AVX2 transpose moves 8 x 8 squares.
const _: () = assert!(NR.is_multiple_of(8));

/// [`transpose_tile`] in 8 x 8 squares.
///
/// # Safety
/// The CPU must support AVX2; `out` must hold `W * NR` values and `W` be a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_tile_avx2<const W: usize>(tile: &[[f32; W]; NR], out: &mut [f32]) {
    use std::arch::x86_64::*;
    for c0 in (0..NR).step_by(8) {
        for t0 in (0..W).step_by(8) {
            // SAFETY: rows `c0..c0 + 8` of the tile hold `W >= t0 + 8` values each.
            let r: [__m256; 8] =
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(tile[c0 + i][t0..].as_ptr()) });
            let a0 = _mm256_unpacklo_ps(r[0], r[1]);
            let a1 = _mm256_unpackhi_ps(r[0], r[1]);
            let a2 = _mm256_unpacklo_ps(r[2], r[3]);
            let a3 = _mm256_unpackhi_ps(r[2], r[3]);
            let a4 = _mm256_unpacklo_ps(r[4], r[5]);
            let a5 = _mm256_unpackhi_ps(r[4], r[5]);
            let a6 = _mm256_unpacklo_ps(r[6], r[7]);
            let a7 = _mm256_unpackhi_ps(r[6], r[7]);
            let b0 = _mm256_shuffle_ps::<0x44>(a0, a2);
            let b1 = _mm256_shuffle_ps::<0xEE>(a0, a2);
            let b2 = _mm256_shuffle_ps::<0x44>(a1, a3);
            let b3 = _mm256_shuffle_ps::<0xEE>(a1, a3);
            let b4 = _mm256_shuffle_ps::<0x44>(a4, a6);
            let b5 = _mm256_shuffle_ps::<0xEE>(a4, a6);
            let b6 = _mm256_shuffle_ps::<0x44>(a5, a7);
            let b7 = _mm256_shuffle_ps::<0xEE>(a5, a7);
            let columns = [
                _mm256_permute2f128_ps::<0x20>(b0, b4),
                _mm256_permute2f128_ps::<0x20>(b1, b5),
                _mm256_permute2f128_ps::<0x20>(b2, b6),
                _mm256_permute2f128_ps::<0x20>(b3, b7),
                _mm256_permute2f128_ps::<0x31>(b0, b4),
                _mm256_permute2f128_ps::<0x31>(b1, b5),
                _mm256_permute2f128_ps::<0x31>(b2, b6),
                _mm256_permute2f128_ps::<0x31>(b3, b7),
            ];
            for (k, column) in columns.into_iter().enumerate() {
                let at = (t0 + k) * NR + c0;
                // SAFETY: `at + 8 <= W * NR`, the length of `out`.
                unsafe { _mm256_storeu_ps(out[at..at + 8].as_mut_ptr(), column) };
            }
        }
    }
}

/// Values per K-quant super-block.
const QK_K: usize = 256;

/// A K-quant format read from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KQuant {
    Q4K,
    Q6K,
}

impl KQuant {
    fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4K => Some(Self::Q4K),
            GgmlDType::Q6K => Some(Self::Q6K),
            _ => None,
        }
    }

    fn bytes(self) -> usize {
        match self {
            Self::Q4K => 144,
            Self::Q6K => 210,
        }
    }

    fn dequantize(self, block: &[u8], out: &mut [f32; QK_K], avx2: bool) {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: `avx2` is only set when the CPU reports AVX2, FMA and F16C.
            unsafe {
                match self {
                    Self::Q4K => dequantize_q4k_avx2(block, out),
                    Self::Q6K => dequantize_q6k_avx2(block, out),
                }
            }
            return;
        }
        let _ = avx2;
        match self {
            Self::Q4K => dequantize_q4k(block, out),
            Self::Q6K => dequantize_q6k(block, out),
        }
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` from 12 packed bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The scale and min of the two 32-value sub-blocks of Q4_K chunk `chunk` (64 values): the
/// low nibbles' `(d * scale, dmin * min)`, then the high nibbles'.
fn q4k_pair_scales(d: f32, dmin: f32, scales: &[u8], chunk: usize) -> [(f32, f32); 2] {
    [2 * chunk, 2 * chunk + 1].map(|j| {
        let (sc, m) = scale_min_k4(j, scales);
        (d * sc as f32, dmin * m as f32)
    })
}

/// `block_q4_K` (f16 `d`, f16 `dmin`, 12 bytes of scales and mins, 128 bytes of nibbles):
/// value = `d * scale * q - dmin * min` per 32-value sub-block (ggml's
/// `dequantize_row_q4_K`).
fn dequantize_q4k(b: &[u8], out: &mut [f32; QK_K]) {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (chunk, (q, y)) in qs
        .chunks_exact(32)
        .zip(out.chunks_exact_mut(64))
        .enumerate()
    {
        let [(d1, m1), (d2, m2)] = q4k_pair_scales(d, dmin, scales, chunk);
        let (lo, hi) = y.split_at_mut(32);
        for ((&q, lo), hi) in q.iter().zip(lo).zip(hi) {
            *lo = d1 * (q & 0x0F) as f32 - m1;
            *hi = d2 * (q >> 4) as f32 - m2;
        }
    }
}

/// `block_q6_K` (128 bytes of low nibbles, 64 of high bit pairs, 16 signed scales, f16 `d`):
/// value = `d * scale * (q - 32)` per 16-value sub-block (ggml's `dequantize_row_q6_K`).
fn dequantize_q6k(b: &[u8], out: &mut [f32; QK_K]) {
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let y = &mut out[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

/// Little-endian words of four bytes from `b` (whose length is a multiple of four).
fn words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// Four bytes' low nibbles.
const NIBBLES: u32 = 0x0F0F_0F0F;

/// [`dequantize_q4k`] as unsigned nibbles `u` (four to a word, as
/// [`WeightBlock::unpack`](super::WeightBlock::unpack)) and, per 32-value sub-block,
/// `(d * scale, -dmin * min)`: value = `a * u + m`, for the integer prefill.
fn unpack_q4k(b: &[u8], u: &mut [u32; QK_K / 4], groups: &mut [(f32, f32)]) {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (chunk, (q, y)) in qs.chunks_exact(32).zip(u.chunks_exact_mut(16)).enumerate() {
        let pair = q4k_pair_scales(d, dmin, scales, chunk);
        groups[2 * chunk] = (pair[0].0, -pair[0].1);
        groups[2 * chunk + 1] = (pair[1].0, -pair[1].1);
        let (lo, hi) = y.split_at_mut(8);
        for ((q, lo), hi) in words(q).zip(lo).zip(hi) {
            *lo = q & NIBBLES;
            *hi = (q >> 4) & NIBBLES;
        }
    }
}

/// [`dequantize_q6k`] as unsigned 6-bit `u` (four to a word) and, per 16-value sub-block,
/// `(d * scale, -32 d * scale)`: value = `a * u + m`, for the integer prefill.
fn unpack_q6k(b: &[u8], u: &mut [u32; QK_K / 4], groups: &mut [(f32, f32)]) {
    const PAIRS: u32 = 0x0303_0303;
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let y = &mut u[half * 32..half * 32 + 32];
        for (l, ((l0, l1), h)) in words(ql).zip(words(&ql[32..])).zip(words(qh)).enumerate() {
            y[l] = (l0 & NIBBLES) | (h & PAIRS) << 4;
            y[l + 8] = (l1 & NIBBLES) | ((h >> 2) & PAIRS) << 4;
            y[l + 16] = ((l0 >> 4) & NIBBLES) | ((h >> 4) & PAIRS) << 4;
            y[l + 24] = ((l1 >> 4) & NIBBLES) | ((h >> 6) & PAIRS) << 4;
        }
        for (i, &sc) in b[192 + half * 8..192 + half * 8 + 8].iter().enumerate() {
            let a = d * (sc as i8) as f32;
            groups[half * 8 + i] = (a, -32.0 * a);
        }
    }
}

/// [`dequantize_q4k`] with AVX2: the same values, bit for bit.
///
/// # Safety
/// The CPU must support AVX2 and F16C; `b` must hold a 144-byte block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequantize_q4k_avx2(b: &[u8], out: &mut [f32; QK_K]) {
    use std::arch::x86_64::*;
    let b = &b[..144];
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let (scales, qs) = (&b[4..16], &b[16..144]);
    let low = _mm256_set1_epi8(0x0F);
    for (chunk, (q, y)) in qs
        .chunks_exact(32)
        .zip(out.chunks_exact_mut(64))
        .enumerate()
    {
        let [(d1, m1), (d2, m2)] = q4k_pair_scales(d, dmin, scales, chunk);
        // SAFETY: `q` holds 32 bytes; unaligned load.
        let q = unsafe { _mm256_loadu_si256(q.as_ptr().cast()) };
        let (lo, hi) = y.split_at_mut(32);
        // `x - m` is `x + (-m)` exactly.
        // SAFETY: the caller has AVX2.
        unsafe {
            super::store_scaled(_mm256_and_si256(q, low), false, [d1, d1], Some(-m1), lo);
            super::store_scaled(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), low),
                false,
                [d2, d2],
                Some(-m2),
                hi,
            );
        }
    }
}

/// [`dequantize_q6k`] with AVX2: the same values, bit for bit.
///
/// # Safety
/// The CPU must support AVX2 and F16C; `b` must hold a 210-byte block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequantize_q6k_avx2(b: &[u8], out: &mut [f32; QK_K]) {
    use std::arch::x86_64::*;
    let b = &b[..210];
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    let (low, two) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3));
    let offset = _mm256_set1_epi8(32);
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let y = &mut out[half * 128..half * 128 + 128];
        // SAFETY: `ql` holds 64 bytes and `qh` 32; unaligned loads.
        let (ql0, ql1, qh) = unsafe {
            (
                _mm256_loadu_si256(ql.as_ptr().cast()),
                _mm256_loadu_si256(ql[32..].as_ptr().cast()),
                _mm256_loadu_si256(qh.as_ptr().cast()),
            )
        };
        // Two high bits from `qh` (bits 2k, 2k+1) under four low bits, minus 32.
        let value = |nibbles: __m256i, shift: i32| {
            let high = match shift {
                0 => qh,
                2 => _mm256_srli_epi16::<2>(qh),
                4 => _mm256_srli_epi16::<4>(qh),
                _ => _mm256_srli_epi16::<6>(qh),
            };
            let high = _mm256_slli_epi16::<4>(_mm256_and_si256(high, two));
            _mm256_sub_epi8(
                _mm256_or_si256(_mm256_and_si256(nibbles, low), high),
                offset,
            )
        };
        let parts = [
            value(ql0, 0),
            value(ql1, 2),
            value(_mm256_srli_epi16::<4>(ql0), 4),
            value(_mm256_srli_epi16::<4>(ql1), 6),
        ];
        for (k, (part, y)) in parts.into_iter().zip(y.chunks_exact_mut(32)).enumerate() {
            // Sub-blocks of 16: scales `2k` and `2k + 1` of this half.
            let scale = |i: usize| d * (sc[i] as i8) as f32;
            // SAFETY: the caller has AVX2.
            unsafe { super::store_scaled(part, true, [scale(2 * k), scale(2 * k + 1)], None, y) };
        }
    }
}

/// A K-quant `[rows, cols]` tensor as GEMM panels, read from candle's storage in place.
pub struct KQuantPanels {
    q: Arc<QTensor>,
    kind: KQuant,
    rows: usize,
    cols: usize,
    avx2: bool,
}

impl KQuantPanels {
    /// `None` for formats without a dequantizer here.
    pub fn new(q: Arc<QTensor>) -> Result<Option<Self>> {
        let Some(kind) = KQuant::of(q.dtype()) else {
            return Ok(None);
        };
        let (rows, cols) = q.shape().dims2()?;
        let bytes = q.data()?.len();
        let expected = rows
            .checked_mul(cols / QK_K)
            .and_then(|b| b.checked_mul(kind.bytes()));
        if cols % QK_K != 0 || expected != Some(bytes) {
            return Err(Error::InvalidInput(format!(
                "{bytes} bytes of {:?} data do not hold a [{rows}, {cols}] matrix",
                q.dtype()
            )));
        }
        Ok(Some(Self {
            q,
            kind,
            rows,
            cols,
            avx2: super::has_avx2(),
        }))
    }
}

impl Panels for KQuantPanels {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn panel<'a>(&'a self, j: usize, scratch: &'a mut [f32]) -> &'a [f32] {
        let panel = &mut scratch[..self.cols * NR];
        // `new` checked the size; CPU storage hands out its bytes without a copy.
        let Ok(data) = self.q.data() else {
            panel.fill(0.0);
            return panel;
        };
        let row_bytes = self.cols / QK_K * self.kind.bytes();
        let present = NR.min(self.rows.saturating_sub(j * NR));
        // As for the block formats: one super-block of the panel's rows at a time.
        let mut tile = [[0f32; QK_K]; NR];
        for (b, out) in panel.chunks_exact_mut(QK_K * NR).enumerate() {
            for (c, values) in tile.iter_mut().enumerate().take(present) {
                let at = (j * NR + c) * row_bytes + b * self.kind.bytes();
                self.kind
                    .dequantize(&data[at..at + self.kind.bytes()], values, self.avx2);
            }
            transpose_tile(&tile, out, self.avx2);
        }
        panel
    }
}

impl super::qgemm::IntPanels for KQuantPanels {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn group(&self) -> usize {
        match self.kind {
            KQuant::Q4K => 32,
            KQuant::Q6K => 16,
        }
    }

    fn max_unsigned(&self) -> u8 {
        match self.kind {
            KQuant::Q4K => 15,
            KQuant::Q6K => 63,
        }
    }

    fn unpack(&self, j: usize, panel: &mut super::qgemm::IntPanel) {
        // `new` checked the size; CPU storage hands out its bytes without a copy.
        let Ok(data) = self.q.data() else {
            panel.clear();
            return;
        };
        let bytes = self.kind.bytes();
        let row_bytes = self.cols / QK_K * bytes;
        let per_block = QK_K / self.group();
        let mut u = [0u32; QK_K / 4];
        let mut groups = [(0f32, 0f32); QK_K / 16];
        for c in 0..NR.min(self.rows.saturating_sub(j * NR)) {
            let row = &data[(j * NR + c) * row_bytes..(j * NR + c + 1) * row_bytes];
            for (b, block) in row.chunks_exact(bytes).enumerate() {
                match self.kind {
                    KQuant::Q4K => unpack_q4k(block, &mut u, &mut groups),
                    KQuant::Q6K => unpack_q6k(block, &mut u, &mut groups),
                }
                panel.put(c, b * QK_K, &u);
                for (g, &group) in groups[..per_block].iter().enumerate() {
                    panel.put_group(c, b * per_block + g, group);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{BlockQ4_1, BlockQ5_0, BlockQ8_0};
    use super::*;
    use crate::kernels::tests::random;
    use candle_core::{Device, Tensor};

    /// Every panel equals the matching slice of candle's dequantized tensor.
    fn check_panels(p: &dyn Panels, q: &QTensor) {
        let (rows, cols) = p.dims();
        let want: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut scratch = vec![f32::NAN; cols * NR];
        for j in 0..rows.div_ceil(NR) {
            let panel = p.panel(j, &mut scratch).to_vec();
            for c in 0..NR {
                for k in 0..cols {
                    let r = j * NR + c;
                    let expected = if r < rows { want[r * cols + k] } else { 0.0 };
                    assert_eq!(panel[k * NR + c], expected, "{:?} [{r}, {k}]", q.dtype());
                }
            }
        }
    }

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> QTensor {
        let w = Tensor::from_vec(random(rows * cols, 7), (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&w, dtype).unwrap()
    }

    #[test]
    fn k_quant_panels_equal_candles_dequantization() {
        // 21 rows: a full panel and a ragged one; two super-blocks per row.
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let q = Arc::new(quantized(dtype, 21, 512));
            let p = KQuantPanels::new(q.clone()).unwrap().unwrap();
            check_panels(&p, &q);
        }
        assert!(
            KQuantPanels::new(Arc::new(quantized(GgmlDType::Q8_0, 2, 64)))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn k_quant_blocks_dequantize_alike_with_and_without_avx2() {
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let q = quantized(dtype, 4, 1024);
            let kind = KQuant::of(dtype).unwrap();
            let data = q.data().unwrap();
            for block in data.chunks_exact(kind.bytes()) {
                let (mut portable, mut fast) = ([0f32; QK_K], [f32::NAN; QK_K]);
                kind.dequantize(block, &mut portable, false);
                kind.dequantize(block, &mut fast, super::super::has_avx2());
                assert_eq!(portable, fast, "{dtype:?}");
            }
        }
    }

    #[test]
    fn tiles_transpose_alike_with_and_without_avx2() {
        let mut tile = [[0f32; 32]; NR];
        for (c, row) in tile.iter_mut().enumerate() {
            for (t, v) in row.iter_mut().enumerate() {
                *v = (c * 100 + t) as f32;
            }
        }
        for avx2 in [false, super::super::has_avx2()] {
            let mut out = vec![f32::NAN; 32 * NR];
            transpose_tile(&tile, &mut out, avx2);
            for t in 0..32 {
                for c in 0..NR {
                    assert_eq!(out[t * NR + c], tile[c][t], "avx2 {avx2}: [{t}, {c}]");
                }
            }
        }
    }

    #[test]
    fn block_panels_equal_candles_dequantization() {
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0] {
            let q = Arc::new(quantized(dtype, 21, 96));
            let p: Box<dyn Panels> = match dtype {
                GgmlDType::Q4_1 => Box::new(QMatrix::<BlockQ4_1>::from_qtensor(&q).unwrap()),
                GgmlDType::Q5_0 => Box::new(QMatrix::<BlockQ5_0>::from_qtensor(&q).unwrap()),
                _ => Box::new(QMatrix::<BlockQ8_0>::from_qtensor(&q).unwrap()),
            };
            check_panels(p.as_ref(), &q);
        }
    }
}
