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
pub mod schedule;
pub mod schedulefree;
pub mod timm;
pub mod torch;

pub use clip::{clip_grad_norm, clip_grad_value};
pub use lbfgs::{Lbfgs, LbfgsConfig};
pub use schedule::{
    get_scheduler, torch_scheduler, CyclicLr, LambdaLr, OneCycleLr, ReduceLrOnPlateau, Schedule,
};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_nn::kernels::with_f32;

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

/// An [`Algorithm`] over parameter groups, with one state per parameter.
pub struct Optimizer<A: Algorithm> {
    groups: Vec<ParamGroup<A::Config>>,
    states: Vec<Vec<Option<A::State>>>,
    skip_nonfinite: bool,
    skipped_steps: u64,
    /// For algorithms with modes: whether the parameters hold the training weights.
    train_mode: bool,
}

impl<A: Algorithm> Optimizer<A> {
    /// One group of `params` with `config`.
    pub fn new(params: Vec<Param>, config: A::Config) -> Result<Self> {
        Self::with_groups(vec![ParamGroup { params, config }])
    }

    /// Several groups, each with its own hyper-parameters.
    pub fn with_groups(mut groups: Vec<ParamGroup<A::Config>>) -> Result<Self> {
        groups.iter_mut().for_each(|g| g.config.constructed());
        let mut seen = std::collections::HashSet::new();
        if let Some(p) = groups
            .iter()
            .flat_map(|g| &g.params)
            .find(|p| !seen.insert(p.name.as_str()))
        {
            return Err(Error::InvalidInput(format!(
                "{}: two parameters are named `{}`; names key the saved state",
                A::NAME,
                p.name
            )));
        }
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
        Ok(Self {
            groups,
            states,
            skip_nonfinite: false,
            skipped_steps: 0,
            train_mode: false,
        })
    }

    /// The groups and their hyper-parameters.
    pub fn groups(&self) -> &[ParamGroup<A::Config>] {
        &self.groups
    }

    /// The state of parameter `index` of group `group`, once it has taken a step.
    pub fn state(&self, group: usize, index: usize) -> Option<&A::State> {
        self.states.get(group)?.get(index)?.as_ref()
    }

    /// What to do with a non-finite gradient: an error naming the parameter (the
    /// default), or, with `skip`, the whole step skipped and counted, as mixed-precision
    /// training does.
    pub fn skip_nonfinite(mut self, skip: bool) -> Self {
        self.skip_nonfinite = skip;
        self
    }

    /// Steps skipped for a non-finite gradient.
    pub fn skipped_steps(&self) -> u64 {
        self.skipped_steps
    }

    fn set_mode(&mut self, train: bool) -> Result<()> {
        if !A::HAS_MODES || self.train_mode == train {
            self.train_mode = train;
            return Ok(());
        }
        for (group, states) in self.groups.iter().zip(&self.states) {
            for (param, state) in group.params.iter().zip(states) {
                let Some(state) = state else { continue };
                let mut p = with_f32(param.var.as_tensor(), |p| Ok(p.to_vec()))?;
                A::switch(&group.config, &mut p, state, train);
                let updated = Tensor::from_vec(p, param.var.shape(), param.var.device())?;
                param.var.set(&updated)?;
            }
        }
        self.train_mode = train;
        Ok(())
    }

