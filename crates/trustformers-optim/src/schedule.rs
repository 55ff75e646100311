//! transformers' learning-rate schedules (`transformers.get_scheduler`): each a factor of
//! the step that multiplies every group's initial learning rate, as torch's `LambdaLR`
//! applies it, computed in f64 as Python does.

use crate::Optim;
use serde_json::{Map, Value};
use std::f64::consts::PI;
use trustformers_core::{Error, Result};

/// The shape of a warmup or a decay in [`Schedule::WarmupStableDecay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ramp {
    Linear,
    Cosine,
    /// `1 - sqrt(...)`.
    OneMinusSqrt,
}

impl Ramp {
    fn parse(field: &str, name: &str) -> Result<Self> {
        Ok(match name {
            "linear" => Self::Linear,
            "cosine" => Self::Cosine,
            "1-sqrt" => Self::OneMinusSqrt,
            other => {
                return Err(Error::config(
                    field,
                    format!("Unknown {field}: {other}, expected 'linear', 'cosine' or '1-sqrt'"),
                ))
            }
        })
    }
}

/// One of transformers' `SchedulerType`s with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant,
    ConstantWithWarmup {
        warmup: u64,
    },
    Linear {
        warmup: u64,
        total: u64,
    },
    Cosine {
        warmup: u64,
        total: u64,
        num_cycles: f64,
        /// The floor, as a fraction of the initial rate (`cosine_with_min_lr`; 0 for
        /// `cosine`).
        min_lr_rate: f64,
    },
    CosineWithRestarts {
        warmup: u64,
        total: u64,
        num_cycles: f64,
    },
    Polynomial {
        warmup: u64,
        total: u64,
        lr_end: f64,
        power: f64,
        lr_init: f64,
    },
    InverseSqrt {
        warmup: u64,
        timescale: u64,
    },
    /// `cosine_warmup_with_min_lr`: the warmup counts from step 1, the decay from the last
    /// warmup step.
    CosineWarmupWithMinLr {
        warmup: u64,
        total: u64,
        num_cycles: f64,
        min_lr_rate: f64,
        warmup_lr_rate: Option<f64>,
    },
    WarmupStableDecay {
        warmup: u64,
        stable: u64,
        decay: u64,
        warmup_type: Ramp,
        decay_type: Ramp,
        min_lr_ratio: f64,
        num_cycles: f64,
    },
    /// torch's `StepLR`: times `gamma` every `step_size` steps.
    StepLr {
        step_size: u64,
        gamma: f64,
    },
    /// torch's `MultiStepLR`: times `gamma` at each milestone.
    MultiStepLr {
        milestones: Vec<u64>,
        gamma: f64,
    },
    /// torch's `ExponentialLR`: times `gamma` every step.
    ExponentialLr {
        gamma: f64,
    },
}

/// The names [`get_scheduler`] knows (transformers' `SchedulerType` values with a
/// step-driven schedule).
pub const SCHEDULERS: &[&str] = &[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
];

fn warmup_ramp(step: f64, warmup: f64) -> f64 {
    step / warmup.max(1.0)
}

