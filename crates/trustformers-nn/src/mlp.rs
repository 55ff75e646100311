//! Feed-forward blocks.

use crate::{Activation, Linear};
use candle_core::Tensor;
use trustformers_core::{Result, Weights};

/// Gated MLP (SwiGLU / GeGLU): `down(act(gate(x)) * up(x))`, HF names `gate_proj`, `up_proj`,
/// `down_proj`.
#[derive(Clone)]
pub struct GatedMlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    act: Activation,
}

impl GatedMlp {
    /// Loads the three projections under `vb`.
    pub fn new(
        vb: &Weights,
        hidden: usize,
        intermediate: usize,
        bias: bool,
        act: Activation,
    ) -> Result<Self> {
        Ok(Self {
            gate: Linear::new(&vb.pp("gate_proj"), hidden, intermediate, bias)?,
            up: Linear::new(&vb.pp("up_proj"), hidden, intermediate, bias)?,
            down: Linear::new(&vb.pp("down_proj"), intermediate, hidden, bias)?,
            act,
        })
    }

    /// # Shapes
    /// `xs`: `[..., hidden]` -> `[..., hidden]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = self.act.forward(&self.gate.forward(xs)?)?;
        self.down.forward(&(gate * self.up.forward(xs)?)?)
    }
}
