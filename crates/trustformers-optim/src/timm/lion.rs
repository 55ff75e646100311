//! `timm.optim.Lion` (Chen et al.).

use crate::ops::{add_alpha, caution_mask, check, check_betas, check_lr, hyper, lerp, sign};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

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

hyper!(
    LionConfig,
    |c| {
        check_lr(c.lr)?;
        check_betas(&c.betas)?;
        let max_lr = c.max_lr_snapshot.unwrap_or(c.lr);
        check(
            !c.corrected_weight_decay || max_lr > 0.0,
            "corrected_weight_decay",
            format!("Corrected weight decay requires a positive max lr, got {max_lr}"),
        )
    },
    {
        fn constructed(&mut self) {
            self.max_lr_snapshot.get_or_insert(self.lr);
        }
    }
);

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
