//! Optimizers that take the same steps as their PyTorch references, on candle's autograd:
//! parameters are [`Var`]s, gradients come in a [`GradStore`] (what `loss.backward()`
//! returns).
//!
//! Each algorithm is written element by element in f32, in the order of operations of the
//! reference's single-tensor CPU implementation, with its hyper-parameters computed in f64
//! and rounded to f32 where the reference hands them to a kernel. Hyper-parameters keep the
//! reference constructor's names and defaults, and are read from its keyword arguments as
//! JSON ([`by_name`]).
//!
//! ```no_run
//! # use trustformers_optim::{Optim, Optimizer, Param, torch::{AdamW, AdamWConfig}};
//! # fn run(params: Vec<Param>, grads: &candle_core::backprop::GradStore) -> trustformers_core::Result<()> {
//! let mut opt = Optimizer::<AdamW>::new(params, AdamWConfig { lr: 1e-3, ..Default::default() })?;
//! opt.step(grads)?;
//! # Ok(()) }
//! ```

pub mod clip;
pub mod schedule;
pub mod torch;

pub use clip::{clip_grad_norm, clip_grad_value};
pub use schedule::{get_scheduler, LambdaLr, Schedule};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use trustformers_core::{Error, Result};

/// A trainable parameter and the name it is saved under.
#[derive(Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
}

impl Param {
    pub fn new(name: impl Into<String>, var: Var) -> Self {
        Self {
            name: name.into(),
            var,
        }
    }
}

/// Hyper-parameters every algorithm has.
pub trait Hyper: Clone + Default + Serialize + DeserializeOwned {
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    /// The reference constructor's checks, with its messages.
    fn validate(&self) -> Result<()>;
}

/// One update rule: its hyper-parameters, its per-parameter state, and one step of one
/// parameter.
pub trait Algorithm {
    /// The reference's class name (`"AdamW"`).
    const NAME: &'static str;
    type Config: Hyper;
    type State;
    /// The state of a parameter of `len` values before its first step.
    fn init(config: &Self::Config, len: usize) -> Self::State;
    /// One step: `param` is updated in place from `grad`.
    fn update(config: &Self::Config, param: &mut [f32], grad: &[f32], state: &mut Self::State);
}

/// Parameters that share hyper-parameters (torch's `param_groups` entries).
#[derive(Clone)]
pub struct ParamGroup<C> {
    pub params: Vec<Param>,
    pub config: C,
}

/// An optimizer, whatever its algorithm: what schedulers and a trainer drive.
pub trait Optim {
    /// The reference's class name.
    fn name(&self) -> &'static str;
    /// One step over every parameter that has a gradient in `grads` (the others are
    /// skipped, as torch skips parameters whose `grad` is `None`).
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// Each group's learning rate.
    fn learning_rates(&self) -> Vec<f64>;
    /// Sets each group's learning rate (one value per group).
    fn set_learning_rates(&mut self, lrs: &[f64]) -> Result<()>;
}

/// An [`Algorithm`] over parameter groups, with one state per parameter.
pub struct Optimizer<A: Algorithm> {
    groups: Vec<ParamGroup<A::Config>>,
    states: Vec<Vec<Option<A::State>>>,
}

impl<A: Algorithm> Optimizer<A> {
    /// One group of `params` with `config`.
    pub fn new(params: Vec<Param>, config: A::Config) -> Result<Self> {
        Self::with_groups(vec![ParamGroup { params, config }])
    }

    /// Several groups, each with its own hyper-parameters.
    pub fn with_groups(groups: Vec<ParamGroup<A::Config>>) -> Result<Self> {
        for g in &groups {
            g.config.validate()?;
            if let Some(p) = g.params.iter().find(|p| p.var.dtype() != DType::F32) {
                return Err(Error::InvalidInput(format!(
                    "{}: parameter `{}` is {:?}; the optimizers keep f32 parameters",
                    A::NAME,
                    p.name,
                    p.var.dtype()
                )));
            }
        }
        let states = groups
            .iter()
            .map(|g| g.params.iter().map(|_| None).collect())
            .collect();
        Ok(Self { groups, states })
    }

    /// The groups and their hyper-parameters.
    pub fn groups(&self) -> &[ParamGroup<A::Config>] {
        &self.groups
    }

    /// The state of parameter `index` of group `group`, once it has taken a step.
    pub fn state(&self, group: usize, index: usize) -> Option<&A::State> {
        self.states.get(group)?.get(index)?.as_ref()
    }

