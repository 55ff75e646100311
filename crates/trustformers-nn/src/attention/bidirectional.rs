//! Bidirectional multi-head self-attention without a cache (BERT's `attention.self`): every
//! token attends to every unmasked token. The q, k and v projections run as one matmul where
//! our f32 GEMM can stack them, and in f32 on the CPU the heads are read where the
//! projections put them, by one fused kernel.

use super::sdpa::sdpa;
use crate::kernels::{fused, with_f32};
use crate::{Dropout, Linear};
use candle_core::{DType, Tensor, D};
use trustformers_core::{Error, Result, Weights};

/// A fused q/k/v projection (`Wqkv`, q then k then v along the last axis) split into heads.
///
/// # Shapes
/// `qkv`: `[batch, seq, 3 * heads * head_dim]` -> three `[batch, heads, seq, head_dim]`.
pub fn split_fused_qkv(
    qkv: &Tensor,
    heads: usize,
    head_dim: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, s, _) = qkv.dims3()?;
    let qkv = qkv.reshape((b, s, 3, heads, head_dim))?;
    let part = |k: usize| -> Result<Tensor> {
        Ok(qkv
            .narrow(2, k, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()?)
    };
    Ok((part(0)?, part(1)?, part(2)?))
}

/// The query, key and value projections: one GEMM when they run on our f32 kernel.
enum Qkv {
    Separate {
        query: Linear,
        key: Linear,
        value: Linear,
    },
    /// The three outputs side by side in each row.
    Stacked(Linear),
}

/// Self-attention over a whole sequence (encoders): `softmax(q k^T / sqrt(d) + mask) v`, per
/// head. Returns the context before the output projection, which the model owns.
pub struct BidirectionalAttention {
    qkv: Qkv,
    heads: usize,
    head_dim: usize,
    /// On the attention probabilities, in training (`attention_probs_dropout_prob`).
    dropout: Dropout,
}

impl BidirectionalAttention {
    /// Loads the projections named `names` (query, key, value) under `vb`, each `hidden ->
    /// heads * head_dim`. `stack` runs them as one matmul where it can; models that use the
    /// query and key projections on their own (DeBERTa's position terms) pass `false`.
    pub fn new(
        vb: &Weights,
        names: [&str; 3],
        hidden: usize,
        heads: usize,
        head_dim: usize,
        bias: bool,
        stack: bool,
    ) -> Result<Self> {
        let width = heads * head_dim;
        let [query, key, value] = names.map(|name| Linear::new(&vb.pp(name), hidden, width, bias));
        let (query, key, value) = (query?, key?, value?);
        let stacked = if stack {
            Linear::stack(&[&query, &key, &value])?
        } else {
            None
        };
        Ok(Self {
            qkv: match stacked {
                Some(l) => Qkv::Stacked(l),
                None => Qkv::Separate { query, key, value },
            },
            heads,
            head_dim,
            dropout: Dropout::NONE,
        })
    }

    /// Over one fused projection whose output rows are q, then k, then v (`qkv`, `hidden ->
    /// 3 * heads * head_dim`: BLIP-2's vision tower).
    pub fn from_fused(qkv: Linear, heads: usize, head_dim: usize) -> Self {
        Self {
            qkv: Qkv::Stacked(qkv),
            heads,
            head_dim,
            dropout: Dropout::NONE,
        }
    }

    /// With dropout on the attention probabilities in training.
    pub fn with_dropout(self, dropout: Dropout) -> Self {
        Self { dropout, ..self }
    }

    /// Whether the projections are trainable.
    fn is_trainable(&self) -> bool {
        match &self.qkv {
            Qkv::Separate { query, key, value } => {
                query.is_trainable() || key.is_trainable() || value.is_trainable()
            }
            Qkv::Stacked(qkv) => qkv.is_trainable(),
        }
    }

    /// The query and key projections, when they are kept apart (`stack: false`, or
    /// projections our GEMM cannot stack).
    pub fn query_key(&self) -> Option<(&Linear, &Linear)> {
        match &self.qkv {
            Qkv::Separate { query, key, .. } => Some((query, key)),
            Qkv::Stacked(_) => None,
        }
    }

