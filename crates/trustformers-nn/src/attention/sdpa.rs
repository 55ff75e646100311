//! Scaled dot-product attention: the fused f32 CPU kernel where it applies, tensor
//! operations everywhere else.

use crate::cache::kv::KvBuffer;
use crate::kernels::sdpa::{KvRows, MaskView, SdpaShape};
use crate::Dropout;
use candle_core::{DType, Tensor};
use trustformers_core::Result;

/// Scaled dot-product attention computed in f32, keys/values shared by `groups` query heads:
/// `dropout(softmax(softcap(q k^T * scale) + mask)) v`, with `softcap(x) = c * tanh(x / c)` when
/// given (the dropout on the probabilities acts only in training).
///
/// # Shapes
/// q `[b, h, s, d]`, k/v `[b, h / groups, t, d]`, mask `[b, 1, s, t]` -> `[b, h, s, d]`.
// The arguments are torch's `scaled_dot_product_attention`'s, plus the grouping and softcap.
#[allow(clippy::too_many_arguments)]
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    groups: usize,
    scale: f64,
    softcap: Option<f64>,
    dropout: Dropout,
) -> Result<Tensor> {
    sdpa_sinks(q, k, v, mask, groups, scale, softcap, None, dropout)
}

/// [`sdpa`] with attention sinks: one learned logit per query head joins each softmax
/// and takes its share of the weight, with no value row (gpt-oss).
///
/// # Shapes
/// As [`sdpa`]; `sinks`: `[h]`.
#[allow(clippy::too_many_arguments)]
pub fn sdpa_sinks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    groups: usize,
    scale: f64,
    softcap: Option<f64>,
    sinks: Option<&Tensor>,
    dropout: Dropout,
) -> Result<Tensor> {
    if dropout.is_active() || sinks.is_some_and(|s| crate::differentiable(&[s])) {
        return sdpa_ops(q, k, v, mask, groups, scale, softcap, sinks, dropout);
    }
    let sink_values = sinks.map(sink_values).transpose()?;
    match fused_sdpa(q, k, v, mask, scale, softcap, sink_values.as_deref())? {
        Some(out) => Ok(out),
        None => sdpa_ops(q, k, v, mask, groups, scale, softcap, sinks, dropout),
    }
}

/// The sinks as f32 values for the fused kernel.
pub(super) fn sink_values(sinks: &Tensor) -> Result<Vec<f32>> {
    Ok(sinks
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// [`sdpa`] as tensor operations, for any dtype and device.
#[allow(clippy::too_many_arguments)]
pub(super) fn sdpa_ops(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    groups: usize,
    scale: f64,
    softcap: Option<f64>,
    sinks: Option<&Tensor>,
    dropout: Dropout,
) -> Result<Tensor> {
    let dtype = q.dtype();
    let (b, kv_heads, t, d) = k.dims4()?;
    let repeat = |x: &Tensor| -> Result<Tensor> {
        if groups == 1 {
            return Ok(x.to_dtype(DType::F32)?);
        }
        Ok(x.unsqueeze(2)?
            .broadcast_as((b, kv_heads, groups, t, d))?
            .reshape((b, kv_heads * groups, t, d))?
            .to_dtype(DType::F32)?)
    };
    let (k, v) = (repeat(k)?, repeat(v)?);
    let q = q.to_dtype(DType::F32)?;
    let mut scores = (q.matmul(&k.t()?)? * scale)?;
    if let Some(c) = softcap {
        scores = ((scores / c)?.tanh()? * c)?;
    }
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    // Sinks: one more column per row, dropped after the softmax.
    let scores = match sinks {
        Some(s) => {
            let (b, h, rows, _) = scores.dims4()?;
            let column = s
                .to_dtype(DType::F32)?
                .reshape((1, h, 1, 1))?
                .broadcast_as((b, h, rows, 1))?;
            Tensor::cat(&[&scores, &column], 3)?.contiguous()?
        }
        None => scores,
    };
    // candle's fused softmax has no backward; ours has.
    let probs = if crate::differentiable(&[&scores]) {
        crate::autograd::softmax_last_dim(&scores)?
    } else {
        candle_nn::ops::softmax_last_dim(&scores)?
    };
    let probs = match sinks {
        Some(_) => probs.narrow(3, 0, t)?,
        None => probs,
    };
    Ok(dropout.forward(&probs)?.matmul(&v)?.to_dtype(dtype)?)
}

/// [`sdpa`] on the fused CPU kernel, for f32 tensors on the CPU and a mask that broadcasts
/// to `[b, h, s, t]` along its own dimensions; `None` for anything else.
fn fused_sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    softcap: Option<f64>,
    sinks: Option<&[f32]>,
) -> Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    if !(f32_cpu(k) && f32_cpu(v)) || v.dims() != k.dims() || crate::differentiable(&[q, k, v]) {
        return Ok(None);
    }
    let (kb, kv_heads, t, d) = k.dims4()?;
    let values = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    let (k, v) = (values(k)?, values(v)?);
    let keys = FusedKeys {
        k: KvRows::F32(&k),
        v: KvRows::F32(&v),
        stride: t * d,
        dims: (kb, kv_heads, t, d),
    };
    fused_sdpa_over(q, keys, mask, scale, softcap, sinks)
}

