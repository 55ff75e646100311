//! `timm.optim`'s optimizers, each as its single-tensor implementation computes it on the
//! CPU (timm picks that path for CPU tensors).

use crate::{Algorithm, Hyper};
use serde::{Deserialize, Serialize};
use trustformers_core::{Error, Result};

fn check(ok: bool, field: &str, message: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, message))
    }
}

/// `self + alpha * other` as one fused multiply-add, as ATen's `add(alpha=...)`.
fn add_alpha(this: f32, other: f32, alpha: f32) -> f32 {
    other.mul_add(alpha, this)
}

/// torch's `lerp` (see [`crate::torch`]).
fn lerp(s: f32, e: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        w.mul_add(e - s, s)
    } else {
        (-(e - s)).mul_add(1.0 - w, e)
    }
}

fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// The cautious-optimizer mask (Liang et al.): 1 where the update and the gradient agree
/// in sign, rescaled by its mean (at least 1e-3), 0 elsewhere.
fn caution_mask(update: &[f32], grad: &[f32]) -> Vec<f32> {
    let mask: Vec<f32> = update
        .iter()
        .zip(grad)
        .map(|(u, g)| if u * g > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let mean = (mask.iter().sum::<f32>() / mask.len().max(1) as f32).max(1e-3);
    mask.into_iter().map(|m| m / mean).collect()
}

/// `timm.optim.Lion`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LionConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub weight_decay: f64,
    /// Cautious Lion: the update only where it agrees with the gradient.
    pub caution: bool,
    /// Weight decay scaled by `lr / max_lr` (the constructor's rate), so that it follows a
    /// schedule.
    pub corrected_weight_decay: bool,
    pub maximize: bool,
    /// The constructor's learning rate, kept for `corrected_weight_decay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lr_snapshot: Option<f64>,
}

impl Default for LionConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            betas: [0.9, 0.99],
            weight_decay: 0.0,
            caution: false,
            corrected_weight_decay: false,
            maximize: false,
            max_lr_snapshot: None,
        }
    }
}

impl Hyper for LionConfig {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        check(
            self.lr >= 0.0,
            "lr",
            format!("Invalid learning rate: {}", self.lr),
        )?;
        for (i, b) in self.betas.iter().enumerate() {
            check(
                (0.0..1.0).contains(b),
                "betas",
                format!("Invalid beta parameter at index {i}: {b}"),
            )?;
        }
        check(
            !self.corrected_weight_decay || self.max_lr_snapshot.unwrap_or(self.lr) > 0.0,
            "corrected_weight_decay",
            format!(
                "Corrected weight decay requires a positive max lr, got {}",
                self.max_lr_snapshot.unwrap_or(self.lr)
            ),
        )
    }
    fn constructed(&mut self) {
        self.max_lr_snapshot.get_or_insert(self.lr);
    }
}

/// Lion's momentum.
#[derive(Debug, Clone)]
pub struct LionState {
    pub exp_avg: Vec<f32>,
}

/// `timm.optim.Lion` (Chen et al., "Symbolic Discovery of Optimization Algorithms").
pub struct Lion;

impl Algorithm for Lion {
    const NAME: &'static str = "Lion";
    type Config = LionConfig;
    type State = LionState;

    fn init(_: &LionConfig, shape: &[usize]) -> LionState {
        LionState {
            exp_avg: vec![0.0; shape.iter().product()],
        }
    }

    #[inline(always)]
    fn update(c: &LionConfig, _: &[usize], param: &mut [f32], grad: &[f32], s: &mut LionState) {
        let [beta1, beta2] = c.betas;
        let wd_scale = match (c.corrected_weight_decay, c.max_lr_snapshot) {
            (true, Some(max_lr)) => c.lr * c.lr / max_lr,
            _ => c.lr,
        };
        let decay = (1.0 - wd_scale * c.weight_decay) as f32;
        let (w1, w2, neg_lr) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32, -c.lr as f32);
        let g: Vec<f32> = if c.maximize {
            grad.iter().map(|g| -g).collect()
        } else {
            grad.to_vec()
        };
        param.iter_mut().for_each(|p| *p *= decay);
        let mut update: Vec<f32> = s
            .exp_avg
            .iter()
            .zip(&g)
            .map(|(m, g)| sign(lerp(*m, *g, w1)))
            .collect();
        if c.caution {
            let mask = caution_mask(&update, &g);
            update.iter_mut().zip(mask).for_each(|(u, m)| *u *= m);
        }
        for (p, u) in param.iter_mut().zip(&update) {
            *p = add_alpha(*p, *u, neg_lr);
        }
        for (m, g) in s.exp_avg.iter_mut().zip(&g) {
            *m = lerp(*m, *g, w2);
        }
    }
}

crate::state_parts!(LionState {}[exp_avg]);