impl Schedule {
    /// The factor of the initial learning rate at `step` (0 before the first optimizer step).
    pub fn factor(&self, step: u64) -> f64 {
        let s = step as f64;
        match *self {
            Self::Constant => 1.0,
            Self::ConstantWithWarmup { warmup } => {
                if step < warmup {
                    warmup_ramp(s, warmup as f64)
                } else {
                    1.0
                }
            }
            Self::Linear { warmup, total } => {
                if step < warmup {
                    return warmup_ramp(s, warmup as f64);
                }
                let left = total as f64 - s;
                let span = (total.saturating_sub(warmup)).max(1) as f64;
                (left / span).max(0.0)
            }
            Self::Cosine {
                warmup,
                total,
                num_cycles,
                min_lr_rate,
            } => {
                if step < warmup {
                    return warmup_ramp(s, warmup as f64);
                }
                let progress = (s - warmup as f64) / (total.saturating_sub(warmup)).max(1) as f64;
                let factor = 0.5 * (1.0 + (PI * num_cycles * 2.0 * progress).cos());
                (factor * (1.0 - min_lr_rate) + min_lr_rate).max(0.0)
            }
            Self::CosineWithRestarts {
                warmup,
                total,
                num_cycles,
            } => {
                if step < warmup {
                    return warmup_ramp(s, warmup as f64);
                }
                let progress = (s - warmup as f64) / (total.saturating_sub(warmup)).max(1) as f64;
                if progress >= 1.0 {
                    return 0.0;
                }
                (0.5 * (1.0 + (PI * ((num_cycles * progress) % 1.0)).cos())).max(0.0)
            }
            Self::Polynomial {
                warmup,
                total,
                lr_end,
                power,
                lr_init,
            } => {
                if step < warmup {
                    warmup_ramp(s, warmup as f64)
                } else if step > total {
                    lr_end / lr_init
                } else {
                    let range = lr_init - lr_end;
                    let decay_steps = (total - warmup) as f64;
                    let remaining = 1.0 - (s - warmup as f64) / decay_steps;
                    (range * remaining.powf(power) + lr_end) / lr_init
                }
            }
            Self::InverseSqrt { warmup, timescale } => {
                if step < warmup {
                    return warmup_ramp(s, warmup as f64);
                }
                let shift = timescale as f64 - warmup as f64;
                1.0 / ((s + shift) / timescale as f64).sqrt()
            }
            Self::CosineWarmupWithMinLr {
                warmup,
                total,
                num_cycles,
                min_lr_rate,
                warmup_lr_rate,
            } => {
                let (w, t) = (warmup as f64, total as f64);
                if s < w {
                    return match warmup_lr_rate {
                        None => (s + 1.0) / w.max(1.0),
                        Some(r) => r + (1.0 - r) * s / (w - 1.0).max(1.0),
                    };
                }
                let progress = (s - w + 1.0) / (t - w).max(1.0);
                let factor = 0.5 * (1.0 + (PI * num_cycles * 2.0 * progress).cos());
                (factor * (1.0 - min_lr_rate) + min_lr_rate).max(0.0)
            }
            Self::WarmupStableDecay {
                warmup,
                stable,
                decay,
                warmup_type,
                decay_type,
                min_lr_ratio,
                num_cycles,
            } => {
                let floor = |f: f64| (f * (1.0 - min_lr_ratio) + min_lr_ratio).max(0.0);
                if step < warmup {
                    let p = warmup_ramp(s, warmup as f64);
                    return floor(match warmup_type {
                        Ramp::Linear => p,
                        Ramp::Cosine => 0.5 * (1.0 - (PI * p).cos()),
                        Ramp::OneMinusSqrt => 1.0 - (1.0 - p).sqrt(),
                    });
                }
                if step < warmup + stable {
                    return 1.0;
                }
                if step < warmup + stable + decay {
                    let p = (s - (warmup + stable) as f64) / decay.max(1) as f64;
                    return floor(match decay_type {
                        Ramp::Linear => 1.0 - p,
                        Ramp::Cosine => 0.5 * (1.0 + (PI * num_cycles * 2.0 * p).cos()),
                        Ramp::OneMinusSqrt => 1.0 - p.sqrt(),
                    });
                }
                min_lr_ratio
            }
            Self::StepLr { step_size, gamma } => {
                gamma.powi(step.checked_div(step_size).unwrap_or(0) as i32)
            }
            Self::MultiStepLr {
                ref milestones,
                gamma,
            } => gamma.powi(milestones.iter().filter(|&&m| m <= step).count() as i32),
            Self::ExponentialLr { gamma } => gamma.powi(step.min(i32::MAX as u64) as i32),
        }
    }
}

/// Reads one scheduler argument.
struct Kwargs<'a>(&'a Map<String, Value>);

