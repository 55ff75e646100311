//! [`Optimizer`]: an [`Algorithm`] over parameter groups, stepping each parameter in place,
//! with its state saved and loaded as safetensors + JSON.

use crate::ops::all_finite;
use crate::{Algorithm, Hyper, Optim, Param, ParamGroup, StateParts};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_nn::kernels::with_f32;

/// An [`Algorithm`] over parameter groups, with one state per parameter.
pub struct Optimizer<A: Algorithm> {
    groups: Vec<ParamGroup<A::Config>>,
    states: Vec<Vec<Option<A::State>>>,
    check_finite: bool,
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
            check_finite: true,
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

    /// Whether each step first reads every gradient for NaN and infinity (the default).
    /// A caller that has checked them already can turn it off and save that pass over
    /// the gradients (a fifth of an AdamW step's memory traffic): a finite total from
    /// [`clip_grad_norm`](crate::clip_grad_norm) means every gradient is finite. Without
    /// the check a non-finite gradient flows into the parameters, as in torch's
    /// optimizers, which do not check.
    pub fn check_finite(mut self, check: bool) -> Self {
        self.check_finite = check;
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
        let with_grads: Vec<(&Param, &Tensor)> = self
            .groups
            .iter()
            .flat_map(|group| &group.params)
            .filter_map(|param| Some((param, grads.get(param.var.as_tensor())?)))
            .collect();
        for (param, grad) in &with_grads {
            if grad.dims() != param.var.dims() {
                return Err(Error::InvalidInput(format!(
                    "{}: the gradient of `{}` has shape {:?}, the parameter {:?}",
                    A::NAME,
                    param.name,
                    grad.dims(),
                    param.var.dims()
                )));
            }
        }
        let finite = if self.check_finite {
            with_grads
                .par_iter()
                .map(|(_, grad)| with_f32(grad, |g| Ok(all_finite(g))))
                .collect::<Result<Vec<bool>>>()?
        } else {
            Vec::new()
        };
        if let Some(i) = finite.iter().position(|finite| !finite) {
            if self.skip_nonfinite {
                self.skipped_steps += 1;
                return Ok(());
            }
            return Err(Error::InvalidInput(format!(
                "{}: the gradient of `{}` is not finite (NaN or infinite)",
                A::NAME,
                with_grads[i].0.name
            )));
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
