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

impl Hyper for AdaBeliefConfig {
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
        check(
            self.eps >= 0.0,
            "eps",
            format!("Invalid epsilon value: {}", self.eps),
        )?;
        for (i, b) in self.betas.iter().enumerate() {
            check(
                (0.0..1.0).contains(b),
                "betas",
                format!("Invalid beta parameter at index {i}: {b}"),
            )?;
        }
        Ok(())
    }
}

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

impl Hyper for AdanConfig {
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
        check(
            self.eps >= 0.0,
            "eps",
            format!("Invalid epsilon value: {}", self.eps),
        )?;
        for (i, b) in self.betas.iter().enumerate() {
            check(
                (0.0..1.0).contains(b),
                "betas",
                format!("Invalid beta parameter at index {i}: {b}"),
            )?;
        }
        Ok(())
    }
}

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

/// `timm.optim.Lars`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LarsConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub trust_coeff: f64,
    pub eps: f64,
    /// Clip the trust ratio divided by the rate at 1 (LARC's clipping).
    pub trust_clip: bool,
    /// Adapt by the trust ratio even without weight decay.
    pub always_adapt: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        Self {
            lr: 1.0,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            trust_coeff: 0.001,
            eps: 1e-8,
            trust_clip: false,
            always_adapt: false,
        }
    }
}

impl Hyper for LarsConfig {
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
        check(
            self.momentum >= 0.0,
            "momentum",
            format!("Invalid momentum value: {}", self.momentum),
        )?;
        check(
            self.weight_decay >= 0.0,
            "weight_decay",
            format!("Invalid weight_decay value: {}", self.weight_decay),
        )?;
        check(
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            "nesterov",
            "Nesterov momentum requires a momentum and zero dampening".into(),
        )
    }
}

/// Lars's momentum buffer, made at the first step.
#[derive(Debug, Clone)]
pub struct LarsState {
    pub momentum_buffer: Vec<f32>,
}

/// `timm.optim.Lars` (You et al., layer-wise adaptive rate scaling).
pub struct Lars;

/// The L2 norm, accumulated in f32 in order.
fn norm2(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |acc, v| acc + v * v).sqrt()
}

impl Algorithm for Lars {
    const NAME: &'static str = "Lars";
    type Config = LarsConfig;
    type State = LarsState;

    fn init(_: &LarsConfig, _: &[usize]) -> LarsState {
        LarsState {
            momentum_buffer: Vec::new(),
        }
    }

    #[inline(always)]
    fn update(c: &LarsConfig, _: &[usize], param: &mut [f32], grad: &[f32], s: &mut LarsState) {
        let mut g = grad.to_vec();
        if c.weight_decay != 0.0 || c.always_adapt {
            let (w_norm, g_norm) = (norm2(param), norm2(grad));
            let mut ratio = c.trust_coeff as f32 * w_norm
                / (g_norm + w_norm * c.weight_decay as f32 + c.eps as f32);
            if w_norm <= 0.0 || g_norm <= 0.0 {
                ratio = 1.0;
            }
            if c.trust_clip {
                ratio = (ratio / c.lr as f32).min(1.0);
            }
            for (g, p) in g.iter_mut().zip(param.iter()) {
                *g = add_alpha(*g, *p, c.weight_decay as f32) * ratio;
            }
        }
        if c.momentum != 0.0 {
            let (m, keep) = (c.momentum as f32, (1.0 - c.dampening) as f32);
            if s.momentum_buffer.is_empty() {
                s.momentum_buffer = g.clone();
            } else {
                for (b, g) in s.momentum_buffer.iter_mut().zip(&g) {
                    *b = add_alpha(*b * m, *g, keep);
                }
            }
            for (g, b) in g.iter_mut().zip(&s.momentum_buffer) {
                *g = if c.nesterov { add_alpha(*g, *b, m) } else { *b };
            }
        }
        let neg_lr = -c.lr as f32;
        for (p, g) in param.iter_mut().zip(&g) {
            *p = add_alpha(*p, *g, neg_lr);
        }
    }
}

crate::state_parts!(LarsState {}[momentum_buffer]);

/// `timm.optim.Lookahead` (Zhang et al.) around any optimizer: every `k` steps the slow
/// weights move `alpha` of the way to the fast ones, and the fast weights restart from
/// them. As in timm, the slow weights start as the fast weights at the first sync.
pub struct Lookahead {
    inner: Box<dyn crate::Optim>,
    params: Vec<crate::Param>,
    alpha: f64,
    k: u64,
    step: u64,
    slow: Vec<Option<Vec<f32>>>,
}

impl Lookahead {
    /// Wraps `inner`, which steps `params`; `alpha` in [0, 1], `k` at least 1.
    pub fn new(
        inner: Box<dyn crate::Optim>,
        params: Vec<crate::Param>,
        alpha: f64,
        k: u64,
    ) -> Result<Self> {
        check(
            (0.0..=1.0).contains(&alpha),
            "alpha",
            format!("Invalid slow update rate: {alpha}"),
        )?;
        check(k >= 1, "k", format!("Invalid lookahead steps: {k}"))?;
        let slow = vec![None; params.len()];
        Ok(Self {
            inner,
            params,
            alpha,
            k,
            step: 0,
            slow,
        })
    }

