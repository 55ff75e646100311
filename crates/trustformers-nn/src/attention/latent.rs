//! Multi-head latent attention (DeepSeek-V2/V3's MLA, `DeepseekV3Attention`): keys and
//! values come from one low-rank latent per token (`kv_a_proj_with_mqa` -> `kv_a_layernorm`,
//! expanded per head by `kv_b_proj`) plus one rotary key shared by the heads; queries come
//! from `q_proj` or a low-rank pair (`q_a_proj` -> `q_a_layernorm` -> `q_b_proj`), each head
//! split into a part without positions and a rotary part.
//!
//! The cache holds only the normed latent and the rotated shared key, `kv_lora_rank +
//! qk_rope_head_dim` values per token and layer. Two ways to attend over it, equal up to
//! rounding:
//! - **plain** (prefill, training): the latents are expanded into every head's keys and
//!   values, as transformers does;
//! - **absorbed** (decode): `kv_b_proj`'s key half is folded into the query and its value
//!   half applied after attention, so attention runs over the latents themselves as one
//!   key/value head shared by all query heads, and nothing per head is ever expanded.

use super::sdpa::sdpa;
use crate::cache::kv::KvCache;
use crate::profile::{self, Part};
use crate::{Dropout, Linear, RmsNorm, RotaryEmbedding};
use candle_core::Tensor;
use trustformers_core::{Error, Result, Weights};

/// Shape of one latent attention layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentAttentionSpec {
    pub hidden_size: usize,
    pub num_heads: usize,
    /// Rank of the query compression (`q_lora_rank`); `None` projects queries directly.
    pub q_lora_rank: Option<usize>,
    /// Rank of the key/value latent (`kv_lora_rank`).
    pub kv_lora_rank: usize,
    /// Per-head query/key dimensions without positions (`qk_nope_head_dim`).
    pub qk_nope_head_dim: usize,
    /// Per-head query/key dimensions that rotate (`qk_rope_head_dim`).
    pub qk_rope_head_dim: usize,
    /// Per-head value dimensions (`v_head_dim`).
    pub v_head_dim: usize,
    /// Score scale (`qk_head_dim^-0.5`, times YaRN's `mscale_all_dim` factor squared).
    pub scale: f64,
    /// Bias on `q_a_proj`, `kv_a_proj_with_mqa` and `o_proj` (`attention_bias`).
    pub bias: bool,
    /// Epsilon of the latents' RMSNorms.
    pub norm_eps: f64,
}

impl LatentAttentionSpec {
    /// Checks the ranks and dimensions, naming the config field that is wrong.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("kv_lora_rank", self.kv_lora_rank),
            ("q_lora_rank", self.q_lora_rank.unwrap_or(1)),
            ("qk_rope_head_dim", self.qk_rope_head_dim),
            ("v_head_dim", self.v_head_dim),
            ("num_attention_heads", self.num_heads),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1, got 0"));
            }
        }
        if !self.qk_rope_head_dim.is_multiple_of(2) {
            return Err(Error::config(
                "qk_rope_head_dim",
                format!(
                    "must be even to rotate in pairs, got {}",
                    self.qk_rope_head_dim
                ),
            ));
        }
        Ok(())
    }

    fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }
}

/// How queries are projected.
#[derive(Clone)]
enum QueryProj {
    Direct(Linear),
    LowRank { a: Linear, norm: RmsNorm, b: Linear },
}

/// Which way [`LatentAttention`] attends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatentPath {
    /// Absorbed for decode steps (at most [`ABSORBED_QUERIES`] new tokens) outside
    /// training, plain otherwise.
    Auto,
    /// Expand the latents into per-head keys and values.
    Plain,
    /// Attend over the latents with the key and value projections absorbed.
    Absorbed,
}

/// Up to this many new tokens per step, [`LatentPath::Auto`] attends the absorbed way.
pub const ABSORBED_QUERIES: usize = 4;

/// Multi-head latent attention with HF names `q_proj` (or `q_a_proj`, `q_a_layernorm`,
/// `q_b_proj`), `kv_a_proj_with_mqa`, `kv_a_layernorm`, `kv_b_proj`, `o_proj`.
#[derive(Clone)]
pub struct LatentAttention {
    spec: LatentAttentionSpec,
    q: QueryProj,
    kv_a: Linear,
    kv_norm: RmsNorm,
    kv_b: Linear,
    o_proj: Linear,
    /// `kv_b_proj`'s key half per head, `[1, heads, nope, rank]`.
    w_uk: Tensor,
    /// `kv_b_proj`'s value half per head, transposed: `[1, heads, rank, v]`.
    w_uv_t: Tensor,
    dropout: Dropout,
    path: LatentPath,
}

