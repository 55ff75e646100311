//! torch's schedulers (`torch.optim.lr_scheduler`): `StepLR`, `MultiStepLR`,
//! `ExponentialLR`, `ReduceLROnPlateau`, `OneCycleLR` and `CyclicLR`.

use super::{Kwargs, Schedule};
use crate::Optim;
use serde_json::Value;
use std::f64::consts::PI;
use trustformers_core::{Error, Result};

/// torch's `StepLR(step_size, gamma=0.1)`, `MultiStepLR(milestones, gamma=0.1)` and
/// `ExponentialLR(gamma)`, by class name, with their keyword arguments.
pub fn torch_scheduler(name: &str, kwargs: &Value) -> Result<Schedule> {
    let k = Kwargs::new("kwargs", kwargs)?;
    let gamma = |default: Option<f64>| -> Result<f64> {
        k.f64("gamma")?
            .or(default)
            .ok_or_else(|| Error::config("gamma", format!("{name} needs `gamma`")))
    };
    Ok(match name {
        "StepLR" => {
            k.only(name, &["step_size", "gamma"])?;
            let step_size = k
                .u64("step_size")?
                .filter(|&s| s > 0)
                .ok_or_else(|| Error::config("step_size", "StepLR needs a positive `step_size`"))?;
            Schedule::StepLr {
                step_size,
                gamma: gamma(Some(0.1))?,
            }
        }
        "MultiStepLR" => {
            k.only(name, &["milestones", "gamma"])?;
            let milestones = match k.get("milestones") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_u64().ok_or_else(|| {
                            Error::config("milestones", format!("must be step counts, got {v}"))
                        })
                    })
                    .collect::<Result<Vec<u64>>>()?,
                _ => {
                    return Err(Error::config(
                        "milestones",
                        "MultiStepLR needs a list of `milestones`",
                    ))
                }
            };
            Schedule::MultiStepLr {
                milestones,
                gamma: gamma(Some(0.1))?,
            }
        }
        "ExponentialLR" => {
            k.only(name, &["gamma"])?;
            Schedule::ExponentialLr {
                gamma: gamma(None)?,
            }
        }
        other => {
            return Err(Error::config(
                "scheduler",
                format!("`{other}` is not one of StepLR, MultiStepLR, ExponentialLR"),
            ))
        }
    })
}

/// torch's `ReduceLROnPlateau`: every group's rate times `factor` (down to `min_lr`) once
/// the metric has not improved for more than `patience` steps, then `cooldown` steps of
/// rest.
#[derive(Debug, Clone)]
pub struct ReduceLrOnPlateau {
    maximize: bool,
    factor: f64,
    patience: u64,
    threshold: f64,
    relative: bool,
    cooldown: u64,
    min_lr: f64,
    eps: f64,
    best: f64,
    bad_steps: u64,
    cooldown_left: u64,
}

impl ReduceLrOnPlateau {
    /// From torch's keyword arguments (`mode`, `factor`, `patience`, `threshold`,
    /// `threshold_mode`, `cooldown`, `min_lr`, `eps`), with its defaults and checks.
    pub fn new(kwargs: &Value) -> Result<Self> {
        let k = Kwargs::new("kwargs", kwargs)?;
        k.only(
            "ReduceLROnPlateau",
            &[
                "mode",
                "factor",
                "patience",
                "threshold",
                "threshold_mode",
                "cooldown",
                "min_lr",
                "eps",
            ],
        )?;
        let maximize = match k.str("mode")?.unwrap_or("min") {
            "min" => false,
            "max" => true,
            other => return Err(Error::config("mode", format!("mode {other} is unknown!"))),
        };
        let relative = match k.str("threshold_mode")?.unwrap_or("rel") {
            "rel" => true,
            "abs" => false,
            other => {
                return Err(Error::config(
                    "threshold_mode",
                    format!("threshold mode {other} is unknown!"),
                ))
            }
        };
        let factor = k.f64("factor")?.unwrap_or(0.1);
        if factor >= 1.0 {
            return Err(Error::config("factor", "Factor should be < 1.0."));
        }
        Ok(Self {
            maximize,
            factor,
            patience: k.u64("patience")?.unwrap_or(10),
            threshold: k.f64("threshold")?.unwrap_or(1e-4),
            relative,
            cooldown: k.u64("cooldown")?.unwrap_or(0),
            min_lr: k.f64("min_lr")?.unwrap_or(0.0),
            eps: k.f64("eps")?.unwrap_or(1e-8),
            best: if maximize {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            },
            bad_steps: 0,
            cooldown_left: 0,
        })
    }

