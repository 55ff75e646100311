//! `torch.optim.SGD` and `torch.optim.ASGD`.

use crate::ops::{
    add_alpha, check_lr, check_nesterov, check_nonnegative, check_weight_decay, effective_grad,
    hyper,
};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// SGD

/// `torch.optim.SGD`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

hyper!(SgdConfig, momentum, |c| {
    check_lr(c.lr)?;
    check_nonnegative("momentum", c.momentum)?;
    check_weight_decay(c.weight_decay)?;
    check_nesterov(c.nesterov, c.momentum, c.dampening)
});

/// `torch.optim.SGD`.
pub struct Sgd;

/// SGD's momentum buffer, made at the first step.
#[derive(Debug, Clone, Default)]
pub struct SgdState {
    /// Empty until the first step with momentum.
    pub momentum_buffer: Vec<f32>,
}

impl Algorithm for Sgd {
    const NAME: &'static str = "SGD";
    type Config = SgdConfig;
    type State = SgdState;

    fn init(_: &SgdConfig, _: &[usize]) -> SgdState {
        SgdState::default()
    }

    #[inline(always)]
    fn update(
        c: &SgdConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        state: &mut SgdState,
    ) {
        let (wd, momentum, lr) = (c.weight_decay as f32, c.momentum as f32, c.lr as f32);
        let keep = (1.0 - c.dampening) as f32;
        let first = state.momentum_buffer.is_empty();
        if first {
            state.momentum_buffer = vec![0.0; param.len()];
        }
        let buf = &mut state.momentum_buffer;
        for ((p, &g), b) in param.iter_mut().zip(grad).zip(buf.iter_mut()) {
            let mut d = effective_grad(g, *p, c.maximize, wd);
            if c.momentum != 0.0 {
                *b = if first {
                    d
                } else {
                    add_alpha(*b * momentum, d, keep)
                };
                d = if c.nesterov {
                    add_alpha(d, *b, momentum)
                } else {
                    *b
                };
            }
            *p = add_alpha(*p, d, -lr);
        }
        if c.momentum == 0.0 {
            state.momentum_buffer = Vec::new();
        }
    }
}

// ---------------------------------------------------------------------------------------
// ASGD

/// `torch.optim.ASGD`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsgdConfig {
    pub lr: f64,
    pub lambd: f64,
    pub alpha: f64,
    pub t0: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Default for AsgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

hyper!(AsgdConfig, |c| {
    check_lr(c.lr)?;
    check_weight_decay(c.weight_decay)
});

/// ASGD's step size `eta`, averaging rate `mu` (f32, as torch keeps them in tensors) and
/// the averaged parameter `ax`.
#[derive(Debug, Clone)]
pub struct AsgdState {
    pub step: u64,
    pub eta: f32,
    pub mu: f32,
    pub ax: Vec<f32>,
}

/// `torch.optim.ASGD`.
pub struct Asgd;

impl Algorithm for Asgd {
    const NAME: &'static str = "ASGD";
    type Config = AsgdConfig;
    type State = AsgdState;

    fn init(c: &AsgdConfig, shape: &[usize]) -> AsgdState {
        let n: usize = shape.iter().product();
        AsgdState {
            step: 0,
            eta: c.lr as f32,
            mu: 1.0,
            ax: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AsgdConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AsgdState,
    ) {
        s.step += 1;
        let eta = f64::from(s.eta);
        let (decay, neg_eta, wd) = (
            (1.0 - c.lambd * eta) as f32,
            -eta as f32,
            c.weight_decay as f32,
        );
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            param[i] *= decay;
            param[i] = add_alpha(param[i], g, neg_eta);
            s.ax[i] = if s.mu != 1.0 {
                s.ax[i] + (param[i] - s.ax[i]) * s.mu
            } else {
                param[i]
            };
        }
        let step = s.step as f64;
        s.eta = (c.lr / (1.0 + c.lambd * c.lr * step).powf(c.alpha)) as f32;
        s.mu = (1.0 / (step - c.t0).max(1.0)) as f32;
    }
}

crate::state_parts!(SgdState {}[momentum_buffer]);
crate::state_parts!(
    AsgdState {
        step: u64,
        eta: f32,
        mu: f32
    }[ax]
);
