//! `torch.optim`'s Adam family: Adam, AdamW, Adamax, NAdam and RAdam.

use crate::ops::{
    add_alpha, addcmul, check_betas, check_eps, check_lr, check_nonnegative, check_weight_decay,
    effective_grad, hyper, lerp, lerp_with,
};
use crate::Algorithm;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// Adam, AdamW

/// torch's `decoupled_weight_decay` choice (Adam, NAdam, RAdam): the factor that scales
/// the parameter before the step (AdamW's `1 - lr * weight_decay`; `None` without decoupled
/// decay) and the L2 coefficient added to the gradient (0 with it).
fn weight_decay(lr: f64, weight_decay: f64, decoupled: bool) -> (Option<f32>, f32) {
    if decoupled {
        let decay = (weight_decay != 0.0).then_some((1.0 - lr * weight_decay) as f32);
        (decay, 0.0)
    } else {
        (None, weight_decay as f32)
    }
}

/// `torch.optim.Adam`'s arguments (`AdamW`'s, with its weight decay default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub maximize: bool,
    /// AdamW's weight decay (`p *= 1 - lr * weight_decay`) instead of L2 in the gradient.
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: false,
        }
    }
}

hyper!(AdamConfig, beta1, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check_betas(&c.betas)?;
    check_weight_decay(c.weight_decay)
});

/// `torch.optim.AdamW`'s arguments: Adam's, with decoupled weight decay 0.01.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

hyper!(AdamWConfig, beta1, |c| { c.adam().validate() });

impl AdamWConfig {
    fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: self.amsgrad,
            maximize: self.maximize,
            decoupled_weight_decay: true,
        }
    }
}

/// Adam's moments (and the running maximum of the second, with `amsgrad`).
#[derive(Debug, Clone)]
pub struct AdamState {
    pub step: u64,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
    pub max_exp_avg_sq: Vec<f32>,
}

/// `torch.optim.Adam`.
pub struct Adam;

impl Algorithm for Adam {
    const NAME: &'static str = "Adam";
    type Config = AdamConfig;
    type State = AdamState;

    fn init(c: &AdamConfig, shape: &[usize]) -> AdamState {
        let n: usize = shape.iter().product();
        AdamState {
            step: 0,
            exp_avg: vec![0.0; n],
            exp_avg_sq: vec![0.0; n],
            max_exp_avg_sq: if c.amsgrad { vec![0.0; n] } else { Vec::new() },
        }
    }

    #[inline(always)]
    fn update(
        c: &AdamConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdamState,
    ) {
        s.step += 1;
        let step = s.step as f64;
        let [beta1, beta2] = c.betas;
        let (decay, l2) = weight_decay(c.lr, c.weight_decay, c.decoupled_weight_decay);
        let k = AdamStep {
            // Multiplying by 1 and by -1 is exact: no branch in the loop for either.
            decay: decay.unwrap_or(1.0),
            sign: if c.maximize { -1.0 } else { 1.0 },
            l2,
            w1: (1.0 - beta1) as f32,
            keep2: beta2 as f32,
            w2: (1.0 - beta2) as f32,
            bc2_sqrt: (1.0 - beta2.powf(step)).sqrt() as f32,
            neg_step: (-c.lr / (1.0 - beta1.powf(step))) as f32,
            eps: c.eps as f32,
        };
        // The choices that change the arithmetic are made once, outside the loop, so that
        // each variant is a straight loop the compiler vectorizes.
        match (c.amsgrad, l2 != 0.0, k.w1.abs() < 0.5) {
            (false, false, true) => adam_loop::<false, false, true>(&k, param, grad, s),
            (false, false, false) => adam_loop::<false, false, false>(&k, param, grad, s),
            (false, true, true) => adam_loop::<false, true, true>(&k, param, grad, s),
            (false, true, false) => adam_loop::<false, true, false>(&k, param, grad, s),
            (true, false, true) => adam_loop::<true, false, true>(&k, param, grad, s),
            (true, false, false) => adam_loop::<true, false, false>(&k, param, grad, s),
            (true, true, true) => adam_loop::<true, true, true>(&k, param, grad, s),
            (true, true, false) => adam_loop::<true, true, false>(&k, param, grad, s),
        }
    }
}

/// One Adam step's scalars.
struct AdamStep {
    decay: f32,
    sign: f32,
    l2: f32,
    w1: f32,
    keep2: f32,
    w2: f32,
    bc2_sqrt: f32,
    neg_step: f32,
    eps: f32,
}