    fn better(&self, a: f64) -> bool {
        match (self.maximize, self.relative) {
            (false, true) => a < self.best * (1.0 - self.threshold),
            (false, false) => a < self.best - self.threshold,
            (true, true) => a > self.best * (self.threshold + 1.0),
            (true, false) => a > self.best + self.threshold,
        }
    }

    /// One step with the metric measured after it; lowers the rates when it has stalled.
    pub fn step(&mut self, optimizer: &mut dyn Optim, metric: f64) -> Result<()> {
        if self.better(metric) {
            self.best = metric;
            self.bad_steps = 0;
        } else {
            self.bad_steps += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_steps = 0;
        }
        if self.bad_steps > self.patience {
            let lrs: Vec<f64> = optimizer
                .learning_rates()
                .into_iter()
                .map(|old| {
                    let new = (old * self.factor).max(self.min_lr);
                    if old - new > self.eps {
                        new
                    } else {
                        old
                    }
                })
                .collect();
            optimizer.set_learning_rates(&lrs)?;
            self.cooldown_left = self.cooldown;
            self.bad_steps = 0;
        }
        Ok(())
    }
}

/// A list of per-group values from one number or a list of one per group (torch takes
/// either for `max_lr`, `base_lr`, momenta).
fn per_group(k: &Kwargs<'_>, key: &str, groups: usize, default: Option<f64>) -> Result<Vec<f64>> {
    match k.get(key) {
        None | Some(Value::Null) => default
            .map(|d| vec![d; groups])
            .ok_or_else(|| Error::config(key, "is required")),
        Some(Value::Array(a)) => {
            if a.len() != groups {
                return Err(Error::config(
                    key,
                    format!("expected {groups} values, got {}", a.len()),
                ));
            }
            a.iter()
                .map(|v| {
                    v.as_f64()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| Error::config(key, format!("must be numbers, got {v}")))
                })
                .collect()
        }
        Some(v) => Ok(vec![
            v.as_f64().filter(|x| x.is_finite()).ok_or_else(
                || Error::config(key, format!("must be a number, got {v}"))
            )?;
            groups
        ]),
    }
}

/// The per-group `(base_momentum, max_momentum)` that [`OneCycleLr`] and [`CyclicLr`] move
/// when `cycle_momentum` (the default); an error when the optimizer has no momentum to move.
fn cycled_momenta(
    k: &Kwargs<'_>,
    optimizer: &dyn Optim,
    groups: usize,
    base_default: f64,
    max_default: f64,
) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
    if !k.bool("cycle_momentum")?.unwrap_or(true) {
        return Ok(None);
    }
    let momenta = optimizer.momenta();
    if momenta.is_empty() || momenta.iter().any(Option::is_none) {
        return Err(Error::config(
            "cycle_momentum",
            "optimizer must support momentum or beta1 with `cycle_momentum` option enabled",
        ));
    }
    Ok(Some((
        per_group(k, "base_momentum", groups, Some(base_default))?,
        per_group(k, "max_momentum", groups, Some(max_default))?,
    )))
}

/// How [`OneCycleLr`] moves between two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anneal {
    Cos,
    Linear,
}

impl Anneal {
    fn at(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Self::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Self::Linear => (end - start) * pct + start,
        }
    }
}

/// One phase of [`OneCycleLr`]: up to `end_step`, from one (lr, momentum) pair to another,
/// each by index: 0 initial, 1 max, 2 min (rates); 0 max, 1 base (momenta).
#[derive(Debug, Clone, Copy)]
struct Phase {
    end_step: f64,
    lr: (usize, usize),
    momentum: (usize, usize),
}

/// torch's `OneCycleLR`: from `max_lr / div_factor` up to `max_lr` over `pct_start` of the
/// steps and down to `initial / final_div_factor` (three phases with `three_phase`), the
/// momentum (`momentum` or `betas[0]`) cycling the other way when `cycle_momentum`.
#[derive(Debug, Clone)]
pub struct OneCycleLr {
    total_steps: u64,
    phases: Vec<Phase>,
    anneal: Anneal,
    /// Per group: initial, max, min rate.
    lrs: Vec<[f64; 3]>,
    /// Per group: max, base momentum (when cycling).
    momenta: Option<Vec<[f64; 2]>>,
    step: u64,
}

