//! What the optimizers share: element-wise operations rounded as ATen rounds them, the
//! reference constructors' argument checks, and the [`Hyper`](crate::Hyper) boilerplate.
//!
//! ATen's CPU kernels are compiled with floating-point contraction: `a + b * c` is one fused
//! multiply-add there, and so here, or the last bit differs.

use std::borrow::Borrow;
use trustformers_core::{Error, Result};

/// torch's `lerp` on floats: `s + w * (e - s)` below `|w| = 0.5`, `e - (e - s) * (1 - w)`
/// from it, each one fused multiply-add.
pub(crate) fn lerp(s: f32, e: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        lerp_with::<true>(s, e, w)
    } else {
        lerp_with::<false>(s, e, w)
    }
}

/// [`lerp`] with the formula chosen by the caller (`SMALL_W`: `|w| < 0.5`), for loops that
/// choose it once.
#[inline(always)]
pub(crate) fn lerp_with<const SMALL_W: bool>(s: f32, e: f32, w: f32) -> f32 {
    if SMALL_W {
        w.mul_add(e - s, s)
    } else {
        (-(e - s)).mul_add(1.0 - w, e)
    }
}

/// Whether every value is finite: in parallel over blocks, each a branch-free loop.
pub(crate) fn all_finite(values: &[f32]) -> bool {
    use rayon::prelude::*;
    const EXPONENT: u32 = 0x7f80_0000;
    values.par_chunks(1 << 16).all(|block| {
        let special = block.iter().fold(0u32, |acc, v| {
            acc | u32::from(v.to_bits() & EXPONENT == EXPONENT)
        });
        special == 0
    })
}

/// `self + value * t1 * t2` (`addcmul`).
pub(crate) fn addcmul(this: f32, value: f32, t1: f32, t2: f32) -> f32 {
    (value * t1).mul_add(t2, this)
}

/// `self + alpha * other`, as ATen's `add(other, alpha=...)` computes it: one fused
/// multiply-add.
pub(crate) fn add_alpha(this: f32, other: f32, alpha: f32) -> f32 {
    other.mul_add(alpha, this)
}

/// `grad` for the step: negated when maximizing, with L2 weight decay `wd * p` added
/// (`grad.add(param, alpha=weight_decay)`).
pub(crate) fn effective_grad(g: f32, p: f32, maximize: bool, wd: f32) -> f32 {
    let g = if maximize { -g } else { g };
    if wd != 0.0 {
        add_alpha(g, p, wd)
    } else {
        g
    }
}

/// torch's `sign`: ±1, and zero (of either sign) and NaN as they are.
pub(crate) fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// The L2 norm: the square root of the sum of squares, accumulated in f32 in order.
pub(crate) fn norm2<T: Borrow<f32>>(values: impl IntoIterator<Item = T>) -> f32 {
    values
        .into_iter()
        .fold(0.0f32, |acc, v| acc + v.borrow() * v.borrow())
        .sqrt()
}

/// The cautious-optimizer mask (Liang et al.): 1 where the update and the gradient agree
/// in sign, rescaled by its mean (at least 1e-3), 0 elsewhere.
pub(crate) fn caution_mask(update: &[f32], grad: &[f32]) -> Vec<f32> {
    let mask: Vec<f32> = update
        .iter()
        .zip(grad)
        .map(|(u, g)| if u * g > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let mean = (mask.iter().sum::<f32>() / mask.len().max(1) as f32).max(1e-3);
    mask.into_iter().map(|m| m / mean).collect()
}

/// An error naming `field` unless `ok`.
pub(crate) fn check(ok: bool, field: &str, message: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, message))
    }
}

pub(crate) fn check_lr(lr: f64) -> Result<()> {
    check(lr >= 0.0, "lr", format!("Invalid learning rate: {lr}"))
}

pub(crate) fn check_eps(eps: f64) -> Result<()> {
    check(eps >= 0.0, "eps", format!("Invalid epsilon value: {eps}"))
}

/// `field` at least 0, with torch's message (`Invalid momentum value: -1`).
pub(crate) fn check_nonnegative(field: &str, value: f64) -> Result<()> {
    check(
        value >= 0.0,
        field,
        format!("Invalid {field} value: {value}"),
    )
}

pub(crate) fn check_weight_decay(wd: f64) -> Result<()> {
    check_nonnegative("weight_decay", wd)
}

/// SGD's rule (and timm's LARS's): Nesterov momentum needs a momentum and no dampening.
pub(crate) fn check_nesterov(nesterov: bool, momentum: f64, dampening: f64) -> Result<()> {
    check(
        !nesterov || (momentum > 0.0 && dampening == 0.0),
        "nesterov",
        "Nesterov momentum requires a momentum and zero dampening".into(),
    )
}

pub(crate) fn check_betas(betas: &[f64]) -> Result<()> {
    for (i, b) in betas.iter().enumerate() {
        check(
            (0.0..1.0).contains(b),
            "betas",
            format!("Invalid beta parameter at index {i}: {b}"),
        )?;
    }
    Ok(())
}

/// `impl Hyper` for a config with an `lr` field: its checks, and optionally which field
/// one-cycle and cyclic schedules move as momentum (`momentum`, or `beta1` for `betas[0]`)
/// and further items (`{ fn constructed(&mut self) { ... } }`).
macro_rules! hyper {
    ($config:ty, |$c:ident| $validate:block $(, { $($extra:item)* })?) => {
        hyper!(@impl $config, |$c| $validate, { $($($extra)*)? });
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
        impl $crate::Hyper for $config {
            fn lr(&self) -> f64 {
                self.lr
            }
            fn set_lr(&mut self, lr: f64) {
                self.lr = lr;
            }
            fn validate(&self) -> trustformers_core::Result<()> {
                let $c = self;
                $validate
            }
            $($extra)*
        }
    };
}
pub(crate) use hyper;
