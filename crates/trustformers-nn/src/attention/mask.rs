//! Additive attention masks: causal (with sliding windows and padding), as transformers'
//! `masking_utils.py` builds them, and the bidirectional encoders' padding mask.

use candle_core::{DType, Device, Tensor};
use trustformers_core::{Error, Result};

/// The additive attention mask for `seq` new queries after `past` cached positions, exactly as
/// transformers' `create_causal_mask` / `create_sliding_window_causal_mask` build it: query
/// slot `past + i` sees key slot `j` iff `j <= past + i`, `j > past + i - window` (with a
/// window), and `attention_mask[b, j] == 1`. Masked entries hold `f32::MIN` (finite, so
/// fully padded rows stay finite). Returns `None` when nothing is masked.
///
/// # Shapes
/// `attention_mask`: `[batch, past + seq]` of 0/1 -> `[batch, 1, seq, past + seq]` f32.
pub fn causal_mask(
    attention_mask: Option<&Tensor>,
    batch: usize,
    past: usize,
    seq: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let total = past + seq;
    let padding: Option<Vec<Vec<u32>>> = match attention_mask {
        Some(m) => {
            let dims = m.dims();
            if dims != [batch, total] {
                return Err(Error::InvalidInput(format!(
                    "attention_mask has shape {dims:?}, expected [{batch}, {total}] (past + new tokens)"
                )));
            }
            let rows = m.to_dtype(DType::U32)?.to_vec2::<u32>()?;
            if rows.iter().flatten().all(|&x| x != 0) {
                None
            } else {
                Some(rows)
            }
        }
        None => None,
    };
    let windowed = window.is_some_and(|w| w < total);
    if padding.is_none() && seq == 1 && !windowed {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(batch * seq * total);
    for bi in 0..batch {
        for i in 0..seq {
            let q = past + i;
            for j in 0..total {
                let causal = j <= q;
                let in_window = window.is_none_or(|w| j + w > q);
                let not_pad = padding.as_ref().is_none_or(|p| p[bi][j] != 0);
                data.push(if causal && in_window && not_pad {
                    0.0
                } else {
                    f32::MIN
                });
            }
        }
    }
    Ok(Some(Tensor::from_vec(
        data,
        (batch, 1, seq, total),
        device,
    )?))
}

/// The additive mask of chunked attention (Llama 4's `create_chunked_causal_mask`): query
/// slot `past + i` sees key slot `j` iff `j <= past + i`, `attention_mask[b, j] == 1`, and
/// both lie in the same chunk of `chunk` positions counted after the row's left padding
/// (`(j - pad) div chunk == (past + i - pad) div chunk`). Masked entries hold `f32::MIN`.
///
/// # Shapes
/// `attention_mask`: `[batch, past + seq]` of 0/1 -> `[batch, 1, seq, past + seq]` f32.
pub fn chunked_causal_mask(
    attention_mask: Option<&Tensor>,
    batch: usize,
    past: usize,
    seq: usize,
    chunk: usize,
    device: &Device,
) -> Result<Tensor> {
    let total = past + seq;
    if chunk == 0 {
        return Err(Error::InvalidInput(
            "attention chunks of 0 positions".into(),
        ));
    }
    let rows: Option<Vec<Vec<u32>>> = match attention_mask {
        Some(m) => {
            if m.dims() != [batch, total] {
                return Err(Error::InvalidInput(format!(
                    "attention_mask has shape {:?}, expected [{batch}, {total}] (past + new tokens)",
                    m.dims()
                )));
            }
            Some(m.to_dtype(DType::U32)?.to_vec2::<u32>()?)
        }
        None => None,
    };
    let chunk = chunk as i64;
    let mut data = Vec::with_capacity(batch * seq * total);
    for bi in 0..batch {
        let row = rows.as_ref().map(|r| &r[bi]);
        let pad = row.map_or(0, |r| r.iter().take_while(|&&x| x == 0).count()) as i64;
        for i in 0..seq {
            let q = (past + i) as i64;
            for j in 0..total {
                let visible = j as i64 <= q
                    && row.is_none_or(|r| r[j] != 0)
                    && (j as i64 - pad).div_euclid(chunk) == (q - pad).div_euclid(chunk);
                data.push(if visible { 0.0 } else { f32::MIN });
            }
        }
    }
    Ok(Tensor::from_vec(data, (batch, 1, seq, total), device)?)
}

/// The additive padding mask: 0 where `attention_mask` is 1, `f32::MIN` where it is 0;
/// `None` when nothing is padded.
///
/// # Shapes
/// `attention_mask`: `[batch, seq]` -> `[batch, 1, 1, seq]` f32.
pub fn padding_mask(
    attention_mask: Option<&Tensor>,
    batch: usize,
    seq: usize,
) -> Result<Option<Tensor>> {
    let Some(m) = attention_mask else {
        return Ok(None);
    };
    if m.dims() != [batch, seq] {
        return Err(Error::InvalidInput(format!(
            "attention_mask has shape {:?}, expected [{batch}, {seq}] like input_ids",
            m.dims()
        )));
    }
    let m = m.to_dtype(DType::F32)?;
    if m.min_all()?.to_scalar::<f32>()? > 0.0 {
        return Ok(None);
    }
    let masked = m.eq(0.0)?;
    let min = Tensor::full(f32::MIN, (batch, seq), m.device())?;
    let zero = Tensor::zeros((batch, seq), DType::F32, m.device())?;
    Ok(Some(
        masked
            .where_cond(&min, &zero)?
            .reshape((batch, 1, 1, seq))?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sliding_window_and_padding() {
        let mask = Tensor::new(&[[0u32, 1, 1, 1]], &Device::Cpu).unwrap();
        let m = causal_mask(Some(&mask), 1, 0, 4, Some(2), &Device::Cpu)
            .unwrap()
            .unwrap()
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let ok = |v: f32| v == 0.0;
        // Row 3 sees keys 2 and 3 only (window 2); key 0 is padding for everyone.
        assert_eq!(
            m[3].iter().map(|&v| ok(v)).collect::<Vec<_>>(),
            [false, false, true, true]
        );
        assert_eq!(
            m[1].iter().map(|&v| ok(v)).collect::<Vec<_>>(),
            [false, true, false, false]
        );
        assert!(m[0].iter().all(|&v| !ok(v)));
    }

    #[test]
    fn single_decode_step_needs_no_mask() {
        assert!(causal_mask(None, 2, 5, 1, None, &Device::Cpu)
            .unwrap()
            .is_none());
        assert!(causal_mask(None, 2, 5, 1, Some(3), &Device::Cpu)
            .unwrap()
            .is_some());
    }
}