    /// From keyword arguments: `optimizer` (the inner one's name), `optimizer_kwargs`,
    /// `alpha` (0.5) and `k` (6).
    pub fn from_kwargs(groups: Vec<crate::GroupSpec>, kwargs: &serde_json::Value) -> Result<Self> {
        let params: Vec<crate::Param> = groups.iter().flat_map(|g| g.params.clone()).collect();
        let name = kwargs
            .get("optimizer")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                Error::config("optimizer", "Lookahead needs the inner optimizer's name")
            })?;
        if let Some(k) = kwargs.as_object().and_then(|m| {
            m.keys()
                .find(|k| !["optimizer", "optimizer_kwargs", "alpha", "k"].contains(&k.as_str()))
        }) {
            return Err(Error::config(
                k.clone(),
                "Lookahead takes optimizer, optimizer_kwargs, alpha, k",
            ));
        }
        let empty = serde_json::json!({});
        let inner = crate::by_name(
            name,
            params.clone(),
            kwargs.get("optimizer_kwargs").unwrap_or(&empty),
        )?;
        let alpha = match kwargs.get("alpha") {
            None => 0.5,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| Error::config("alpha", format!("must be a number, got {v}")))?,
        };
        let k = match kwargs.get("k") {
            None => 6,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| Error::config("k", format!("must be a step count, got {v}")))?,
        };
        Self::new(inner, params, alpha, k)
    }
}

impl crate::Optim for Lookahead {
    fn name(&self) -> &'static str {
        "Lookahead"
    }

    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.inner.step(grads)?;
        self.step += 1;
        if !self.step.is_multiple_of(self.k) {
            return Ok(());
        }
        let alpha = self.alpha as f32;
        for (param, slow) in self.params.iter().zip(self.slow.iter_mut()) {
            if grads.get(param.var.as_tensor()).is_none() {
                continue;
            }
            let fast =
                trustformers_nn::kernels::with_f32(param.var.as_tensor(), |p| Ok(p.to_vec()))?;
            let slow = slow.get_or_insert_with(|| fast.clone());
            for (s, f) in slow.iter_mut().zip(&fast) {
                *s = add_alpha(*s, f - *s, alpha);
            }
            let t = candle_core::Tensor::from_slice(slow, param.var.shape(), param.var.device())?;
            param.var.set(&t)?;
        }
        Ok(())
    }

    fn learning_rates(&self) -> Vec<f64> {
        self.inner.learning_rates()
    }

    fn set_learning_rates(&mut self, lrs: &[f64]) -> Result<()> {
        self.inner.set_learning_rates(lrs)
    }

    fn save(&self, prefix: &std::path::Path) -> Result<()> {
        self.inner.save(prefix)?;
        let mut tensors = std::collections::HashMap::new();
        for (param, slow) in self.params.iter().zip(&self.slow) {
            if let Some(v) = slow {
                let t = candle_core::Tensor::from_slice(v, v.len(), &candle_core::Device::Cpu)?;
                tensors.insert(format!("{}.lookahead_slow_buff", param.name), t);
            }
        }
        let mut path = prefix.as_os_str().to_owned();
        path.push(".lookahead.safetensors");
        let path = std::path::PathBuf::from(path);
        // The step count rides in the tensors file as a one-value tensor.
        tensors.insert(
            "lookahead_step".into(),
            candle_core::Tensor::new(&[self.step as f64], &candle_core::Device::Cpu)?,
        );
        candle_core::safetensors::save(&tensors, &path)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
    }

    fn load(&mut self, prefix: &std::path::Path) -> Result<()> {
        self.inner.load(prefix)?;
        let mut path = prefix.as_os_str().to_owned();
        path.push(".lookahead.safetensors");
        let path = std::path::PathBuf::from(path);
        let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
        self.step = tensors
            .get("lookahead_step")
            .and_then(|t| t.to_vec1::<f64>().ok())
            .and_then(|v| v.first().copied())
            .ok_or_else(|| Error::config(path.display().to_string(), "no lookahead_step"))?
            as u64;
        for (param, slow) in self.params.iter().zip(self.slow.iter_mut()) {
            *slow = match tensors.get(&format!("{}.lookahead_slow_buff", param.name)) {
                Some(t) => {
                    let v = t.to_vec1::<f32>()?;
                    if v.len() != param.var.elem_count() {
                        return Err(Error::config(
                            path.display().to_string(),
                            format!("`{}`'s slow weights have {} values", param.name, v.len()),
                        ));
                    }
                    Some(v)
                }
                None => None,
            };
        }
        Ok(())
    }

    fn momenta(&self) -> Vec<Option<f64>> {
        self.inner.momenta()
    }

    fn set_momenta(&mut self, momenta: &[f64]) -> Result<()> {
        self.inner.set_momenta(momenta)
    }

    fn train(&mut self) -> Result<()> {
        self.inner.train()
    }

    fn eval(&mut self) -> Result<()> {
        self.inner.eval()
    }
}

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

