//! Adafactor, as torch (`torch.optim.Adafactor`) and as transformers
//! (`transformers.optimization.Adafactor`) compute it.

use crate::ops::{add_alpha, check, hyper, lerp, norm2};
use crate::{Algorithm, Hyper};
use serde::{Deserialize, Serialize};
use trustformers_core::Result;

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
        let scale = f64::from(norm2(&*param)) / (n as f64).sqrt();
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
                        let norm = norm2(row);
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
        let rms = f64::from(norm2(&update)) / ((n as f64).sqrt() * c.d);
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
    norm2(values) / (values.len() as f64).sqrt() as f32
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

crate::state_parts!(AdafactorState { step: u64 } [row_var, col_var, variance]);
crate::state_parts!(HfAdafactorState { step: u64, rms: f32 } [exp_avg, exp_avg_sq_row, exp_avg_sq_col, exp_avg_sq]);
