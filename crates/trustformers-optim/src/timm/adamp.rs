//! `timm.optim.AdamP` and `timm.optim.SGDP`, which share timm's `projection`.

use crate::ops::{add_alpha, caution_mask, check, check_lr, hyper, norm2};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

/// timm's `projection` (AdamP / SGDP): for a parameter of two or more dimensions whose
/// gradient is nearly orthogonal to it (per output channel, else over the whole tensor:
/// the largest |cosine| below `delta / sqrt(width)`), the radial part of `perturb` is
/// removed and weight decay scaled by `wd_ratio`. Returns the decay ratio (1 when not
/// projected). Cautious masking as timm's.
#[allow(clippy::too_many_arguments)]
fn projection(
    shape: &[usize],
    p: &[f32],
    grad: &[f32],
    perturb: &mut [f32],
    delta: f64,
    wd_ratio: f64,
    eps: f64,
    caution: bool,
) -> f64 {
    let n = p.len();
    let eps32 = eps as f32;
    let channels = shape.first().copied().unwrap_or(1).max(1);
    for rows in [channels, 1] {
        let width = n / rows;
        // F.cosine_similarity: each side divided by its norm (at least eps), then the dot.
        let mut max_cos = 0f32;
        for r in 0..rows {
            let (pv, gv) = (
                &p[r * width..(r + 1) * width],
                &grad[r * width..(r + 1) * width],
            );
            let pn = norm2(pv).max(eps32);
            let gn = norm2(gv).max(eps32);
            let cos = pv
                .iter()
                .zip(gv)
                .fold(0f32, |acc, (a, b)| acc + (b / gn) * (a / pn))
                .abs();
            max_cos = max_cos.max(cos);
        }
        if f64::from(max_cos) < delta / (width as f64).sqrt() {
            // p_n = p / (||p_row|| + eps), per row.
            let mut p_n = vec![0f32; n];
            for r in 0..rows {
                let row = r * width..(r + 1) * width;
                let norm = norm2(&p[row.clone()]) + eps32;
                for i in row {
                    p_n[i] = p[i] / norm;
                }
            }
            let remove_radial = |x: &mut [f32]| {
                for r in 0..rows {
                    let row = r * width..(r + 1) * width;
                    let dot = row.clone().fold(0f32, |acc, i| acc + p_n[i] * x[i]);
                    for i in row {
                        x[i] -= p_n[i] * dot;
                    }
                }
            };
            remove_radial(perturb);
            if caution {
                let mut radial = grad.to_vec();
                let mut perp = grad.to_vec();
                for r in 0..rows {
                    let row = r * width..(r + 1) * width;
                    let dot = row.clone().fold(0f32, |acc, i| acc + p_n[i] * grad[i]);
                    for i in row {
                        radial[i] = p_n[i] * dot;
                        perp[i] = grad[i] - radial[i];
                    }
                }
                let mask = caution_mask(perturb, &perp);
                perturb.iter_mut().zip(mask).for_each(|(u, m)| *u *= m);
                remove_radial(perturb);
            }
            return wd_ratio;
        }
    }
    if caution {
        let mask = caution_mask(perturb, grad);
        perturb.iter_mut().zip(mask).for_each(|(u, m)| *u *= m);
    }
    1.0
}

/// `timm.optim.AdamP`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamPConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub delta: f64,
    pub wd_ratio: f64,
    pub nesterov: bool,
    pub caution: bool,
}

impl Default for AdamPConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            delta: 0.1,
            wd_ratio: 0.1,
            nesterov: false,
            caution: false,
        }
    }
}

hyper!(AdamPConfig, beta1, |c| { check_lr(c.lr) });

/// AdamP's moments.
#[derive(Debug, Clone)]
pub struct AdamPState {
    pub step: u64,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
}

/// `timm.optim.AdamP` (Heo et al.): Adam without the radial part of scale-invariant
/// weights' updates.
pub struct AdamP;

impl Algorithm for AdamP {
    const NAME: &'static str = "AdamP";
    type Config = AdamPConfig;
    type State = AdamPState;

