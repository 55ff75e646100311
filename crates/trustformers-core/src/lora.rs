//! LoRA as PEFT defines it (`peft/tuners/lora`): `LoraConfig` with PEFT's field names, which
//! modules it targets, the adapters' names in `adapter_model.safetensors`, and
//! `adapter_config.json`; and the loader's side ([`Weights::with_lora`]): it hands each
//! targeted linear layer its adapter to train, or merges a saved adapter into the weight.
//! The layer side (an adapter wrapping a linear layer) is in trustformers-nn.

use crate::loader::Inner;
use crate::{Error, Result, Weights};
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// PEFT's `LoraConfig` fields that change the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// The adapters' rank.
    pub r: usize,
    pub lora_alpha: f64,
    /// Dropout on the adapter's input (training only).
    pub lora_dropout: f64,
    /// Module names (the last components of their paths, `q_proj`) or full paths.
    pub target_modules: Vec<String>,
    /// `none` only: biases stay frozen.
    pub bias: String,
    /// Scale by `lora_alpha / sqrt(r)` instead of `lora_alpha / r`.
    pub use_rslora: bool,
    /// The targets store their weight as `[in, out]` (GPT-2's Conv1D). PEFT saves the
    /// adapter matrices the same way either way; kept for `adapter_config.json`.
    pub fan_in_fan_out: bool,
    /// Modules trained in full and saved with the adapter (a classifier head: PEFT adds
    /// `classifier` and `score` for sequence and token classification).
    pub modules_to_save: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: Vec::new(),
            bias: "none".into(),
            use_rslora: false,
            fan_in_fan_out: false,
            modules_to_save: Vec::new(),
        }
    }
}

impl LoraConfig {
    /// Refuses settings PEFT refuses or that are not supported, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(Error::config("r", "the LoRA rank must be at least 1"));
        }
        if self.target_modules.is_empty() {
            return Err(Error::config("target_modules", "name at least one module"));
        }
        if self.bias != "none" {
            return Err(Error::config(
                "bias",
                format!("`{}`: only `none` is supported", self.bias),
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(Error::config("lora_dropout", "must lie in [0, 1)"));
        }
        Ok(())
    }

    /// The factor on `B A x`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Whether the module at `path` gets an adapter: its path equals a target or ends with
    /// `.{target}`, as PEFT matches a list of names.
    pub fn targets(&self, path: &str) -> bool {
        self.target_modules
            .iter()
            .any(|t| path == t || path.ends_with(&format!(".{t}")))
    }

    /// Whether the tensor `name` belongs to a module in `modules_to_save`: the module, or
    /// one of the modules it sits in, is named so (`classifier.dense.weight` under
    /// `classifier`).
    pub fn saves(&self, name: &str) -> bool {
        let mut module = name;
        while let Some((parent, _)) = module.rsplit_once('.') {
            module = parent;
            if self
                .modules_to_save
                .iter()
                .any(|m| module == m || module.ends_with(&format!(".{m}")))
            {
                return true;
            }
        }
        false
    }

    /// `adapter_config.json` as PEFT writes it.
    pub fn to_peft_json(&self, task_type: &str, base_model: &str) -> Value {
        json!({
            "peft_type": "LORA",
            "task_type": task_type,
            "base_model_name_or_path": base_model,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": self.target_modules,
            "bias": self.bias,
            "use_rslora": self.use_rslora,
            "fan_in_fan_out": self.fan_in_fan_out,
            "modules_to_save": (!self.modules_to_save.is_empty()).then_some(&self.modules_to_save),
            "init_lora_weights": true,
            "inference_mode": true,
        })
    }

    /// Reads `adapter_config.json` (PEFT's); other PEFT types and unsupported options are
    /// errors naming the field.
    pub fn from_peft_json(path: &std::path::Path, v: &Value) -> Result<Self> {
        let bad = |field: &str, reason: String| Error::Json {
            path: path.to_path_buf(),
            reason: format!("`{field}`: {reason}"),
        };
        match v.get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            other => return Err(bad("peft_type", format!("{other:?} is not LORA"))),
        }
        let names = |field: &str| -> Result<Vec<String>> {
            match v.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|t| {
                        t.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad(field, "must hold names".into()))
                    })
                    .collect(),
                Some(other) => Err(bad(field, format!("must be a list of names, got {other}"))),
            }
        };
        let modules_to_save = names("modules_to_save")?;
        for field in ["rank_pattern", "alpha_pattern"] {
            if v.get(field)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(field, "per-module ranks are not supported yet".into()));
            }
        }
        if v.get("target_modules").is_none_or(Value::is_null) {
            return Err(bad("target_modules", "missing".into()));
        }
        let target_modules = names("target_modules")?;
        let num = |field: &str| v.get(field).and_then(Value::as_f64);
        let config = Self {
            r: v.get("r")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("r", "missing or not a count".into()))? as usize,
            lora_alpha: num("lora_alpha").unwrap_or(8.0),
            lora_dropout: num("lora_dropout").unwrap_or(0.0),
            target_modules,
            bias: v
                .get("bias")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string(),
            use_rslora: v
                .get("use_rslora")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            fan_in_fan_out: v
                .get("fan_in_fan_out")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            modules_to_save,
        };
        config
            .validate()
            .map_err(|e| bad("config", e.to_string()))?;
        Ok(config)
    }
}

