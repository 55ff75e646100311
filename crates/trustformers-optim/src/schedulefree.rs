//! Schedule-free AdamW (Defazio et al., the `schedulefree` package's `AdamWScheduleFree`):
//! no learning-rate schedule, an average of the iterates instead. The parameters hold the
//! training point `y` in train mode and the average `x` in eval mode; the optimizer moves
//! them between the two ([`crate::Optim::train`], [`crate::Optim::eval`]).

use crate::ops::{check, check_lr, hyper, lerp};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// `AdamWScheduleFree`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWScheduleFreeConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    /// Linear warmup of the rate over this many steps.
    pub warmup_steps: u64,
    /// The iterate average weights step `k` by `k^r`.
    pub r: f64,
    /// ... and by the largest rate so far to this power.
    pub weight_lr_power: f64,
}

impl Default for AdamWScheduleFreeConfig {
    fn default() -> Self {
        Self {
            lr: 0.0025,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            r: 0.0,
            weight_lr_power: 2.0,
        }
    }
}

hyper!(AdamWScheduleFreeConfig, |c| {
    check_lr(c.lr)?;
    check(
        c.betas[0] > 0.0 && c.betas[0] < 1.0 && (0.0..1.0).contains(&c.betas[1]),
        "betas",
        format!("{:?}: beta1 must be in (0, 1), beta2 in [0, 1)", c.betas),
    )
});

/// The averaging sequence `z`, the second moment, and the counters the package keeps per
/// group (kept per parameter here; equal when every parameter has a gradient at every
/// step).
#[derive(Debug, Clone)]
pub struct AdamWScheduleFreeState {
    pub k: u64,
    pub weight_sum: f64,
    pub lr_max: f64,
    pub z: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
}

/// `schedulefree.AdamWScheduleFree`.
pub struct AdamWScheduleFree;

impl Algorithm for AdamWScheduleFree {
    const NAME: &'static str = "AdamWScheduleFree";
    type Config = AdamWScheduleFreeConfig;
    type State = AdamWScheduleFreeState;
    const HAS_MODES: bool = true;

    fn init(_: &AdamWScheduleFreeConfig, shape: &[usize]) -> AdamWScheduleFreeState {
        let n: usize = shape.iter().product();
        AdamWScheduleFreeState {
            k: 0,
            weight_sum: 0.0,
            lr_max: -1.0,
            // `z` starts at the parameter: filled at the first step.
            z: Vec::new(),
            exp_avg_sq: vec![0.0; n],
        }
    }

    fn switch(
        c: &AdamWScheduleFreeConfig,
        param: &mut [f32],
        s: &AdamWScheduleFreeState,
        train: bool,
    ) {
        let beta1 = c.betas[0];
        let w = if train {
            1.0 - beta1
        } else {
            1.0 - 1.0 / beta1
        } as f32;
        for (p, z) in param.iter_mut().zip(&s.z) {
            *p = lerp(*p, *z, w);
        }
    }

    #[inline(always)]
    fn update(
        c: &AdamWScheduleFreeConfig,
        _: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdamWScheduleFreeState,
    ) {
        let [beta1, beta2] = c.betas;
        let k = s.k as f64;
        let sched = if s.k < c.warmup_steps {
            (k + 1.0) / c.warmup_steps as f64
        } else {
            1.0
        };
        let bc2 = (1.0 - beta2.powf(k + 1.0)) as f32;
        let lr = c.lr * sched;
        s.lr_max = lr.max(s.lr_max);
        let weight = (k + 1.0).powf(c.r) * s.lr_max.powf(c.weight_lr_power);
        s.weight_sum += weight;
        let ckp1 = if s.weight_sum == 0.0 {
            0.0
        } else {
            weight / s.weight_sum
        };
        if s.z.len() != param.len() {
            s.z = param.to_vec();
        }
        let (b2, w2, eps) = (beta2 as f32, (1.0 - beta2) as f32, c.eps as f32);
        let (decay, w) = (c.weight_decay as f32, ckp1 as f32);
        let y_step = (lr * (beta1 * (1.0 - ckp1) - 1.0)) as f32;
        let z_step = -lr as f32;
        for i in 0..param.len() {
            let g = grad[i];
            s.exp_avg_sq[i] = (w2 * g).mul_add(g, s.exp_avg_sq[i] * b2);
            let denom = (s.exp_avg_sq[i] / bc2).sqrt() + eps;
            let mut gn = g / denom;
            if c.weight_decay != 0.0 {
                gn = param[i].mul_add(decay, gn);
            }
            param[i] = lerp(param[i], s.z[i], w);
            param[i] = gn.mul_add(y_step, param[i]);
            s.z[i] = gn.mul_add(z_step, s.z[i]);
        }
        s.k += 1;
    }
}

crate::state_parts!(AdamWScheduleFreeState { k: u64, weight_sum: f64, lr_max: f64 } [z, exp_avg_sq]);
