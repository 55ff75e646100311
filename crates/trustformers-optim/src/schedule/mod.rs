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

/// A scheduler's keyword arguments: a JSON object, or null for none.
struct Kwargs<'a>(Option<&'a Map<String, Value>>);

impl<'a> Kwargs<'a> {
    /// `kwargs`, which must be an object or null (an error naming `field` otherwise).
    fn new(field: &str, kwargs: &'a Value) -> Result<Self> {
        match kwargs {
            Value::Object(m) => Ok(Self(Some(m))),
            Value::Null => Ok(Self(None)),
            other => Err(Error::config(
                field,
                format!("must be an object, got {other}"),
            )),
        }
    }
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.and_then(|m| m.get(key))
    }
    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| Error::config(key, format!("must be true or false, got {v}"))),
        }
    }
    fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| Error::config(key, format!("must be a number, got {v}"))),
        }
    }
    fn u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| Error::config(key, format!("must be a step count, got {v}"))),
        }
    }
    fn str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| Error::config(key, format!("must be a string, got {v}"))),
        }
    }
    /// Every key must be one of `known`, as Python rejects unexpected keyword arguments.
    fn only(&self, name: &str, known: &[&str]) -> Result<()> {
        match self
            .0
            .into_iter()
            .flat_map(Map::keys)
            .find(|k| !known.contains(&k.as_str()))
        {
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
    let k = Kwargs::new("scheduler_specific_kwargs", kwargs)?;
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

mod torch;

pub use torch::{torch_scheduler, CyclicLr, OneCycleLr, ReduceLrOnPlateau};