impl Hyper for LambConfig {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("lr", self.lr),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ] {
            check(
                v.is_finite() && v >= 0.0,
                field,
                format!("Invalid {field} value: {v}"),
            )?;
        }
        Ok(())
    }
    fn constructed(&mut self) {
        self.max_lr_snapshot.get_or_insert(self.lr);
    }
}

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
            let (w_norm, u_norm) = (norm2(param), norm2(&update));
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

/// `timm.optim.MADGRAD`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MadgradConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub decoupled_decay: bool,
}

impl Default for MadgradConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            momentum: 0.9,
            weight_decay: 0.0,
            eps: 1e-6,
            decoupled_decay: false,
        }
    }
}

impl Hyper for MadgradConfig {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        check(
            (0.0..1.0).contains(&self.momentum),
            "momentum",
            format!("Momentum {} must be in the range [0,1]", self.momentum),
        )?;
        check(
            self.lr > 0.0,
            "lr",
            format!("Learning rate {} must be positive", self.lr),
        )?;
        check(
            self.weight_decay >= 0.0,
            "weight_decay",
            format!("Weight decay {} must be non-negative", self.weight_decay),
        )?;
        check(self.eps >= 0.0, "eps", "Eps must be non-negative".into())
    }
}

/// MADGRAD's dual averages and, with momentum, the starting point.
#[derive(Debug, Clone)]
pub struct MadgradState {
    pub step: u64,
    pub grad_sum_sq: Vec<f32>,
    pub s: Vec<f32>,
    pub x0: Vec<f32>,
}

/// `timm.optim.MADGRAD` (Defazio and Jelassi, dual averaging with a cube-root denominator).
pub struct Madgrad;

impl Algorithm for Madgrad {
    const NAME: &'static str = "MADGRAD";
    type Config = MadgradConfig;
    type State = MadgradState;

    fn init(_: &MadgradConfig, shape: &[usize]) -> MadgradState {
        let n: usize = shape.iter().product();
        MadgradState {
            step: 0,
            grad_sum_sq: vec![0.0; n],
            s: vec![0.0; n],
            // The parameter at the first step (with momentum).
            x0: Vec::new(),
        }
    }

    #[inline(always)]
    fn update(
        c: &MadgradConfig,
        _: &[usize],
        param: &mut [f32],
        grad: &[f32],
        s: &mut MadgradState,
    ) {
        if c.momentum != 0.0 && s.x0.len() != param.len() {
            s.x0 = param.to_vec();
        }
        s.step += 1;
        let lamb = ((c.lr + c.eps) * (s.step as f64).sqrt()) as f32;
        let ck = (1.0 - c.momentum) as f32;
        let (eps, third) = (c.eps as f32, (1.0f64 / 3.0) as f32);
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        for i in 0..param.len() {
            let mut g = grad[i];
            if c.weight_decay != 0.0 {
                if c.decoupled_decay {
                    param[i] *= decay;
                } else {
                    g = add_alpha(g, param[i], c.weight_decay as f32);
                }
            }
            let x0 = if c.momentum == 0.0 {
                let rms = s.grad_sum_sq[i].powf(third) + eps;
                param[i] + 1.0 * s.s[i] / rms
            } else {
                s.x0[i]
            };
            s.grad_sum_sq[i] = (lamb * g).mul_add(g, s.grad_sum_sq[i]);
            let rms = s.grad_sum_sq[i].powf(third) + eps;
            s.s[i] = add_alpha(s.s[i], g, lamb);
            let z = x0 + -s.s[i] / rms;
            param[i] = if c.momentum == 0.0 {
                z
            } else {
                add_alpha(param[i] * (1.0 - ck), z, ck)
            };
        }
    }
}

crate::state_parts!(MadgradState { step: u64 } [grad_sum_sq, s, x0]);

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

impl Hyper for NvNovoGradConfig {
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
        check(
            self.eps >= 0.0,
            "eps",
            format!("Invalid epsilon value: {}", self.eps),
        )?;
        for (i, b) in self.betas.iter().enumerate() {
            check(
                (0.0..1.0).contains(b),
                "betas",
                format!("Invalid beta parameter at index {i}: {b}"),
            )?;
        }
        Ok(())
    }
    fn constructed(&mut self) {
        self.max_lr_snapshot.get_or_insert(self.lr);
    }
}

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

impl Hyper for AdamPConfig {
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
        )
    }
    fn momentum(&self) -> Option<f64> {
        Some(self.betas[0])
    }
    fn set_momentum(&mut self, beta1: f64) {
        self.betas[0] = beta1;
    }
}

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

impl Hyper for SgdpConfig {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        check(
            self.lr.is_finite() && self.lr >= 0.0,
            "lr",
            "SGDP needs a learning rate (`lr` has no default)".into(),
        )
    }
    fn momentum(&self) -> Option<f64> {
        Some(self.momentum)
    }
    fn set_momentum(&mut self, momentum: f64) {
        self.momentum = momentum;
    }
}

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