impl Kwargs<'_> {
    fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| Error::config(key, format!("must be a number, got {v}"))),
        }
    }
    fn u64(&self, key: &str) -> Result<Option<u64>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| Error::config(key, format!("must be a step count, got {v}"))),
        }
    }
    fn str(&self, key: &str) -> Result<Option<&str>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| Error::config(key, format!("must be a string, got {v}"))),
        }
    }
    /// Every key must be one of `known`, as Python rejects unexpected keyword arguments.
    fn only(&self, name: &str, known: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(Error::config(
                k.clone(),
                format!(
                    "`{name}` takes no argument `{k}` (it takes: {})",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The min-lr floor of the cosine schedules: `min_lr / initial lr` or `min_lr_rate`, one
/// of them.
fn min_lr_rate(k: &Kwargs<'_>, lr_init: f64) -> Result<f64> {
    match (k.f64("min_lr")?, k.f64("min_lr_rate")?) {
        (Some(_), Some(_)) => Err(Error::config(
            "min_lr",
            "Only one of min_lr or min_lr_rate should be set",
        )),
        (Some(min_lr), None) => Ok(min_lr / lr_init),
        (None, Some(rate)) => Ok(rate),
        (None, None) => Err(Error::config(
            "min_lr",
            "One of min_lr or min_lr_rate should be set through the `lr_scheduler_kwargs`",
        )),
    }
}

/// transformers' `get_scheduler(name, optimizer, num_warmup_steps, num_training_steps,
/// scheduler_specific_kwargs)`: `lr_init` is the optimizer's constructor learning rate
/// (`optimizer.defaults["lr"]`), which the polynomial and min-lr schedules read.
pub fn get_scheduler(
    name: &str,
    lr_init: f64,
    num_warmup_steps: Option<u64>,
    num_training_steps: Option<u64>,
    kwargs: &Value,
) -> Result<Schedule> {
    let empty = Map::new();
    let k = Kwargs(match kwargs {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            return Err(Error::config(
                "scheduler_specific_kwargs",
                format!("must be an object, got {other}"),
            ))
        }
    });
    if name == "constant" {
        return Ok(Schedule::Constant);
    }
    if name == "reduce_lr_on_plateau" {
        return Err(Error::config(
            "lr_scheduler_type",
            "reduce_lr_on_plateau follows a metric, not the step: use ReduceLrOnPlateau",
        ));
    }
    if !SCHEDULERS.contains(&name) {
        return Err(Error::config(
            "lr_scheduler_type",
            format!(
                "`{name}` is not a valid SchedulerType; known: {}",
                SCHEDULERS.join(", ")
            ),
        ));
    }
    let warmup = num_warmup_steps.ok_or_else(|| {
        Error::config(
            "num_warmup_steps",
            format!("{name} requires `num_warmup_steps`, please provide that argument."),
        )
    })?;
    if name == "constant_with_warmup" {
        k.only(name, &[])?;
        return Ok(Schedule::ConstantWithWarmup { warmup });
    }
    if name == "inverse_sqrt" {
        k.only(name, &["timescale"])?;
        let timescale = match k.u64("timescale")? {
            Some(t) => t,
            None if warmup > 0 => warmup,
            None => 10_000,
        };
        if timescale == 0 {
            return Err(Error::config("timescale", "must be positive"));
        }
        return Ok(Schedule::InverseSqrt { warmup, timescale });
    }
    if name == "warmup_stable_decay" {
        k.only(
            name,
            &[
                "num_decay_steps",
                "num_stable_steps",
                "warmup_type",
                "decay_type",
                "min_lr_ratio",
                "num_cycles",
            ],
        )?;
        let decay = k.u64("num_decay_steps")?.ok_or_else(|| {
            Error::config("num_decay_steps", "is required by warmup_stable_decay")
        })?;
        let stable = match (k.u64("num_stable_steps")?, num_training_steps) {
            (Some(s), _) => s,
            (None, Some(total)) => total.checked_sub(warmup + decay).ok_or_else(|| {
                Error::config(
                    "num_training_steps",
                    format!("{total} steps do not hold {warmup} warmup and {decay} decay steps"),
                )
            })?,
            (None, None) => {
                return Err(Error::config(
                    "num_training_steps",
                    "Either num_training_steps or num_stable_steps must be specified.",
                ))
            }
        };
        return Ok(Schedule::WarmupStableDecay {
            warmup,
            stable,
            decay,
            warmup_type: Ramp::parse("warmup_type", k.str("warmup_type")?.unwrap_or("linear"))?,
            decay_type: Ramp::parse("decay_type", k.str("decay_type")?.unwrap_or("cosine"))?,
            min_lr_ratio: k.f64("min_lr_ratio")?.unwrap_or(0.0),
            num_cycles: k.f64("num_cycles")?.unwrap_or(0.5),
        });
    }
    let total = num_training_steps.ok_or_else(|| {
        Error::config(
            "num_training_steps",
            format!("{name} requires `num_training_steps`, please provide that argument."),
        )
    })?;
    Ok(match name {
        "linear" => {
            k.only(name, &[])?;
            Schedule::Linear { warmup, total }
        }
        "cosine" => {
            k.only(name, &["num_cycles"])?;
            Schedule::Cosine {
                warmup,
                total,
                num_cycles: k.f64("num_cycles")?.unwrap_or(0.5),
                min_lr_rate: 0.0,
            }
        }
        "cosine_with_restarts" => {
            k.only(name, &["num_cycles"])?;
            Schedule::CosineWithRestarts {
                warmup,
                total,
                num_cycles: k.f64("num_cycles")?.unwrap_or(1.0),
            }
        }
        "polynomial" => {
            k.only(name, &["lr_end", "power"])?;
            let lr_end = k.f64("lr_end")?.unwrap_or(1e-7);
            if lr_init <= lr_end {
                return Err(Error::config(
                    "lr_end",
                    format!("lr_end ({lr_end}) must be smaller than initial lr ({lr_init})"),
                ));
            }
            if total <= warmup {
                return Err(Error::config(
                    "num_training_steps",
                    format!("{total} must exceed num_warmup_steps {warmup} for a decay"),
                ));
            }
            Schedule::Polynomial {
                warmup,
                total,
                lr_end,
                power: k.f64("power")?.unwrap_or(1.0),
                lr_init,
            }
        }
        "cosine_with_min_lr" => {
            k.only(name, &["num_cycles", "min_lr", "min_lr_rate"])?;
            Schedule::Cosine {
                warmup,
                total,
                num_cycles: k.f64("num_cycles")?.unwrap_or(0.5),
                min_lr_rate: min_lr_rate(&k, lr_init)?,
            }
        }
        "cosine_warmup_with_min_lr" => {
            k.only(
                name,
                &["num_cycles", "min_lr", "min_lr_rate", "warmup_lr_rate"],
            )?;
            Schedule::CosineWarmupWithMinLr {
                warmup,
                total,
                num_cycles: k.f64("num_cycles")?.unwrap_or(0.5),
                min_lr_rate: min_lr_rate(&k, lr_init)?,
                warmup_lr_rate: k.f64("warmup_lr_rate")?,
            }
        }
        _ => {
            return Err(Error::config(
                "lr_scheduler_type",
                format!("`{name}` is not a valid SchedulerType"),
            ))
        }
    })
}

/// torch's `StepLR(step_size, gamma=0.1)`, `MultiStepLR(milestones, gamma=0.1)` and
/// `ExponentialLR(gamma)`, by class name, with their keyword arguments.
pub fn torch_scheduler(name: &str, kwargs: &Value) -> Result<Schedule> {
    let empty = Map::new();
    let k = Kwargs(kwargs.as_object().unwrap_or(&empty));
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
            let milestones = match k.0.get("milestones") {
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
        let empty = Map::new();
        let k = Kwargs(kwargs.as_object().unwrap_or(&empty));
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

/// torch's `LambdaLR`: every group's learning rate is its initial one times the schedule's
/// factor of the step. Made before training (the rates become those of step 0); `step`
/// after each optimizer step.
pub struct LambdaLr {
    schedule: Schedule,
    base_lrs: Vec<f64>,
    step: u64,
}

impl LambdaLr {
    pub fn new(optimizer: &mut dyn Optim, schedule: Schedule) -> Result<Self> {
        let base_lrs = optimizer.learning_rates();
        let this = Self {
            schedule,
            base_lrs,
            step: 0,
        };
        optimizer.set_learning_rates(&this.learning_rates())?;
        Ok(this)
    }

    /// Each group's learning rate at the current step.
    pub fn learning_rates(&self) -> Vec<f64> {
        let f = self.schedule.factor(self.step);
        self.base_lrs.iter().map(|lr| lr * f).collect()
    }

    /// Moves to the next step and sets the optimizer's learning rates for it.
    pub fn step(&mut self, optimizer: &mut dyn Optim) -> Result<()> {
        self.step += 1;
        optimizer.set_learning_rates(&self.learning_rates())
    }
}

/// A list of per-group values from one number or a list of one per group (torch takes
/// either for `max_lr`, `base_lr`, momenta).
fn per_group(k: &Kwargs<'_>, key: &str, groups: usize, default: Option<f64>) -> Result<Vec<f64>> {
    match k.0.get(key) {
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
        let empty = Map::new();
        let k = Kwargs(kwargs.as_object().unwrap_or(&empty));
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
        let phases = if k
            .0
            .get("three_phase")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
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
        let momenta = if k
            .0
            .get("cycle_momentum")
            .and_then(Value::as_bool)
            .unwrap_or(true)
        {
            if optimizer.momenta().iter().any(Option::is_none) || optimizer.momenta().is_empty() {
                return Err(Error::config(
                    "cycle_momentum",
                    "optimizer must support momentum or beta1 with `cycle_momentum` option enabled",
                ));
            }
            let max = per_group(&k, "max_momentum", groups, Some(0.95))?;
            let base = per_group(&k, "base_momentum", groups, Some(0.85))?;
            Some(max.into_iter().zip(base).map(|(m, b)| [m, b]).collect())
        } else {
            None
        };
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
        let empty = Map::new();
        let k = Kwargs(kwargs.as_object().unwrap_or(&empty));
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
        let momenta = if k
            .0
            .get("cycle_momentum")
            .and_then(Value::as_bool)
            .unwrap_or(true)
        {
            if optimizer.momenta().iter().any(Option::is_none) || optimizer.momenta().is_empty() {
                return Err(Error::config(
                    "cycle_momentum",
                    "optimizer must support momentum or beta1 with `cycle_momentum` option enabled",
                ));
            }
            let base = per_group(&k, "base_momentum", groups, Some(0.8))?;
            let max = per_group(&k, "max_momentum", groups, Some(0.9))?;
            optimizer.set_momenta(&max)?;
            Some(base.into_iter().zip(max).map(|(b, m)| [b, m]).collect())
        } else {
            None
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