impl OneCycleLr {
    /// torch's arguments: `max_lr` (one, or one per group), `total_steps` (or `epochs` and
    /// `steps_per_epoch`), `pct_start` (0.3), `anneal_strategy` ("cos"), `cycle_momentum`
    /// (true), `base_momentum` (0.85), `max_momentum` (0.95), `div_factor` (25),
    /// `final_div_factor` (1e4), `three_phase` (false). Sets the rates and momenta of step 0.
    pub fn new(optimizer: &mut dyn Optim, kwargs: &Value) -> Result<Self> {
        let k = Kwargs::new("kwargs", kwargs)?;
        k.only(
            "OneCycleLR",
            &[
                "max_lr",
                "total_steps",
                "epochs",
                "steps_per_epoch",
                "pct_start",
                "anneal_strategy",
                "cycle_momentum",
                "base_momentum",
                "max_momentum",
                "div_factor",
                "final_div_factor",
                "three_phase",
            ],
        )?;
        let groups = optimizer.learning_rates().len();
        let total_steps = match (
            k.u64("total_steps")?,
            k.u64("epochs")?,
            k.u64("steps_per_epoch")?,
        ) {
            (Some(t), _, _) if t > 0 => t,
            (Some(t), _, _) => {
                return Err(Error::config(
                    "total_steps",
                    format!("Expected positive integer total_steps, but got {t}"),
                ))
            }
            (None, Some(e), Some(s)) if e > 0 && s > 0 => e * s,
            _ => {
                return Err(Error::config(
                    "total_steps",
                    "You must define either total_steps OR (epochs AND steps_per_epoch)",
                ))
            }
        };
        let pct_start = k.f64("pct_start")?.unwrap_or(0.3);
        if !(0.0..=1.0).contains(&pct_start) {
            return Err(Error::config(
                "pct_start",
                format!("Expected float between 0 and 1 pct_start, but got {pct_start}"),
            ));
        }
        let anneal = match k.str("anneal_strategy")?.unwrap_or("cos") {
            "cos" => Anneal::Cos,
            "linear" => Anneal::Linear,
            other => {
                return Err(Error::config(
                    "anneal_strategy",
                    format!(
                        "anneal_strategy must be one of 'cos' or 'linear', instead got {other}"
                    ),
                ))
            }
        };
        let total = total_steps as f64;
        let phases = if k.bool("three_phase")?.unwrap_or(false) {
            vec![
                Phase {
                    end_step: pct_start * total - 1.0,
                    lr: (0, 1),
                    momentum: (0, 1),
                },
                Phase {
                    end_step: 2.0 * pct_start * total - 2.0,
                    lr: (1, 0),
                    momentum: (1, 0),
                },
                Phase {
                    end_step: total - 1.0,
                    lr: (0, 2),
                    momentum: (0, 0),
                },
            ]
        } else {
            vec![
                Phase {
                    end_step: pct_start * total - 1.0,
                    lr: (0, 1),
                    momentum: (0, 1),
                },
                Phase {
                    end_step: total - 1.0,
                    lr: (1, 2),
                    momentum: (1, 0),
                },
            ]
        };
        let max_lrs = per_group(&k, "max_lr", groups, None)?;
        let div = k.f64("div_factor")?.unwrap_or(25.0);
        let final_div = k.f64("final_div_factor")?.unwrap_or(1e4);
        let lrs = max_lrs
            .iter()
            .map(|&max| {
                let initial = max / div;
                [initial, max, initial / final_div]
            })
            .collect();
        let momenta = cycled_momenta(&k, optimizer, groups, 0.85, 0.95)?
            .map(|(base, max)| max.into_iter().zip(base).map(|(m, b)| [m, b]).collect());
        let this = Self {
            total_steps,
            phases,
            anneal,
            lrs,
            momenta,
            step: 0,
        };
        this.apply(optimizer)?;
        Ok(this)
    }

    fn apply(&self, optimizer: &mut dyn Optim) -> Result<()> {
        if self.step > self.total_steps {
            return Err(Error::InvalidInput(format!(
                "Tried to step {} times. The specified number of total steps is {}",
                self.step, self.total_steps
            )));
        }
        let step = self.step as f64;
        let mut start = 0.0;
        let mut chosen = (self.phases[self.phases.len() - 1], start);
        for (i, phase) in self.phases.iter().enumerate() {
            if step <= phase.end_step || i == self.phases.len() - 1 {
                chosen = (*phase, start);
                break;
            }
            start = phase.end_step;
        }
        let (phase, start) = chosen;
        let pct = (step - start) / (phase.end_step - start);
        let lrs: Vec<f64> = self
            .lrs
            .iter()
            .map(|l| self.anneal.at(l[phase.lr.0], l[phase.lr.1], pct))
            .collect();
        optimizer.set_learning_rates(&lrs)?;
        if let Some(momenta) = &self.momenta {
            let m: Vec<f64> = momenta
                .iter()
                .map(|m| {
                    self.anneal
                        .at(m[phase.momentum.0], m[phase.momentum.1], pct)
                })
                .collect();
            optimizer.set_momenta(&m)?;
        }
        Ok(())
    }