impl LatentAttention {
    /// Loads the projections under `vb` (usually `model.layers.{i}.self_attn`).
    pub fn new(spec: &LatentAttentionSpec, vb: &Weights) -> Result<Self> {
        spec.validate()?;
        let s = spec;
        let (h, r) = (s.num_heads, s.kv_lora_rank);
        let q_out = h * s.qk_head_dim();
        let q = match s.q_lora_rank {
            None => QueryProj::Direct(Linear::new(&vb.pp("q_proj"), s.hidden_size, q_out, false)?),
            Some(rank) => QueryProj::LowRank {
                a: Linear::new(&vb.pp("q_a_proj"), s.hidden_size, rank, s.bias)?,
                norm: RmsNorm::load(&vb.pp("q_a_layernorm"), rank, s.norm_eps, false)?,
                b: Linear::new(&vb.pp("q_b_proj"), rank, q_out, false)?,
            },
        };
        let kv_b_out = h * (s.qk_nope_head_dim + s.v_head_dim);
        // The per-head key and value halves, [heads, nope + v, rank]: from `kv_b_proj`, or
        // from the halves llama.cpp stores apart (`k_b_proj` transposed, `v_b_proj`).
        let (w, kv_b) = if vb.contains("kv_b_proj.weight") {
            let w = vb.pp("kv_b_proj").get((kv_b_out, r), "weight")?.reshape((
                h,
                s.qk_nope_head_dim + s.v_head_dim,
                r,
            ))?;
            (w, Linear::new(&vb.pp("kv_b_proj"), r, kv_b_out, false)?)
        } else {
            let k_b = vb
                .pp("k_b_proj")
                .get((h, r, s.qk_nope_head_dim), "weight")?;
            let v_b = vb.pp("v_b_proj").get((h, s.v_head_dim, r), "weight")?;
            let w = Tensor::cat(&[&k_b.transpose(1, 2)?, &v_b], 1)?.contiguous()?;
            let dense = w.reshape((kv_b_out, r))?;
            (
                w,
                Linear::from_weight(trustformers_core::Weight::Dense(dense), None)?,
            )
        };
        let w_uk = w
            .narrow(1, 0, s.qk_nope_head_dim)?
            .unsqueeze(0)?
            .contiguous()?;
        let w_uv_t = w
            .narrow(1, s.qk_nope_head_dim, s.v_head_dim)?
            .transpose(1, 2)?
            .unsqueeze(0)?
            .contiguous()?;
        Ok(Self {
            spec: spec.clone(),
            q,
            kv_a: Linear::new(
                &vb.pp("kv_a_proj_with_mqa"),
                s.hidden_size,
                r + s.qk_rope_head_dim,
                s.bias,
            )?,
            kv_norm: RmsNorm::load(&vb.pp("kv_a_layernorm"), r, s.norm_eps, false)?,
            kv_b,
            o_proj: Linear::new(&vb.pp("o_proj"), h * s.v_head_dim, s.hidden_size, s.bias)?,
            w_uk,
            w_uv_t,
            dropout: Dropout::NONE,
            path: LatentPath::Auto,
        })
    }

    /// With dropout on the attention probabilities in training.
    pub fn with_dropout(self, dropout: Dropout) -> Self {
        Self { dropout, ..self }
    }

    /// Attending always the `path` way (tests compare the two).
    pub fn with_path(self, path: LatentPath) -> Self {
        Self { path, ..self }
    }

    /// Whether the projections' weights are kept ggml-quantized.
    pub fn is_quantized(&self) -> bool {
        self.o_proj.is_quantized()
    }

