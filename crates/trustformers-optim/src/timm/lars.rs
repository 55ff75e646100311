//! `timm.optim.Lars`.

use crate::ops::{
    add_alpha, check_lr, check_nesterov, check_nonnegative, check_weight_decay, hyper, norm2,
};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// `timm.optim.Lars`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LarsConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub trust_coeff: f64,
    pub eps: f64,
    /// Clip the trust ratio divided by the rate at 1 (LARC's clipping).
    pub trust_clip: bool,
    /// Adapt by the trust ratio even without weight decay.
    pub always_adapt: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        Self {
            lr: 1.0,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            trust_coeff: 0.001,
            eps: 1e-8,
            trust_clip: false,
            always_adapt: false,
        }
    }
}

hyper!(LarsConfig, |c| {
    check_lr(c.lr)?;
    check_nonnegative("momentum", c.momentum)?;
    check_weight_decay(c.weight_decay)?;
    check_nesterov(c.nesterov, c.momentum, c.dampening)
});

/// Lars's momentum buffer, made at the first step.
#[derive(Debug, Clone)]
pub struct LarsState {
    pub momentum_buffer: Vec<f32>,
}

/// `timm.optim.Lars` (You et al., layer-wise adaptive rate scaling).
pub struct Lars;

impl Algorithm for Lars {
    const NAME: &'static str = "Lars";
    type Config = LarsConfig;
    type State = LarsState;

    fn init(_: &LarsConfig, _: &[usize]) -> LarsState {
        LarsState {
            momentum_buffer: Vec::new(),
        }
    }

    #[inline(always)]
    fn update(c: &LarsConfig, _: &[usize], param: &mut [f32], grad: &[f32], s: &mut LarsState) {
        let mut g = grad.to_vec();
        if c.weight_decay != 0.0 || c.always_adapt {
            let (w_norm, g_norm) = (norm2(&*param), norm2(grad));
            let mut ratio = c.trust_coeff as f32 * w_norm
                / (g_norm + w_norm * c.weight_decay as f32 + c.eps as f32);
            if w_norm <= 0.0 || g_norm <= 0.0 {
                ratio = 1.0;
            }
            if c.trust_clip {
                ratio = (ratio / c.lr as f32).min(1.0);
            }
            for (g, p) in g.iter_mut().zip(param.iter()) {
                *g = add_alpha(*g, *p, c.weight_decay as f32) * ratio;
            }
        }
        if c.momentum != 0.0 {
            let (m, keep) = (c.momentum as f32, (1.0 - c.dampening) as f32);
            if s.momentum_buffer.is_empty() {
                s.momentum_buffer = g.clone();
            } else {
                for (b, g) in s.momentum_buffer.iter_mut().zip(&g) {
                    *b = add_alpha(*b * m, *g, keep);
                }
            }
            for (g, b) in g.iter_mut().zip(&s.momentum_buffer) {
                *g = if c.nesterov { add_alpha(*g, *b, m) } else { *b };
            }
        }
        let neg_lr = -c.lr as f32;
        for (p, g) in param.iter_mut().zip(&g) {
            *p = add_alpha(*p, *g, neg_lr);
        }
    }
}

crate::state_parts!(LarsState {}[momentum_buffer]);
