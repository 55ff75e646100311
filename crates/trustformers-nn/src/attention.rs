//! Multi-head attention with grouped/multi-query KV heads, optional Q/K RMSNorm, and the
//! padding / causal / sliding-window masks transformers builds in `masking_utils.py`.

use crate::cache::kv::{KvBuffer, KvView};
use crate::kernels::sdpa::{KvRows, MaskView, SdpaShape};
use crate::profile::{self, Part};
use crate::{KvCache, LayerNorm, Linear, RmsNorm, RotaryEmbedding};
use candle_core::{DType, Device, Tensor};
use trustformers_core::{Error, Result, Weights};

/// Shape and knobs of one attention layer.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionSpec {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// Bias on q, k, v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// The norm over each head of q and k before RoPE, if any.
    pub qk_norm: Option<QkNorm>,
    /// Score scale; `None` is `1 / sqrt(head_dim)`.
    pub scale: Option<f64>,
    /// `tanh` soft-capping of the scores at this value (Gemma 2).
    pub softcap: Option<f64>,
    /// How q, k and v are projected.
    pub qkv: QkvLayout,
}

/// The norm over each head of q and k, before RoPE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QkNorm {
    /// One RMSNorm shared by the heads (`q_norm`, `k_norm`: Qwen3, Gemma 3), scaling by
    /// `1 + w` when `unit_offset` (Gemma).
    Rms { eps: f64, unit_offset: bool },
    /// One LayerNorm with bias shared by the heads (`q_layernorm.weight`, Phi).
    LayerShared { eps: f64 },
    /// One LayerNorm without bias per head (`q_layernorm.norms.{h}.weight`, StableLM).
    LayerPerHead { eps: f64 },
}

/// Where q, k and v come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QkvLayout {
    /// `q_proj`, `k_proj`, `v_proj`.
    #[default]
    Separate,
    /// One `qkv_proj` whose rows are all of q, then k, then v (Phi-3).
    Fused,
    /// One `qkv_proj` whose rows are, kv group by kv group, the group's queries, then its key
    /// and value (Falcon 40B; GPT-NeoX is the case of one query per group).
    FusedGrouped,
}

/// The q/k/v projections: three layers, or one whose output is split.
#[derive(Clone)]
enum QkvProj {
    Separate { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
    FusedGrouped(Linear),
}

/// A norm over each head of q or k: an RMSNorm shared by the heads, or a LayerNorm (shared, or
/// one weight row per head).
#[derive(Clone)]
enum HeadNorm {
    Rms(RmsNorm),
    Layer(LayerNorm),
}

impl HeadNorm {
    /// `xs`: `[batch, seq, heads, head_dim]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Rms(n) => n.forward(xs),
            Self::Layer(n) => n.forward(xs),
        }
    }
}

/// Self-attention with HF names `q_proj`, `k_proj`, `v_proj`, `o_proj` (+ `q_norm`, `k_norm`).
#[derive(Clone)]
pub struct Attention {
    qkv: QkvProj,
    o_proj: Linear,
    q_norm: Option<HeadNorm>,
    k_norm: Option<HeadNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
    softcap: Option<f64>,
}

