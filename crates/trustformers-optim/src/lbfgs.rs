//! torch's `LBFGS`: limited-memory BFGS over all parameters as one flat vector, taking a
//! closure that re-evaluates the loss and the gradients, with an optional strong-Wolfe line
//! search. Scalars that torch keeps in f32 tensors (dot products, the step `t` of the first
//! iteration) are kept in f32 here too.

use crate::Param;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use trustformers_core::{Error, Result};
use trustformers_nn::kernels::with_f32;

/// `torch.optim.LBFGS`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LbfgsConfig {
    pub lr: f64,
    pub max_iter: u64,
    /// Default `max_iter * 5 / 4`.
    pub max_eval: Option<u64>,
    pub tolerance_grad: f64,
    pub tolerance_change: f64,
    pub history_size: usize,
    /// `None` or `"strong_wolfe"`.
    pub line_search_fn: Option<String>,
    pub maximize: bool,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        Self {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search_fn: None,
            maximize: false,
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |acc, (x, y)| acc + x * y)
}

fn abs_max(a: &[f32]) -> f32 {
    a.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// `a += alpha * b`, one fused multiply-add per element as ATen's `add_(alpha=...)`.
fn axpy(a: &mut [f32], b: &[f32], alpha: f32) {
    a.iter_mut()
        .zip(b)
        .for_each(|(x, y)| *x = y.mul_add(alpha, *x));
}

/// The loss and every parameter's gradient at the parameters' current values.
pub type Closure<'a> = dyn FnMut() -> Result<(f64, GradStore)> + 'a;

/// `torch.optim.LBFGS` over `params` (one group, as torch requires).
pub struct Lbfgs {
    params: Vec<Param>,
    config: LbfgsConfig,
    max_eval: u64,
    func_evals: u64,
    n_iter: u64,
    d: Vec<f32>,
    t: S,
    old_dirs: Vec<Vec<f32>>,
    old_stps: Vec<Vec<f32>>,
    ro: Vec<f32>,
    h_diag: f32,
    prev_flat_grad: Vec<f32>,
    prev_loss: f64,
}

impl Lbfgs {
    pub fn new(params: Vec<Param>, config: LbfgsConfig) -> Result<Self> {
        if config.lr < 0.0 {
            return Err(Error::config(
                "lr",
                format!("Invalid learning rate: {}", config.lr),
            ));
        }
        if let Some(f) = &config.line_search_fn {
            if f != "strong_wolfe" {
                return Err(Error::config(
                    "line_search_fn",
                    "only 'strong_wolfe' is supported",
                ));
            }
        }
        let max_eval = config.max_eval.unwrap_or(config.max_iter * 5 / 4);
        Ok(Self {
            params,
            config,
            max_eval,
            func_evals: 0,
            n_iter: 0,
            d: Vec::new(),
            t: S::Py(0.0),
            old_dirs: Vec::new(),
            old_stps: Vec::new(),
            ro: Vec::new(),
            h_diag: 1.0,
            prev_flat_grad: Vec::new(),
            prev_loss: 0.0,
        })
    }

    /// Function evaluations so far.
    pub fn func_evals(&self) -> u64 {
        self.func_evals
    }

    fn flat_grad(&self, grads: &GradStore) -> Result<Vec<f32>> {
        let mut flat = Vec::new();
        for p in &self.params {
            match grads.get(p.var.as_tensor()) {
                Some(g) => with_f32(g, |g| {
                    flat.extend_from_slice(g);
                    Ok(())
                })?,
                None => flat.extend(std::iter::repeat_n(0.0, p.var.elem_count())),
            }
        }
        if self.config.maximize {
            flat.iter_mut().for_each(|g| *g = -*g);
        }
        Ok(flat)
    }

    fn flat_params(&self) -> Result<Vec<f32>> {
        let mut flat = Vec::new();
        for p in &self.params {
            with_f32(p.var.as_tensor(), |v| {
                flat.extend_from_slice(v);
                Ok(())
            })?;
        }
        Ok(flat)
    }

    fn set_params(&self, flat: &[f32]) -> Result<()> {
        let mut offset = 0;
        for p in &self.params {
            let n = p.var.elem_count();
            let t = Tensor::from_slice(&flat[offset..offset + n], p.var.shape(), p.var.device())?;
            p.var.set(&t)?;
            offset += n;
        }
        Ok(())
    }

    /// `params += step * update`.
    fn add_grad(&self, step: f32, update: &[f32]) -> Result<()> {
        let mut x = self.flat_params()?;
        axpy(&mut x, update, step);
        self.set_params(&x)
    }

    fn evaluate(&self, closure: &mut Closure<'_>) -> Result<(f64, Vec<f32>)> {
        let (loss, grads) = closure()?;
        let loss = if self.config.maximize { -loss } else { loss };
        // torch reads the loss through float(f32 tensor).
        Ok((f64::from(loss as f32), self.flat_grad(&grads)?))
    }

    /// One `step(closure)`: up to `max_iter` iterations; returns the loss of the first
    /// evaluation.
    pub fn step(&mut self, closure: &mut Closure<'_>) -> Result<f64> {
        let c = self.config.clone();
        let (mut loss, mut flat_grad) = self.evaluate(closure)?;
        let orig_loss = if c.maximize { -loss } else { loss };
        let mut current_evals = 1;
        self.func_evals += 1;
        // torch compares its f32 tensors with the tolerances as f32.
        let (tol_grad, tol_change) = (c.tolerance_grad as f32, c.tolerance_change as f32);
        if abs_max(&flat_grad) <= tol_grad {
            return Ok(orig_loss);
        }
        let mut n_iter = 0;
        while n_iter < c.max_iter {
            n_iter += 1;
            self.n_iter += 1;
            if self.n_iter == 1 {
                self.d = flat_grad.iter().map(|g| -g).collect();
                self.old_dirs.clear();
                self.old_stps.clear();
                self.ro.clear();
                self.h_diag = 1.0;
            } else {
                let y: Vec<f32> = flat_grad
                    .iter()
                    .zip(&self.prev_flat_grad)
                    .map(|(a, b)| a - b)
                    .collect();
                let t = self.t.f32();
                let s: Vec<f32> = self.d.iter().map(|d| d * t).collect();
                let ys = dot(&y, &s);
                if ys > 1e-10 {
                    if self.old_dirs.len() == c.history_size {
                        self.old_dirs.remove(0);
                        self.old_stps.remove(0);
                        self.ro.remove(0);
                    }
                    self.h_diag = ys / dot(&y, &y);
                    self.old_dirs.push(y);
                    self.old_stps.push(s);
                    self.ro.push(1.0 / ys);
                }
                let num_old = self.old_dirs.len();
                let mut al = vec![0f32; num_old];
                let mut q: Vec<f32> = flat_grad.iter().map(|g| -g).collect();
                for i in (0..num_old).rev() {
                    al[i] = dot(&self.old_stps[i], &q) * self.ro[i];
                    axpy(&mut q, &self.old_dirs[i], -al[i]);
                }
                let mut r: Vec<f32> = q.iter().map(|v| v * self.h_diag).collect();
                for (i, &al_i) in al.iter().enumerate() {
                    let be_i = dot(&self.old_dirs[i], &r) * self.ro[i];
                    axpy(&mut r, &self.old_stps[i], al_i - be_i);
                }
                self.d = r;
            }
            self.prev_flat_grad = flat_grad.clone();
            self.prev_loss = loss;
            // `min(1.0, 1.0 / flat_grad.abs().sum()) * lr`: a tensor when the sum wins.
            self.t = if self.n_iter == 1 {
                let sum: f32 = flat_grad.iter().map(|g| g.abs()).sum();
                S::min(S::Py(1.0), S::Py(1.0).div(S::T(sum))).mul(S::Py(c.lr))
            } else {
                S::Py(c.lr)
            };
            let gtd = dot(&flat_grad, &self.d);
            if gtd > -tol_change {
                break;
            }
            let mut ls_func_evals = 0;
            let opt_cond;
            if c.line_search_fn.is_some() {
                let x_init = self.flat_params()?;
                let d = self.d.clone();
                let (f_new, g_new, t, evals) = self.strong_wolfe(
                    closure,
                    &x_init,
                    self.t,
                    &d,
                    loss,
                    &flat_grad,
                    gtd,
                    self.max_eval.saturating_sub(current_evals),
                )?;
                loss = f_new;
                flat_grad = g_new;
                self.t = t;
                ls_func_evals = evals;
                self.add_grad(self.t.f32(), &d)?;
                opt_cond = abs_max(&flat_grad) <= tol_grad;
            } else {
                let d = self.d.clone();
                self.add_grad(self.t.f32(), &d)?;
                if n_iter != c.max_iter {
                    let (l, g) = self.evaluate(closure)?;
                    loss = l;
                    flat_grad = g;
                    ls_func_evals = 1;
                    opt_cond = abs_max(&flat_grad) <= tol_grad;
                } else {
                    opt_cond = false;
                }
            }
            current_evals += ls_func_evals;
            self.func_evals += ls_func_evals;
            if n_iter == c.max_iter || current_evals >= self.max_eval || opt_cond {
                break;
            }
            let t = self.t.f32();
            let moved = self.d.iter().fold(0f32, |m, d| m.max((d * t).abs()));
            if f64::from(moved) <= c.tolerance_change
                || (loss - self.prev_loss).abs() < c.tolerance_change
            {
                break;
            }
        }
        Ok(orig_loss)
    }

    /// The loss and gradient at `x + t * d`; the parameters are put back to `x`.
    fn directional(
        &self,
        closure: &mut Closure<'_>,
        x: &[f32],
        t: f32,
        d: &[f32],
    ) -> Result<(f64, Vec<f32>)> {
        self.add_grad(t, d)?;
        let out = self.evaluate(closure)?;
        self.set_params(x)?;
        Ok(out)
    }

    /// torch's `_strong_wolfe` (c1 = 1e-4, c2 = 0.9): the accepted loss, gradient, step and
    /// the evaluations it took. Its scalars are Python floats or f32 tensors as in torch
    /// ([`S`]), so that every comparison rounds as there.
    #[allow(clippy::too_many_arguments)]
    fn strong_wolfe(
        &self,
        closure: &mut Closure<'_>,
        x: &[f32],
        mut t: S,
        d: &[f32],
        f: f64,
        g: &[f32],
        gtd: f32,
        max_ls: u64,
    ) -> Result<(f64, Vec<f32>, S, u64)> {
        let (c1, c2) = (S::Py(1e-4), S::Py(0.9));
        let tolerance_change = S::Py(self.config.tolerance_change);
        let (f, gtd) = (S::Py(f), S::T(gtd));
        let d_norm = S::T(abs_max(d));
        let (f_new0, mut g_new) = self.directional(closure, x, t.f32(), d)?;
        let mut f_new = S::Py(f_new0);
        let mut evals = 1;
        let mut gtd_new = S::T(dot(&g_new, d));
        let (mut t_prev, mut f_prev, mut g_prev, mut gtd_prev) = (S::Py(0.0), f, g.to_vec(), gtd);
        let mut done = false;
        let mut ls_iter = 0;
        let armijo = |f_new: S, t: S| f_new.gt(f.add(c1.mul(t).mul(gtd)));
        let (mut bracket, mut bracket_f, mut bracket_g, mut bracket_gtd);
        loop {
            if ls_iter >= max_ls {
                bracket = vec![S::Py(0.0), t];
                bracket_f = vec![f, f_new];
                bracket_g = vec![g.to_vec(), g_new.clone()];
                bracket_gtd = vec![gtd, gtd_new];
                break;
            }
            if armijo(f_new, t) || (ls_iter > 1 && f_new.ge(f_prev)) {
                bracket = vec![t_prev, t];
                bracket_f = vec![f_prev, f_new];
                bracket_g = vec![g_prev.clone(), g_new.clone()];
                bracket_gtd = vec![gtd_prev, gtd_new];
                break;
            }
            if gtd_new.abs().le(c2.neg().mul(gtd)) {
                bracket = vec![t];
                bracket_f = vec![f_new];
                bracket_g = vec![g_new.clone()];
                bracket_gtd = vec![gtd_new];
                done = true;
                break;
            }
            if gtd_new.ge(S::Py(0.0)) {
                bracket = vec![t_prev, t];
                bracket_f = vec![f_prev, f_new];
                bracket_g = vec![g_prev.clone(), g_new.clone()];
                bracket_gtd = vec![gtd_prev, gtd_new];
                break;
            }
            let min_step = t.add(S::Py(0.01).mul(t.sub(t_prev)));
            let max_step = t.mul(S::Py(10.0));
            let tmp = t;
            t = cubic_interpolate(
                t_prev,
                f_prev,
                gtd_prev,
                t,
                f_new,
                gtd_new,
                Some((min_step, max_step)),
            );
            t_prev = tmp;
            f_prev = f_new;
            g_prev = g_new.clone();
            gtd_prev = gtd_new;
            let (fv, gv) = self.directional(closure, x, t.f32(), d)?;
            f_new = S::Py(fv);
            g_new = gv;
            evals += 1;
            gtd_new = S::T(dot(&g_new, d));
            ls_iter += 1;
        }
        let mut insuf_progress = false;
        let last = bracket_f.len() - 1;
        let (mut low, mut high) = if bracket_f[0].le(bracket_f[last]) {
            (0, 1)
        } else {
            (1, 0)
        };
        while !done && ls_iter < max_ls {
            if bracket[1]
                .sub(bracket[0])
                .abs()
                .mul(d_norm)
                .lt(tolerance_change)
            {
                break;
            }
            t = cubic_interpolate(
                bracket[0],
                bracket_f[0],
                bracket_gtd[0],
                bracket[1],
                bracket_f[1],
                bracket_gtd[1],
                None,
            );
            let bmax = S::max(bracket[0], bracket[1]);
            let bmin = S::min(bracket[0], bracket[1]);
            let eps = S::Py(0.1).mul(bmax.sub(bmin));
            if S::min(bmax.sub(t), t.sub(bmin)).lt(eps) {
                if insuf_progress || t.ge(bmax) || t.le(bmin) {
                    t = if t.sub(bmax).abs().lt(t.sub(bmin).abs()) {
                        bmax.sub(eps)
                    } else {
                        bmin.add(eps)
                    };
                    insuf_progress = false;
                } else {
                    insuf_progress = true;
                }
            } else {
                insuf_progress = false;
            }
            let (fv, gv) = self.directional(closure, x, t.f32(), d)?;
            f_new = S::Py(fv);
            g_new = gv;
            evals += 1;
            gtd_new = S::T(dot(&g_new, d));
            ls_iter += 1;
            if armijo(f_new, t) || f_new.ge(bracket_f[low]) {
                bracket[high] = t;
                bracket_f[high] = f_new;
                bracket_g[high] = g_new.clone();
                bracket_gtd[high] = gtd_new;
                (low, high) = if bracket_f[0].le(bracket_f[1]) {
                    (0, 1)
                } else {
                    (1, 0)
                };
            } else {
                if gtd_new.abs().le(c2.neg().mul(gtd)) {
                    done = true;
                } else if gtd_new.mul(bracket[high].sub(bracket[low])).ge(S::Py(0.0)) {
                    bracket[high] = bracket[low];
                    bracket_f[high] = bracket_f[low];
                    bracket_g[high] = bracket_g[low].clone();
                    bracket_gtd[high] = bracket_gtd[low];
                }
                bracket[low] = t;
                bracket_f[low] = f_new;
                bracket_g[low] = g_new.clone();
                bracket_gtd[low] = gtd_new;
            }
        }
        let low = low.min(bracket.len() - 1);
        Ok((
            bracket_f[low].f64(),
            bracket_g[low].clone(),
            bracket[low],
            evals,
        ))
    }
}

/// A scalar as torch's LBFGS holds it: a Python float (f64) or a 0-dim f32 tensor. An
/// operation with a tensor is a tensor, computed in f32 (the float rounded to f32 first); two
/// floats stay a float. Comparisons with a tensor are made in f32.
#[derive(Debug, Clone, Copy)]
pub enum S {
    Py(f64),
    T(f32),
}

impl S {
    fn f32(self) -> f32 {
        match self {
            Self::Py(x) => x as f32,
            Self::T(x) => x,
        }
    }
    fn f64(self) -> f64 {
        match self {
            Self::Py(x) => x,
            Self::T(x) => f64::from(x),
        }
    }
    fn op(self, o: S, f64op: fn(f64, f64) -> f64, f32op: fn(f32, f32) -> f32) -> S {
        match (self, o) {
            (Self::Py(a), Self::Py(b)) => Self::Py(f64op(a, b)),
            _ => Self::T(f32op(self.f32(), o.f32())),
        }
    }
    fn add(self, o: S) -> S {
        self.op(o, |a, b| a + b, |a, b| a + b)
    }
    fn sub(self, o: S) -> S {
        self.op(o, |a, b| a - b, |a, b| a - b)
    }
    fn mul(self, o: S) -> S {
        self.op(o, |a, b| a * b, |a, b| a * b)
    }
    fn div(self, o: S) -> S {
        self.op(o, |a, b| a / b, |a, b| a / b)
    }
    fn neg(self) -> S {
        match self {
            Self::Py(x) => Self::Py(-x),
            Self::T(x) => Self::T(-x),
        }
    }
    fn abs(self) -> S {
        match self {
            Self::Py(x) => Self::Py(x.abs()),
            Self::T(x) => Self::T(x.abs()),
        }
    }
    fn sqrt(self) -> S {
        match self {
            Self::Py(x) => Self::Py(x.sqrt()),
            Self::T(x) => Self::T(x.sqrt()),
        }
    }
    fn cmp(self, o: S) -> Option<std::cmp::Ordering> {
        match (self, o) {
            (Self::Py(a), Self::Py(b)) => a.partial_cmp(&b),
            _ => self.f32().partial_cmp(&o.f32()),
        }
    }
    fn lt(self, o: S) -> bool {
        self.cmp(o) == Some(std::cmp::Ordering::Less)
    }
    fn gt(self, o: S) -> bool {
        self.cmp(o) == Some(std::cmp::Ordering::Greater)
    }
    fn le(self, o: S) -> bool {
        matches!(
            self.cmp(o),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        )
    }
    fn ge(self, o: S) -> bool {
        matches!(
            self.cmp(o),
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        )
    }
    /// Python's `min(a, b)`: `b` if `b < a`, else `a`.
    fn min(a: S, b: S) -> S {
        if b.lt(a) {
            b
        } else {
            a
        }
    }
    /// Python's `max(a, b)`: `b` if `b > a`, else `a`.
    fn max(a: S, b: S) -> S {
        if b.gt(a) {
            b
        } else {
            a
        }
    }
}

/// torch's `_cubic_interpolate`: the minimum of the cubic through two points with their
/// slopes, within `bounds` (the points' interval by default).
fn cubic_interpolate(x1: S, f1: S, g1: S, x2: S, f2: S, g2: S, bounds: Option<(S, S)>) -> S {
    let (lo, hi) = bounds.unwrap_or(if x1.le(x2) { (x1, x2) } else { (x2, x1) });
    let three = S::Py(3.0);
    let d1 = g1.add(g2).sub(three.mul(f1.sub(f2)).div(x1.sub(x2)));
    let d2_square = d1.mul(d1).sub(g1.mul(g2));
    if d2_square.ge(S::Py(0.0)) {
        let d2 = d2_square.sqrt();
        let two = S::Py(2.0);
        let min_pos = if x1.le(x2) {
            x2.sub(
                x2.sub(x1)
                    .mul(g2.add(d2).sub(d1).div(g2.sub(g1).add(two.mul(d2)))),
            )
        } else {
            x1.sub(
                x1.sub(x2)
                    .mul(g1.add(d2).sub(d1).div(g1.sub(g2).add(two.mul(d2)))),
            )
        };
        S::min(S::max(min_pos, lo), hi)
    } else {
        lo.add(hi).div(S::Py(2.0))
    }
}
