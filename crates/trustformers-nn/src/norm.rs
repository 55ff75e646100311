//! Normalisation layers.

use crate::profile::{self, Part};
use candle_core::{DType, Tensor, D};
use std::sync::Arc;
use trustformers_core::{Result, Weights};

/// RMSNorm: `w * x / sqrt(mean(x^2) + eps)`, computed in f32 like transformers. By default
/// the scale is applied after casting back to the input dtype (LLaMA); the unit-offset form
/// scales by `1 + w` in f32 and casts last (Gemma).
#[derive(Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
    /// The stored weight was `w`; `weight` holds `1 + w` in f32, applied before the cast.
    unit_offset: bool,
    /// `weight`'s values when it is f32, for the fused CPU kernel.
    values: Option<Arc<[f32]>>,
}

impl RmsNorm {
    /// Loads `weight` `[dim]` under `vb`.
    pub fn new(vb: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Self::from_weight(vb.get(dim, "weight")?, eps, false)
    }

    fn from_weight(weight: Tensor, eps: f64, unit_offset: bool) -> Result<Self> {
        let values = match weight.dtype() {
            DType::F32 => Some(weight.to_vec1::<f32>()?.into()),
            _ => None,
        };
        Ok(Self {
            weight,
            eps,
            unit_offset,
            values,
        })
    }

    /// Loads `weight` `[dim]` under `vb` for `x * (1 + w)` (Gemma's RMSNorm).
    pub fn unit_offset(vb: &Weights, dim: usize, eps: f64) -> Result<Self> {
        let w = vb.get(dim, "weight")?.to_dtype(DType::F32)?;
        Self::from_weight((w + 1.0)?, eps, true)
    }

    /// Either form, by `unit_offset`.
    pub fn load(vb: &Weights, dim: usize, eps: f64, unit_offset: bool) -> Result<Self> {
        if unit_offset {
            Self::unit_offset(vb, dim, eps)
        } else {
            Self::new(vb, dim, eps)
        }
    }

    /// # Shapes
    /// `xs`: `[..., dim]` -> `[..., dim]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Norm);
        if let (Some(w), DType::F32, true) = (&self.values, xs.dtype(), xs.device().is_cpu()) {
            if xs.dims().last() == Some(&w.len()) && !crate::differentiable(&[xs, &self.weight]) {
                let mut x: Vec<f32> = xs.flatten_all()?.to_vec1()?;
                crate::kernels::fused::rms_norm(&mut x, w, self.eps as f32);
                return Ok(Tensor::from_vec(x, xs.dims(), xs.device())?);
            }
        }
        let dtype = xs.dtype();
        let x = xs.to_dtype(DType::F32)?;
        let var = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        if self.unit_offset {
            return Ok(x.broadcast_mul(&self.weight)?.to_dtype(dtype)?);
        }
        Ok(x.to_dtype(dtype)?.broadcast_mul(&self.weight)?)
    }
}

