//! Feed-forward blocks.

use crate::profile::{self, Part};
use crate::{Activation, Linear};
use candle_core::Tensor;
use trustformers_core::{Result, Weights};

/// Gated MLP (SwiGLU / GeGLU): `down(act(gate(x)) * up(x))`, HF names `gate_proj`, `up_proj`,
/// `down_proj`.
#[derive(Clone)]
pub struct GatedMlp {
    gate_up: GateUp,
    down: Linear,
    act: Activation,
}

/// The gate and up projections: two layers, or one whose output is halved (gate first).
#[derive(Clone)]
enum GateUp {
    Separate { gate: Linear, up: Linear },
    Fused(Linear),
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
            gate_up: GateUp::Separate {
                gate: Linear::new(&vb.pp("gate_proj"), hidden, intermediate, bias)?,
                up: Linear::new(&vb.pp("up_proj"), hidden, intermediate, bias)?,
            },
            down: Linear::new(&vb.pp("down_proj"), intermediate, hidden, bias)?,
            act,
        })
    }

    /// Builds the block from loaded layers: a fused gate/up projection and the down one.
    pub fn from_layers(gate_up: Linear, down: Linear, act: Activation) -> Self {
        Self {
            gate_up: GateUp::Fused(gate_up),
            down,
            act,
        }
    }

    /// Builds the block from separate gate, up and down layers.
    pub fn from_separate(gate: Linear, up: Linear, down: Linear, act: Activation) -> Result<Self> {
        Ok(Self {
            gate_up: GateUp::Separate { gate, up },
            down,
            act,
        })
    }

    /// Loads a fused `gate_up_proj` `[2 * intermediate, hidden]` (gate rows first, as Phi-3
    /// stores it) and `down_proj` under `vb`.
    pub fn fused(
        vb: &Weights,
        hidden: usize,
        intermediate: usize,
        bias: bool,
        act: Activation,
    ) -> Result<Self> {
        Ok(Self {
            gate_up: GateUp::Fused(Linear::new(
                &vb.pp("gate_up_proj"),
                hidden,
                2 * intermediate,
                bias,
            )?),
            down: Linear::new(&vb.pp("down_proj"), intermediate, hidden, bias)?,
            act,
        })
    }

    /// # Shapes
    /// `xs`: `[..., hidden]` -> `[..., hidden]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // The gating multiply counts with the activation; the projections report themselves.
        let _timing = profile::scope(Part::Activation);
        let (gate, up) = match &self.gate_up {
            GateUp::Separate { gate, up } => {
                match <[Tensor; 2]>::try_from(Linear::forward_many(&[gate, up], xs)?) {
                    Ok([gate, up]) => (gate, up),
                    Err(outs) => {
                        return Err(trustformers_core::Error::InvalidInput(format!(
                            "two projections gave {} outputs",
                            outs.len()
                        )))
                    }
                }
            }
            GateUp::Fused(gate_up) => {
                let both = gate_up.forward(xs)?;
                let half = both.dim(candle_core::D::Minus1)? / 2;
                (
                    both.narrow(candle_core::D::Minus1, 0, half)?,
                    both.narrow(candle_core::D::Minus1, half, half)?,
                )
            }
        };
        self.down.forward(&self.act.forward_gated(&gate, &up)?)
    }

    /// The gate and up projections when they are separate layers (to run many MLPs' at once
    /// on one input).
    pub(crate) fn gate_up(&self) -> Option<(&Linear, &Linear)> {
        match &self.gate_up {
            GateUp::Separate { gate, up } => Some((gate, up)),
            GateUp::Fused(_) => None,
        }
    }

    /// The activation and gating of [`Self::forward`], given the gate and up projections'
    /// outputs: the input of [`Self::down`].
    pub(crate) fn gated(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Activation);
        self.act.forward_gated(gate, up)
    }

    /// The down projection.
    pub(crate) fn down(&self) -> &Linear {
        &self.down
    }
}

/// Plain MLP: `down(act(up(x)))`, HF-canonical names `up_proj` and `down_proj` (GPT-NeoX's
/// `dense_h_to_4h` / `dense_4h_to_h`, GPT-2's `c_fc` / `c_proj`, Phi's `fc1` / `fc2`).
#[derive(Clone)]
pub struct Mlp {
    up: Linear,
    down: Linear,
    act: Activation,
}

impl Mlp {
    /// Loads the two projections under `vb`.
    pub fn new(
        vb: &Weights,
        hidden: usize,
        intermediate: usize,
        bias: bool,
        act: Activation,
    ) -> Result<Self> {
        Ok(Self {
            up: Linear::new(&vb.pp("up_proj"), hidden, intermediate, bias)?,
            down: Linear::new(&vb.pp("down_proj"), intermediate, hidden, bias)?,
            act,
        })
    }

    /// # Shapes
    /// `xs`: `[..., hidden]` -> `[..., hidden]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.down.forward(&self.act.forward(&self.up.forward(xs)?)?)
    }
}