    fn step_impl(&mut self, grads: &GradStore) -> Result<()> {
        if A::HAS_MODES && !self.train_mode {
            return Err(Error::InvalidInput(format!(
                "{}: the optimizer is not in train mode; call train() before step() and \
                 eval() before evaluating",
                A::NAME
            )));
        }
        // Every gradient is checked before any parameter moves, so a skipped step leaves
        // all of them as they were.
        for group in &self.groups {
            for param in &group.params {
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
                let finite = with_f32(grad, |g| Ok(g.iter().all(|g| g.is_finite())))?;
                if !finite {
                    if self.skip_nonfinite {
                        self.skipped_steps += 1;
                        return Ok(());
                    }
                    return Err(Error::InvalidInput(format!(
                        "{}: the gradient of `{}` is not finite (NaN or infinite)",
                        A::NAME,
                        param.name
                    )));
                }
            }
        }
        if A::GLOBAL_GRAD_NORM {
            let mut squares = 0f32;
            for group in &self.groups {
                for param in &group.params {
                    if let Some(grad) = grads.get(param.var.as_tensor()) {
                        let norm = with_f32(grad, |g| {
                            Ok(g.iter().fold(0f32, |acc, v| acc + v * v).sqrt())
                        })?;
                        squares += norm * norm;
                    }
                }
            }
            for group in &mut self.groups {
                A::set_global_grad_norm(&mut group.config, squares.sqrt());
            }
        }
        let fma = fma_available();
        for (group, states) in self.groups.iter().zip(&mut self.states) {
            // Parameters are independent: one per thread at a time.
            group
                .params
                .par_iter()
                .zip(states.par_iter_mut())
                .try_for_each(|(param, state)| -> Result<()> {
                    let Some(grad) = grads.get(param.var.as_tensor()) else {
                        return Ok(());
                    };
                    let shape = param.var.dims();
                    let state = state.get_or_insert_with(|| A::init(&group.config, shape));
                    let tensor = param.var.as_tensor();
                    if tensor.device().is_cpu()
                        && tensor.dtype() == DType::F32
                        && tensor.is_contiguous()
                    {
                        // In place, in the variable's own storage: one pass over the memory.
                        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
                        let op = InPlace::<A> {
                            fma,
                            config: &group.config,
                            shape,
                            state: std::cell::RefCell::new(state),
                        };
                        tensor.inplace_op2(&grad, &op)?;
                        return Ok(());
                    }
                    let mut p = with_f32(tensor, |p| Ok(p.to_vec()))?;
                    with_f32(grad, |g| {
                        update::<A>(fma, &group.config, shape, &mut p, g, state);
                        Ok(())
                    })?;
                    let updated = Tensor::from_vec(p, param.var.shape(), param.var.device())?;
                    param.var.set(&updated)?;
                    Ok(())
                })?;
        }
        Ok(())
    }
}

/// One parameter's update as a candle in-place op: the parameter's storage is written
/// directly, the gradient read where it lies.
struct InPlace<'a, A: Algorithm> {
    fma: bool,
    config: &'a A::Config,
    shape: &'a [usize],
    state: std::cell::RefCell<&'a mut A::State>,
}

impl<A: Algorithm> candle_core::InplaceOp2 for InPlace<'_, A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &mut candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use candle_core::CpuStorage::F32;
        let (F32(p), F32(g)) = (s1, s2) else {
            return Err(candle_core::Error::Msg(format!(
                "{}: f32 tensors only",
                A::NAME
            )));
        };
        let (Some((ps, pe)), Some((gs, ge))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            return Err(candle_core::Error::Msg(format!(
                "{}: contiguous tensors only",
                A::NAME
            )));
        };
        let (Some(p), Some(g)) = (p.get_mut(ps..pe), g.get(gs..ge)) else {
            return Err(candle_core::Error::Msg(format!(
                "{}: storage shorter than its layout",
                A::NAME
            )));
        };
        if p.len() != g.len() {
            return Err(candle_core::Error::Msg(format!(
                "{}: {} values against {} gradients",
                A::NAME,
                p.len(),
                g.len()
            )));
        }
        let mut state = self.state.borrow_mut();
        update::<A>(self.fma, self.config, self.shape, p, g, &mut state);
        Ok(())
    }
}

/// Whether the CPU has fused multiply-add: the updates are written with `mul_add`, which is
/// one instruction there and a slow library call without it.
fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// `A::update`, compiled for AVX2 + FMA when the CPU has them (the same results: `mul_add`
/// is exact either way).
fn update<A: Algorithm>(
    fma: bool,
    config: &A::Config,
    shape: &[usize],
    param: &mut [f32],
    grad: &[f32],
    state: &mut A::State,
) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        #[target_feature(enable = "avx2,fma")]
        fn with_fma<A: Algorithm>(
            config: &A::Config,
            shape: &[usize],
            param: &mut [f32],
            grad: &[f32],
            state: &mut A::State,
        ) {
            A::update(config, shape, param, grad, state)
        }
        // SAFETY: the CPU has AVX2 and FMA (checked by `fma_available`).
        unsafe { with_fma::<A>(config, shape, param, grad, state) };
        return;
    }
    let _ = fma;
    A::update(config, shape, param, grad, state)
}

