//! Normalisation layers.

use candle_core::{DType, Tensor, D};
use trustformers_core::{Result, Weights};

/// RMSNorm: `w * x / sqrt(mean(x^2) + eps)`, computed in f32 like transformers, with the
/// scale applied after casting back to the input dtype.
#[derive(Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `weight` `[dim]` under `vb`.
    pub fn new(vb: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    /// # Shapes
    /// `xs`: `[..., dim]` -> `[..., dim]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let x = xs.to_dtype(DType::F32)?;
        let var = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(x.to_dtype(dtype)?.broadcast_mul(&self.weight)?)
    }
}
