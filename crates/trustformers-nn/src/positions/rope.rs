//! Rotary position embeddings and their context-extension variants, keyed by algorithm the
//! way transformers' `ROPE_INIT_FUNCTIONS` is (`modeling_rope_utils.py`).

use crate::profile::{self, Part};
use candle_core::{DType, Device, Tensor, D};
use trustformers_core::{Error, Result};

/// How inverse frequencies are rescaled for longer contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    Default,
    /// Position interpolation: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Dynamic NTK: the base grows with the sequence once it passes
    /// `max_position_embeddings`.
    Dynamic {
        factor: f64,
        max_position_embeddings: usize,
    },
    /// YaRN: per-frequency blend of interpolation and extrapolation, plus an attention
    /// (cos/sin) scale.
    Yarn {
        factor: f64,
        original_max_position_embeddings: usize,
        beta_fast: f64,
        beta_slow: f64,
        attention_factor: f64,
        truncate: bool,
    },
    /// LongRoPE (Phi-3): every frequency divided by its own factor, `short_factor` while
    /// the sequence fits `original_max_position_embeddings` and `long_factor` beyond, plus an
    /// attention (cos/sin) scale.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max_position_embeddings: usize,
        attention_factor: f64,
    },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, smooth in between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// Everything needed to build the rotary tables.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSpec {
    /// Base wavelength (`rope_theta`).
    pub theta: f64,
    /// Number of leading head dimensions that rotate (`head_dim * partial_rotary_factor`).
    pub rotary_dim: usize,
    pub scaling: RopeScaling,
    /// Rotate adjacent pairs `(x0, x1), (x2, x3), ...` (GPT-J's `rotate_every_two`) instead of
    /// the two halves (GPT-NeoX's `rotate_half`, used by LLaMA).
    pub interleaved: bool,
}

/// Precomputed inverse frequencies; cos/sin are computed for the positions of each call.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    spec: RopeSpec,
    inv_freq: Vec<f32>,
    attention_scaling: f64,
}

fn base_inv_freq(theta: f64, dim: usize) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| 1.0 / (theta as f32).powf(i as f32 / dim as f32))
        .collect()
}

/// `inv / factor`, elementwise, in f32 as transformers computes it.
fn scale_inv_freq(inv: &[f32], factors: &[f64]) -> Vec<f32> {
    inv.iter()
        .zip(factors)
        .map(|(&f, &e)| 1.0 / (e as f32 / f))
        .collect()
}