fn with_extension(prefix: &Path, ext: &str) -> std::path::PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    std::path::PathBuf::from(name)
}

impl<A: Algorithm> Optimizer<A> {
    fn save_impl(&self, prefix: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        let mut scalars = serde_json::Map::new();
        let mut groups = Vec::new();
        for (group, states) in self.groups.iter().zip(&self.states) {
            let names: Vec<&str> = group.params.iter().map(|p| p.name.as_str()).collect();
            let config = serde_json::to_value(&group.config)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            groups.push(json!({"params": names, "config": config}));
            for (param, state) in group.params.iter().zip(states) {
                let Some(state) = state else { continue };
                for (field, v) in state.vectors() {
                    let t = Tensor::from_slice(v, v.len(), &candle_core::Device::Cpu)?;
                    tensors.insert(format!("{}.{field}", param.name), t);
                }
                scalars.insert(param.name.clone(), state.scalars());
            }
        }
        let meta = json!({
            "optimizer": A::NAME,
            "groups": groups,
            "state": scalars,
            "skipped_steps": self.skipped_steps,
            "train_mode": self.train_mode,
        });
        let st = with_extension(prefix, "safetensors");
        candle_core::safetensors::save(&tensors, &st)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", st.display())))?;
        let js = with_extension(prefix, "json");
        let text =
            serde_json::to_string_pretty(&meta).map_err(|e| Error::InvalidInput(e.to_string()))?;
        std::fs::write(&js, text).map_err(|e| Error::Io {
            path: js.clone(),
            source: e,
        })?;
        Ok(())
    }

    fn load_impl(&mut self, prefix: &Path) -> Result<()> {
        let js = with_extension(prefix, "json");
        let meta = trustformers_core::config::read_json(&js)?;
        let bad = |why: String| Error::config(js.display().to_string(), why);
        if meta.get("optimizer").and_then(Value::as_str) != Some(A::NAME) {
            return Err(bad(format!(
                "holds the state of {}, not of {}",
                meta.get("optimizer").unwrap_or(&Value::Null),
                A::NAME
            )));
        }
        let groups = meta
            .get("groups")
            .and_then(Value::as_array)
            .filter(|g| g.len() == self.groups.len())
            .ok_or_else(|| {
                bad(format!(
                    "does not hold {} parameter groups",
                    self.groups.len()
                ))
            })?;
        let st = with_extension(prefix, "safetensors");
        let mut tensors = candle_core::safetensors::load(&st, &candle_core::Device::Cpu)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", st.display())))?;
        let mut new_configs = Vec::new();
        let mut new_states = Vec::new();
        for (group, saved) in self.groups.iter().zip(groups) {
            let names: Vec<&str> = group.params.iter().map(|p| p.name.as_str()).collect();
            let saved_names: Vec<&str> = saved
                .get("params")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if saved_names != names {
                return Err(bad(format!(
                    "was saved for parameters {saved_names:?}, these are {names:?}"
                )));
            }
            let config: A::Config = serde_json::from_value(saved["config"].clone())
                .map_err(|e| bad(format!("hyper-parameters: {e}")))?;
            config.validate()?;
            new_configs.push(config);
            let mut states = Vec::new();
            for param in &group.params {
                let Some(scalars) = meta["state"].get(&param.name) else {
                    states.push(None);
                    continue;
                };
                let prefix = format!("{}.", param.name);
                let keys: Vec<String> = tensors
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                // Each vector is as long as a new state's (or, for one made at the first
                // step, as the parameter), or empty.
                let fresh = A::init(&group.config, param.var.dims());
                let lengths: HashMap<&str, usize> = fresh
                    .vectors()
                    .into_iter()
                    .map(|(field, v)| (field, v.len()))
                    .collect();
                let mut vectors = HashMap::new();
                for k in keys {
                    if let Some(t) = tensors.remove(&k) {
                        let v = t.flatten_all()?.to_vec1::<f32>()?;
                        let field = &k[prefix.len()..];
                        let want = match lengths.get(field) {
                            Some(0) => param.var.elem_count(),
                            Some(&n) => n,
                            None => {
                                return Err(bad(format!("`{k}` is not a state of {}", A::NAME)))
                            }
                        };
                        if !v.is_empty() && v.len() != want {
                            return Err(bad(format!(
                                "`{k}` has {} values where {want} are expected",
                                v.len()
                            )));
                        }
                        vectors.insert(field.to_string(), v);
                    }
                }
                states.push(Some(A::State::restore(&mut vectors, scalars)?));
            }
            new_states.push(states);
        }
        for (group, config) in self.groups.iter_mut().zip(new_configs) {
            group.config = config;
        }
        self.states = new_states;
        self.skipped_steps = meta
            .get("skipped_steps")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.train_mode = meta
            .get("train_mode")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(())
    }
}

