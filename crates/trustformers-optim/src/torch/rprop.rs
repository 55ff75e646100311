//! `torch.optim.Rprop`.

use crate::ops::{addcmul, check, check_lr, hyper};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// Rprop

/// `torch.optim.Rprop`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpropConfig {
    pub lr: f64,
    /// `(etaminus, etaplus)`.
    pub etas: [f64; 2],
    /// `(min, max)` step sizes.
    pub step_sizes: [f64; 2],
    pub maximize: bool,
}

impl Default for RpropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            etas: [0.5, 1.2],
            step_sizes: [1e-6, 50.0],
            maximize: false,
        }
    }
}

hyper!(RpropConfig, |c| {
    check_lr(c.lr)?;
    let [minus, plus] = c.etas;
    check(
        0.0 < minus && minus < 1.0 && 1.0 < plus,
        "etas",
        format!("Invalid eta values: {minus}, {plus}"),
    )
});

/// Rprop's previous gradient and per-element step sizes.
#[derive(Debug, Clone)]
pub struct RpropState {
    pub prev: Vec<f32>,
    pub step_size: Vec<f32>,
}

/// `torch.optim.Rprop`.
pub struct Rprop;

impl Algorithm for Rprop {
    const NAME: &'static str = "Rprop";
    type Config = RpropConfig;
    type State = RpropState;

    fn init(c: &RpropConfig, shape: &[usize]) -> RpropState {
        let n: usize = shape.iter().product();
        RpropState {
            prev: vec![0.0; n],
            step_size: vec![c.lr as f32; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &RpropConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut RpropState,
    ) {
        let (minus, plus) = (c.etas[0] as f32, c.etas[1] as f32);
        let (lo, hi) = (c.step_sizes[0] as f32, c.step_sizes[1] as f32);
        let sign = |x: f32| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        };
        for i in 0..param.len() {
            let g = if c.maximize { -grad[i] } else { grad[i] };
            let factor = match sign(g * s.prev[i]) {
                x if x > 0.0 => plus,
                x if x < 0.0 => minus,
                _ => 1.0,
            };
            // torch's clamp: the lower bound first, then the upper (no panic on lo > hi).
            s.step_size[i] = (s.step_size[i] * factor).max(lo).min(hi);
            let g = if factor == minus { 0.0 } else { g };
            param[i] = addcmul(param[i], -1.0, sign(g), s.step_size[i]);
            s.prev[i] = g;
        }
    }
}

crate::state_parts!(RpropState {} [prev, step_size]);