/// Adam's element-wise update with the variant fixed at compile time: `AMSGRAD`, L2 weight
/// decay in the gradient, and which of torch's two `lerp` formulas the first moment's
/// weight selects.
#[inline(always)]
fn adam_loop<const AMSGRAD: bool, const L2: bool, const SMALL_W: bool>(
    k: &AdamStep,
    param: &mut [f32],
    grad: &[f32],
    s: &mut AdamState,
) {
    #[inline(always)]
    fn element<const L2: bool, const SMALL_W: bool>(
        k: &AdamStep,
        p: &mut f32,
        g: f32,
        m: &mut f32,
        v: &mut f32,
        vmax: Option<&mut f32>,
    ) {
        *p *= k.decay;
        let g = g * k.sign;
        let g = if L2 { add_alpha(g, *p, k.l2) } else { g };
        *m = lerp_with::<SMALL_W>(*m, g, k.w1);
        *v = addcmul(*v * k.keep2, k.w2, g, g);
        let second = match vmax {
            Some(vmax) => {
                *vmax = vmax.max(*v);
                *vmax
            }
            None => *v,
        };
        let denom = second.sqrt() / k.bc2_sqrt + k.eps;
        *p += k.neg_step * *m / denom;
    }
    let n = param.len();
    let grad = &grad[..n];
    let (m, v) = (&mut s.exp_avg[..n], &mut s.exp_avg_sq[..n]);
    let pgmv = param
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut().zip(v.iter_mut()));
    if AMSGRAD {
        for (((p, &g), (m, v)), vmax) in pgmv.zip(&mut s.max_exp_avg_sq[..n]) {
            element::<L2, SMALL_W>(k, p, g, m, v, Some(vmax));
        }
    } else {
        for ((p, &g), (m, v)) in pgmv {
            element::<L2, SMALL_W>(k, p, g, m, v, None);
        }
    }
}

/// `torch.optim.AdamW`.
pub struct AdamW;

impl Algorithm for AdamW {
    const NAME: &'static str = "AdamW";
    type Config = AdamWConfig;
    type State = AdamState;

    fn init(c: &AdamWConfig, shape: &[usize]) -> AdamState {
        Adam::init(&c.adam(), shape)
    }

    #[inline(always)]
    fn update(
        c: &AdamWConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdamState,
    ) {
        Adam::update(&c.adam(), _shape, param, grad, s)
    }
}

// ---------------------------------------------------------------------------------------
// Adamax

/// `torch.optim.Adamax`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamaxConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

hyper!(AdamaxConfig, beta1, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check_betas(&c.betas)?;
    check_weight_decay(c.weight_decay)
});

/// Adamax's first moment and exponentially weighted infinity norm.
#[derive(Debug, Clone)]
pub struct AdamaxState {
    pub step: u64,
    pub exp_avg: Vec<f32>,
    pub exp_inf: Vec<f32>,
}

/// `torch.optim.Adamax`.
pub struct Adamax;

impl Algorithm for Adamax {
    const NAME: &'static str = "Adamax";
    type Config = AdamaxConfig;
    type State = AdamaxState;

    fn init(_: &AdamaxConfig, shape: &[usize]) -> AdamaxState {
        let n: usize = shape.iter().product();
        AdamaxState {
            step: 0,
            exp_avg: vec![0.0; n],
            exp_inf: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AdamaxConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdamaxState,
    ) {
        s.step += 1;
        let [beta1, beta2] = c.betas;
        let (w1, b2, eps) = ((1.0 - beta1) as f32, beta2 as f32, c.eps as f32);
        let clr = c.lr / (1.0 - beta1.powf(s.step as f64));
        let (neg_clr, wd) = (-clr as f32, c.weight_decay as f32);
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            s.exp_avg[i] = lerp(s.exp_avg[i], g, w1);
            s.exp_inf[i] = (s.exp_inf[i] * b2).max(g.abs() + eps);
            param[i] += neg_clr * s.exp_avg[i] / s.exp_inf[i];
        }
    }
}

// ---------------------------------------------------------------------------------------
// NAdam

/// `torch.optim.NAdam`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NAdamConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum_decay: f64,
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

