//! Cross-attention (encoder-decoder models): the decoder's queries over the encoder output's
//! keys and values, which are projected once per layer and kept in the
//! [`EncoderDecoderCache`] for every decoding step.

use super::mask::padding_mask;
use super::sdpa::{fused_sdpa_over, sdpa, sdpa_ops, FusedKeys};
use crate::cache::kv::KvView;
use crate::{Dropout, EncoderDecoderCache, KvCache, Linear};
use candle_core::Tensor;
use trustformers_core::{Error, Result, Weights};

/// Shape and names of one cross-attention layer.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossAttentionSpec {
    /// The decoder's width (queries and output).
    pub hidden_size: usize,
    /// The encoder output's width (keys and values).
    pub source_size: usize,
    pub num_heads: usize,
    pub head_dim: usize,
    /// Biases on the four projections (BART, Marian; T5 has none).
    pub bias: bool,
    /// Score scale (`1 / sqrt(head_dim)` for BART; 1 for T5, whose init folds it in).
    pub scale: f64,
    /// The query, key, value and output projections' names (`q_proj`, `k_proj`, `v_proj`,
    /// `out_proj` in BART; `q`, `k`, `v`, `o` in T5).
    pub names: [&'static str; 4],
}

/// `softmax(q(x) k(src)^T * scale + mask) v(src)`, projected out, per head.
pub struct CrossAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    head_dim: usize,
    scale: f64,
}

impl CrossAttention {
    /// Loads the projections under `vb` (`model.decoder.layers.{i}.encoder_attn` in BART).
    pub fn new(spec: &CrossAttentionSpec, vb: &Weights) -> Result<Self> {
        let width = spec.num_heads * spec.head_dim;
        let [q, k, v, o] = spec.names;
        Ok(Self {
            q: Linear::new(&vb.pp(q), spec.hidden_size, width, spec.bias)?,
            k: Linear::new(&vb.pp(k), spec.source_size, width, spec.bias)?,
            v: Linear::new(&vb.pp(v), spec.source_size, width, spec.bias)?,
            o: Linear::new(&vb.pp(o), width, spec.hidden_size, spec.bias)?,
            heads: spec.num_heads,
            head_dim: spec.head_dim,
            scale: spec.scale,
        })
    }