impl Attention {
    /// Loads the projections under `vb` (usually `model.layers.{i}.self_attn`).
    pub fn new(spec: &AttentionSpec, vb: &Weights) -> Result<Self> {
        let q_dim = spec.num_heads * spec.head_dim;
        let kv_dim = spec.num_kv_heads * spec.head_dim;
        let h = spec.hidden_size;
        let d = spec.head_dim;
        let norm = |rms: &str, layer: &str, heads: usize| -> Result<Option<HeadNorm>> {
            Ok(Some(match spec.qk_norm {
                None => return Ok(None),
                Some(QkNorm::Rms { eps, unit_offset }) => {
                    HeadNorm::Rms(RmsNorm::load(&vb.pp(rms), d, eps, unit_offset)?)
                }
                Some(QkNorm::LayerShared { eps }) => {
                    HeadNorm::Layer(LayerNorm::new(&vb.pp(layer), d, eps, true)?)
                }
                Some(QkNorm::LayerPerHead { eps }) => {
                    HeadNorm::Layer(LayerNorm::per_head(&vb.pp(layer), heads, d, eps)?)
                }
            }))
        };
        let fused = || Linear::new(&vb.pp("qkv_proj"), h, q_dim + 2 * kv_dim, spec.qkv_bias);
        let qkv = match spec.qkv {
            QkvLayout::Fused => QkvProj::Fused(fused()?),
            QkvLayout::FusedGrouped => QkvProj::FusedGrouped(fused()?),
            QkvLayout::Separate => QkvProj::Separate {
                q: Linear::new(&vb.pp("q_proj"), h, q_dim, spec.qkv_bias)?,
                k: Linear::new(&vb.pp("k_proj"), h, kv_dim, spec.qkv_bias)?,
                v: Linear::new(&vb.pp("v_proj"), h, kv_dim, spec.qkv_bias)?,
            },
        };
        Ok(Self {
            qkv,
            o_proj: Linear::new(&vb.pp("o_proj"), q_dim, h, spec.o_bias)?,
            q_norm: norm("q_norm", "q_layernorm", spec.num_heads)?,
            k_norm: norm("k_norm", "k_layernorm", spec.num_kv_heads)?,
            num_heads: spec.num_heads,
            num_kv_heads: spec.num_kv_heads,
            head_dim: spec.head_dim,
            scale: spec.scale.unwrap_or(1.0 / (spec.head_dim as f64).sqrt()),
            softcap: spec.softcap,
        })
    }

    /// Whether the projections' weights are kept ggml-quantized.
    pub fn is_quantized(&self) -> bool {
        self.o_proj.is_quantized()
    }

