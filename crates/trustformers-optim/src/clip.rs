//! Gradient clipping as `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_` do it.

use crate::Param;
use candle_core::backprop::GradStore;
use candle_core::DType;
use trustformers_core::{Error, Result};

/// The `norm_type`-norm of one gradient's values (`torch.linalg.vector_norm`): `inf` is
/// the largest magnitude, 0 the count of non-zeros.
fn vector_norm(values: impl Iterator<Item = f64>, norm_type: f64) -> f64 {
    if norm_type == f64::INFINITY {
        values.map(f64::abs).fold(0.0, f64::max)
    } else if norm_type == f64::NEG_INFINITY {
        values.map(f64::abs).fold(f64::INFINITY, f64::min)
    } else if norm_type == 0.0 {
        values.filter(|v| *v != 0.0).count() as f64
    } else {
        values
            .map(|v| v.abs().powf(norm_type))
            .sum::<f64>()
            .powf(1.0 / norm_type)
    }
}

/// Scales the gradients of `params` in `grads` so that their total `norm_type`-norm is at
/// most `max_norm`, and returns the norm before scaling (`clip_grad_norm_`). The total is
/// the norm of the per-gradient norms; the scale is `max_norm / (total + 1e-6)`, capped at
/// 1. A non-finite total is an error with `error_if_nonfinite`.
pub fn clip_grad_norm(
    params: &[Param],
    grads: &mut GradStore,
    max_norm: f64,
    norm_type: f64,
    error_if_nonfinite: bool,
) -> Result<f32> {
    if norm_type.is_nan() {
        return Err(Error::config("norm_type", "must be a number"));
    }
    let mut norms = Vec::new();
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            let values = g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let norm = vector_norm(values.iter().map(|&v| f64::from(v)), norm_type) as f32;
            norms.push(f64::from(norm));
        }
    }
    if norms.is_empty() {
        return Ok(0.0);
    }
    let total = vector_norm(norms.into_iter(), norm_type) as f32;
    if error_if_nonfinite && !total.is_finite() {
        return Err(Error::InvalidInput(format!(
            "The total norm of order {norm_type} for gradients from `parameters` is \
             non-finite, so it cannot be clipped."
        )));
    }
    let coef = (max_norm as f32 / (total + 1e-6)).min(1.0);
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            let scaled = (g.to_dtype(DType::F32)? * f64::from(coef))?.to_dtype(g.dtype())?;
            grads.insert(p.var.as_tensor(), scaled);
        }
    }
    Ok(total)
}

/// Clamps every gradient of `params` in `grads` to `[-clip_value, clip_value]`
/// (`clip_grad_value_`).
pub fn clip_grad_value(params: &[Param], grads: &mut GradStore, clip_value: f64) -> Result<()> {
    if clip_value.is_nan() {
        return Err(Error::config("clip_value", "must be a number"));
    }
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            // torch.clamp(g, min=-c, max=c): the lower bound first, then the upper.
            let clamped = g.maximum(-clip_value)?.minimum(clip_value)?;
            grads.insert(p.var.as_tensor(), clamped);
        }
    }
    Ok(())
}
