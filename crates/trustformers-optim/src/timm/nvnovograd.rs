//! `timm.optim.NvNovoGrad`.

use crate::ops::{add_alpha, check_betas, check_eps, check_lr, hyper};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// `timm.optim.NvNovoGrad`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NvNovoGradConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub grad_averaging: bool,
    pub amsgrad: bool,
    pub decoupled_decay: bool,
    pub corrected_weight_decay: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lr_snapshot: Option<f64>,
}

impl Default for NvNovoGradConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.95, 0.98],
            eps: 1e-8,
            weight_decay: 0.0,
            grad_averaging: false,
            amsgrad: false,
            decoupled_decay: false,
            corrected_weight_decay: false,
            max_lr_snapshot: None,
        }
    }
}

hyper!(
    NvNovoGradConfig,
    |c| {
        check_lr(c.lr)?;
        check_eps(c.eps)?;
        check_betas(&c.betas)
    },
    {
        fn constructed(&mut self) {
            self.max_lr_snapshot.get_or_insert(self.lr);
        }
    }
);

/// NovoGrad's first moment and its per-tensor second moment (one value per parameter).
#[derive(Debug, Clone)]
pub struct NvNovoGradState {
    pub step: u64,
    pub exp_avg_sq: f32,
    pub max_exp_avg_sq: f32,
    pub exp_avg: Vec<f32>,
}

/// `timm.optim.NvNovoGrad` (NVIDIA's NovoGrad: layer-wise second moments).
pub struct NvNovoGrad;

impl Algorithm for NvNovoGrad {
    const NAME: &'static str = "NvNovoGrad";
    type Config = NvNovoGradConfig;
    type State = NvNovoGradState;

    fn init(_: &NvNovoGradConfig, shape: &[usize]) -> NvNovoGradState {
        NvNovoGradState {
            step: 0,
            exp_avg_sq: 0.0,
            max_exp_avg_sq: 0.0,
            exp_avg: vec![0.0; shape.iter().product()],
        }
    }

    #[inline(always)]
    fn update(
        c: &NvNovoGradConfig,
        _: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut NvNovoGradState,
    ) {
        s.step += 1;
        let [beta1, beta2] = c.betas;
        let norm = grad.iter().fold(0f32, |acc, g| acc + g * g);
        s.exp_avg_sq = if s.exp_avg_sq == 0.0 {
            norm
        } else {
            add_alpha(s.exp_avg_sq * beta2 as f32, norm, (1.0 - beta2) as f32)
        };
        let second = if c.amsgrad {
            s.max_exp_avg_sq = s.max_exp_avg_sq.max(s.exp_avg_sq);
            s.max_exp_avg_sq
        } else {
            s.exp_avg_sq
        };
        let denom = second.sqrt() + c.eps as f32;
        let wd_scale = match (c.corrected_weight_decay, c.max_lr_snapshot) {
            (true, Some(max_lr)) => c.lr * c.lr / max_lr,
            _ => c.lr,
        };
        let decay = (1.0 - wd_scale * c.weight_decay) as f32;
        let (b1, w1, neg_lr) = (beta1 as f32, (1.0 - beta1) as f32, -c.lr as f32);
        for i in 0..param.len() {
            let mut u = grad[i] / denom;
            if c.weight_decay != 0.0 {
                if c.decoupled_decay {
                    param[i] *= decay;
                } else {
                    u = add_alpha(u, param[i], c.weight_decay as f32);
                }
            }
            if c.grad_averaging {
                u *= w1;
            }
            s.exp_avg[i] = add_alpha(s.exp_avg[i] * b1, u, 1.0);
            param[i] = add_alpha(param[i], s.exp_avg[i], neg_lr);
        }
    }
}

crate::state_parts!(
    NvNovoGradState {
        step: u64,
        exp_avg_sq: f32,
        max_exp_avg_sq: f32
    }[exp_avg]
);
