//! ALiBi (Press et al.): a per-head linear bias on attention scores instead of positions in
//! q and k (Falcon-RW, BLOOM, MPT), as transformers' `build_alibi_tensor` computes it.

use candle_core::{DType, Device, Tensor};
use trustformers_core::{Error, Result};

/// ALiBi slopes for `num_heads` heads (Press et al.; transformers' `build_alibi_tensor`):
/// a geometric sequence starting at `2^(-8/n)` for the largest power of two `n <= heads`,
/// the remaining heads taking every other slope of the sequence for `2n`. Rounded to
/// bfloat16, as transformers computes them.
pub fn alibi_slopes(num_heads: usize) -> Vec<f32> {
    if num_heads == 0 {
        return Vec::new();
    }
    let closest = 1usize << num_heads.ilog2();
    let base = |n: usize| 2f32.powf(-(2f32.powf(-((n as f32).log2() - 3.0))));
    let mut slopes: Vec<f32> = (1..=closest as i32)
        .map(|p| base(closest).powi(p))
        .collect();
    let remaining = num_heads - closest;
    slopes.extend((0..remaining).map(|i| base(2 * closest).powi(1 + 2 * i as i32)));
    slopes.into_iter().map(round_bf16).collect()
}

/// `x` rounded to the nearest bfloat16 (ties to even), as an f32.
fn round_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// The additive causal mask (see [`causal_mask`]) with an ALiBi bias on the visible entries, per head:
/// `slope_h * position(key) * scale`, where a key's position counts the unpadded keys before
/// it. The product is rounded to bfloat16 before scaling, as transformers computes it; as
/// softmax ignores a constant per row, this equals the usual `-slope * distance`.
///
/// # Shapes
/// `attention_mask`: `[batch, past + seq]` of 0/1 -> `[batch, heads, seq, past + seq]` f32.
pub fn alibi_mask(
    attention_mask: Option<&Tensor>,
    batch: usize,
    past: usize,
    seq: usize,
    num_heads: usize,
    scale: f64,
    device: &Device,
) -> Result<Tensor> {
    let total = past + seq;
    let padding: Option<Vec<Vec<u32>>> = match attention_mask {
        Some(m) if m.dims() != [batch, total] => {
            return Err(Error::InvalidInput(format!(
                "attention_mask has shape {:?}, expected [{batch}, {total}] (past + new tokens)",
                m.dims()
            )))
        }
        Some(m) => Some(m.to_dtype(DType::U32)?.to_vec2::<u32>()?),
        None => None,
    };
    let slopes = alibi_slopes(num_heads);
    let mut data = Vec::with_capacity(batch * num_heads * seq * total);
    for bi in 0..batch {
        // transformers: (cumsum(mask) - 1) * mask.
        let positions: Vec<f32> = match &padding {
            Some(p) => {
                let mut count = 0u32;
                p[bi]
                    .iter()
                    .map(|&m| {
                        count += m;
                        if m == 0 {
                            0.0
                        } else {
                            (count - 1) as f32
                        }
                    })
                    .collect()
            }
            None => (0..total).map(|j| j as f32).collect(),
        };
        for &slope in &slopes {
            for i in 0..seq {
                for (j, &pos) in positions.iter().enumerate() {
                    let not_pad = padding.as_ref().is_none_or(|p| p[bi][j] != 0);
                    let visible = j <= past + i && not_pad;
                    data.push(if visible {
                        (f64::from(round_bf16(slope * pos)) * scale) as f32
                    } else {
                        f32::MIN
                    });
                }
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (batch, num_heads, seq, total),
        device,
    )?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn alibi_slopes_match_transformers() {
        // transformers' build_alibi_tensor for 4 and 6 heads (slopes before the bf16 cast).
        assert_eq!(alibi_slopes(4), [0.25, 0.0625, 0.015625, 0.00390625]);
        let six = alibi_slopes(6);
        let want = [0.25f32, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        for (a, b) in six.iter().zip(want) {
            assert_eq!(*a, round_bf16(b));
        }
        // 32 heads (falcon-rw-1b): base 2^-0.25, not exact in bf16.
        let s = alibi_slopes(32);
        assert_eq!(s.len(), 32);
        assert_eq!(s[0], round_bf16(2f32.powf(-0.25)));
        assert!((s[0] - 0.8409).abs() < 4e-3);
    }

    #[test]
    fn alibi_mask_biases_visible_keys_by_position() {
        let mask = Tensor::new(&[[0u32, 1, 1]], &Device::Cpu).unwrap();
        let m = alibi_mask(Some(&mask), 1, 0, 3, 2, 0.5, &Device::Cpu)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        let slopes = alibi_slopes(2);
        // Head 1, query 2: key 0 is padding, keys 1 and 2 sit at positions 0 and 1.
        assert_eq!(m[1][2], [f32::MIN, 0.0, slopes[1] * 0.5]);
        // Query 1 cannot see key 2.
        assert_eq!(m[0][1][2], f32::MIN);
    }
}
