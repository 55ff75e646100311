//! Quantized weights as [`Panels`] for the f32 [`gemm`](super::gemm::gemm): each panel is
//! dequantized when the GEMM asks for it, so prefill multiplies in f32 (more exact than
//! 8-bit activations) while the weights stay quantized in memory.
//!
//! [`QMatrix`] formats dequantize through [`WeightBlock::dequantize`]; ggml's K-quants that
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
        let mut values = [0f32; BLOCK];
        for c in 0..NR {
            let r = j * NR + c;
            if r >= self.rows {
                panel.iter_mut().skip(c).step_by(NR).for_each(|v| *v = 0.0);
                continue;
            }
            for (b, block) in self.blocks[r * per_row..(r + 1) * per_row]
                .iter()
                .enumerate()
            {
                block.dequantize(&mut values);
                for (t, &v) in values.iter().enumerate() {
                    panel[(b * BLOCK + t) * NR + c] = v;
                }
            }
        }
        panel
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

    fn dequantize(self, block: &[u8], out: &mut [f32; QK_K]) {
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
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
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

/// A K-quant `[rows, cols]` tensor as GEMM panels, read from candle's storage in place.
pub struct KQuantPanels {
    q: Arc<QTensor>,
    kind: KQuant,
    rows: usize,
    cols: usize,
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
        let mut values = [0f32; QK_K];
        for c in 0..NR {
            let r = j * NR + c;
            if r >= self.rows {
                panel.iter_mut().skip(c).step_by(NR).for_each(|v| *v = 0.0);
                continue;
            }
            let row = &data[r * row_bytes..(r + 1) * row_bytes];
            for (b, block) in row.chunks_exact(self.kind.bytes()).enumerate() {
                self.kind.dequantize(block, &mut values);
                for (t, &v) in values.iter().enumerate() {
                    panel[(b * QK_K + t) * NR + c] = v;
                }
            }
        }
        panel
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