/// The name PEFT saves the `part` (`lora_A` or `lora_B`) of the adapter on `module` under.
pub fn peft_name(module: &str, part: &str) -> String {
    format!("base_model.model.{module}.{part}.weight")
}

/// The name PEFT saves the tensor `name` of a module in `modules_to_save` under.
pub fn peft_saved_name(name: &str) -> String {
    format!("base_model.model.{name}")
}

/// What the loader does with LoRA adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraMode {
    /// Each targeted linear layer gets a trainable adapter (from the given weights, or
    /// initialized as PEFT does); only the adapters are [`Weights::parameters`].
    Train,
    /// The given adapters are merged into the weights they target (`W + s B A`), for
    /// inference with an adapter.
    Merge,
}

pub(crate) struct LoraState {
    pub(crate) config: LoraConfig,
    pub(crate) mode: LoraMode,
    /// Adapter weights by PEFT name (`base_model.model.{module}.lora_A.weight`).
    pub(crate) initial: BTreeMap<String, Tensor>,
    /// Trained adapters by PEFT name.
    pub(crate) adapters: Mutex<BTreeMap<String, Var>>,
    /// Modules that got an adapter.
    pub(crate) targeted: Mutex<Vec<String>>,
}

/// A LoRA adapter for one linear layer: `x -> scale * B (A x)`.
#[derive(Clone)]
pub struct LoraAdapter {
    /// `[r, in]`.
    pub a: Tensor,
    /// `[out, r]`.
    pub b: Tensor,
    pub scale: f64,
    /// Dropout on the adapter's input in training (`lora_dropout`).
    pub dropout: f64,
}

fn check_shape<'a>(name: &str, t: &'a Tensor, shape: &candle_core::Shape) -> Result<&'a Tensor> {
    if t.dims() != shape.dims() {
        return Err(Error::ShapeMismatch {
            name: name.to_string(),
            expected: shape.dims().to_vec(),
            actual: t.dims().to_vec(),
        });
    }
    Ok(t)
}

/// Uniform values in `[-bound, bound)` from a seed (splitmix64): PEFT's `kaiming_uniform_`
/// shape of initialization, reproducible (not torch's bits).
fn uniform(n: usize, bound: f32, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * u - 1.0) * bound
        })
        .collect()
}

