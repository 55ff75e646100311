//! Activation functions, named after the math (not after the model that made them popular).

use crate::kernels::fused;
use crate::profile::{self, Part};
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
    /// x * sigmoid(1.702 x) (`quick_gelu`: CLIP).
    QuickGelu,
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
            "quick_gelu" => Self::QuickGelu,
            other => {
                return Err(Error::config(
                    "hidden_act",
                    format!("unsupported activation `{other}` (supported: silu, gelu, gelu_pytorch_tanh, gelu_new, relu, tanh, quick_gelu)"),
                ))
            }
        })
    }

    /// The fused kernels' form of this activation, when they have one.
    pub(crate) fn fused(self) -> Option<fused::Act> {
        match self {
            Self::Silu => Some(fused::Act::Silu),
            Self::GeluErf => Some(fused::Act::GeluErf),
            Self::GeluTanh => Some(fused::Act::GeluTanh),
            Self::Relu | Self::Tanh | Self::QuickGelu => None,
        }
    }

    /// `act(gate) * up` (a gated MLP's middle), in one pass for f32 on the CPU.
    pub fn forward_gated(self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Activation);
        let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
        if let (Some(kind), true, true) = (self.fused(), f32_cpu(gate), gate.dims() == up.dims()) {
            if f32_cpu(up) && !crate::differentiable(&[gate, up]) {
                let mut g: Vec<f32> = gate.flatten_all()?.to_vec1()?;
                crate::kernels::with_f32(up, |u| {
                    fused::gated(kind, &mut g, u);
                    Ok(())
                })?;
                return Ok(Tensor::from_vec(g, gate.dims(), gate.device())?);
            }
        }
        Ok((self.forward(gate)? * up)?)
    }

    /// Applies the activation elementwise.
    pub fn forward(self, xs: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Activation);
        Ok(match self {
            Self::Silu | Self::GeluErf | Self::GeluTanh
                if xs.dtype() == DType::F32
                    && xs.device().is_cpu()
                    && !crate::differentiable(&[xs]) =>
            {
                let mut x: Vec<f32> = xs.flatten_all()?.to_vec1()?;
                if let Some(kind) = self.fused() {
                    fused::activate(kind, &mut x);
                }
                Tensor::from_vec(x, xs.dims(), xs.device())?
            }
            Self::Silu => xs.silu()?,
            Self::GeluErf => xs.gelu_erf()?,
            Self::GeluTanh => xs.gelu()?,
            Self::Relu => xs.relu()?,
            Self::Tanh => xs.tanh()?,
            Self::QuickGelu => (xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?)?,
        })
    }
}
