//! Activation functions, named after the math (not after the model that made them popular).

use candle_core::{DType, Tensor};
use trustformers_core::{Error, Result};

/// An elementwise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// x * sigmoid(x) (`silu`, `swish`).
    Silu,
    /// GELU with the exact erf formulation (`gelu`).
    GeluErf,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`, `gelu_new`).
    GeluTanh,
    /// max(0, x).
    Relu,
    /// tanh(x) (BERT's pooler, RoBERTa's classification head).
    Tanh,
}

impl Activation {
    /// Parses a transformers `hidden_act` / `hidden_activation` name.
    pub fn from_hf(name: &str) -> Result<Self> {
        Ok(match name {
            "silu" | "swish" => Self::Silu,
            "gelu" => Self::GeluErf,
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Self::GeluTanh,
            "relu" => Self::Relu,
            "tanh" => Self::Tanh,
            other => {
                return Err(Error::config(
                    "hidden_act",
                    format!("unsupported activation `{other}` (supported: silu, gelu, gelu_pytorch_tanh, gelu_new, relu, tanh)"),
                ))
            }
        })
    }

    /// Applies the activation elementwise.
    pub fn forward(self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Silu => candle_nn::ops::silu(xs)?,
            Self::GeluErf if xs.dtype() == DType::F32 && xs.device().is_cpu() => {
                let mut x: Vec<f32> = xs.flatten_all()?.to_vec1()?;
                crate::kernels::fused::gelu_erf(&mut x);
                Tensor::from_vec(x, xs.dims(), xs.device())?
            }
            Self::GeluErf => xs.gelu_erf()?,
            Self::GeluTanh => xs.gelu()?,
            Self::Relu => xs.relu()?,
            Self::Tanh => xs.tanh()?,
        })
    }
}
