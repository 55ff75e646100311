//! Causal self-attention with a KV cache (the decoders' `self_attn`): grouped/multi-query KV
//! heads, fused or separate q/k/v projections, optional per-head q/k norms, rotary positions
//! when the model has them, scores through [`super::sdpa`].

use super::sdpa::{fused_sdpa_over, sdpa_ops, sdpa_sinks, sink_values, FusedKeys};
use crate::cache::kv::KvView;
use crate::profile::{self, Part};
use crate::{Dropout, KvCache, LayerNorm, Linear, RmsNorm, RotaryEmbedding};
use candle_core::Tensor;
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
    /// A learned sink logit per query head joins the softmax (`sinks` `[num_heads]`:
    /// gpt-oss).
    pub sinks: bool,
    /// Queries scaled by position (Llama 4's NoPE layers).
    pub temperature_tuning: Option<TemperatureTuning>,
}

/// Llama 4's attention temperature tuning: the query at cache position `p` is multiplied by
/// `ln(1 + floor((p + 1) / floor_scale)) * attn_scale + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureTuning {
    pub floor_scale: f64,
    pub attn_scale: f64,
}

/// The norm of q and k before RoPE: over each head, or over the whole projection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QkNorm {
    /// One RMSNorm shared by the heads (`q_norm`, `k_norm`: Qwen3, Gemma 3), scaling by
    /// `1 + w` when `unit_offset` (Gemma).
    Rms { eps: f64, unit_offset: bool },
    /// One LayerNorm with bias shared by the heads (`q_layernorm.weight`, Phi).
    LayerShared { eps: f64 },
    /// One LayerNorm without bias per head (`q_layernorm.norms.{h}.weight`, StableLM).
    LayerPerHead { eps: f64 },
    /// One LayerNorm without bias per head, the heads' weights in one `[heads, head_dim]`
    /// tensor (`q_norm.weight`: Cohere's `use_qk_norm`).
    LayerPerHeadStacked { eps: f64 },
    /// One RMSNorm over the whole q (and k) projection, all heads together, before it is
    /// split into heads (`q_norm.weight` `[heads * head_dim]`: OLMo 2).
    RmsWhole { eps: f64 },
    /// An RMSNorm without weights over each head (Llama 4's L2 norm; applied before the
    /// rotation instead of after it, which is the same: a rotation keeps the norm).
    Weightless { eps: f64 },
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
    /// Over all heads at once, before the split into heads.
    Whole(RmsNorm),
    /// `x / sqrt(mean(x^2) + eps)` over each head, computed in f32.
    Weightless(f64),
}