impl Default for NAdamConfig {
    fn default() -> Self {
        Self {
            lr: 2e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

hyper!(NAdamConfig, beta1, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check_betas(&c.betas)?;
    check_weight_decay(c.weight_decay)?;
    check_nonnegative("momentum_decay", c.momentum_decay)
});

/// NAdam's moments and the running product of its momentum coefficients (an f32, as
/// torch keeps it in a tensor).
#[derive(Debug, Clone)]
pub struct NAdamState {
    pub step: u64,
    pub mu_product: f32,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
}

/// `torch.optim.NAdam`.
pub struct NAdam;

impl Algorithm for NAdam {
    const NAME: &'static str = "NAdam";
    type Config = NAdamConfig;
    type State = NAdamState;

    fn init(_: &NAdamConfig, shape: &[usize]) -> NAdamState {
        let n: usize = shape.iter().product();
        NAdamState {
            step: 0,
            mu_product: 1.0,
            exp_avg: vec![0.0; n],
            exp_avg_sq: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &NAdamConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut NAdamState,
    ) {
        s.step += 1;
        let step = s.step as f64;
        let [beta1, beta2] = c.betas;
        let bc2 = (1.0 - beta2.powf(step)) as f32;
        let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(step * c.momentum_decay));
        let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((step + 1.0) * c.momentum_decay));
        s.mu_product *= mu as f32;
        let mu_product = f64::from(s.mu_product);
        let mu_product_next = mu_product * mu_next;
        let grad_scale = (-c.lr * (1.0 - mu) / (1.0 - mu_product)) as f32;
        let avg_scale = ((-c.lr * mu_next) / (1.0 - mu_product_next)) as f32;
        let (decay, l2) = weight_decay(c.lr, c.weight_decay, c.decoupled_weight_decay);
        let (w1, b2, w2, eps) = (
            (1.0 - beta1) as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
            c.eps as f32,
        );
        for i in 0..param.len() {
            if let Some(decay) = decay {
                param[i] *= decay;
            }
            let g = effective_grad(grad[i], param[i], c.maximize, l2);
            s.exp_avg[i] = lerp(s.exp_avg[i], g, w1);
            s.exp_avg_sq[i] = addcmul(s.exp_avg_sq[i] * b2, w2, g, g);
            let denom = (s.exp_avg_sq[i] / bc2).sqrt() + eps;
            param[i] += grad_scale * g / denom;
            param[i] += avg_scale * s.exp_avg[i] / denom;
        }
    }
}

// ---------------------------------------------------------------------------------------
// RAdam

/// `torch.optim.RAdam`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RAdamConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

impl Default for RAdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

hyper!(RAdamConfig, beta1, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check_betas(&c.betas)?;
    check_weight_decay(c.weight_decay)
});

/// `torch.optim.RAdam`.
pub struct RAdam;

impl Algorithm for RAdam {
    const NAME: &'static str = "RAdam";
    type Config = RAdamConfig;
    type State = AdamState;

    fn init(_: &RAdamConfig, shape: &[usize]) -> AdamState {
        let n: usize = shape.iter().product();
        AdamState {
            step: 0,
            exp_avg: vec![0.0; n],
            exp_avg_sq: vec![0.0; n],
            max_exp_avg_sq: Vec::new(),
        }
    }

    #[inline(always)]
    fn update(
        c: &RAdamConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdamState,
    ) {
        s.step += 1;
        let step = s.step as f64;
        let [beta1, beta2] = c.betas;
        let bc1 = 1.0 - beta1.powf(step);
        let bc2 = 1.0 - beta2.powf(step);
        let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * step * beta2.powf(step) / bc2;
        let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .sqrt() as f32;
        let rectified = rho_t > 5.0;
        let (decay, l2) = weight_decay(c.lr, c.weight_decay, c.decoupled_weight_decay);
        let (w1, b2, w2, eps) = (
            (1.0 - beta1) as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
            c.eps as f32,
        );
        let (bc1, bc2_sqrt, lr) = (bc1 as f32, bc2.sqrt() as f32, c.lr as f32);
        for i in 0..param.len() {
            if let Some(decay) = decay {
                param[i] *= decay;
            }
            let g = effective_grad(grad[i], param[i], c.maximize, l2);
            s.exp_avg[i] = lerp(s.exp_avg[i], g, w1);
            s.exp_avg_sq[i] = addcmul(s.exp_avg_sq[i] * b2, w2, g, g);
            let corrected = s.exp_avg[i] / bc1;
            let update = if rectified {
                let adaptive = bc2_sqrt / (s.exp_avg_sq[i].sqrt() + eps);
                corrected * lr * adaptive * rect
            } else {
                corrected * lr
            };
            param[i] = add_alpha(param[i], update, -1.0);
        }
    }
}

crate::state_parts!(AdamState { step: u64 } [exp_avg, exp_avg_sq, max_exp_avg_sq]);
crate::state_parts!(AdamaxState { step: u64 } [exp_avg, exp_inf]);
crate::state_parts!(NAdamState { step: u64, mu_product: f32 } [exp_avg, exp_avg_sq]);