    /// The attention context.
    ///
    /// # Shapes
    /// `xs`: `[batch, seq, hidden]`; `mask`: additive, broadcasting to `[batch, heads, seq,
    /// seq]` (the padding mask is `[batch, 1, 1, seq]`) -> `[batch, seq, heads * head_dim]`.
    pub fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let padding_only = mask.is_none_or(|m| matches!(m.dims(), [_, 1, 1, _]));
        if xs.dtype() == DType::F32
            && xs.device().is_cpu()
            && padding_only
            && !self.is_trainable()
            && !crate::differentiable(&[xs])
            && !self.dropout.is_active()
        {
            return self.forward_cpu(xs, mask);
        }
        let (q, k, v) = self.project_heads(xs)?;
        self.attend(&q, &k, &v, mask, 1.0 / (self.head_dim as f64).sqrt())
    }

    /// q, k and v split into heads.
    ///
    /// # Shapes
    /// `xs`: `[batch, seq, hidden]` -> three `[batch, heads, seq, head_dim]`.
    pub fn project_heads(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, s, _) = xs.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = match &self.qkv {
            Qkv::Separate { query, key, value } => {
                (query.forward(xs)?, key.forward(xs)?, value.forward(xs)?)
            }
            Qkv::Stacked(qkv) => {
                let y = qkv.forward(xs)?;
                let w = self.heads * self.head_dim;
                let third = |i: usize| y.narrow(D::Minus1, i * w, w)?.contiguous();
                (third(0)?, third(1)?, third(2)?)
            }
        };
        Ok((split(q)?, split(k)?, split(v)?))
    }

    /// The context of heads from [`Self::project_heads`] under an additive `bias` (the mask,
    /// plus any score terms of the model's own) and score `scale`.
    ///
    /// # Shapes
    /// q, k, v `[batch, heads, seq, head_dim]`; `bias` broadcasting to `[batch, heads, seq,
    /// seq]` -> `[batch, seq, heads * head_dim]`.
    pub fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        scale: f64,
    ) -> Result<Tensor> {
        let (b, _, s, _) = q.dims4()?;
        Ok(sdpa(q, k, v, bias, 1, scale, None, self.dropout)?
            .transpose(1, 2)?
            .reshape((b, s, self.heads * self.head_dim))?)
    }

    /// [`Self::forward`] in f32 on the CPU: attention reads the heads where the projections
    /// put them, in one fused kernel.
    fn forward_cpu(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        let width = self.heads * self.head_dim;
        if let Some(m) = mask {
            if m.dims() != [b, 1, 1, s] {
                return Err(Error::InvalidInput(format!(
                    "the padding mask has shape {:?}, expected [{b}, 1, 1, {s}]",
                    m.dims()
                )));
            }
        }
        let shape = fused::AttentionShape {
            batch: b,
            seq: s,
            heads: self.heads,
            head_dim: self.head_dim,
            scale: (1.0 / (self.head_dim as f64).sqrt()) as f32,
            row_stride: width,
        };
        let attend = |q: &[f32], k: &[f32], v: &[f32], shape| match mask {
            Some(m) => with_f32(m, |m| fused::attention(q, k, v, Some(m), shape)),
            None => fused::attention(q, k, v, None, shape),
        };
        let ctx = match &self.qkv {
            Qkv::Separate { query, key, value } => {
                let (q, k, v) = (query.forward(xs)?, key.forward(xs)?, value.forward(xs)?);
                with_f32(&q, |q| {
                    with_f32(&k, |k| with_f32(&v, |v| attend(q, k, v, shape)))
                })?
            }
            Qkv::Stacked(qkv) => with_f32(&qkv.forward(xs)?, |y| {
                let shape = fused::AttentionShape {
                    row_stride: 3 * width,
                    ..shape
                };
                let tail = |i: usize| y.get(i * width..).unwrap_or_default();
                attend(y, tail(1), tail(2), shape)
            })?,
        };
        Ok(Tensor::from_vec(ctx, (b, s, width), xs.device())?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::attention::padding_mask;
    use crate::kernels::tests::{max_abs_diff, random};
    use candle_core::Device;
    use std::collections::BTreeMap;
    use trustformers_core::weights::TensorSource;

    /// The fused CPU path, stacked or not, against the tensor-op path on a padded batch.
    #[test]
    fn the_fused_path_equals_the_tensor_ops() {
        let dev = Device::Cpu;
        let (hidden, heads, head_dim, b, s) = (8, 2, 4, 2, 5);
        let mut tensors = BTreeMap::new();
        for (i, name) in ["q", "k", "v"].iter().enumerate() {
            let w = Tensor::from_vec(random(hidden * hidden, i as u64), (hidden, hidden), &dev);
            let bias = Tensor::from_vec(random(hidden, 10 + i as u64), hidden, &dev);
            tensors.insert(format!("{name}.weight"), w.unwrap());
            tensors.insert(format!("{name}.bias"), bias.unwrap());
        }
        let source: Box<dyn TensorSource> = Box::new(tensors);
        let vb = Weights::new(source, DType::F32, dev.clone(), false);
        let xs = Tensor::from_vec(random(b * s * hidden, 7), (b, s, hidden), &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &dev).unwrap();
        let mask = padding_mask(Some(&mask), b, s).unwrap();
        for stack in [false, true] {
            let attn = BidirectionalAttention::new(
                &vb,
                ["q", "k", "v"],
                hidden,
                heads,
                head_dim,
                true,
                stack,
            )
            .unwrap();
            let fused = attn.forward(&xs, mask.as_ref()).unwrap();
            let (q, k, v) = attn.project_heads(&xs).unwrap();
            let ops = attn
                .attend(&q, &k, &v, mask.as_ref(), 1.0 / (head_dim as f64).sqrt())
                .unwrap();
            let d = max_abs_diff(&fused, &ops);
            assert!(d < 1e-5, "stack {stack}: {d}");
        }
    }
}
