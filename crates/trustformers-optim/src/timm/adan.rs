//! `timm.optim.Adan`.

use crate::ops::{add_alpha, caution_mask, check_betas, check_eps, check_lr, hyper, lerp};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// `timm.optim.Adan`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdanConfig {
    pub lr: f64,
    /// The decays of the gradient, of its difference, and of the second moment.
    pub betas: [f64; 3],
    pub eps: f64,
    pub weight_decay: f64,
    /// Decoupled decay before the update instead of the proximal division after it.
    pub no_prox: bool,
    pub caution: bool,
}

impl Default for AdanConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.98, 0.92, 0.99],
            eps: 1e-8,
            weight_decay: 0.0,
            no_prox: false,
            caution: false,
        }
    }
}

hyper!(AdanConfig, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check_betas(&c.betas)
});

/// Adan's moments and the negated previous gradient.
#[derive(Debug, Clone)]
pub struct AdanState {
    pub step: u64,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
    pub exp_avg_diff: Vec<f32>,
    pub neg_pre_grad: Vec<f32>,
}

/// `timm.optim.Adan` (Xie et al., adaptive Nesterov momentum).
pub struct Adan;

impl Algorithm for Adan {
    const NAME: &'static str = "Adan";
    type Config = AdanConfig;
    type State = AdanState;

    fn init(_: &AdanConfig, shape: &[usize]) -> AdanState {
        let n: usize = shape.iter().product();
        AdanState {
            step: 0,
            exp_avg: vec![0.0; n],
            exp_avg_sq: vec![0.0; n],
            exp_avg_diff: vec![0.0; n],
            neg_pre_grad: Vec::new(),
        }
    }

    #[inline(always)]
    fn update(c: &AdanConfig, _: &[usize], param: &mut [f32], grad: &[f32], s: &mut AdanState) {
        s.step += 1;
        let step = s.step as f64;
        let [beta1, beta2, beta3] = c.betas;
        if s.step == 1 || s.neg_pre_grad.len() != grad.len() {
            s.neg_pre_grad = grad.iter().map(|g| -g).collect();
        }
        let bc3_sqrt = (1.0 - beta3.powf(step)).sqrt() as f32;
        let step_size = -(c.lr / (1.0 - beta1.powf(step))) as f32;
        let step_size_diff = -(c.lr * beta2 / (1.0 - beta2.powf(step))) as f32;
        let (w1, b2, w2, b3, w3, eps) = (
            (1.0 - beta1) as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
            beta3 as f32,
            (1.0 - beta3) as f32,
            c.eps as f32,
        );
        let mut denom = vec![0.0f32; param.len()];
        for i in 0..param.len() {
            let g = grad[i];
            let mut n = s.neg_pre_grad[i] + g;
            s.exp_avg[i] = lerp(s.exp_avg[i], g, w1);
            s.exp_avg_diff[i] = add_alpha(s.exp_avg_diff[i] * b2, n, w2);
            n = add_alpha(n * b2, g, 1.0);
            s.exp_avg_sq[i] = (w3 * n).mul_add(n, s.exp_avg_sq[i] * b3);
            s.neg_pre_grad[i] = n;
            denom[i] = s.exp_avg_sq[i].sqrt() / bc3_sqrt + eps;
        }
        let mask = c.caution.then(|| caution_mask(&s.exp_avg, grad));
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        let prox = (1.0 + c.lr * c.weight_decay) as f32;
        for i in 0..param.len() {
            let m = match &mask {
                Some(mask) => s.exp_avg[i] * mask[i],
                None => s.exp_avg[i],
            };
            if c.no_prox {
                param[i] *= decay;
            }
            param[i] += step_size * m / denom[i];
            param[i] += step_size_diff * s.exp_avg_diff[i] / denom[i];
            if !c.no_prox {
                param[i] /= prox;
            }
            s.neg_pre_grad[i] = add_alpha(0.0, grad[i], -1.0);
        }
    }
}

crate::state_parts!(AdanState { step: u64 } [exp_avg, exp_avg_sq, exp_avg_diff, neg_pre_grad]);
