//! `torch.optim`'s per-coordinate step sizes from squared gradients: Adagrad, Adadelta and
//! RMSprop.

use crate::ops::{
    add_alpha, addcmul, check, check_eps, check_lr, check_nonnegative, check_weight_decay,
    effective_grad, hyper, lerp,
};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// Adagrad

/// `torch.optim.Adagrad`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdagradConfig {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

hyper!(AdagradConfig, |c| {
    check_lr(c.lr)?;
    check_nonnegative("lr_decay", c.lr_decay)?;
    check_weight_decay(c.weight_decay)?;
    check(
        c.initial_accumulator_value >= 0.0,
        "initial_accumulator_value",
        format!(
            "Invalid initial_accumulator_value value: {}",
            c.initial_accumulator_value
        ),
    )?;
    check_eps(c.eps)
});

/// Adagrad's sum of squared gradients.
#[derive(Debug, Clone)]
pub struct AdagradState {
    pub step: u64,
    pub sum: Vec<f32>,
}

/// `torch.optim.Adagrad`.
pub struct Adagrad;

impl Algorithm for Adagrad {
    const NAME: &'static str = "Adagrad";
    type Config = AdagradConfig;
    type State = AdagradState;

    fn init(c: &AdagradConfig, shape: &[usize]) -> AdagradState {
        let n: usize = shape.iter().product();
        AdagradState {
            step: 0,
            sum: vec![c.initial_accumulator_value as f32; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AdagradConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdagradState,
    ) {
        s.step += 1;
        let clr = c.lr / (1.0 + (s.step as f64 - 1.0) * c.lr_decay);
        let (neg_clr, wd, eps) = (-clr as f32, c.weight_decay as f32, c.eps as f32);
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            s.sum[i] = addcmul(s.sum[i], 1.0, g, g);
            let std = s.sum[i].sqrt() + eps;
            param[i] += neg_clr * g / std;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Adadelta

/// `torch.optim.Adadelta`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdadeltaConfig {
    pub lr: f64,
    pub rho: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        Self {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

hyper!(AdadeltaConfig, |c| {
    check_lr(c.lr)?;
    check(
        (0.0..=1.0).contains(&c.rho),
        "rho",
        format!("Invalid rho value: {}", c.rho),
    )?;
    check_eps(c.eps)?;
    check_weight_decay(c.weight_decay)
});

/// Adadelta's running averages of squared gradients and squared updates.
#[derive(Debug, Clone)]
pub struct AdadeltaState {
    pub square_avg: Vec<f32>,
    pub acc_delta: Vec<f32>,
}

/// `torch.optim.Adadelta`.
pub struct Adadelta;

impl Algorithm for Adadelta {
    const NAME: &'static str = "Adadelta";
    type Config = AdadeltaConfig;
    type State = AdadeltaState;

    fn init(_: &AdadeltaConfig, shape: &[usize]) -> AdadeltaState {
        let n: usize = shape.iter().product();
        AdadeltaState {
            square_avg: vec![0.0; n],
            acc_delta: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AdadeltaConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdadeltaState,
    ) {
        let (rho, w, eps) = (c.rho as f32, (1.0 - c.rho) as f32, c.eps as f32);
        let (neg_lr, wd) = (-c.lr as f32, c.weight_decay as f32);
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            s.square_avg[i] = addcmul(s.square_avg[i] * rho, w, g, g);
            let std = (s.square_avg[i] + eps).sqrt();
            let delta = (s.acc_delta[i] + eps).sqrt() / std * g;
            s.acc_delta[i] = addcmul(s.acc_delta[i] * rho, w, delta, delta);
            param[i] = add_alpha(param[i], delta, neg_lr);
        }
    }
}

// ---------------------------------------------------------------------------------------
// RMSprop

/// `torch.optim.RMSprop`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmsPropConfig {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

hyper!(RmsPropConfig, momentum, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check_nonnegative("momentum", c.momentum)?;
    check_weight_decay(c.weight_decay)?;
    check_nonnegative("alpha", c.alpha)
});

/// RMSprop's running averages (of squares; of gradients when centered) and momentum.
#[derive(Debug, Clone)]
pub struct RmsPropState {
    pub square_avg: Vec<f32>,
    pub grad_avg: Vec<f32>,
    pub momentum_buffer: Vec<f32>,
}

/// `torch.optim.RMSprop`.
pub struct RmsProp;

impl Algorithm for RmsProp {
    const NAME: &'static str = "RMSprop";
    type Config = RmsPropConfig;
    type State = RmsPropState;

    fn init(c: &RmsPropConfig, shape: &[usize]) -> RmsPropState {
        let n: usize = shape.iter().product();
        RmsPropState {
            square_avg: vec![0.0; n],
            grad_avg: if c.centered { vec![0.0; n] } else { Vec::new() },
            momentum_buffer: if c.momentum > 0.0 {
                vec![0.0; n]
            } else {
                Vec::new()
            },
        }
    }

    #[inline(always)]
    fn update(
        c: &RmsPropConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut RmsPropState,
    ) {
        let (alpha, w, eps) = (c.alpha as f32, (1.0 - c.alpha) as f32, c.eps as f32);
        let (neg_lr, wd, momentum) = (-c.lr as f32, c.weight_decay as f32, c.momentum as f32);
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            s.square_avg[i] = addcmul(s.square_avg[i] * alpha, w, g, g);
            let avg = if c.centered {
                s.grad_avg[i] = lerp(s.grad_avg[i], g, w);
                addcmul(s.square_avg[i], -1.0, s.grad_avg[i], s.grad_avg[i]).sqrt()
            } else {
                s.square_avg[i].sqrt()
            } + eps;
            if c.momentum > 0.0 {
                s.momentum_buffer[i] = s.momentum_buffer[i] * momentum + 1.0 * g / avg;
                param[i] = add_alpha(param[i], s.momentum_buffer[i], neg_lr);
            } else {
                param[i] += neg_lr * g / avg;
            }
        }
    }
}

crate::state_parts!(AdagradState { step: u64 }[sum]);
crate::state_parts!(AdadeltaState {} [square_avg, acc_delta]);
crate::state_parts!(RmsPropState {} [square_avg, grad_avg, momentum_buffer]);
