//! `torch.optim`'s optimizers, each as its `_single_tensor_*` implementation computes it on
//! the CPU: the same state, the same order of operations, hyper-parameters computed in f64
//! and handed to the element-wise kernels as f32.

use crate::{Algorithm, Hyper};
use serde::{Deserialize, Serialize};
use trustformers_core::{Error, Result};

// ATen's CPU kernels are compiled with floating-point contraction: `a + b * c` is one fused
// multiply-add there, and so here, or the last bit differs.

/// torch's `lerp` on floats: `s + w * (e - s)` below `|w| = 0.5`, `e - (e - s) * (1 - w)`
/// from it, each one fused multiply-add.
fn lerp(s: f32, e: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        w.mul_add(e - s, s)
    } else {
        (-(e - s)).mul_add(1.0 - w, e)
    }
}

/// `self + value * t1 * t2` (`addcmul`).
fn addcmul(this: f32, value: f32, t1: f32, t2: f32) -> f32 {
    (value * t1).mul_add(t2, this)
}

fn check(ok: bool, field: &str, message: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, message))
    }
}

fn check_lr(lr: f64) -> Result<()> {
    check(lr >= 0.0, "lr", format!("Invalid learning rate: {lr}"))
}

fn check_eps(eps: f64) -> Result<()> {
    check(eps >= 0.0, "eps", format!("Invalid epsilon value: {eps}"))
}

fn check_weight_decay(wd: f64) -> Result<()> {
    check(
        wd >= 0.0,
        "weight_decay",
        format!("Invalid weight_decay value: {wd}"),
    )
}

fn check_betas(betas: [f64; 2]) -> Result<()> {
    for (i, b) in betas.iter().enumerate() {
        check(
            (0.0..1.0).contains(b),
            "betas",
            format!("Invalid beta parameter at index {i}: {b}"),
        )?;
    }
    Ok(())
}

/// `self + alpha * other`, as ATen's `add(other, alpha=...)` computes it: one fused
/// multiply-add.
fn add_alpha(this: f32, other: f32, alpha: f32) -> f32 {
    other.mul_add(alpha, this)
}

/// `grad` for the step: negated when maximizing, with L2 weight decay `wd * p` added
/// (`grad.add(param, alpha=weight_decay)`).
fn effective_grad(g: f32, p: f32, maximize: bool, wd: f32) -> f32 {
    let g = if maximize { -g } else { g };
    if wd != 0.0 {
        add_alpha(g, p, wd)
    } else {
        g
    }
}

macro_rules! hyper {
    ($config:ty, |$c:ident| $validate:block) => {
        hyper!(@impl $config, |$c| $validate, {});
    };
    ($config:ty, momentum, |$c:ident| $validate:block) => {
        hyper!(@impl $config, |$c| $validate, {
            fn momentum(&self) -> Option<f64> {
                Some(self.momentum)
            }
            fn set_momentum(&mut self, momentum: f64) {
                self.momentum = momentum;
            }
        });
    };
    ($config:ty, beta1, |$c:ident| $validate:block) => {
        hyper!(@impl $config, |$c| $validate, {
            fn momentum(&self) -> Option<f64> {
                Some(self.betas[0])
            }
            fn set_momentum(&mut self, beta1: f64) {
                self.betas[0] = beta1;
            }
        });
    };
    (@impl $config:ty, |$c:ident| $validate:block, { $($extra:item)* }) => {
        impl Hyper for $config {
            fn lr(&self) -> f64 {
                self.lr
            }
            fn set_lr(&mut self, lr: f64) {
                self.lr = lr;
            }
            fn validate(&self) -> Result<()> {
                let $c = self;
                $validate
            }
            $($extra)*
        }
    };
}

// ---------------------------------------------------------------------------------------
// SGD

/// `torch.optim.SGD`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

hyper!(SgdConfig, momentum, |c| {
    check_lr(c.lr)?;
    check(
        c.momentum >= 0.0,
        "momentum",
        format!("Invalid momentum value: {}", c.momentum),
    )?;
    check_weight_decay(c.weight_decay)?;
    check(
        !c.nesterov || (c.momentum > 0.0 && c.dampening == 0.0),
        "nesterov",
        "Nesterov momentum requires a momentum and zero dampening".into(),
    )
});

