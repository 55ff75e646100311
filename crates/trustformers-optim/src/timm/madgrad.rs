//! `timm.optim.MADGRAD`.

use crate::ops::{add_alpha, check, hyper};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// `timm.optim.MADGRAD`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MadgradConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub decoupled_decay: bool,
}

impl Default for MadgradConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            momentum: 0.9,
            weight_decay: 0.0,
            eps: 1e-6,
            decoupled_decay: false,
        }
    }
}

hyper!(MadgradConfig, |c| {
    check(
        (0.0..1.0).contains(&c.momentum),
        "momentum",
        format!("Momentum {} must be in the range [0,1]", c.momentum),
    )?;
    check(
        c.lr > 0.0,
        "lr",
        format!("Learning rate {} must be positive", c.lr),
    )?;
    check(
        c.weight_decay >= 0.0,
        "weight_decay",
        format!("Weight decay {} must be non-negative", c.weight_decay),
    )?;
    check(c.eps >= 0.0, "eps", "Eps must be non-negative".into())
});

/// MADGRAD's dual averages and, with momentum, the starting point.
#[derive(Debug, Clone)]
pub struct MadgradState {
    pub step: u64,
    pub grad_sum_sq: Vec<f32>,
    pub s: Vec<f32>,
    pub x0: Vec<f32>,
}

/// `timm.optim.MADGRAD` (Defazio and Jelassi, dual averaging with a cube-root denominator).
pub struct Madgrad;

impl Algorithm for Madgrad {
    const NAME: &'static str = "MADGRAD";
    type Config = MadgradConfig;
    type State = MadgradState;

    fn init(_: &MadgradConfig, shape: &[usize]) -> MadgradState {
        let n: usize = shape.iter().product();
        MadgradState {
            step: 0,
            grad_sum_sq: vec![0.0; n],
            s: vec![0.0; n],
            // The parameter at the first step (with momentum).
            x0: Vec::new(),
        }
    }

    #[inline(always)]
    fn update(
        c: &MadgradConfig,
        _: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut MadgradState,
    ) {
        if c.momentum != 0.0 && s.x0.len() != param.len() {
            s.x0 = param.to_vec();
        }
        s.step += 1;
        let lamb = ((c.lr + c.eps) * (s.step as f64).sqrt()) as f32;
        let ck = (1.0 - c.momentum) as f32;
        let (eps, third) = (c.eps as f32, (1.0f64 / 3.0) as f32);
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        for i in 0..param.len() {
            let mut g = grad[i];
            if c.weight_decay != 0.0 {
                if c.decoupled_decay {
                    param[i] *= decay;
                } else {
                    g = add_alpha(g, param[i], c.weight_decay as f32);
                }
            }
            let x0 = if c.momentum == 0.0 {
                let rms = s.grad_sum_sq[i].powf(third) + eps;
                param[i] + 1.0 * s.s[i] / rms
            } else {
                s.x0[i]
            };
            s.grad_sum_sq[i] = (lamb * g).mul_add(g, s.grad_sum_sq[i]);
            let rms = s.grad_sum_sq[i].powf(third) + eps;
            s.s[i] = add_alpha(s.s[i], g, lamb);
            let z = x0 + -s.s[i] / rms;
            param[i] = if c.momentum == 0.0 {
                z
            } else {
                add_alpha(param[i] * (1.0 - ck), z, ck)
            };
        }
    }
}

crate::state_parts!(MadgradState { step: u64 } [grad_sum_sq, s, x0]);
