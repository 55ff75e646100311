//! One linear layer for dense and block-quantized weights, so no model is written twice.

use crate::kernels::{self, QuantMatmul};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Module, Tensor};
use std::sync::Arc;
use trustformers_core::{Result, Weight, Weights};

/// `y = x W^T + b`, with `W` dense (any float dtype) or ggml-quantized.
#[derive(Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
}

#[derive(Clone)]
enum LinearWeight {
    Dense(Tensor),
    Quantized(QMatMul),
    /// Formats candle only has scalar code for, run by our kernels.
    Own(Arc<dyn QuantMatmul>),
}

impl Linear {
    /// Loads `weight` `[out_dim, in_dim]` and, when `bias`, `bias` `[out_dim]` under `vb`.
    pub fn new(vb: &Weights, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get_weight((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Self::from_weight(weight, bias)
    }

    /// Builds a layer from an already-loaded weight (e.g. tied embeddings).
    pub fn from_weight(weight: Weight, bias: Option<Tensor>) -> Result<Self> {
        let weight = match weight {
            Weight::Dense(t) => LinearWeight::Dense(t),
            Weight::Quantized(q) => match kernels::for_qtensor(&q)? {
                Some(own) => LinearWeight::Own(Arc::from(own)),
                None => LinearWeight::Quantized(QMatMul::from_arc(q)?),
            },
        };
        Ok(Self { weight, bias })
    }

    /// # Shapes
    /// `xs`: `[..., in_dim]` -> `[..., out_dim]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = match &self.weight {
            LinearWeight::Dense(w) => {
                let (in_dims, last) = xs.dims().split_at(xs.rank().saturating_sub(1));
                let rows: usize = in_dims.iter().product();
                let flat = xs.reshape((rows, last.iter().product::<usize>()))?;
                let ys = flat.matmul(&w.t()?)?;
                let mut out_dims = in_dims.to_vec();
                out_dims.push(w.dim(0)?);
                ys.reshape(out_dims)?
            }
            LinearWeight::Quantized(q) => {
                // ggml kernels take and return f32 activations.
                let dtype = xs.dtype();
                let ys = q.forward(&xs.to_dtype(DType::F32)?)?;
                ys.to_dtype(dtype)?
            }
            LinearWeight::Own(m) => {
                let (out_dim, in_dim) = m.dims();
                let (in_dims, _) = xs.dims().split_at(xs.rank().saturating_sub(1));
                let x: Vec<f32> = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                if x.len() % in_dim.max(1) != 0 || xs.dims().last() != Some(&in_dim) {
                    return Err(trustformers_core::Error::ShapeMismatch {
                        name: "linear input".into(),
                        expected: vec![in_dim],
                        actual: xs.dims().to_vec(),
                    });
                }
                let mut out_dims = in_dims.to_vec();
                out_dims.push(out_dim);
                Tensor::from_vec(m.matmul(&x)?, out_dims, xs.device())?.to_dtype(xs.dtype())?
            }
        };
        match &self.bias {
            Some(b) => Ok(ys.broadcast_add(b)?),
            None => Ok(ys),
        }
    }
}