/// LayerNorm: `(x - mean) / sqrt(var + eps) * w + b`, computed in f32 and cast back.
#[derive(Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` `[dim]` and, when `bias`, `bias` `[dim]` under `vb`.
    pub fn new(vb: &Weights, dim: usize, eps: f64, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?.to_dtype(DType::F32)?,
            bias: bias
                .then(|| {
                    vb.get(dim, "bias")
                        .and_then(|b| Ok(b.to_dtype(DType::F32)?))
                })
                .transpose()?,
            eps,
        })
    }

    /// Per-head LayerNorms without bias stacked as one `[heads, dim]` weight, from
    /// `norms.{h}.weight` under `vb` (StableLM's `StableLmLayerNormPerHead`).
    pub fn per_head(vb: &Weights, heads: usize, dim: usize, eps: f64) -> Result<Self> {
        let rows = (0..heads)
            .map(|h| vb.pp("norms").pp(h).get(dim, "weight"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            weight: Tensor::stack(&rows, 0)?.to_dtype(DType::F32)?,
            bias: None,
            eps,
        })
    }

    /// One bias-free LayerNorm per head whose weights are the rows of one `[heads, dim]`
    /// tensor `weight` under `vb` (Cohere's q/k norms).
    pub fn per_head_stacked(vb: &Weights, heads: usize, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get((heads, dim), "weight")?.to_dtype(DType::F32)?,
            bias: None,
            eps,
        })
    }

    /// `LayerNorm(xs + residual)` (post-norm blocks), in one pass on the CPU in f32.
    ///
    /// # Shapes
    /// `xs`, `residual`: `[..., dim]` -> the same.
    pub fn forward_residual(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Norm);
        if self.fuses(xs)
            && residual.dims() == xs.dims()
            && residual.dtype() == DType::F32
            && !crate::differentiable(&[residual])
        {
            return crate::kernels::with_f32(residual, |r| self.fused(xs, Some(r)));
        }
        self.forward(&(xs + residual)?)
    }

    /// Whether the fused CPU kernel takes `xs`: f32 on the CPU, one weight row.
    fn fuses(&self, xs: &Tensor) -> bool {
        xs.dtype() == DType::F32
            && xs.device().is_cpu()
            && self.weight.rank() == 1
            && xs.dims().last() == Some(&self.weight.elem_count())
            && !crate::differentiable(&[xs, &self.weight])
            && !self
                .bias
                .as_ref()
                .is_some_and(|b| crate::differentiable(&[b]))
    }

    fn fused(&self, xs: &Tensor, residual: Option<&[f32]>) -> Result<Tensor> {
        let mut x: Vec<f32> = xs.flatten_all()?.to_vec1()?;
        let eps = self.eps as f32;
        crate::kernels::with_f32(&self.weight, |w| match &self.bias {
            Some(b) => crate::kernels::with_f32(b, |b| {
                crate::kernels::fused::layer_norm(&mut x, residual, w, Some(b), eps);
                Ok(())
            }),
            None => {
                crate::kernels::fused::layer_norm(&mut x, residual, w, None, eps);
                Ok(())
            }
        })?;
        Ok(Tensor::from_vec(x, xs.dims(), xs.device())?)
    }

    /// # Shapes
    /// `xs`: `[..., dim]` (per-head: `[..., heads, dim]`) -> the same.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Norm);
        if self.fuses(xs) {
            return self.fused(xs, None);
        }
        let dtype = xs.dtype();
        let x = xs.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_sub(&mean)?;
        let var = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let x = x.broadcast_mul(&self.weight)?;
        let x = match &self.bias {
            Some(b) => x.broadcast_add(b)?,
            None => x,
        };
        Ok(x.to_dtype(dtype)?)
    }
}

/// Which normalisation a model uses, with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormKind {
    /// RMSNorm; `unit_offset` scales by `1 + w` (Gemma).
    Rms { eps: f64, unit_offset: bool },
    /// LayerNorm, with or without a bias.
    Layer { eps: f64, bias: bool },
}

impl NormKind {
    /// The epsilon.
    pub fn eps(self) -> f64 {
        match self {
            Self::Rms { eps, .. } | Self::Layer { eps, .. } => eps,
        }
    }
}

/// An RMSNorm or a LayerNorm, as the model's [`NormKind`] says.
#[derive(Clone)]
pub enum Norm {
    Rms(RmsNorm),
    Layer(LayerNorm),
}

impl Norm {
    /// Loads the norm under `vb`.
    pub fn load(vb: &Weights, dim: usize, kind: NormKind) -> Result<Self> {
        Ok(match kind {
            NormKind::Rms { eps, unit_offset } => {
                Self::Rms(RmsNorm::load(vb, dim, eps, unit_offset)?)
            }
            NormKind::Layer { eps, bias } => Self::Layer(LayerNorm::new(vb, dim, eps, bias)?),
        })
    }

    /// # Shapes
    /// `xs`: `[..., dim]` -> `[..., dim]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Rms(n) => n.forward(xs),
            Self::Layer(n) => n.forward(xs),
        }
    }
}