    /// # Shapes
    /// `xs`: `[batch, seq, hidden]`; `rotary`: the rotary embedding of the rotating
    /// dimensions and its cos/sin `[batch, 1, seq, qk_rope_head_dim]`; `mask`: additive
    /// `[batch, 1, seq, past + seq]` or `None` -> `[batch, seq, hidden]`. The cache's layer
    /// `layer` holds the latents.
    pub fn forward(
        &self,
        xs: &Tensor,
        rotary: Option<(&RotaryEmbedding, &(Tensor, Tensor))>,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let _timing = profile::scope(Part::Attention);
        let s = &self.spec;
        let (b, seq, _) = xs.dims3()?;
        let (h, r, nope, rope) = (
            s.num_heads,
            s.kv_lora_rank,
            s.qk_nope_head_dim,
            s.qk_rope_head_dim,
        );
        let q = match &self.q {
            QueryProj::Direct(q) => q.forward(xs)?,
            QueryProj::LowRank { a, norm, b } => b.forward(&norm.forward(&a.forward(xs)?)?)?,
        };
        let q = q.reshape((b, seq, h, nope + rope))?.transpose(1, 2)?;
        let q_nope = q.narrow(3, 0, nope)?.contiguous()?;
        let q_rot = q.narrow(3, nope, rope)?.contiguous()?;
        let compressed = self.kv_a.forward(xs)?;
        let latent = self
            .kv_norm
            .forward(&compressed.narrow(2, 0, r)?.contiguous()?)?;
        let k_rot = compressed
            .narrow(2, r, rope)?
            .reshape((b, seq, 1, rope))?
            .transpose(1, 2)?
            .contiguous()?;
        let (q_rot, k_rot) = match rotary {
            Some((rope_emb, (cos, sin))) => (
                rope_emb.apply(&q_rot, cos, sin)?,
                rope_emb.apply(&k_rot, cos, sin)?,
            ),
            None => (q_rot, k_rot),
        };
        let latent = latent.unsqueeze(1)?;
        // [b, 1, t, rank + rope]: the normed latents, then the rotated shared keys.
        let cached = cache.append_latent(layer, &Tensor::cat(&[&latent, &k_rot], 3)?)?;
        let training = crate::differentiable(&[&q, &cached]);
        let absorbed = match self.path {
            LatentPath::Auto => !training && seq <= ABSORBED_QUERIES,
            LatentPath::Plain => false,
            LatentPath::Absorbed => true,
        };
        let out = if absorbed {
            self.attend_absorbed(&q_nope, &q_rot, &cached, mask)?
        } else {
            self.attend_plain(&q_nope, &q_rot, &cached, mask)?
        };
        let out = out.transpose(1, 2)?.reshape((b, seq, h * s.v_head_dim))?;
        self.o_proj.forward(&out)
    }

