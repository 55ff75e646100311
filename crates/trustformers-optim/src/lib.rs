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
pub mod lbfgs;
mod ops;
mod optimizer;
mod registry;
pub mod schedule;
pub mod schedulefree;
pub mod timm;
pub mod torch;

pub use clip::{clip_grad_norm, clip_grad_value};
pub use lbfgs::{Lbfgs, LbfgsConfig};
pub use optimizer::Optimizer;
pub use registry::{
    by_name, by_name_with_groups, config_from_kwargs, decays_weight, default_kwargs,
    transformers_groups, GroupSpec, OPTIMIZERS,
};
pub use schedule::{
    get_scheduler, torch_scheduler, CyclicLr, LambdaLr, OneCycleLr, ReduceLrOnPlateau, Schedule,
};

use candle_core::backprop::GradStore;
use candle_core::Var;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
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
pub trait Hyper: Clone + Default + Serialize + DeserializeOwned + Send + Sync {
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    /// The reference constructor's checks, with its messages.
    fn validate(&self) -> Result<()>;
    /// Called once when an optimizer is built with these (timm keeps the constructor's
    /// learning rate for corrected weight decay).
    fn constructed(&mut self) {}
    /// The momentum a schedule may cycle: `momentum` (SGD, RMSprop) or `betas[0]` (the Adam
    /// family); `None` for algorithms with neither.
    fn momentum(&self) -> Option<f64> {
        None
    }
    /// Sets what [`Hyper::momentum`] reads.
    fn set_momentum(&mut self, _momentum: f64) {}
}

/// One update rule: its hyper-parameters, its per-parameter state, and one step of one
/// parameter.
pub trait Algorithm {
    /// The reference's class name (`"AdamW"`).
    const NAME: &'static str;
    type Config: Hyper;
    type State: StateParts + Send;
    /// The state of a parameter of `shape` before its first step.
    fn init(config: &Self::Config, shape: &[usize]) -> Self::State;
    /// Whether the algorithm reads the norm of all gradients together (timm's Lamb clips
    /// by it): [`Self::set_global_grad_norm`] then gets it before each step's updates.
    const GLOBAL_GRAD_NORM: bool = false;
    /// The L2 norm of every gradient of the step, taken together (the norm of the
    /// per-gradient norms, in f32 as torch's `_foreach_norm` gives them).
    fn set_global_grad_norm(_config: &mut Self::Config, _norm: f32) {}
    /// Whether the algorithm keeps training and evaluation weights apart (schedule-free
    /// optimizers): steps then need [`Optim::train`] first, and [`Optim::eval`] gives the
    /// weights to evaluate.
    const HAS_MODES: bool = false;
    /// Moves `param` between its training and its evaluation weights (`train`: to
    /// training). Only called when [`Self::HAS_MODES`].
    fn switch(_config: &Self::Config, _param: &mut [f32], _state: &Self::State, _train: bool) {}
    /// One step: `param` (of `shape`, row-major) is updated in place from `grad`.
    fn update(
        config: &Self::Config,
        shape: &[usize],
        param: &mut [f32],
        grad: &[f32],
        state: &mut Self::State,
    );
}

/// A per-parameter state as it is saved: its per-element vectors (into safetensors) and
/// its scalars (step counts; into JSON).
pub trait StateParts: Sized {
    /// The vectors by field name (an empty one: not made yet).
    fn vectors(&self) -> Vec<(&'static str, &[f32])>;
    /// The scalars as a JSON object.
    fn scalars(&self) -> Value;
    /// The state back from [`Self::vectors`] (by field name) and [`Self::scalars`].
    fn restore(vectors: &mut HashMap<String, Vec<f32>>, scalars: &Value) -> Result<Self>;
}

/// `impl StateParts` for a state struct: its scalar fields with their types, then its
/// vector fields.
#[macro_export]
#[doc(hidden)]
macro_rules! state_parts {
    ($ty:ident { $($scalar:ident: $sty:ty),* } [$($vec:ident),*]) => {
        impl $crate::StateParts for $ty {
            fn vectors(&self) -> Vec<(&'static str, &[f32])> {
                vec![$((stringify!($vec), self.$vec.as_slice())),*]
            }
            fn scalars(&self) -> serde_json::Value {
                #[allow(unused_mut)]
                let mut m = serde_json::Map::new();
                $(m.insert(stringify!($scalar).into(), serde_json::json!(self.$scalar));)*
                serde_json::Value::Object(m)
            }
            fn restore(
                vectors: &mut std::collections::HashMap<String, Vec<f32>>,
                scalars: &serde_json::Value,
            ) -> trustformers_core::Result<Self> {
                let _ = scalars;
                Ok(Self {
                    $($scalar: scalars
                        .get(stringify!($scalar))
                        .and_then(|v| serde_json::from_value::<$sty>(v.clone()).ok())
                        .ok_or_else(|| trustformers_core::Error::config(
                            stringify!($scalar),
                            "missing or invalid in the saved optimizer state",
                        ))?,)*
                    $($vec: vectors.remove(stringify!($vec)).unwrap_or_default(),)*
                })
            }
        }
    };
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
    /// Each group's momentum (`momentum` or `betas[0]`), if the algorithm has one.
    fn momenta(&self) -> Vec<Option<f64>> {
        Vec::new()
    }
    /// Sets each group's momentum; an error for an algorithm without one.
    fn set_momenta(&mut self, _momenta: &[f64]) -> Result<()> {
        Err(Error::InvalidInput(format!(
            "{} has no momentum or beta1 to set",
            self.name()
        )))
    }
    /// Writes the state to `{prefix}.safetensors` (each parameter's vectors, as
    /// `{param}.{field}`) and `{prefix}.json` (the groups' hyper-parameters, step counts).
    fn save(&self, prefix: &Path) -> Result<()>;
    /// Reads what [`Optim::save`] wrote, for the same parameters: steps then continue as
    /// if never interrupted.
    fn load(&mut self, prefix: &Path) -> Result<()>;
    /// Puts the parameters in training mode (schedule-free optimizers; nothing for others).
    fn train(&mut self) -> Result<()> {
        Ok(())
    }
    /// Puts the parameters in evaluation mode (schedule-free optimizers; nothing for others).
    fn eval(&mut self) -> Result<()> {
        Ok(())
    }
}