impl RotaryEmbedding {
    /// Builds the tables for `spec`.
    pub fn new(spec: &RopeSpec) -> Result<Self> {
        let dim = spec.rotary_dim;
        if dim < 2 || !dim.is_multiple_of(2) {
            return Err(Error::config(
                "head_dim",
                format!("rotary dimension must be even and at least 2, got {dim}"),
            ));
        }
        let inv = base_inv_freq(spec.theta, dim);
        let (inv_freq, attention_scaling) = match &spec.scaling {
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                attention_factor,
                ..
            } => {
                for (name, factors) in
                    [("short_factor", short_factor), ("long_factor", long_factor)]
                {
                    if factors.len() != dim / 2
                        || factors.iter().any(|f| !(f.is_finite() && *f > 0.0))
                    {
                        return Err(Error::config(
                            format!("rope_parameters.{name}"),
                            format!(
                                "must hold {} positive numbers (rotary dimension / 2), got {}",
                                dim / 2,
                                factors.len()
                            ),
                        ));
                    }
                }
                (scale_inv_freq(&inv, short_factor), *attention_factor)
            }
            RopeScaling::Default | RopeScaling::Dynamic { .. } => (inv, 1.0),
            RopeScaling::Linear { factor } => {
                (inv.iter().map(|f| f / *factor as f32).collect(), 1.0)
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                attention_factor,
                truncate,
            } => {
                let d = dim as f64;
                let correction = |rotations: f64| {
                    d * ((*original_max_position_embeddings as f64)
                        / (rotations * 2.0 * std::f64::consts::PI))
                        .ln()
                        / (2.0 * spec.theta.ln())
                };
                let (mut low, mut high) = (correction(*beta_fast), correction(*beta_slow));
                if *truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let low = low.max(0.0);
                let mut high = high.min(d - 1.0);
                if low == high {
                    high += 0.001;
                }
                let inv = inv
                    .iter()
                    .enumerate()
                    .map(|(i, &f)| {
                        let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        let interpolated = f / *factor as f32;
                        interpolated * (1.0 - extrapolation) + f * extrapolation
                    })
                    .collect();
                (inv, *attention_factor)
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old = *original_max_position_embeddings as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                let inv = inv
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f as f64;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            (f as f64 / factor) as f32
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            ((1.0 - smooth) * f as f64 / factor + smooth * f as f64) as f32
                        }
                    })
                    .collect();
                (inv, 1.0)
            }
        };
        Ok(Self {
            spec: spec.clone(),
            inv_freq,
            attention_scaling,
        })
    }

    /// Inverse frequencies for a call whose largest position is `max_pos`.
    fn inv_freq_for(&self, max_pos: usize) -> Vec<f32> {
        match self.spec.scaling {
            RopeScaling::Dynamic {
                factor,
                max_position_embeddings,
            } if max_pos + 1 > max_position_embeddings => {
                let dim = self.spec.rotary_dim as f64;
                let seq_len = (max_pos + 1) as f64;
                let base = self.spec.theta
                    * ((factor * seq_len / max_position_embeddings as f64) - (factor - 1.0))
                        .powf(dim / (dim - 2.0));
                base_inv_freq(base, self.spec.rotary_dim)
            }
            RopeScaling::LongRope {
                ref long_factor,
                original_max_position_embeddings,
                ..
            } if max_pos + 1 > original_max_position_embeddings => scale_inv_freq(
                &base_inv_freq(self.spec.theta, self.spec.rotary_dim),
                long_factor,
            ),
            _ => self.inv_freq.clone(),
        }
    }

    /// cos and sin tables for `positions`.
    ///
    /// # Shapes
    /// `positions`: `[batch, seq]` integers -> cos, sin: `[batch, 1, seq, rotary_dim]`.
    pub fn cos_sin(&self, positions: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let device: &Device = positions.device();
        let pos = positions.to_dtype(DType::F32)?;
        let max_pos = pos.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(0.0) as usize;
        let inv = self.inv_freq_for(max_pos);
        let half = inv.len();
        let inv = Tensor::from_vec(inv, (1, 1, half), device)?;
        let freqs = pos.unsqueeze(D::Minus1)?.broadcast_mul(&inv)?;
        let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?.unsqueeze(1)?;
        let cos = (emb.cos()? * self.attention_scaling)?.to_dtype(dtype)?;
        let sin = (emb.sin()? * self.attention_scaling)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Rotates the first `rotary_dim` dimensions of `xs` (GPT-NeoX "rotate half" layout).
    ///
    /// # Shapes
    /// `xs`: `[batch, heads, seq, head_dim]`, cos/sin from [`Self::cos_sin`].
    pub fn apply(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Rope);
        if let Some(out) = self.apply_fused(xs, cos, sin)? {
            return Ok(out);
        }
        self.apply_ops(xs, cos, sin)
    }

    /// [`Self::apply`] in one pass over the values, for the halves layout in f32 on the
    /// CPU with cos/sin `[batch, 1, seq, rotary_dim]`; `None` otherwise. Each value is
    /// computed as the tensor operations compute it (`x * cos + rotate_half(x) * sin`).
    fn apply_fused(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Option<Tensor>> {
        let rot = self.spec.rotary_dim;
        let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
        if self.spec.interleaved
            || ![xs, cos, sin].into_iter().all(f32_cpu)
            || crate::differentiable(&[xs])
        {
            return Ok(None);
        }
        let (b, h, s, d) = xs.dims4()?;
        if rot > d
            || !rot.is_multiple_of(2)
            || cos.dims() != [b, 1, s, rot]
            || sin.dims() != cos.dims()
        {
            return Ok(None);
        }
        let mut x: Vec<f32> = xs.flatten_all()?.to_vec1()?;
        let cos: Vec<f32> = cos.flatten_all()?.to_vec1()?;
        let sin: Vec<f32> = sin.flatten_all()?.to_vec1()?;
        let half = rot / 2;
        for (r, row) in x.chunks_exact_mut(d.max(1)).enumerate() {
            // Row r is (batch, head, position) = (r / (h * s), _, r % s).
            let at = ((r / (h * s)) * s + r % s) * rot;
            let (c, sn) = (&cos[at..at + rot], &sin[at..at + rot]);
            let (x1, x2) = row[..rot].split_at_mut(half);
            for i in 0..half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * c[i] + -b * sn[i];
                x2[i] = b * c[half + i] + a * sn[half + i];
            }
        }
        Ok(Some(Tensor::from_vec(x, (b, h, s, d), xs.device())?))
    }

    /// [`Self::apply`] as tensor operations, for any dtype, device and layout.
    fn apply_ops(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let head_dim = xs.dim(D::Minus1)?;
        let rot = self.spec.rotary_dim;
        let (x_rot, x_pass) = if rot < head_dim {
            (
                xs.narrow(D::Minus1, 0, rot)?,
                Some(xs.narrow(D::Minus1, rot, head_dim - rot)?),
            )
        } else {
            (xs.clone(), None)
        };
        let out = if self.spec.interleaved {
            // Pair i is (x[2i], x[2i+1]) and turns by the i-th frequency: the first half of
            // the cos/sin tables.
            let dims = x_rot.dims().to_vec();
            let mut pairs = dims.clone();
            pairs.pop();
            pairs.extend([rot / 2, 2]);
            let x = x_rot.reshape(pairs)?;
            let even = x.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
            let odd = x.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
            let c = cos.narrow(D::Minus1, 0, rot / 2)?;
            let s = sin.narrow(D::Minus1, 0, rot / 2)?;
            let new_even = (even.broadcast_mul(&c)? - odd.broadcast_mul(&s)?)?;
            let new_odd = (odd.broadcast_mul(&c)? + even.broadcast_mul(&s)?)?;
            Tensor::stack(&[&new_even, &new_odd], D::Minus1)?.reshape(dims)?
        } else {
            let x1 = x_rot.narrow(D::Minus1, 0, rot / 2)?;
            let x2 = x_rot.narrow(D::Minus1, rot / 2, rot / 2)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            (x_rot.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?
        };
        match x_pass {
            // candle concatenates along the last dimension through transposes; the matmuls
            // downstream need a plain layout.
            Some(pass) => Ok(Tensor::cat(&[&out, &pass], D::Minus1)?.contiguous()?),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::random;

    /// The one-pass rotation equals the tensor operations exactly, with a partial rotary
    /// dimension and two batch rows at different positions.
    #[test]
    fn fused_rotation_equals_the_tensor_ops() {
        let rope = RotaryEmbedding::new(&RopeSpec {
            theta: 10000.0,
            rotary_dim: 12,
            scaling: RopeScaling::Default,
            interleaved: false,
        })
        .unwrap();
        let (b, h, s, d) = (2, 3, 5, 16);
        let xs = Tensor::from_vec(random(b * h * s * d, 1), (b, h, s, d), &Device::Cpu).unwrap();
        let positions =
            Tensor::new(&[[0u32, 1, 2, 3, 4], [7, 8, 9, 10, 11]], &Device::Cpu).unwrap();
        let (cos, sin) = rope.cos_sin(&positions, DType::F32).unwrap();
        let fused = rope.apply_fused(&xs, &cos, &sin).unwrap().unwrap();
        let ops = rope.apply_ops(&xs, &cos, &sin).unwrap();
        let (fused, ops): (Vec<f32>, Vec<f32>) = (
            fused.flatten_all().unwrap().to_vec1().unwrap(),
            ops.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(fused, ops);
    }
}