/// Keys and values as the fused kernel reads them: `batch * kv_heads` blocks of
/// `[keys, head_dim]`, `stride` values apart.
pub(super) struct FusedKeys<'a> {
    k: KvRows<'a>,
    v: KvRows<'a>,
    stride: usize,
    /// `(batch, kv_heads, keys, head_dim)`.
    dims: (usize, usize, usize, usize),
}

impl<'a> FusedKeys<'a> {
    pub(super) fn buffer(buf: &'a KvBuffer) -> Self {
        Self {
            k: buf.keys(),
            v: buf.values(),
            stride: buf.head_stride(),
            dims: buf.dims(),
        }
    }
}

/// [`fused_sdpa`] over keys and values already in the kernel's layout.
pub(super) fn fused_sdpa_over(
    q: &Tensor,
    keys: FusedKeys<'_>,
    mask: Option<&Tensor>,
    scale: f64,
    softcap: Option<f64>,
    sinks: Option<&[f32]>,
) -> Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    if !f32_cpu(q) || !mask.is_none_or(f32_cpu) || crate::differentiable(&[q]) {
        return Ok(None);
    }
    let (b, h, s, d) = q.dims4()?;
    let (kb, kv_heads, t, kd) = keys.dims;
    if kb != b || kd != d || kv_heads == 0 || h % kv_heads != 0 {
        return Ok(None);
    }
    // Strides of the mask read as [b, h, s, t]: 0 along the dimensions it broadcasts.
    let mask = match mask {
        None => None,
        Some(m) => {
            let dims = m.dims();
            let fits = |i: usize, n: usize| dims[i] == n || dims[i] == 1;
            if dims.len() != 4 || dims[3] != t || !(fits(0, b) && fits(1, h) && fits(2, s)) {
                return Ok(None);
            }
            let stride = |i: usize| {
                if dims[i] == 1 {
                    0
                } else {
                    dims[i + 1..].iter().product()
                }
            };
            let strides = [stride(0), stride(1), stride(2)];
            Some((m.flatten_all()?.to_vec1::<f32>()?, strides))
        }
    };
    let shape = SdpaShape {
        batch: b,
        heads: h,
        kv_heads,
        queries: s,
        keys: t,
        head_dim: d,
        scale: scale as f32,
        softcap: softcap.map(|c| c as f32),
    };
    let out = crate::kernels::sdpa::sdpa(
        &q.flatten_all()?.to_vec1::<f32>()?,
        keys.k,
        keys.v,
        keys.stride,
        mask.as_ref().map(|(values, strides)| MaskView {
            values,
            strides: *strides,
        }),
        sinks,
        shape,
    )?;
    Ok(Some(Tensor::from_vec(out, (b, h, s, d), q.device())?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::{max_abs_diff, random};
    use candle_core::Device;
    /// The fused kernel against the tensor-op path: decode and prefill query counts, grouped
    /// heads, softcapping, attention sinks, and masks shaped as the decoder ([b, 1, s, t]), ALiBi
    /// ([b, h, s, t]) and the encoders ([b, 1, 1, t]) build them.
    #[test]
    fn fused_sdpa_matches_the_tensor_ops() {
        let dev = Device::Cpu;
        let tensor = |dims: &[usize], seed: u64| {
            let n = dims.iter().product();
            Tensor::from_vec(random(n, seed), dims, &dev).unwrap()
        };
        // (heads, kv_heads, queries, keys, head_dim, softcap)
        let cases = [
            (4, 2, 1, 7, 16, None),
            (4, 2, 2, 9, 12, Some(5.0)),
            (4, 1, 5, 9, 8, None),
            (2, 2, 17, 17, 64, Some(0.5)),
            (3, 1, 100, 130, 16, None),
        ];
        for (h, kvh, s, t, d, softcap) in cases {
            let b = 2;
            let q = tensor(&[b, h, s, d], 1);
            let k = (tensor(&[b, kvh, t, d], 2) * 3.0).unwrap();
            let v = tensor(&[b, kvh, t, d], 3);
            // Dropped entries as the decoder writes them (f32::MIN), others small biases.
            let mask = |dims: &[usize], seed: u64| {
                let n: usize = dims.iter().product();
                let values: Vec<f32> = random(n, seed)
                    .into_iter()
                    .map(|x| if x > 0.6 { f32::MIN } else { x })
                    .collect();
                Tensor::from_vec(values, dims, &dev).unwrap()
            };
            // Causal after `t - s` cached positions, as the decoder builds it, with the
            // second batch row's first query dropping every key (a padded row).
            let causal = {
                let mut values = vec![0f32; b * s * t];
                for (r, row) in values.chunks_exact_mut(t).enumerate() {
                    let (bi, i) = (r / s, r % s);
                    for (j, m) in row.iter_mut().enumerate() {
                        if j > t - s + i || (bi == 1 && i == 0) {
                            *m = f32::MIN;
                        }
                    }
                }
                Tensor::from_vec(values, (b, 1, s, t), &dev).unwrap()
            };
            let masks = [
                Some(causal),
                None,
                Some(mask(&[b, 1, s, t], 4)),
                Some(mask(&[b, h, s, t], 5)),
                Some(mask(&[b, 1, 1, t], 6)),
            ];
            let sink_tensor = tensor(&[h], 7);
            let sink_sets = [None, Some(&sink_tensor)];
            for (m, sinks) in masks
                .iter()
                .flat_map(|m| sink_sets.iter().map(move |k| (m, *k)))
            {
                let sink_vec = sinks.map(|s| sink_values(s).unwrap());
                let groups = h / kvh;
                let scale = 1.0 / (d as f64).sqrt();
                let got = fused_sdpa(&q, &k, &v, m.as_ref(), scale, softcap, sink_vec.as_deref())
                    .unwrap()
                    .expect("f32 on the CPU takes the fused path");
                let want = sdpa_ops(
                    &q,
                    &k,
                    &v,
                    m.as_ref(),
                    groups,
                    scale,
                    softcap,
                    sinks,
                    Dropout::NONE,
                )
                .unwrap();
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff < 1e-5,
                    "{h}/{kvh} heads, {s}x{t}, mask {:?}, sinks {}: {diff}",
                    m.as_ref().map(|m| m.dims().to_vec()),
                    sinks.is_some()
                );
                // Keys and values kept in f16 give the tensor ops' result on the same
                // values rounded to f16.
                let half = |t: &Tensor| -> Vec<half::f16> {
                    t.flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|&x| half::f16::from_f32(x))
                        .collect()
                };
                let (k16, v16) = (half(&k), half(&v));
                let keys = FusedKeys {
                    k: KvRows::F16(&k16),
                    v: KvRows::F16(&v16),
                    stride: t * d,
                    dims: (b, kvh, t, d),
                };
                let got =
                    fused_sdpa_over(&q, keys, m.as_ref(), scale, softcap, sink_vec.as_deref())
                        .unwrap()
                        .expect("f32 queries on the CPU take the fused path");
                let rounded = |t: &Tensor| {
                    t.to_dtype(DType::F16)
                        .unwrap()
                        .to_dtype(DType::F32)
                        .unwrap()
                };
                let want = sdpa_ops(
                    &q,
                    &rounded(&k),
                    &rounded(&v),
                    m.as_ref(),
                    groups,
                    scale,
                    softcap,
                    sinks,
                    Dropout::NONE,
                )
                .unwrap();
                let diff = max_abs_diff(&got, &want);
                assert!(diff < 1e-5, "f16 keys, {h}/{kvh} heads, {s}x{t}: {diff}");
            }
        }
    }
}