impl HeadNorm {
    /// `xs`: `[batch, seq, heads * head_dim]` -> `[batch, seq, heads, head_dim]`, normed.
    fn forward(&self, xs: Tensor, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
        match self {
            Self::Whole(n) => Ok(n.forward(&xs)?.reshape(shape)?),
            Self::Rms(n) => n.forward(&xs.reshape(shape)?),
            Self::Layer(n) => n.forward(&xs.reshape(shape)?),
            Self::Weightless(eps) => {
                let x = xs.reshape(shape)?;
                let dtype = x.dtype();
                let x = x.to_dtype(candle_core::DType::F32)?;
                let ms = x.sqr()?.mean_keepdim(3)?;
                Ok(x.broadcast_div(&(ms + *eps)?.sqrt()?)?.to_dtype(dtype)?)
            }
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
    /// On the attention probabilities, in training (`attention_dropout`).
    dropout: Dropout,
    /// The sink logits `[num_heads]` (f32), and their values for the fused kernel.
    sinks: Option<(Tensor, Vec<f32>)>,
    temperature: Option<TemperatureTuning>,
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
                Some(QkNorm::LayerPerHeadStacked { eps }) => {
                    HeadNorm::Layer(LayerNorm::per_head_stacked(&vb.pp(rms), heads, d, eps)?)
                }
                Some(QkNorm::RmsWhole { eps }) => {
                    HeadNorm::Whole(RmsNorm::load(&vb.pp(rms), heads * d, eps, false)?)
                }
                Some(QkNorm::Weightless { eps }) => HeadNorm::Weightless(eps),
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
            dropout: Dropout::NONE,
            sinks: spec
                .sinks
                .then(|| -> Result<(Tensor, Vec<f32>)> {
                    let s = vb
                        .get(spec.num_heads, "sinks")?
                        .to_dtype(candle_core::DType::F32)?;
                    let values = sink_values(&s)?;
                    Ok((s, values))
                })
                .transpose()?,
            temperature: spec.temperature_tuning,
        })
    }

    /// With dropout `p` on the attention probabilities in training.
    pub fn with_dropout(self, dropout: Dropout) -> Self {
        Self { dropout, ..self }
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
        let (q, k, v) = self.project(xs, rotary)?;
        let out = self.attend(&q, &k, &v, mask, cache, layer)?;
        self.output(&out, xs)
    }

    /// [`Self::forward`] for rows that each continue their own cache (sequences of
    /// different lengths stepped together): the projections run once for all rows, the
    /// attention of row `i` reads `caches[i]` under `masks[i]`.
    ///
    /// # Shapes
    /// `xs`: `[rows, seq, hidden]`, `rotary` as for [`Self::forward`] with each row's own
    /// positions, `masks[i]`: `[1, 1, seq, past_i + seq]` or `None` -> `[rows, seq, hidden]`.
    pub fn forward_rows(
        &self,
        xs: &Tensor,
        rotary: Option<(&RotaryEmbedding, &(Tensor, Tensor))>,
        masks: &[Option<Tensor>],
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        let _timing = profile::scope(Part::Attention);
        let rows = xs.dim(0)?;
        if caches.len() != rows || masks.len() != rows {
            return Err(Error::InvalidInput(format!(
                "{rows} rows with {} caches and {} masks",
                caches.len(),
                masks.len()
            )));
        }
        let (q, k, v) = self.project(xs, rotary)?;
        let outs = caches
            .iter_mut()
            .zip(masks)
            .enumerate()
            .map(|(i, (cache, mask))| {
                let row = |t: &Tensor| t.narrow(0, i, 1);
                self.attend(&row(&q)?, &row(&k)?, &row(&v)?, mask.as_ref(), cache, layer)
            })
            .collect::<Result<Vec<_>>>()?;
        self.output(&Tensor::cat(&outs, 0)?, xs)
    }

    /// q, k, v as `[batch, heads, seq, head_dim]`, normed and rotated.
    fn project(
        &self,
        xs: &Tensor,
        rotary: Option<(&RotaryEmbedding, &(Tensor, Tensor))>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, s, _) = xs.dims3()?;
        let heads = |t: Tensor, n: usize, norm: &Option<HeadNorm>| -> Result<Tensor> {
            let shape = (b, s, n, self.head_dim);
            let t = match norm {
                Some(norm) => norm.forward(t, shape)?,
                None => t.reshape(shape)?,
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
        Ok(match rotary {
            Some((rope, (cos, sin))) => (rope.apply(&q, cos, sin)?, rope.apply(&k, cos, sin)?, v),
            None => (q, k, v),
        })
    }

    /// Appends k, v to `cache` and attends: `[batch, heads, seq, head_dim]`.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let groups = self.num_heads / self.num_kv_heads;
        let scaled;
        let q = match self.temperature {
            Some(t) => {
                // The cache positions of this step's queries.
                let (past, seq) = (cache.layer_len(layer), q.dim(2)?);
                let scales: Vec<f32> = (past..past + seq)
                    .map(|p| {
                        let bucket = ((p as f64 + 1.0) / t.floor_scale).floor();
                        (bucket.ln_1p() * t.attn_scale + 1.0) as f32
                    })
                    .collect();
                let scales = Tensor::from_vec(scales, (1, 1, seq, 1), q.device())?;
                scaled = q.broadcast_mul(&scales.to_dtype(q.dtype())?)?;
                &scaled
            }
            None => q,
        };
        let (sinks, sink_values) = match &self.sinks {
            Some((t, v)) => (Some(t), Some(v.as_slice())),
            None => (None, None),
        };
        Ok(match cache.append_view(layer, k, v)? {
            KvView::Tensors(k, v) => sdpa_sinks(
                q,
                &k,
                &v,
                mask,
                groups,
                self.scale,
                self.softcap,
                sinks,
                self.dropout,
            )?,
            KvView::Buffer(buf) => {
                let keys = FusedKeys::buffer(buf);
                let trained = sinks.is_some_and(|s| crate::differentiable(&[s]));
                let fused = match self.dropout.is_active() || trained {
                    true => None,
                    false => fused_sdpa_over(q, keys, mask, self.scale, self.softcap, sink_values)?,
                };
                match fused {
                    Some(out) => out,
                    None => {
                        let (k, v) = buf.to_tensors(q.device())?;
                        let (scale, softcap) = (self.scale, self.softcap);
                        sdpa_ops(q, &k, &v, mask, groups, scale, softcap, sinks, self.dropout)?
                    }
                }
            }
        })
    }

    /// The heads joined and projected back: `[batch, seq, hidden]` for input `xs`.
    fn output(&self, out: &Tensor, xs: &Tensor) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, s, self.num_heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}