impl<A: Algorithm> Optim for Optimizer<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn save(&self, prefix: &Path) -> Result<()> {
        self.save_impl(prefix)
    }

    fn load(&mut self, prefix: &Path) -> Result<()> {
        self.load_impl(prefix)
    }

    fn momenta(&self) -> Vec<Option<f64>> {
        self.groups.iter().map(|g| g.config.momentum()).collect()
    }

    fn set_momenta(&mut self, momenta: &[f64]) -> Result<()> {
        if momenta.len() != self.groups.len()
            || self.groups.iter().any(|g| g.config.momentum().is_none())
        {
            return Err(Error::InvalidInput(format!(
                "{}: {} momenta for {} parameter groups (optimizer must support momentum or beta1)",
                A::NAME,
                momenta.len(),
                self.groups.len()
            )));
        }
        for (g, &m) in self.groups.iter_mut().zip(momenta) {
            g.config.set_momentum(m);
        }
        Ok(())
    }

    fn train(&mut self) -> Result<()> {
        self.set_mode(true)
    }

    fn eval(&mut self) -> Result<()> {
        self.set_mode(false)
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

/// A parameter group as torch takes one: its parameters, and the constructor arguments it
/// overrides (`{"params": [...], "weight_decay": 0.0}`).
pub struct GroupSpec {
    pub params: Vec<Param>,
    pub overrides: Value,
}

/// `kwargs` with `overrides` on top (both JSON objects).
fn merged(kwargs: &Value, overrides: &Value) -> Result<Value> {
    let mut out = match kwargs {
        Value::Object(m) => m.clone(),
        Value::Null => serde_json::Map::new(),
        other => {
            return Err(Error::config(
                "optimizer arguments",
                format!("must be a JSON object, got {other}"),
            ))
        }
    };
    match overrides {
        Value::Object(m) => out.extend(m.clone()),
        Value::Null => {}
        other => {
            return Err(Error::config(
                "parameter group",
                format!("must be a JSON object, got {other}"),
            ))
        }
    }
    Ok(Value::Object(out))
}

fn boxed<A: Algorithm + 'static>(groups: Vec<GroupSpec>, kwargs: &Value) -> Result<Box<dyn Optim>> {
    let groups = groups
        .into_iter()
        .map(|g| -> Result<ParamGroup<A::Config>> {
            Ok(ParamGroup {
                config: config_from_kwargs::<A::Config>(A::NAME, &merged(kwargs, &g.overrides)?)?,
                params: g.params,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(Optimizer::<A>::with_groups(groups)?))
}

/// transformers' rule for which parameters get weight decay (`Trainer.get_decay_parameter_names`):
/// none inside a LayerNorm module (`layer_norms`: their module names, since names alone do
/// not say which modules are LayerNorms, e.g. GPT-2's `ln_1`), and none whose lowercased name
/// holds `bias`, `layernorm`, `rmsnorm`, a `norm` component or a `_norm` suffix.
pub fn decays_weight(name: &str, layer_norms: &[&str]) -> bool {
    let in_layer_norm = layer_norms.iter().any(|m| {
        name.strip_prefix(m)
            .is_some_and(|rest| rest.starts_with('.'))
    });
    let n = name.to_lowercase();
    let parts: Vec<&str> = n.split('.').collect();
    let excluded = n.contains("bias")
        || n.contains("layernorm")
        || n.contains("rmsnorm")
        || parts.contains(&"norm")
        || parts.iter().any(|p| p.ends_with("_norm"));
    !in_layer_norm && !excluded
}

/// The Trainer's two parameter groups: those that decay, with `weight_decay`, and the
/// others (see [`decays_weight`]), with none.
pub fn transformers_groups(
    params: Vec<Param>,
    weight_decay: f64,
    layer_norms: &[&str],
) -> Vec<GroupSpec> {
    let (decay, no_decay): (Vec<Param>, Vec<Param>) = params
        .into_iter()
        .partition(|p| decays_weight(&p.name, layer_norms));
    vec![
        GroupSpec {
            params: decay,
            overrides: json!({ "weight_decay": weight_decay }),
        },
        GroupSpec {
            params: no_decay,
            overrides: json!({ "weight_decay": 0.0 }),
        },
    ]
}

/// The names [`by_name`] knows: the references' class names.
pub const OPTIMIZERS: &[&str] = &[
    "SGD",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "ASGD",
    "Adafactor",
];

/// The optimizer named as its reference's class (`"AdamW"`), over one group of `params`,
/// with the reference constructor's keyword arguments.
pub fn by_name(name: &str, params: Vec<Param>, kwargs: &Value) -> Result<Box<dyn Optim>> {
    let group = GroupSpec {
        params,
        overrides: json!({}),
    };
    by_name_with_groups(name, vec![group], kwargs)
}

/// [`by_name`] over parameter groups, each with the arguments it overrides.
pub fn by_name_with_groups(
    name: &str,
    params: Vec<GroupSpec>,
    kwargs: &Value,
) -> Result<Box<dyn Optim>> {
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
        "ASGD" => boxed::<Asgd>(params, kwargs),
        "Adafactor" => boxed::<Adafactor>(params, kwargs),
        "transformers.Adafactor" => boxed::<HfAdafactor>(params, kwargs),
        "Lion" => boxed::<crate::timm::Lion>(params, kwargs),
        "AdaBelief" => boxed::<crate::timm::AdaBelief>(params, kwargs),
        "Adan" => boxed::<crate::timm::Adan>(params, kwargs),
        "Lars" => boxed::<crate::timm::Lars>(params, kwargs),
        "Lamb" => boxed::<crate::timm::Lamb>(params, kwargs),
        "MADGRAD" => boxed::<crate::timm::Madgrad>(params, kwargs),
        "NvNovoGrad" => boxed::<crate::timm::NvNovoGrad>(params, kwargs),
        "AdamP" => boxed::<crate::timm::AdamP>(params, kwargs),
        "SGDP" => boxed::<crate::timm::Sgdp>(params, kwargs),
        "Lookahead" => Ok(Box::new(crate::timm::Lookahead::from_kwargs(
            params, kwargs,
        )?)),
        "AdamWScheduleFree" => boxed::<crate::schedulefree::AdamWScheduleFree>(params, kwargs),
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
        "ASGD" => defaults_of::<Asgd>(),
        "Adafactor" => defaults_of::<Adafactor>(),
        "transformers.Adafactor" => defaults_of::<HfAdafactor>(),
        "Lion" => defaults_of::<crate::timm::Lion>(),
        "AdaBelief" => defaults_of::<crate::timm::AdaBelief>(),
        "Adan" => defaults_of::<crate::timm::Adan>(),
        "Lars" => defaults_of::<crate::timm::Lars>(),
        "Lamb" => defaults_of::<crate::timm::Lamb>(),
        "MADGRAD" => defaults_of::<crate::timm::Madgrad>(),
        "NvNovoGrad" => defaults_of::<crate::timm::NvNovoGrad>(),
        "AdamP" => defaults_of::<crate::timm::AdamP>(),
        "SGDP" => defaults_of::<crate::timm::Sgdp>(),
        "Lookahead" => Ok(json!({"alpha": 0.5, "k": 6})),
        "AdamWScheduleFree" => defaults_of::<crate::schedulefree::AdamWScheduleFree>(),
        other => Err(Error::InvalidInput(format!(
            "unknown optimizer `{other}`; known: {}",
            OPTIMIZERS.join(", ")
        ))),
    }
}