    fn step_impl(&mut self, grads: &GradStore) -> Result<()> {
        for (group, states) in self.groups.iter().zip(&mut self.states) {
            for (param, state) in group.params.iter().zip(states.iter_mut()) {
                let Some(grad) = grads.get(param.var.as_tensor()) else {
                    continue;
                };
                if grad.dims() != param.var.dims() {
                    return Err(Error::InvalidInput(format!(
                        "{}: the gradient of `{}` has shape {:?}, the parameter {:?}",
                        A::NAME,
                        param.name,
                        grad.dims(),
                        param.var.dims()
                    )));
                }
                let g = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let mut p = param.var.flatten_all()?.to_vec1::<f32>()?;
                let state = state.get_or_insert_with(|| A::init(&group.config, p.len()));
                A::update(&group.config, &mut p, &g, state);
                let updated = Tensor::from_vec(p, param.var.shape(), param.var.device())?;
                param.var.set(&updated)?;
            }
        }
        Ok(())
    }
}

impl<A: Algorithm> Optim for Optimizer<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_impl(grads)
    }

    fn learning_rates(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.config.lr()).collect()
    }

    fn set_learning_rates(&mut self, lrs: &[f64]) -> Result<()> {
        if lrs.len() != self.groups.len() {
            return Err(Error::InvalidInput(format!(
                "{} learning rates for {} parameter groups",
                lrs.len(),
                self.groups.len()
            )));
        }
        for (g, &lr) in self.groups.iter_mut().zip(lrs) {
            g.config.set_lr(lr);
        }
        Ok(())
    }
}

/// Reads hyper-parameters from the reference constructor's keyword arguments (`{"lr":
/// 1e-3, "betas": [0.9, 0.999]}`); an unknown argument or a value out of range is an error
/// naming it.
pub fn config_from_kwargs<C: Hyper>(name: &str, kwargs: &Value) -> Result<C> {
    let config: C = serde_json::from_value(kwargs.clone())
        .map_err(|e| Error::config(format!("{name} arguments"), e.to_string()))?;
    config.validate()?;
    Ok(config)
}

fn boxed<A: Algorithm + 'static>(params: Vec<Param>, kwargs: &Value) -> Result<Box<dyn Optim>> {
    let config = config_from_kwargs::<A::Config>(A::NAME, kwargs)?;
    Ok(Box::new(Optimizer::<A>::new(params, config)?))
}

/// The names [`by_name`] knows: the references' class names.
pub const OPTIMIZERS: &[&str] = &[
    "SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adagrad", "Adadelta", "RMSprop", "Rprop",
];

/// The optimizer named as its reference's class (`"AdamW"`), over one group of `params`,
/// with the reference constructor's keyword arguments.
pub fn by_name(name: &str, params: Vec<Param>, kwargs: &Value) -> Result<Box<dyn Optim>> {
    use torch::*;
    match name {
        "SGD" => boxed::<Sgd>(params, kwargs),
        "Adam" => boxed::<Adam>(params, kwargs),
        "AdamW" => boxed::<AdamW>(params, kwargs),
        "Adamax" => boxed::<Adamax>(params, kwargs),
        "NAdam" => boxed::<NAdam>(params, kwargs),
        "RAdam" => boxed::<RAdam>(params, kwargs),
        "Adagrad" => boxed::<Adagrad>(params, kwargs),
        "Adadelta" => boxed::<Adadelta>(params, kwargs),
        "RMSprop" => boxed::<RmsProp>(params, kwargs),
        "Rprop" => boxed::<Rprop>(params, kwargs),
        other => Err(Error::InvalidInput(format!(
            "unknown optimizer `{other}`; known: {}",
            OPTIMIZERS.join(", ")
        ))),
    }
}

fn defaults_of<A: Algorithm>() -> Result<Value> {
    serde_json::to_value(A::Config::default()).map_err(|e| Error::InvalidInput(e.to_string()))
}

/// The constructor defaults of the optimizer named `name`, as keyword arguments.
pub fn default_kwargs(name: &str) -> Result<Value> {
    use torch::*;
    match name {
        "SGD" => defaults_of::<Sgd>(),
        "Adam" => defaults_of::<Adam>(),
        "AdamW" => defaults_of::<AdamW>(),
        "Adamax" => defaults_of::<Adamax>(),
        "NAdam" => defaults_of::<NAdam>(),
        "RAdam" => defaults_of::<RAdam>(),
        "Adagrad" => defaults_of::<Adagrad>(),
        "Adadelta" => defaults_of::<Adadelta>(),
        "RMSprop" => defaults_of::<RmsProp>(),
        "Rprop" => defaults_of::<Rprop>(),
        other => Err(Error::InvalidInput(format!(
            "unknown optimizer `{other}`; known: {}",
            OPTIMIZERS.join(", ")
        ))),
    }
}