    fn split(&self, t: &Tensor) -> Result<Tensor> {
        let (b, s, _) = t.dims3()?;
        Ok(t.reshape((b, s, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// The keys and values of an encoder output, as the cache keeps them.
    ///
    /// # Shapes
    /// `source`: `[batch, source_len, source_size]` -> two `[batch, heads, source_len,
    /// head_dim]`.
    pub fn project_source(&self, source: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split(&self.k.forward(source)?)?,
            self.split(&self.v.forward(source)?)?,
        ))
    }

    /// Attends from `xs` over keys and values of [`Self::project_source`].
    ///
    /// # Shapes
    /// `xs`: `[batch, seq, hidden]`; `mask`: additive `[batch, 1, 1, source_len]` (see
    /// [`padding_mask`]) -> `[batch, seq, hidden]`.
    pub fn forward(
        &self,
        xs: &Tensor,
        (keys, values): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        if keys.dim(0)? != b {
            return Err(Error::InvalidInput(format!(
                "cross-attention: {b} decoder rows but {} encoder rows",
                keys.dim(0)?
            )));
        }
        let q = self.split(&self.q.forward(xs)?)?;
        let ctx = sdpa(&q, keys, values, mask, 1, self.scale, None, Dropout::NONE)?
            .transpose(1, 2)?
            .reshape((b, s, self.heads * self.head_dim))?;
        self.o.forward(&ctx)
    }

    /// The same projections as self-attention over `xs` (an encoder-decoder's self-attention
    /// layers have the shape and names of its cross-attention ones): with a cache, this
    /// step's keys and values are appended to `cache`'s layer `layer` and attention reads
    /// the cache where it lies (f32 on the CPU), as the decoders' does.
    ///
    /// # Shapes
    /// `xs`: `[batch, seq, hidden]`; `mask`: additive, broadcasting to `[batch, heads, seq,
    /// keys]` -> `[batch, seq, hidden]`.
    pub fn forward_self(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        let q = self.split(&self.q.forward(xs)?)?;
        let (k, v) = self.project_source(xs)?;
        let ctx = match cache {
            None => sdpa(&q, &k, &v, mask, 1, self.scale, None, Dropout::NONE)?,
            Some((cache, layer)) => match cache.append_view(layer, &k, &v)? {
                KvView::Tensors(k, v) => {
                    sdpa(&q, &k, &v, mask, 1, self.scale, None, Dropout::NONE)?
                }
                KvView::Buffer(buf) => {
                    match fused_sdpa_over(&q, FusedKeys::buffer(buf), mask, self.scale, None, None)?
                    {
                        Some(out) => out,
                        None => {
                            let (k, v) = buf.to_tensors(q.device())?;
                            sdpa_ops(&q, &k, &v, mask, 1, self.scale, None, None, Dropout::NONE)?
                        }
                    }
                }
            },
        };
        let ctx = ctx
            .transpose(1, 2)?
            .reshape((b, s, self.heads * self.head_dim))?;
        self.o.forward(&ctx)
    }

    /// [`Self::forward`] over the encoder output kept in `cache`, its keys and values
    /// projected at the first call for `layer` and read from the cache afterwards, masked by
    /// the encoder input's padding.
    pub fn forward_cached(
        &self,
        xs: &Tensor,
        cache: &mut EncoderDecoderCache,
        layer: usize,
    ) -> Result<Tensor> {
        let (k, v) = cache.cross_attention(layer, |source| self.project_source(source))?;
        let mask = match cache.encoder_mask() {
            Some(m) => {
                let (b, t) = m.dims2()?;
                padding_mask(Some(m), b, t)?
            }
            None => None,
        };
        self.forward(xs, (&k, &v), mask.as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::{max_abs_diff, random};
    use candle_core::{DType, Device, D};
    use std::collections::BTreeMap;

    /// Against the definition written out in tensor ops, with a padded encoder row, and the
    /// cached path against the direct one.
    #[test]
    fn cross_attention_matches_its_definition() {
        let dev = Device::Cpu;
        let (hidden, source_size, heads, head_dim) = (6, 4, 2, 3);
        let (b, s, t) = (2, 3, 4);
        let t_ = |dims: &[usize], seed: u64| {
            Tensor::from_vec(random(dims.iter().product(), seed), dims, &dev).unwrap()
        };
        let mut w = BTreeMap::new();
        for (i, (name, out, inp)) in [
            ("q", 6, hidden),
            ("k", 6, source_size),
            ("v", 6, source_size),
            ("o", hidden, 6),
        ]
        .into_iter()
        .enumerate()
        {
            w.insert(format!("{name}.weight"), t_(&[out, inp], i as u64));
            w.insert(format!("{name}.bias"), t_(&[out], 10 + i as u64));
        }
        let vb = Weights::new(Box::new(w.clone()), DType::F32, dev.clone(), false);
        let spec = CrossAttentionSpec {
            hidden_size: hidden,
            source_size,
            num_heads: heads,
            head_dim,
            bias: true,
            scale: 0.5,
            names: ["q", "k", "v", "o"],
        };
        let attn = CrossAttention::new(&spec, &vb).unwrap();
        let xs = t_(&[b, s, hidden], 20);
        let source = t_(&[b, t, source_size], 21);
        let keep = Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 0, 0]], &dev).unwrap();

        // softmax(q k^T * scale + mask) v, per head, then the output projection.
        let lin = |x: &Tensor, n: &str| {
            x.broadcast_matmul(&w[&format!("{n}.weight")].t().unwrap())
                .unwrap()
                .broadcast_add(&w[&format!("{n}.bias")])
                .unwrap()
        };
        let heads_of = |x: Tensor| {
            let (b, n, _) = x.dims3().unwrap();
            x.reshape((b, n, heads, head_dim))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (
            heads_of(lin(&xs, "q")),
            heads_of(lin(&source, "k")),
            heads_of(lin(&source, "v")),
        );
        let mask = padding_mask(Some(&keep), b, t).unwrap().unwrap();
        let scores = (q.matmul(&k.t().unwrap().contiguous().unwrap()).unwrap() * 0.5)
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        let ctx = probs
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, s, heads * head_dim))
            .unwrap();
        let want = lin(&ctx, "o");

        let (pk, pv) = attn.project_source(&source).unwrap();
        let got = attn.forward(&xs, (&pk, &pv), Some(&mask)).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5);

        let mut cache = EncoderDecoderCache::new(1, DType::F32).unwrap();
        cache.set_encoder_output(source, Some(keep));
        for _ in 0..2 {
            let cached = attn.forward_cached(&xs, &mut cache, 0).unwrap();
            assert!(max_abs_diff(&cached, &want) < 1e-5);
        }
    }
}