/// `torch.optim.SGD`.
pub struct Sgd;

/// SGD's momentum buffer, made at the first step.
#[derive(Debug, Clone, Default)]
pub struct SgdState {
    /// Empty until the first step with momentum.
    pub momentum_buffer: Vec<f32>,
}

impl Algorithm for Sgd {
    const NAME: &'static str = "SGD";
    type Config = SgdConfig;
    type State = SgdState;

    fn init(_: &SgdConfig, _: &[usize]) -> SgdState {
        SgdState::default()
    }

    #[inline(always)]
    fn update(
        c: &SgdConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        state: &mut SgdState,
    ) {
        let (wd, momentum, lr) = (c.weight_decay as f32, c.momentum as f32, c.lr as f32);
        let keep = (1.0 - c.dampening) as f32;
        let first = state.momentum_buffer.is_empty();
        if first {
            state.momentum_buffer = vec![0.0; param.len()];
        }
        let buf = &mut state.momentum_buffer;
        for ((p, &g), b) in param.iter_mut().zip(grad).zip(buf.iter_mut()) {
            let mut d = effective_grad(g, *p, c.maximize, wd);
            if c.momentum != 0.0 {
                *b = if first {
                    d
                } else {
                    add_alpha(*b * momentum, d, keep)
                };
                d = if c.nesterov {
                    add_alpha(d, *b, momentum)
                } else {
                    *b
                };
            }
            *p = add_alpha(*p, d, -lr);
        }
        if c.momentum == 0.0 {
            state.momentum_buffer = Vec::new();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Adam, AdamW

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
    check_betas(c.betas)?;
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
        let decoupled = c.decoupled_weight_decay && c.weight_decay != 0.0;
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        let l2 = if c.decoupled_weight_decay {
            0.0
        } else {
            c.weight_decay as f32
        };
        let (w1, keep2, w2) = ((1.0 - beta1) as f32, beta2 as f32, (1.0 - beta2) as f32);
        let step_size = c.lr / (1.0 - beta1.powf(step));
        let bc2_sqrt = (1.0 - beta2.powf(step)).sqrt() as f32;
        let (neg_step, eps) = (-step_size as f32, c.eps as f32);
        for i in 0..param.len() {
            if decoupled {
                param[i] *= decay;
            }
            let g = effective_grad(grad[i], param[i], c.maximize, l2);
            s.exp_avg[i] = lerp(s.exp_avg[i], g, w1);
            s.exp_avg_sq[i] = addcmul(s.exp_avg_sq[i] * keep2, w2, g, g);
            let second = if c.amsgrad {
                s.max_exp_avg_sq[i] = s.max_exp_avg_sq[i].max(s.exp_avg_sq[i]);
                s.max_exp_avg_sq[i]
            } else {
                s.exp_avg_sq[i]
            };
            let denom = second.sqrt() / bc2_sqrt + eps;
            param[i] += neg_step * s.exp_avg[i] / denom;
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
    check_betas(c.betas)?;
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
    check_betas(c.betas)?;
    check_weight_decay(c.weight_decay)?;
    check(
        c.momentum_decay >= 0.0,
        "momentum_decay",
        format!("Invalid momentum_decay value: {}", c.momentum_decay),
    )
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
        let decoupled = c.decoupled_weight_decay && c.weight_decay != 0.0;
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        let l2 = if c.decoupled_weight_decay {
            0.0
        } else {
            c.weight_decay as f32
        };
        let (w1, b2, w2, eps) = (
            (1.0 - beta1) as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
            c.eps as f32,
        );
        for i in 0..param.len() {
            if decoupled {
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
    check_betas(c.betas)?;
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
        let decoupled = c.decoupled_weight_decay && c.weight_decay != 0.0;
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        let l2 = if c.decoupled_weight_decay {
            0.0
        } else {
            c.weight_decay as f32
        };
        let (w1, b2, w2, eps) = (
            (1.0 - beta1) as f32,
            beta2 as f32,
            (1.0 - beta2) as f32,
            c.eps as f32,
        );
        let (bc1, bc2_sqrt, lr) = (bc1 as f32, bc2.sqrt() as f32, c.lr as f32);
        for i in 0..param.len() {
            if decoupled {
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

// ---------------------------------------------------------------------------------------
// Adagrad

/// `torch.optim.Adagrad`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdagradConfig {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

hyper!(AdagradConfig, |c| {
    check_lr(c.lr)?;
    check(
        c.lr_decay >= 0.0,
        "lr_decay",
        format!("Invalid lr_decay value: {}", c.lr_decay),
    )?;
    check_weight_decay(c.weight_decay)?;
    check(
        c.initial_accumulator_value >= 0.0,
        "initial_accumulator_value",
        format!(
            "Invalid initial_accumulator_value value: {}",
            c.initial_accumulator_value
        ),
    )?;
    check_eps(c.eps)
});

/// Adagrad's sum of squared gradients.
#[derive(Debug, Clone)]
pub struct AdagradState {
    pub step: u64,
    pub sum: Vec<f32>,
}

/// `torch.optim.Adagrad`.
pub struct Adagrad;

impl Algorithm for Adagrad {
    const NAME: &'static str = "Adagrad";
    type Config = AdagradConfig;
    type State = AdagradState;

    fn init(c: &AdagradConfig, shape: &[usize]) -> AdagradState {
        let n: usize = shape.iter().product();
        AdagradState {
            step: 0,
            sum: vec![c.initial_accumulator_value as f32; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AdagradConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdagradState,
    ) {
        s.step += 1;
        let clr = c.lr / (1.0 + (s.step as f64 - 1.0) * c.lr_decay);
        let (neg_clr, wd, eps) = (-clr as f32, c.weight_decay as f32, c.eps as f32);
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            s.sum[i] = addcmul(s.sum[i], 1.0, g, g);
            let std = s.sum[i].sqrt() + eps;
            param[i] += neg_clr * g / std;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Adadelta

/// `torch.optim.Adadelta`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdadeltaConfig {
    pub lr: f64,
    pub rho: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        Self {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

hyper!(AdadeltaConfig, |c| {
    check_lr(c.lr)?;
    check(
        (0.0..=1.0).contains(&c.rho),
        "rho",
        format!("Invalid rho value: {}", c.rho),
    )?;
    check_eps(c.eps)?;
    check_weight_decay(c.weight_decay)
});

/// Adadelta's running averages of squared gradients and squared updates.
#[derive(Debug, Clone)]
pub struct AdadeltaState {
    pub square_avg: Vec<f32>,
    pub acc_delta: Vec<f32>,
}

/// `torch.optim.Adadelta`.
pub struct Adadelta;

impl Algorithm for Adadelta {
    const NAME: &'static str = "Adadelta";
    type Config = AdadeltaConfig;
    type State = AdadeltaState;

    fn init(_: &AdadeltaConfig, shape: &[usize]) -> AdadeltaState {
        let n: usize = shape.iter().product();
        AdadeltaState {
            square_avg: vec![0.0; n],
            acc_delta: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AdadeltaConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdadeltaState,
    ) {
        let (rho, w, eps) = (c.rho as f32, (1.0 - c.rho) as f32, c.eps as f32);
        let (neg_lr, wd) = (-c.lr as f32, c.weight_decay as f32);
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            s.square_avg[i] = addcmul(s.square_avg[i] * rho, w, g, g);
            let std = (s.square_avg[i] + eps).sqrt();
            let delta = (s.acc_delta[i] + eps).sqrt() / std * g;
            s.acc_delta[i] = addcmul(s.acc_delta[i] * rho, w, delta, delta);
            param[i] = add_alpha(param[i], delta, neg_lr);
        }
    }
}

// ---------------------------------------------------------------------------------------
// RMSprop

/// `torch.optim.RMSprop`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmsPropConfig {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

hyper!(RmsPropConfig, momentum, |c| {
    check_lr(c.lr)?;
    check_eps(c.eps)?;
    check(
        c.momentum >= 0.0,
        "momentum",
        format!("Invalid momentum value: {}", c.momentum),
    )?;
    check_weight_decay(c.weight_decay)?;
    check(
        c.alpha >= 0.0,
        "alpha",
        format!("Invalid alpha value: {}", c.alpha),
    )
});

/// RMSprop's running averages (of squares; of gradients when centered) and momentum.
#[derive(Debug, Clone)]
pub struct RmsPropState {
    pub square_avg: Vec<f32>,
    pub grad_avg: Vec<f32>,
    pub momentum_buffer: Vec<f32>,
}

/// `torch.optim.RMSprop`.
pub struct RmsProp;

impl Algorithm for RmsProp {
    const NAME: &'static str = "RMSprop";
    type Config = RmsPropConfig;
    type State = RmsPropState;

    fn init(c: &RmsPropConfig, shape: &[usize]) -> RmsPropState {
        let n: usize = shape.iter().product();
        RmsPropState {
            square_avg: vec![0.0; n],
            grad_avg: if c.centered { vec![0.0; n] } else { Vec::new() },
            momentum_buffer: if c.momentum > 0.0 {
                vec![0.0; n]
            } else {
                Vec::new()
            },
        }
    }

    #[inline(always)]
    fn update(
        c: &RmsPropConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut RmsPropState,
    ) {
        let (alpha, w, eps) = (c.alpha as f32, (1.0 - c.alpha) as f32, c.eps as f32);
        let (neg_lr, wd, momentum) = (-c.lr as f32, c.weight_decay as f32, c.momentum as f32);
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            s.square_avg[i] = addcmul(s.square_avg[i] * alpha, w, g, g);
            let avg = if c.centered {
                s.grad_avg[i] = lerp(s.grad_avg[i], g, w);
                addcmul(s.square_avg[i], -1.0, s.grad_avg[i], s.grad_avg[i]).sqrt()
            } else {
                s.square_avg[i].sqrt()
            } + eps;
            if c.momentum > 0.0 {
                s.momentum_buffer[i] = s.momentum_buffer[i] * momentum + 1.0 * g / avg;
                param[i] = add_alpha(param[i], s.momentum_buffer[i], neg_lr);
            } else {
                param[i] += neg_lr * g / avg;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rprop

/// `torch.optim.Rprop`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpropConfig {
    pub lr: f64,
    /// `(etaminus, etaplus)`.
    pub etas: [f64; 2],
    /// `(min, max)` step sizes.
    pub step_sizes: [f64; 2],
    pub maximize: bool,
}

impl Default for RpropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            etas: [0.5, 1.2],
            step_sizes: [1e-6, 50.0],
            maximize: false,
        }
    }
}

hyper!(RpropConfig, |c| {
    check_lr(c.lr)?;
    let [minus, plus] = c.etas;
    check(
        0.0 < minus && minus < 1.0 && 1.0 < plus,
        "etas",
        format!("Invalid eta values: {minus}, {plus}"),
    )
});

/// Rprop's previous gradient and per-element step sizes.
#[derive(Debug, Clone)]
pub struct RpropState {
    pub prev: Vec<f32>,
    pub step_size: Vec<f32>,
}

/// `torch.optim.Rprop`.
pub struct Rprop;

impl Algorithm for Rprop {
    const NAME: &'static str = "Rprop";
    type Config = RpropConfig;
    type State = RpropState;

    fn init(c: &RpropConfig, shape: &[usize]) -> RpropState {
        let n: usize = shape.iter().product();
        RpropState {
            prev: vec![0.0; n],
            step_size: vec![c.lr as f32; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &RpropConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut RpropState,
    ) {
        let (minus, plus) = (c.etas[0] as f32, c.etas[1] as f32);
        let (lo, hi) = (c.step_sizes[0] as f32, c.step_sizes[1] as f32);
        let sign = |x: f32| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        };
        for i in 0..param.len() {
            let g = if c.maximize { -grad[i] } else { grad[i] };
            let factor = match sign(g * s.prev[i]) {
                x if x > 0.0 => plus,
                x if x < 0.0 => minus,
                _ => 1.0,
            };
            // torch's clamp: the lower bound first, then the upper (no panic on lo > hi).
            s.step_size[i] = (s.step_size[i] * factor).max(lo).min(hi);
            let g = if factor == minus { 0.0 } else { g };
            param[i] = addcmul(param[i], -1.0, sign(g), s.step_size[i]);
            s.prev[i] = g;
        }
    }
}

// ---------------------------------------------------------------------------------------
// ASGD

/// `torch.optim.ASGD`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsgdConfig {
    pub lr: f64,
    pub lambd: f64,
    pub alpha: f64,
    pub t0: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Default for AsgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

hyper!(AsgdConfig, |c| {
    check_lr(c.lr)?;
    check_weight_decay(c.weight_decay)
});

/// ASGD's step size `eta`, averaging rate `mu` (f32, as torch keeps them in tensors) and
/// the averaged parameter `ax`.
#[derive(Debug, Clone)]
pub struct AsgdState {
    pub step: u64,
    pub eta: f32,
    pub mu: f32,
    pub ax: Vec<f32>,
}

/// `torch.optim.ASGD`.
pub struct Asgd;

impl Algorithm for Asgd {
    const NAME: &'static str = "ASGD";
    type Config = AsgdConfig;
    type State = AsgdState;

    fn init(c: &AsgdConfig, shape: &[usize]) -> AsgdState {
        let n: usize = shape.iter().product();
        AsgdState {
            step: 0,
            eta: c.lr as f32,
            mu: 1.0,
            ax: vec![0.0; n],
        }
    }

    #[inline(always)]
    fn update(
        c: &AsgdConfig,
        _shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AsgdState,
    ) {
        s.step += 1;
        let eta = f64::from(s.eta);
        let (decay, neg_eta, wd) = (
            (1.0 - c.lambd * eta) as f32,
            -eta as f32,
            c.weight_decay as f32,
        );
        for i in 0..param.len() {
            let g = effective_grad(grad[i], param[i], c.maximize, wd);
            param[i] *= decay;
            param[i] = add_alpha(param[i], g, neg_eta);
            s.ax[i] = if s.mu != 1.0 {
                s.ax[i] + (param[i] - s.ax[i]) * s.mu
            } else {
                param[i]
            };
        }
        let step = s.step as f64;
        s.eta = (c.lr / (1.0 + c.lambd * c.lr * step).powf(c.alpha)) as f32;
        s.mu = (1.0 / (step - c.t0).max(1.0)) as f32;
    }
}

// ---------------------------------------------------------------------------------------
// Adafactor (torch's)

/// `torch.optim.Adafactor`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdafactorConfig {
    pub lr: f64,
    /// The second-moment decay is `1 - step^beta2_decay`.
    pub beta2_decay: f64,
    /// `(eps1, eps2)`: the floor of the variance estimate (`None`: the dtype's epsilon)
    /// and of the parameter scale.
    pub eps: (Option<f64>, f64),
    /// The update's RMS is clipped to this.
    pub d: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            beta2_decay: -0.8,
            eps: (None, 1e-3),
            d: 1.0,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

hyper!(AdafactorConfig, |c| {
    check(
        c.lr >= 0.0,
        "lr",
        format!("Learning rate should be >= 0 but is: {}", c.lr),
    )?;
    check(
        c.beta2_decay <= 0.0,
        "beta2_decay",
        format!("beta2_decay should be <= 0 but is: {}", c.beta2_decay),
    )?;
    check(
        c.eps.0.is_none_or(|e| e >= 0.0),
        "eps",
        format!("epsilon1 should be >= 0 but is: {:?}", c.eps.0),
    )?;
    check(
        c.eps.1 >= 0.0,
        "eps",
        format!("epsilon2 should be >= 0 but is: {}", c.eps.1),
    )?;
    check(
        c.d >= 1.0,
        "d",
        format!("Clipping threshold d should be >= 1 but is: {}", c.d),
    )?;
    check(
        c.weight_decay >= 0.0,
        "weight_decay",
        format!("weight_decay should be >= 0 but is: {}", c.weight_decay),
    )
});

/// Adafactor's second moment: factored into row and column means for a parameter of two
/// or more dimensions (over its last two), whole otherwise.
#[derive(Debug, Clone)]
pub struct AdafactorState {
    pub step: u64,
    /// `[..., rows]`.
    pub row_var: Vec<f32>,
    /// `[..., cols]`.
    pub col_var: Vec<f32>,
    pub variance: Vec<f32>,
}

/// `torch.optim.Adafactor`.
pub struct Adafactor;

/// sqrt of the sum of squares, accumulated in f32 in order.
fn norm2(values: impl Iterator<Item = f32>) -> f32 {
    values.fold(0.0f32, |acc, v| acc + v * v).sqrt()
}

impl Algorithm for Adafactor {
    const NAME: &'static str = "Adafactor";
    type Config = AdafactorConfig;
    type State = AdafactorState;

    fn init(_: &AdafactorConfig, shape: &[usize]) -> AdafactorState {
        let n: usize = shape.iter().product();
        match shape {
            [outer @ .., rows, cols] => {
                let batch: usize = outer.iter().product();
                AdafactorState {
                    step: 0,
                    row_var: vec![0.0; batch * rows],
                    col_var: vec![0.0; batch * cols],
                    variance: Vec::new(),
                }
            }
            _ => AdafactorState {
                step: 0,
                row_var: Vec::new(),
                col_var: Vec::new(),
                variance: vec![0.0; n],
            },
        }
    }

    #[inline(always)]
    fn update(
        c: &AdafactorConfig,
        shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut AdafactorState,
    ) {
        s.step += 1;
        let step = s.step as f64;
        let eps1 = c.eps.0.unwrap_or(f64::from(f32::EPSILON)) as f32;
        let w = step.powf(c.beta2_decay) as f32;
        let rho = c.lr.min(1.0 / step.sqrt());
        let n = param.len();
        let scale = f64::from(norm2(param.iter().copied())) / (n as f64).sqrt();
        let alpha = c.eps.1.max(scale) * rho;
        if c.weight_decay != 0.0 {
            let decay = (1.0 - c.lr * c.weight_decay) as f32;
            param.iter_mut().for_each(|p| *p *= decay);
        }
        let g: Vec<f32> = if c.maximize {
            grad.iter().map(|g| -g).collect()
        } else {
            grad.to_vec()
        };
        let estimate: Vec<f32> = match shape {
            [.., rows, cols] => {
                let (rows, cols) = (*rows, *cols);
                let batch = n / (rows * cols).max(1);
                let mut est = vec![0.0f32; n];
                for b in 0..batch {
                    let base = b * rows * cols;
                    for r in 0..rows {
                        let row = &g[base + r * cols..base + (r + 1) * cols];
                        let norm = norm2(row.iter().copied());
                        let mean = norm * norm / cols as f32;
                        let v = &mut s.row_var[b * rows + r];
                        *v = lerp(*v, mean, w);
                    }
                    for col in 0..cols {
                        let norm = norm2((0..rows).map(|r| g[base + r * cols + col]));
                        let mean = norm * norm / rows as f32;
                        let v = &mut s.col_var[b * cols + col];
                        *v = lerp(*v, mean, w);
                    }
                    let row_var = &s.row_var[b * rows..(b + 1) * rows];
                    let row_mean = (row_var.iter().sum::<f32>() / rows as f32).max(eps1);
                    for r in 0..rows {
                        for col in 0..cols {
                            est[base + r * cols + col] =
                                row_var[r] * s.col_var[b * cols + col] / row_mean;
                        }
                    }
                }
                est
            }
            _ => {
                for (v, g) in s.variance.iter_mut().zip(&g) {
                    *v = lerp(*v, g * g, w);
                }
                s.variance.clone()
            }
        };
        let update: Vec<f32> = estimate
            .iter()
            .zip(&g)
            .map(|(e, g)| (1.0 / e.max(eps1 * eps1).sqrt()) * g)
            .collect();
        let rms = f64::from(norm2(update.iter().copied())) / ((n as f64).sqrt() * c.d);
        let step_size = (-alpha / rms.max(1.0)) as f32;
        for (p, u) in param.iter_mut().zip(&update) {
            *p = add_alpha(*p, *u, step_size);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Adafactor (transformers')

/// transformers' `Adafactor` arguments (`transformers.optimization.Adafactor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HfAdafactorConfig {
    /// `None` with `relative_step`, which computes the step size itself.
    pub lr: Option<f64>,
    /// `(eps1, eps2)`: added to squared gradients, and the floor of the parameter scale.
    pub eps: (f64, f64),
    pub clip_threshold: f64,
    pub decay_rate: f64,
    /// A first moment with this decay; none when `None`.
    pub beta1: Option<f64>,
    pub weight_decay: f64,
    pub scale_parameter: bool,
    pub relative_step: bool,
    pub warmup_init: bool,
}

impl Default for HfAdafactorConfig {
    fn default() -> Self {
        Self {
            lr: None,
            eps: (1e-30, 1e-3),
            clip_threshold: 1.0,
            decay_rate: -0.8,
            beta1: None,
            weight_decay: 0.0,
            scale_parameter: true,
            relative_step: true,
            warmup_init: false,
        }
    }
}

impl Hyper for HfAdafactorConfig {
    fn lr(&self) -> f64 {
        self.lr.unwrap_or(0.0)
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = Some(lr);
    }
    fn validate(&self) -> Result<()> {
        check(
            self.lr.is_none() || !self.relative_step,
            "lr",
            "Cannot combine manual `lr` and `relative_step=True` options".into(),
        )?;
        check(
            !self.warmup_init || self.relative_step,
            "warmup_init",
            "`warmup_init=True` requires `relative_step=True`".into(),
        )?;
        check(
            self.relative_step || self.lr.is_some(),
            "lr",
            "a manual `lr` is needed without `relative_step`".into(),
        )
    }
}

/// transformers' Adafactor state: row and column second moments for a parameter of two
/// or more dimensions (over its last two), a whole one otherwise, the optional first
/// moment, and the parameter's RMS at the last step.
#[derive(Debug, Clone)]
pub struct HfAdafactorState {
    pub step: u64,
    pub rms: f32,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq_row: Vec<f32>,
    pub exp_avg_sq_col: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
}

/// transformers' `Adafactor` (Shazeer and Stern's, with relative steps and parameter
/// scaling).
pub struct HfAdafactor;

fn rms(values: &[f32]) -> f32 {
    norm2(values.iter().copied()) / (values.len() as f64).sqrt() as f32
}

impl Algorithm for HfAdafactor {
    const NAME: &'static str = "transformers.Adafactor";
    type Config = HfAdafactorConfig;
    type State = HfAdafactorState;

    fn init(c: &HfAdafactorConfig, shape: &[usize]) -> HfAdafactorState {
        let n: usize = shape.iter().product();
        let (row, col, whole) = match shape {
            [outer @ .., rows, cols] => {
                let batch: usize = outer.iter().product();
                (batch * rows, batch * cols, 0)
            }
            _ => (0, 0, n),
        };
        HfAdafactorState {
            step: 0,
            rms: 0.0,
            exp_avg: if c.beta1.is_some() {
                vec![0.0; n]
            } else {
                Vec::new()
            },
            exp_avg_sq_row: vec![0.0; row],
            exp_avg_sq_col: vec![0.0; col],
            exp_avg_sq: vec![0.0; whole],
        }
    }

    #[inline(always)]
    fn update(
        c: &HfAdafactorConfig,
        shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut HfAdafactorState,
    ) {
        s.step += 1;
        let step = s.step as f64;
        s.rms = rms(param);
        let rel_step = if c.relative_step {
            let min_step = if c.warmup_init { 1e-6 * step } else { 1e-2 };
            min_step.min(1.0 / step.sqrt())
        } else {
            c.lr.unwrap_or(0.0)
        };
        // The scale is the RMS (an f32 tensor in transformers) unless eps2 is larger: the
        // product is then computed in f32, else in f64.
        let lr: f32 = if c.scale_parameter && f64::from(s.rms) > c.eps.1 {
            s.rms * rel_step as f32
        } else if c.scale_parameter {
            (c.eps.1 * rel_step) as f32
        } else {
            rel_step as f32
        };
        let beta2t = 1.0 - step.powf(c.decay_rate);
        let (b2, w2, eps1) = (beta2t as f32, (1.0 - beta2t) as f32, c.eps.0 as f32);
        let sq: Vec<f32> = grad.iter().map(|g| g * g + eps1).collect();
        let n = param.len();
        let mut update: Vec<f32> = match shape {
            [.., rows, cols] => {
                let (rows, cols) = (*rows, *cols);
                let batch = n / (rows * cols).max(1);
                let mut u = vec![0.0f32; n];
                for b in 0..batch {
                    let base = b * rows * cols;
                    for r in 0..rows {
                        let row = &sq[base + r * cols..base + (r + 1) * cols];
                        let mean = row.iter().sum::<f32>() / cols as f32;
                        let v = &mut s.exp_avg_sq_row[b * rows + r];
                        *v = add_alpha(*v * b2, mean, w2);
                    }
                    for col in 0..cols {
                        let sum: f32 = (0..rows).map(|r| sq[base + r * cols + col]).sum();
                        let v = &mut s.exp_avg_sq_col[b * cols + col];
                        *v = add_alpha(*v * b2, sum / rows as f32, w2);
                    }
                    let row = &s.exp_avg_sq_row[b * rows..(b + 1) * rows];
                    let row_mean = row.iter().sum::<f32>() / rows as f32;
                    for (r, &row_r) in row.iter().enumerate() {
                        let r_factor = 1.0 / (row_r / row_mean).sqrt();
                        for col in 0..cols {
                            let c_factor = 1.0 / s.exp_avg_sq_col[b * cols + col].sqrt();
                            let i = base + r * cols + col;
                            u[i] = r_factor * c_factor * grad[i];
                        }
                    }
                }
                u
            }
            _ => s
                .exp_avg_sq
                .iter_mut()
                .zip(&sq)
                .zip(grad)
                .map(|((v, &q), g)| {
                    *v = add_alpha(*v * b2, q, w2);
                    (1.0 / v.sqrt()) * g
                })
                .collect(),
        };
        let clip = (rms(&update) / c.clip_threshold as f32).max(1.0);
        update.iter_mut().for_each(|u| *u = *u / clip * lr);
        if let Some(beta1) = c.beta1 {
            let (b1, w1) = (beta1 as f32, (1.0 - beta1) as f32);
            for (m, u) in s.exp_avg.iter_mut().zip(update.iter_mut()) {
                *m = add_alpha(*m * b1, *u, w1);
                *u = *m;
            }
        }
        if c.weight_decay != 0.0 {
            let alpha = -(c.weight_decay as f32) * lr;
            param.iter_mut().for_each(|p| *p = add_alpha(*p, *p, alpha));
        }
        for (p, u) in param.iter_mut().zip(&update) {
            *p = add_alpha(*p, -u, 1.0);
        }
    }
}

// ---------------------------------------------------------------------------------------
// What each state saves: its per-element vectors, and its scalars as JSON.

crate::state_parts!(SgdState {}[momentum_buffer]);
crate::state_parts!(AdamState { step: u64 } [exp_avg, exp_avg_sq, max_exp_avg_sq]);
crate::state_parts!(AdamaxState { step: u64 } [exp_avg, exp_inf]);
crate::state_parts!(NAdamState { step: u64, mu_product: f32 } [exp_avg, exp_avg_sq]);
crate::state_parts!(AdagradState { step: u64 }[sum]);
crate::state_parts!(AdadeltaState {} [square_avg, acc_delta]);
crate::state_parts!(RmsPropState {} [square_avg, grad_avg, momentum_buffer]);
crate::state_parts!(RpropState {} [prev, step_size]);
crate::state_parts!(
    AsgdState {
        step: u64,
        eta: f32,
        mu: f32
    }[ax]
);
crate::state_parts!(AdafactorState { step: u64 } [row_var, col_var, variance]);
crate::state_parts!(HfAdafactorState { step: u64, rms: f32 } [exp_avg, exp_avg_sq_row, exp_avg_sq_col, exp_avg_sq]);