impl Weights {
    /// The same loader with LoRA adapters on the linear layers `config` targets: trained
    /// (starting from `initial` when given, a PEFT adapter's weights by PEFT name) or merged
    /// into the base weights. Call it before loading anything.
    pub fn with_lora(
        self,
        config: LoraConfig,
        mode: LoraMode,
        initial: BTreeMap<String, Tensor>,
    ) -> Result<Self> {
        config.validate()?;
        let inner = Arc::try_unwrap(self.inner)
            .map_err(|_| Error::InvalidInput("with_lora called on a shared loader".into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                lora: Some(LoraState {
                    config,
                    mode,
                    initial,
                    adapters: Mutex::new(BTreeMap::new()),
                    targeted: Mutex::new(Vec::new()),
                }),
                ..inner
            }),
            prefix: self.prefix,
        })
    }

    /// The modules that got a LoRA adapter so far (trained or merged).
    pub fn lora_targets(&self) -> Vec<String> {
        self.inner
            .lora
            .as_ref()
            .and_then(|l| l.targeted.lock().ok().map(|t| t.clone()))
            .unwrap_or_default()
    }

    /// The module under this prefix as the checkpoint (and so transformers and PEFT) names
    /// it: `transformer.h.0.attn.c_attn` for GPT-2's fused projection, whose path here is
    /// LLaMA's.
    fn module_name(&self) -> String {
        let stored = self.stored_name(&self.path("weight")).name;
        match stored.strip_suffix(".weight") {
            Some(m) => m.to_string(),
            None => self.prefix.clone(),
        }
    }

    /// The trainable LoRA adapter of the linear layer under this prefix (`in_dim ->
    /// out_dim`), when LoRA is trained and targets it.
    pub fn lora_adapter(&self, in_dim: usize, out_dim: usize) -> Result<Option<LoraAdapter>> {
        let Some(lora) = &self.inner.lora else {
            return Ok(None);
        };
        let module = self.module_name();
        if lora.mode != LoraMode::Train || !lora.config.targets(&module) {
            return Ok(None);
        }
        let r = lora.config.r;
        let device = &self.inner.device;
        let dtype = self.inner.dtype;
        let (a_name, b_name) = (peft_name(&module, "lora_A"), peft_name(&module, "lora_B"));
        let start = |name: &str, shape: (usize, usize), fresh: Tensor| -> Result<Var> {
            let t = match lora.initial.get(name) {
                Some(t) if t.dims() == [shape.0, shape.1] => t.clone(),
                Some(t) => {
                    return Err(Error::ShapeMismatch {
                        name: name.to_string(),
                        expected: vec![shape.0, shape.1],
                        actual: t.dims().to_vec(),
                    })
                }
                None => fresh,
            };
            Ok(Var::from_tensor(&t.to_device(device)?.to_dtype(dtype)?)?)
        };
        // PEFT: A from kaiming_uniform(a = sqrt(5)), that is U(-1/sqrt(in), 1/sqrt(in)); B 0.
        let seed = self.prefix.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let bound = 1.0 / (in_dim.max(1) as f32).sqrt();
        let a = start(
            &a_name,
            (r, in_dim),
            Tensor::from_vec(uniform(r * in_dim, bound, seed), (r, in_dim), device)?,
        )?;
        let b = start(
            &b_name,
            (out_dim, r),
            Tensor::zeros((out_dim, r), dtype, device)?,
        )?;
        let lock = || Error::InvalidInput("weight loader lock poisoned".into());
        let mut adapters = lora.adapters.lock().map_err(|_| lock())?;
        adapters.insert(a_name, a.clone());
        adapters.insert(b_name, b.clone());
        lora.targeted.lock().map_err(|_| lock())?.push(module);
        Ok(Some(LoraAdapter {
            a: a.as_tensor().clone(),
            b: b.as_tensor().clone(),
            scale: lora.config.scale(),
            dropout: lora.config.lora_dropout,
        }))
    }

    /// With LoRA in `mode`, when `name` under this prefix belongs to a module in
    /// `modules_to_save`: the LoRA state and the tensor's PEFT name.
    fn saved_module(&self, name: &str, mode: LoraMode) -> Option<(&LoraState, String)> {
        let lora = self.inner.lora.as_ref().filter(|l| l.mode == mode)?;
        let full = self.stored_name(&self.path(name)).name;
        lora.config
            .saves(&full)
            .then(|| (lora, peft_saved_name(&full)))
    }

    /// Under LoRA training, `name` as a trainable parameter when its module is in
    /// `modules_to_save`: kept with the adapters under PEFT's name, starting from the
    /// adapter's saved tensor when continuing one, else from the checkpoint.
    pub(crate) fn saved_module_parameter(
        &self,
        shape: &candle_core::Shape,
        name: &str,
    ) -> Result<Option<Tensor>> {
        let Some((lora, peft)) = self.saved_module(name, LoraMode::Train) else {
            return Ok(None);
        };
        let lock = || Error::InvalidInput("weight loader lock poisoned".into());
        if let Some(var) = lora.adapters.lock().map_err(|_| lock())?.get(&peft) {
            return Ok(Some(var.as_tensor().clone()));
        }
        let start = match lora.initial.get(&peft) {
            Some(t) => check_shape(&peft, t, shape)?.clone(),
            None => self.load_dense(shape.clone(), name)?,
        };
        let var = Var::from_tensor(
            &start
                .to_device(&self.inner.device)?
                .to_dtype(self.inner.dtype)?,
        )?;
        lora.adapters
            .lock()
            .map_err(|_| lock())?
            .insert(peft, var.clone());
        Ok(Some(var.as_tensor().clone()))
    }

    /// When a saved adapter is merged, `name` from the adapter if its module is in
    /// `modules_to_save`.
    pub(crate) fn saved_module_tensor(
        &self,
        shape: &candle_core::Shape,
        name: &str,
    ) -> Result<Option<Tensor>> {
        let Some((lora, peft)) = self.saved_module(name, LoraMode::Merge) else {
            return Ok(None);
        };
        let t = lora
            .initial
            .get(&peft)
            .ok_or_else(|| Error::MissingTensor { name: peft.clone() })?;
        Ok(Some(
            check_shape(&peft, t, shape)?
                .to_device(&self.inner.device)?
                .to_dtype(self.inner.dtype)?,
        ))
    }

    /// `weight` with the adapter on this module merged in (`W + scale B A`), when LoRA is
    /// merged and targets this module.
    pub(crate) fn merged(&self, name: &str, weight: Tensor) -> Result<Tensor> {
        let Some(lora) = &self.inner.lora else {
            return Ok(weight);
        };
        let module = self.module_name();
        if lora.mode != LoraMode::Merge || name != "weight" || !lora.config.targets(&module) {
            return Ok(weight);
        }
        let part = |p: &str| {
            let n = peft_name(&module, p);
            lora.initial
                .get(&n)
                .cloned()
                .ok_or(Error::MissingTensor { name: n })
        };
        let (a, b) = (part("lora_A")?, part("lora_B")?);
        let dtype = weight.dtype();
        let delta =
            (b.to_dtype(DType::F32)?.matmul(&a.to_dtype(DType::F32)?)? * lora.config.scale())?;
        if delta.dims() != weight.dims() {
            return Err(Error::ShapeMismatch {
                name: peft_name(&module, "lora_B"),
                expected: weight.dims().to_vec(),
                actual: delta.dims().to_vec(),
            });
        }
        if let Ok(mut t) = lora.targeted.lock() {
            t.push(module);
        }
        Ok((weight.to_dtype(DType::F32)? + delta.to_device(weight.device())?)?.to_dtype(dtype)?)
    }

    /// Whether the checkpoint's own tensors stay frozen (LoRA training): they load as plain
    /// tensors, and only the adapters are [`Var`]s.
    pub fn freezes_base(&self) -> bool {
        self.inner
            .lora
            .as_ref()
            .is_some_and(|l| l.mode == LoraMode::Train)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_match_as_peft_matches_names() {
        let c = LoraConfig {
            target_modules: vec!["q_proj".into(), "v_proj".into()],
            ..Default::default()
        };
        assert!(c.targets("model.layers.0.self_attn.q_proj"));
        assert!(!c.targets("model.layers.0.self_attn.qq_proj"));
        assert!(!c.targets("model.layers.0.self_attn.o_proj"));
        assert_eq!(c.scale(), 1.0);
    }

    #[test]
    fn peft_config_round_trips_and_refuses_other_types() {
        let c = LoraConfig {
            r: 4,
            lora_alpha: 16.0,
            target_modules: vec!["q_proj".into()],
            ..Default::default()
        };
        let p = std::path::Path::new("adapter_config.json");
        let back = LoraConfig::from_peft_json(p, &c.to_peft_json("CAUSAL_LM", "base")).unwrap();
        assert_eq!(back, c);
        let err = LoraConfig::from_peft_json(p, &json!({"peft_type": "IA3"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("peft_type"), "{err}");
    }
}
