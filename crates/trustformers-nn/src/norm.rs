//! Normalisation layers.

use candle_core::{DType, Tensor, D};
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
}

impl RmsNorm {
    /// Loads `weight` `[dim]` under `vb`.
    pub fn new(vb: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
            unit_offset: false,
        })
    }

    /// Loads `weight` `[dim]` under `vb` for `x * (1 + w)` (Gemma's RMSNorm).
    pub fn unit_offset(vb: &Weights, dim: usize, eps: f64) -> Result<Self> {
        let w = vb.get(dim, "weight")?.to_dtype(DType::F32)?;
        Ok(Self {
            weight: (w + 1.0)?,
            eps,
            unit_offset: true,
        })
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