    /// [`Self::forward`] for rows that each continue their own cache: row `i` attends over
    /// `caches[i]` under `masks[i]`.
    pub fn forward_rows(
        &self,
        xs: &Tensor,
        rotary: Option<(&RotaryEmbedding, &(Tensor, Tensor))>,
        masks: &[Option<Tensor>],
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        let rows = xs.dim(0)?;
        if caches.len() != rows || masks.len() != rows {
            return Err(Error::InvalidInput(format!(
                "{rows} rows with {} caches and {} masks",
                caches.len(),
                masks.len()
            )));
        }
        let outs = caches
            .iter_mut()
            .zip(masks)
            .enumerate()
            .map(|(i, (cache, mask))| {
                let row_rotary = match rotary {
                    Some((emb, (cos, sin))) => {
                        Some((emb, (cos.narrow(0, i, 1)?, sin.narrow(0, i, 1)?)))
                    }
                    None => None,
                };
                let row_rotary = row_rotary.as_ref().map(|(emb, cs)| (*emb, cs));
                self.forward(
                    &xs.narrow(0, i, 1)?,
                    row_rotary,
                    mask.as_ref(),
                    cache,
                    layer,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&outs, 0)?)
    }

    /// The latents expanded into every head's keys and values: `[b, heads, seq, v]`.
    fn attend_plain(
        &self,
        q_nope: &Tensor,
        q_rot: &Tensor,
        cached: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let s = &self.spec;
        let (b, _, t, _) = cached.dims4()?;
        let (h, r, nope) = (s.num_heads, s.kv_lora_rank, s.qk_nope_head_dim);
        let latent = cached.narrow(3, 0, r)?.squeeze(1)?.contiguous()?;
        let k_rot = cached.narrow(3, r, s.qk_rope_head_dim)?;
        let kv = self
            .kv_b
            .forward(&latent)?
            .reshape((b, t, h, nope + s.v_head_dim))?
            .transpose(1, 2)?;
        let k_nope = kv.narrow(3, 0, nope)?;
        let v = kv.narrow(3, nope, s.v_head_dim)?.contiguous()?;
        let k_rot = k_rot.broadcast_as((b, h, t, s.qk_rope_head_dim))?;
        let k = Tensor::cat(&[&k_nope, &k_rot], 3)?.contiguous()?;
        let q = Tensor::cat(&[q_nope, q_rot], 3)?.contiguous()?;
        sdpa(&q, &k, &v, mask, 1, s.scale, None, self.dropout)
    }

    /// Attention over the latents with `kv_b_proj` absorbed: queries become
    /// `[q_nope · W_uk, q_rot]`, keys and values are the cached `[latent, k_rot]` (one head
    /// for all), and the output's latent part is projected by `W_uv`: `[b, heads, seq, v]`.
    fn attend_absorbed(
        &self,
        q_nope: &Tensor,
        q_rot: &Tensor,
        cached: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let s = &self.spec;
        let dtype = q_nope.dtype();
        let w_uk = self.w_uk.to_dtype(dtype)?;
        // [b, h, seq, nope] x [1, h, nope, rank] -> [b, h, seq, rank]
        let q_latent = q_nope.broadcast_matmul(&w_uk)?;
        let q = Tensor::cat(&[&q_latent, q_rot], 3)?.contiguous()?;
        let kv = cached.contiguous()?;
        // Values are the same rows as the keys: the output's first `rank` columns are the
        // attention-weighted latents (the rotary columns are dropped).
        let out = sdpa(&q, &kv, &kv, mask, s.num_heads, s.scale, None, self.dropout)?;
        let out_latent = out.narrow(3, 0, s.kv_lora_rank)?.contiguous()?;
        let w_uv_t = self.w_uv_t.to_dtype(dtype)?;
        Ok(out_latent.broadcast_matmul(&w_uv_t)?.to_dtype(dtype)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::random;
    use crate::{RopeScaling, RopeSpec};
    use candle_core::DType;
    use candle_core::Device;
    use std::collections::BTreeMap;

    /// The absorbed path equals the plain one: prefill then decode steps, with a low-rank
    /// query, a mask that hides a padded position, and latent ranks below the hidden size.
    #[test]
    fn absorbed_attention_equals_the_plain_expansion() {
        let dev = Device::Cpu;
        let spec = LatentAttentionSpec {
            hidden_size: 32,
            num_heads: 4,
            q_lora_rank: Some(12),
            kv_lora_rank: 16,
            qk_nope_head_dim: 8,
            qk_rope_head_dim: 4,
            v_head_dim: 6,
            scale: 1.0 / 12f64.sqrt(),
            bias: true,
            norm_eps: 1e-6,
        };
        let shapes: Vec<(&str, Vec<usize>)> = vec![
            ("q_a_proj.weight", vec![12, 32]),
            ("q_a_proj.bias", vec![12]),
            ("q_a_layernorm.weight", vec![12]),
            ("q_b_proj.weight", vec![48, 12]),
            ("kv_a_proj_with_mqa.weight", vec![20, 32]),
            ("kv_a_proj_with_mqa.bias", vec![20]),
            ("kv_a_layernorm.weight", vec![16]),
            ("kv_b_proj.weight", vec![56, 16]),
            ("o_proj.weight", vec![32, 24]),
            ("o_proj.bias", vec![32]),
        ];
        let tensors: BTreeMap<String, Tensor> = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (name, dims))| {
                let n = dims.iter().product();
                let t = Tensor::from_vec(random(n, i as u64 + 1), dims, &dev).unwrap();
                (name.to_string(), t)
            })
            .collect();
        let vb = Weights::new(Box::new(tensors), DType::F32, dev.clone(), false);
        let plain = LatentAttention::new(&spec, &vb)
            .unwrap()
            .with_path(LatentPath::Plain);
        let absorbed = plain.clone().with_path(LatentPath::Absorbed);
        let rope = RotaryEmbedding::new(&RopeSpec {
            theta: 10000.0,
            rotary_dim: 4,
            scaling: RopeScaling::Default,
            interleaved: true,
        })
        .unwrap();
        let (mut c1, mut c2) = (KvCache::new(1), KvCache::new(1));
        let mut past = 0;
        for (step, seq) in [5usize, 1, 1, 3].into_iter().enumerate() {
            let xs = Tensor::from_vec(random(2 * seq * 32, 50 + step as u64), (2, seq, 32), &dev)
                .unwrap();
            let pos = Tensor::arange(past as i64, (past + seq) as i64, &dev)
                .unwrap()
                .unsqueeze(0)
                .unwrap()
                .repeat((2, 1))
                .unwrap();
            let cs = rope.cos_sin(&pos, DType::F32).unwrap();
            // Row 1 never sees position 0 (a left pad); both rows are causal.
            let mut m = vec![0f32; 2 * seq * (past + seq)];
            for (i, row) in m.chunks_exact_mut(past + seq).enumerate() {
                let (bi, qi) = (i / seq, i % seq);
                for (j, x) in row.iter_mut().enumerate() {
                    if j > past + qi || (bi == 1 && j == 0) {
                        *x = f32::MIN;
                    }
                }
            }
            let mask = Tensor::from_vec(m, (2, 1, seq, past + seq), &dev).unwrap();
            let a = plain
                .forward(&xs, Some((&rope, &cs)), Some(&mask), &mut c1, 0)
                .unwrap();
            let b = absorbed
                .forward(&xs, Some((&rope, &cs)), Some(&mask), &mut c2, 0)
                .unwrap();
            let diff = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "step {step}: {diff}");
            past += seq;
        }
        // The cache holds the latent and the rotary key only.
        assert_eq!(c1.memory_bytes(), 2 * past * (16 + 4) * 4);
    }
}