    /// Moves to the next step and sets its rates (and momenta).
    pub fn step(&mut self, optimizer: &mut dyn Optim) -> Result<()> {
        self.step += 1;
        self.apply(optimizer)
    }
}

/// The scale of [`CyclicLr`]'s amplitude.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CyclicMode {
    Triangular,
    /// Halved every cycle.
    Triangular2,
    /// `gamma^step`.
    ExpRange(f64),
}

/// torch's `CyclicLR`: rates going back and forth between `base_lr` and `max_lr`
/// (`step_size_up` steps up, `step_size_down` down), the momentum the other way when
/// `cycle_momentum`.
#[derive(Debug, Clone)]
pub struct CyclicLr {
    base_lrs: Vec<f64>,
    max_lrs: Vec<f64>,
    total_size: f64,
    step_ratio: f64,
    mode: CyclicMode,
    momenta: Option<Vec<[f64; 2]>>,
    step: u64,
}

impl CyclicLr {
    /// torch's arguments: `base_lr`, `max_lr` (one, or one per group), `step_size_up`
    /// (2000), `step_size_down` (= up), `mode` ("triangular", "triangular2", "exp_range"),
    /// `gamma` (1.0), `cycle_momentum` (true), `base_momentum` (0.8), `max_momentum` (0.9).
    pub fn new(optimizer: &mut dyn Optim, kwargs: &Value) -> Result<Self> {
        let k = Kwargs::new("kwargs", kwargs)?;
        k.only(
            "CyclicLR",
            &[
                "base_lr",
                "max_lr",
                "step_size_up",
                "step_size_down",
                "mode",
                "gamma",
                "cycle_momentum",
                "base_momentum",
                "max_momentum",
            ],
        )?;
        let groups = optimizer.learning_rates().len();
        let up = k.u64("step_size_up")?.unwrap_or(2000) as f64;
        let down = k.u64("step_size_down")?.map_or(up, |d| d as f64);
        if up + down <= 0.0 {
            return Err(Error::config("step_size_up", "the cycle must have steps"));
        }
        let mode = match k.str("mode")?.unwrap_or("triangular") {
            "triangular" => CyclicMode::Triangular,
            "triangular2" => CyclicMode::Triangular2,
            "exp_range" => CyclicMode::ExpRange(k.f64("gamma")?.unwrap_or(1.0)),
            other => {
                return Err(Error::config(
                    "mode",
                    format!("mode is invalid and scale_fn is None: {other}"),
                ))
            }
        };
        let momenta = match cycled_momenta(&k, optimizer, groups, 0.8, 0.9)? {
            Some((base, max)) => {
                optimizer.set_momenta(&max)?;
                Some(base.into_iter().zip(max).map(|(b, m)| [b, m]).collect())
            }
            None => None,
        };
        let this = Self {
            base_lrs: per_group(&k, "base_lr", groups, None)?,
            max_lrs: per_group(&k, "max_lr", groups, None)?,
            total_size: up + down,
            step_ratio: up / (up + down),
            mode,
            momenta,
            step: 0,
        };
        this.apply(optimizer)?;
        Ok(this)
    }

    fn apply(&self, optimizer: &mut dyn Optim) -> Result<()> {
        let epoch = self.step as f64;
        let cycle = (1.0 + epoch / self.total_size).floor();
        let x = 1.0 + epoch / self.total_size - cycle;
        let factor = if x <= self.step_ratio {
            x / self.step_ratio
        } else {
            (x - 1.0) / (self.step_ratio - 1.0)
        };
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange(gamma) => gamma.powf(epoch),
        };
        let lrs: Vec<f64> = self
            .base_lrs
            .iter()
            .zip(&self.max_lrs)
            .map(|(b, m)| b + (m - b) * factor * scale)
            .collect();
        optimizer.set_learning_rates(&lrs)?;
        if let Some(momenta) = &self.momenta {
            let m: Vec<f64> = momenta
                .iter()
                .map(|[b, m]| m - (m - b) * factor * scale)
                .collect();
            optimizer.set_momenta(&m)?;
        }
        Ok(())
    }

    /// Moves to the next step and sets its rates (and momenta).
    pub fn step(&mut self, optimizer: &mut dyn Optim) -> Result<()> {
        self.step += 1;
        self.apply(optimizer)
    }
}