    fn init(_: &AdamPConfig, shape: &[usize]) -> AdamPState {
        let n: usize = shape.iter().product();
        AdamPState {
            step: 0,
            exp_avg: vec![0.0; n],
            exp_avg_sq: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AdamPConfig,
        shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdamPState,
    ) {
        s.step += 1;
        let step = s.step as f64;
        let [beta1, beta2] = c.betas;
        let (bc1, bc2) = (1.0 - beta1.powf(step), 1.0 - beta2.powf(step));
        let (b1, w1, b2, w2) = (
            beta1 as f32,
            (1.0 - beta1) as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
        );
        let (bc2_sqrt, eps) = (bc2.sqrt() as f32, c.eps as f32);
        let mut perturb = vec![0f32; param.len()];
        for i in 0..param.len() {
            let g = grad[i];
            s.exp_avg[i] = add_alpha(s.exp_avg[i] * b1, g, w1);
            s.exp_avg_sq[i] = (w2 * g).mul_add(g, s.exp_avg_sq[i] * b2);
            let denom = s.exp_avg_sq[i].sqrt() / bc2_sqrt + eps;
            perturb[i] = if c.nesterov {
                (b1 * s.exp_avg[i] + w1 * g) / denom
            } else {
                s.exp_avg[i] / denom
            };
        }
        let ratio = if shape.len() > 1 {
            projection(
                shape,
                param,
                grad,
                &mut perturb,
                c.delta,
                c.wd_ratio,
                c.eps,
                c.caution,
            )
        } else {
            if c.caution {
                let mask = caution_mask(&perturb, grad);
                perturb.iter_mut().zip(mask).for_each(|(u, m)| *u *= m);
            }
            1.0
        };
        if c.weight_decay > 0.0 {
            let decay = (1.0 - c.lr * c.weight_decay * ratio) as f32;
            param.iter_mut().for_each(|p| *p *= decay);
        }
        let neg_step = -(c.lr / bc1) as f32;
        for (p, u) in param.iter_mut().zip(&perturb) {
            *p = add_alpha(*p, *u, neg_step);
        }
    }
}

crate::state_parts!(AdamPState { step: u64 } [exp_avg, exp_avg_sq]);

/// `timm.optim.SGDP`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdpConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub eps: f64,
    pub delta: f64,
    pub wd_ratio: f64,
    pub caution: bool,
}

impl Default for SgdpConfig {
    fn default() -> Self {
        Self {
            // timm has no default (`required`): 0.1 is asked for explicitly in practice.
            lr: f64::NAN,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            eps: 1e-8,
            delta: 0.1,
            wd_ratio: 0.1,
            caution: false,
        }
    }
}

hyper!(SgdpConfig, momentum, |c| {
    check(
        c.lr.is_finite() && c.lr >= 0.0,
        "lr",
        "SGDP needs a learning rate (`lr` has no default)".into(),
    )
});

/// SGDP's momentum buffer.
#[derive(Debug, Clone)]
pub struct SgdpState {
    pub momentum: Vec<f32>,
}

/// `timm.optim.SGDP` (Heo et al.): SGD without the radial part of scale-invariant weights'
/// updates.
pub struct Sgdp;

impl Algorithm for Sgdp {
    const NAME: &'static str = "SGDP";
    type Config = SgdpConfig;
    type State = SgdpState;

    fn init(_: &SgdpConfig, shape: &[usize]) -> SgdpState {
        SgdpState {
            momentum: vec![0.0; shape.iter().product()],
        }
    }

    #[inline(always)]
    fn update(c: &SgdpConfig, shape: &[usize], param: &mut [f32], grad: &[f32], s: &mut SgdpState) {
        let (m, keep) = (c.momentum as f32, (1.0 - c.dampening) as f32);
        let mut d = vec![0f32; param.len()];
        for i in 0..param.len() {
            s.momentum[i] = add_alpha(s.momentum[i] * m, grad[i], keep);
            d[i] = if c.nesterov {
                grad[i] + m * s.momentum[i]
            } else {
                s.momentum[i]
            };
        }
        let ratio = if shape.len() > 1 {
            projection(
                shape, param, grad, &mut d, c.delta, c.wd_ratio, c.eps, c.caution,
            )
        } else {
            if c.caution {
                let mask = caution_mask(&d, grad);
                d.iter_mut().zip(mask).for_each(|(u, m)| *u *= m);
            }
            1.0
        };
        if c.weight_decay != 0.0 {
            let decay = (1.0 - c.lr * c.weight_decay * ratio / (1.0 - c.momentum)) as f32;
            param.iter_mut().for_each(|p| *p *= decay);
        }
        let neg_lr = -c.lr as f32;
        for (p, u) in param.iter_mut().zip(&d) {
            *p = add_alpha(*p, *u, neg_lr);
        }
    }
}

crate::state_parts!(SgdpState {}[momentum]);