    /// # Shapes
    /// `xs`: `[batch, seq, hidden]`; `rotary`: the rotary embedding and its cos/sin
    /// `[batch, 1, seq, rotary_dim]` (`None` for models whose positions are not rotary);
    /// `mask`: additive `[batch, 1, seq, past + seq]` or `None` for no masking ->
    /// `[batch, seq, hidden]`.
    pub fn forward(
        &self,
        xs: &Tensor,
        rotary: Option<(&RotaryEmbedding, &(Tensor, Tensor))>,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        // The projections, norms and rope inside report themselves.
        let _timing = profile::scope(Part::Attention);
        let (b, s, _) = xs.dims3()?;
        let heads = |t: Tensor, n: usize, norm: &Option<HeadNorm>| -> Result<Tensor> {
            let t = t.reshape((b, s, n, self.head_dim))?;
            let t = match norm {
                Some(norm) => norm.forward(&t)?,
                None => t,
            };
            Ok(t.transpose(1, 2)?.contiguous()?)
        };
        let (q, k, v) = match &self.qkv {
            QkvProj::Separate { q, k, v } => {
                match <[Tensor; 3]>::try_from(Linear::forward_many(&[q, k, v], xs)?) {
                    Ok([q, k, v]) => (q, k, v),
                    Err(outs) => {
                        return Err(Error::InvalidInput(format!(
                            "three projections gave {} outputs",
                            outs.len()
                        )))
                    }
                }
            }
            QkvProj::Fused(qkv) => {
                let all = qkv.forward(xs)?;
                let q_dim = self.num_heads * self.head_dim;
                let kv_dim = self.num_kv_heads * self.head_dim;
                (
                    all.narrow(2, 0, q_dim)?,
                    all.narrow(2, q_dim, kv_dim)?,
                    all.narrow(2, q_dim + kv_dim, kv_dim)?,
                )
            }
            QkvProj::FusedGrouped(qkv) => {
                let (kv, d) = (self.num_kv_heads, self.head_dim);
                let group = self.num_heads / kv;
                let all = qkv.forward(xs)?.reshape((b, s, kv, group + 2, d))?;
                let part = |start: usize, n: usize| -> Result<Tensor> {
                    Ok(all.narrow(3, start, n)?.reshape((b, s, kv * n * d))?)
                };
                (part(0, group)?, part(group, 1)?, part(group + 1, 1)?)
            }
        };
        let q = heads(q, self.num_heads, &self.q_norm)?;
        let k = heads(k, self.num_kv_heads, &self.k_norm)?;
        let v = heads(v, self.num_kv_heads, &None)?;
        let (q, k) = match rotary {
            Some((rope, (cos, sin))) => (rope.apply(&q, cos, sin)?, rope.apply(&k, cos, sin)?),
            None => (q, k),
        };
        let groups = self.num_heads / self.num_kv_heads;
        let out = match cache.append_view(layer, &k, &v)? {
            KvView::Tensors(k, v) => sdpa(&q, &k, &v, mask, groups, self.scale, self.softcap)?,
            KvView::Buffer(buf) => {
                let keys = FusedKeys::buffer(buf);
                match fused_sdpa_over(&q, keys, mask, self.scale, self.softcap)? {
                    Some(out) => out,
                    None => {
                        let (k, v) = buf.to_tensors(q.device())?;
                        sdpa_ops(&q, &k, &v, mask, groups, self.scale, self.softcap)?
                    }
                }
            }
        };
        let out = out
            .transpose(1, 2)?
            .reshape((b, s, self.num_heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

/// Scaled dot-product attention computed in f32, keys/values shared by `groups` query heads:
/// `softmax(softcap(q k^T * scale) + mask) v`, with `softcap(x) = c * tanh(x / c)` when given.
///
/// # Shapes
/// q `[b, h, s, d]`, k/v `[b, h / groups, t, d]`, mask `[b, 1, s, t]` -> `[b, h, s, d]`.
pub fn sdpa(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    groups: usize,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Tensor> {
    match fused_sdpa(q, k, v, mask, scale, softcap)? {
        Some(out) => Ok(out),
        None => sdpa_ops(q, k, v, mask, groups, scale, softcap),
    }
}

/// [`sdpa`] as tensor operations, for any dtype and device.
fn sdpa_ops(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    groups: usize,
    scale: f64,
    softcap: Option<f64>,
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
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(&v)?.to_dtype(dtype)?)
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
) -> Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    if !(f32_cpu(k) && f32_cpu(v)) || v.dims() != k.dims() {
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
    fused_sdpa_over(q, keys, mask, scale, softcap)
}

/// Keys and values as the fused kernel reads them: `batch * kv_heads` blocks of
/// `[keys, head_dim]`, `stride` values apart.
struct FusedKeys<'a> {
    k: KvRows<'a>,
    v: KvRows<'a>,
    stride: usize,
    /// `(batch, kv_heads, keys, head_dim)`.
    dims: (usize, usize, usize, usize),
}

impl<'a> FusedKeys<'a> {
    fn buffer(buf: &'a KvBuffer) -> Self {
        Self {
            k: buf.keys(),
            v: buf.values(),
            stride: buf.head_stride(),
            dims: buf.dims(),
        }
    }
}

/// [`fused_sdpa`] over keys and values already in the kernel's layout.
fn fused_sdpa_over(
    q: &Tensor,
    keys: FusedKeys<'_>,
    mask: Option<&Tensor>,
    scale: f64,
    softcap: Option<f64>,
) -> Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    if !f32_cpu(q) || !mask.is_none_or(f32_cpu) {
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
        shape,
    )?;
    Ok(Some(Tensor::from_vec(out, (b, h, s, d), q.device())?))
}

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
    use crate::kernels::tests::{max_abs_diff, random};

    /// The fused kernel against the tensor-op path: decode and prefill query counts, grouped
    /// heads, softcapping, and masks shaped as the decoder ([b, 1, s, t]), ALiBi
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
            for m in &masks {
                let groups = h / kvh;
                let scale = 1.0 / (d as f64).sqrt();
                let got = fused_sdpa(&q, &k, &v, m.as_ref(), scale, softcap)
                    .unwrap()
                    .expect("f32 on the CPU takes the fused path");
                let want = sdpa_ops(&q, &k, &v, m.as_ref(), groups, scale, softcap).unwrap();
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff < 1e-5,
                    "{h}/{kvh} heads, {s}x{t}, mask {:?}: {diff}",
                    m.as_ref().map(|m| m.dims().to_vec())
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
                let got = fused_sdpa_over(&q, keys, m.as_ref(), scale, softcap)
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
                )
                .unwrap();
                let diff = max_abs_diff(&got, &want);
                assert!(diff < 1e-5, "f16 keys, {h}/{kvh} heads, {s}x{t}: {diff}");
            }
        }
    }

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
