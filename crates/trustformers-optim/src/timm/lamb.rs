//! `timm.optim.Lamb`.

use crate::ops::{add_alpha, caution_mask, check, hyper, lerp, norm2};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// `timm.optim.Lamb`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LambConfig {
    pub lr: f64,
    pub bias_correction: bool,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub grad_averaging: bool,
    /// Gradients are divided by `max(global norm / max_grad_norm, 1)`; `None`: not.
    pub max_grad_norm: Option<f64>,
    pub trust_clip: bool,
    pub always_adapt: bool,
    pub caution: bool,
    pub decoupled_decay: bool,
    pub corrected_weight_decay: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lr_snapshot: Option<f64>,
    /// This step's divisor of the gradients (from the global norm).
    #[serde(skip)]
    pub clip_divisor: Option<f32>,
}

impl Default for LambConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            bias_correction: true,
            betas: [0.9, 0.999],
            eps: 1e-6,
            weight_decay: 0.01,
            grad_averaging: true,
            max_grad_norm: Some(1.0),
            trust_clip: false,
            always_adapt: false,
            caution: false,
            decoupled_decay: false,
            corrected_weight_decay: false,
            max_lr_snapshot: None,
            clip_divisor: None,
        }
    }
}

hyper!(
    LambConfig,
    |c| {
        for (field, v) in [
            ("lr", c.lr),
            ("eps", c.eps),
            ("weight_decay", c.weight_decay),
        ] {
            check(
                v.is_finite() && v >= 0.0,
                field,
                format!("Invalid {field} value: {v}"),
            )?;
        }
        Ok(())
    },
    {
        fn constructed(&mut self) {
            self.max_lr_snapshot.get_or_insert(self.lr);
        }
    }
);

/// Lamb's moments and the step count (timm counts per group).
#[derive(Debug, Clone)]
pub struct LambState {
    pub step: u64,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
}

/// `timm.optim.Lamb` (You et al., layer-wise adaptive moments).
pub struct Lamb;

impl Algorithm for Lamb {
    const NAME: &'static str = "Lamb";
    type Config = LambConfig;
    type State = LambState;
    const GLOBAL_GRAD_NORM: bool = true;

    fn set_global_grad_norm(c: &mut LambConfig, norm: f32) {
        c.clip_divisor = c.max_grad_norm.map(|m| (norm / m as f32).max(1.0));
    }

    fn init(_: &LambConfig, shape: &[usize]) -> LambState {
        let n: usize = shape.iter().product();
        LambState {
            step: 0,
            exp_avg: vec![0.0; n],
            exp_avg_sq: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(c: &LambConfig, _: &[usize], param: &mut [f32], grad: &[f32], s: &mut LambState) {
        s.step += 1;
        let step = s.step as f64;
        let [beta1, beta2] = c.betas;
        let beta3 = if c.grad_averaging { 1.0 - beta1 } else { 1.0 };
        let (bc1, bc2) = if c.bias_correction {
            (1.0 - beta1.powf(step), 1.0 - beta2.powf(step))
        } else {
            (1.0, 1.0)
        };
        let g: Vec<f32> = match c.clip_divisor {
            Some(d) => grad.iter().map(|g| g / d).collect(),
            None => grad.to_vec(),
        };
        let (b1, b3, b2, w2, eps) = (
            beta1 as f32,
            beta3 as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
            c.eps as f32,
        );
        let (bc1, bc2_sqrt) = (bc1 as f32, bc2.sqrt() as f32);
        let mut update = vec![0f32; param.len()];
        for i in 0..param.len() {
            s.exp_avg[i] = if beta3 == 1.0 - beta1 {
                lerp(s.exp_avg[i], g[i], b3)
            } else {
                add_alpha(s.exp_avg[i] * b1, g[i], b3)
            };
            s.exp_avg_sq[i] = (w2 * g[i]).mul_add(g[i], s.exp_avg_sq[i] * b2);
            let denom = s.exp_avg_sq[i].sqrt() / bc2_sqrt + eps;
            update[i] = s.exp_avg[i] / bc1 / denom;
        }
        if c.caution {
            let mask = caution_mask(&update, &g);
            update.iter_mut().zip(mask).for_each(|(u, m)| *u *= m);
        }
        if c.weight_decay != 0.0 {
            if c.decoupled_decay {
                let wd_scale = match (c.corrected_weight_decay, c.max_lr_snapshot) {
                    (true, Some(max_lr)) => c.lr * c.lr / max_lr,
                    _ => c.lr,
                };
                let alpha = (-wd_scale * c.weight_decay) as f32;
                param.iter_mut().for_each(|p| *p = add_alpha(*p, *p, alpha));
            } else {
                let wd = c.weight_decay as f32;
                for (u, p) in update.iter_mut().zip(param.iter()) {
                    *u = add_alpha(*u, *p, wd);
                }
            }
        }
        if c.weight_decay != 0.0 || c.always_adapt {
            let (w_norm, u_norm) = (norm2(&*param), norm2(&update));
            let mut ratio = if w_norm > 0.0 && u_norm > 0.0 {
                w_norm / u_norm
            } else {
                1.0
            };
            if c.trust_clip {
                ratio = ratio.min(1.0);
            }
            update.iter_mut().for_each(|u| *u *= ratio);
        }
        let neg_lr = -c.lr as f32;
        for (p, u) in param.iter_mut().zip(&update) {
            *p = add_alpha(*p, *u, neg_lr);
        }
    }
}

crate::state_parts!(LambState { step: u64 } [exp_avg, exp_avg_sq]);
