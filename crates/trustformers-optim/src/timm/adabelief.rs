//! `timm.optim.AdaBelief`.

use crate::ops::{add_alpha, check_betas, check_eps, check_lr, hyper, lerp};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// `timm.optim.AdaBelief`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaBeliefConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub decoupled_decay: bool,
    /// Decoupled decay by `weight_decay` itself, not `lr * weight_decay`.
    pub fixed_decay: bool,
    /// RAdam's rectification of the early steps.
    pub rectify: bool,
    /// Before rectification applies, SGD with momentum steps (else none).
    pub degenerated_to_sgd: bool,
}

impl Default for AdaBeliefConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-16,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled_decay: true,
            fixed_decay: false,
            rectify: true,
            degenerated_to_sgd: true,
        }
    }
}

hyper!(AdaBeliefConfig, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check_betas(&c.betas)
});

/// AdaBelief's moments: the mean of the gradient and the variance of its residual (which
/// gains `eps` in place every step, as timm's does).
#[derive(Debug, Clone)]
pub struct AdaBeliefState {
    pub step: u64,
    pub exp_avg: Vec<f32>,
    pub exp_avg_var: Vec<f32>,
    pub max_exp_avg_var: Vec<f32>,
}

/// `timm.optim.AdaBelief` (Zhuang et al.).
pub struct AdaBelief;

impl Algorithm for AdaBelief {
    const NAME: &'static str = "AdaBelief";
    type Config = AdaBeliefConfig;
    type State = AdaBeliefState;

    fn init(c: &AdaBeliefConfig, shape: &[usize]) -> AdaBeliefState {
        let n: usize = shape.iter().product();
        AdaBeliefState {
            step: 0,
            exp_avg: vec![0.0; n],
            exp_avg_var: vec![0.0; n],
            max_exp_avg_var: if c.amsgrad { vec![0.0; n] } else { Vec::new() },
        }
    }

    #[inline(always)]
    fn update(
        c: &AdaBeliefConfig,
        _: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdaBeliefState,
    ) {
        s.step += 1;
        let step = s.step as f64;
        let [beta1, beta2] = c.betas;
        let (bc1, bc2) = (1.0 - beta1.powf(step), 1.0 - beta2.powf(step));
        // RAdam's rectification: (the SMA length, the step size) of this step.
        let rectified = c.rectify.then(|| {
            let beta2_t = beta2.powf(step);
            let sma_max = 2.0 / (1.0 - beta2) - 1.0;
            let sma = sma_max - 2.0 * step * beta2_t / (1.0 - beta2_t);
            let size = if sma >= 5.0 {
                ((1.0 - beta2_t) * (sma - 4.0) / (sma_max - 4.0) * (sma - 2.0) / sma * sma_max
                    / (sma_max - 2.0))
                    .sqrt()
                    / (1.0 - beta1.powf(step))
            } else if c.degenerated_to_sgd {
                1.0 / (1.0 - beta1.powf(step))
            } else {
                -1.0
            };
            (sma, size)
        });
        let decay = if c.fixed_decay {
            1.0 - c.weight_decay
        } else {
            1.0 - c.lr * c.weight_decay
        } as f32;
        let (w1, b2, w2, eps) = (
            (1.0 - beta1) as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
            c.eps as f32,
        );
        let bc2_sqrt = bc2.sqrt() as f32;
        for i in 0..param.len() {
            let mut g = grad[i];
            if c.decoupled_decay {
                param[i] *= decay;
            } else if c.weight_decay != 0.0 {
                g = add_alpha(g, param[i], c.weight_decay as f32);
            }
            s.exp_avg[i] = lerp(s.exp_avg[i], g, w1);
            let r = g - s.exp_avg[i];
            s.exp_avg_var[i] = (w2 * r).mul_add(r, s.exp_avg_var[i] * b2);
            s.exp_avg_var[i] += eps;
            let denom = if c.amsgrad {
                s.max_exp_avg_var[i] = s.max_exp_avg_var[i].max(s.exp_avg_var[i]);
                s.max_exp_avg_var[i].sqrt() / bc2_sqrt + eps
            } else {
                s.exp_avg_var[i].sqrt() / bc2_sqrt + eps
            };
            match rectified {
                None => param[i] += (-(c.lr / bc1) as f32) * s.exp_avg[i] / denom,
                Some((sma, size)) if sma >= 5.0 => {
                    let denom = s.exp_avg_var[i].sqrt() + eps;
                    param[i] += (-size * c.lr) as f32 * s.exp_avg[i] / denom;
                }
                Some((_, size)) if size > 0.0 => {
                    param[i] = add_alpha(param[i], s.exp_avg[i], (-size * c.lr) as f32);
                }
                Some(_) => {}
            }
        }
    }
}

crate::state_parts!(AdaBeliefState { step: u64 } [exp_avg, exp_avg_var, max_exp_avg_var]);
