//! The strict loader: a `VarBuilder`-like view over a [`TensorSource`] that walks HF tensor
//! names (`weights.pp("model").pp("layers").pp(0)`), checks every shape, converts to the
//! compute dtype, and remembers what was consumed so that [`Weights::finish`] can refuse a
//! checkpoint with tensors nobody used.

use crate::lora::LoraMode;
use crate::weights::{StoredTensor, TensorSource};
use crate::{Error, Result};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Shape, Tensor, Var};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// A weight as a layer receives it: dense in the compute dtype, or still block-quantized.
#[derive(Clone)]
pub enum Weight {
    Dense(Tensor),
    Quantized(Arc<QTensor>),
}

/// Where a checkpoint stores a tensor the model knows by its canonical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredName {
    pub name: String,
    /// Stored as the transpose of the canonical `[out, in]` (GPT-2's `Conv1D`).
    pub transposed: bool,
}

impl StoredName {
    /// Stored under `name`, as is.
    pub fn plain(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transposed: false,
        }
    }

    /// Stored under `name`, transposed.
    pub fn transposed(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transposed: true,
        }
    }
}

/// Maps the name a model asks for to the one name its checkpoint stores it under, when the
/// architecture names tensors its own way (e.g. `gpt_neox.embed_in` for
/// `model.embed_tokens`); `None`: stored under the name asked for. One answer, never a
/// list to try: what is loaded can be written back under the same names.
pub type TensorNames = Box<dyn Fn(&str) -> Option<StoredName> + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) source: Box<dyn TensorSource>,
    pub(crate) names: Option<TensorNames>,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) keep_quantized: bool,
    pub(crate) used: Mutex<BTreeSet<String>>,
    /// Set for training: every tensor is loaded once as a [`Var`], kept here by its name in
    /// the checkpoint.
    pub(crate) parameters: Option<Mutex<BTreeMap<String, Var>>>,
    pub(crate) lora: Option<crate::lora::LoraState>,
    /// Whether linear layers quantize their weights to int8 ([`Weights::with_int8_linears`]).
    pub(crate) int8_linears: bool,
}

/// A prefix into a checkpoint. Cheap to clone; all clones share the record of used tensors.
#[derive(Clone)]
pub struct Weights {
    pub(crate) inner: Arc<Inner>,
    pub(crate) prefix: String,
}

impl Weights {
    /// Wraps `source`. Dense tensors are converted to `dtype`; quantized tensors stay
    /// quantized when `keep_quantized`, and are dequantized to `dtype` otherwise.
    pub fn new(
        source: Box<dyn TensorSource>,
        dtype: DType,
        device: Device,
        keep_quantized: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                dtype,
                device,
                keep_quantized,
                names: None,
                used: Mutex::new(BTreeSet::new()),
                parameters: None,
                lora: None,
                int8_linears: false,
            }),
            prefix: String::new(),
        }
    }

    /// Wraps `source` for training: every tensor is dequantized if needed, converted to
    /// `dtype` and loaded as a [`Var`] (once, however many layers share it), so the layers
    /// built from it take their differentiable path and [`Self::parameters`] lists what
    /// the optimizer updates.
    pub fn trainable(source: Box<dyn TensorSource>, dtype: DType, device: Device) -> Self {
        let mut weights = Self::new(source, dtype, device, false);
        if let Some(inner) = Arc::get_mut(&mut weights.inner) {
            inner.parameters = Some(Mutex::new(BTreeMap::new()));
        }
        weights
    }

    /// Asks the linear layers built from this loader to quantize their weights to int8 per
    /// output channel (dynamic quantization: activations are quantized on every call).
    /// Refused for a trainable loader.
    pub fn with_int8_linears(mut self) -> Result<Self> {
        if self.is_trainable() {
            return Err(Error::InvalidInput(
                "int8 weights cannot be trained: load in f32 to train".into(),
            ));
        }
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.int8_linears = true,
            None => {
                return Err(Error::InvalidInput(
                    "with_int8_linears called on a shared loader".into(),
                ))
            }
        }
        Ok(self)
    }

    /// Whether linear layers quantize their weights to int8 ([`Self::with_int8_linears`]).
    pub fn int8_linears(&self) -> bool {
        self.inner.int8_linears
    }

    /// Whether tensors are loaded as trainable [`Var`]s.
    pub fn is_trainable(&self) -> bool {
        self.inner.parameters.is_some()
    }

    /// The trainable tensors loaded so far, by their names in the checkpoint (and in its
    /// layout: a transposed tensor is kept as stored); empty unless [`Self::trainable`].
    pub fn parameters(&self) -> Result<Parameters> {
        if let Some(lora) = self
            .inner
            .lora
            .as_ref()
            .filter(|l| l.mode == LoraMode::Train)
        {
            let adapters = lora
                .adapters
                .lock()
                .map_err(|_| Error::InvalidInput("weight loader lock poisoned".into()))?;
            return Ok(Parameters(adapters.clone()));
        }
        let Some(parameters) = &self.inner.parameters else {
            return Ok(Parameters::default());
        };
        let parameters = parameters
            .lock()
            .map_err(|_| Error::InvalidInput("weight loader lock poisoned".into()))?;
        Ok(Parameters(parameters.clone()))
    }

    /// The same loader, looking tensors up through `names` (see [`TensorNames`]). Call it
    /// before loading anything.
    pub fn with_names(
        self,
        names: impl Fn(&str) -> Option<StoredName> + Send + Sync + 'static,
    ) -> Result<Self> {
        let inner = Arc::try_unwrap(self.inner)
            .map_err(|_| Error::InvalidInput("with_names called on a shared loader".into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                names: Some(Box::new(names)),
                ..inner
            }),
            prefix: self.prefix,
        })
    }

    /// Where the checkpoint stores the tensor the model calls `full`.
    pub(crate) fn stored_name(&self, full: &str) -> StoredName {
        self.inner
            .names
            .as_ref()
            .and_then(|f| f(full))
            .unwrap_or_else(|| StoredName::plain(full))
    }

    /// A view one level down: `pp("self_attn")` turns `model.layers.0` into
    /// `model.layers.0.self_attn`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self {
            inner: self.inner.clone(),
            prefix: self.path(&name.to_string()),
        }
    }

    /// The full tensor name of `name` under this prefix.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.inner.dtype
    }

    /// The device tensors are loaded onto.
    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    /// Whether `name` exists under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        let full = self.stored_name(&self.path(name));
        self.inner.source.shape(&full.name).is_some()
    }

    /// The stored shape of `name` under this prefix, when it exists (for tensors that
    /// checkpoints store in more than one layout, e.g. a depthwise convolution's
    /// `[channels, 1, kernel]` or, squeezed, `[channels, kernel]`).
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        let full = self.stored_name(&self.path(name));
        self.inner.source.shape(&full.name)
    }

    /// Loads `name` as a dense tensor in the compute dtype, dequantizing if needed.
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        if self.is_trainable() {
            return self.load_parameter(shape.into(), name);
        }
        let shape = shape.into();
        if let Some(t) = self.saved_module_tensor(&shape, name)? {
            return Ok(t);
        }
        Ok(self.load_dense(shape, name)?.to_dtype(self.inner.dtype)?)
    }

    /// `name` as stored, dequantized when it is quantized (in its stored dtype otherwise).
    pub(crate) fn load_dense(&self, shape: Shape, name: &str) -> Result<Tensor> {
        Ok(match self.load(shape, name)? {
            StoredTensor::Dense(t) => t,
            StoredTensor::Quantized(q) => q.dequantize(&self.inner.device)?,
        })
    }

    /// Loads `name` for a matmul: quantized tensors stay quantized when the loader keeps
    /// them, everything else becomes dense in the compute dtype.
    pub fn get_weight(&self, shape: impl Into<Shape>, name: &str) -> Result<Weight> {
        if self.is_trainable() {
            return Ok(Weight::Dense(self.load_parameter(shape.into(), name)?));
        }
        let shape = shape.into();
        if let Some(t) = self.saved_module_tensor(&shape, name)? {
            return Ok(Weight::Dense(t));
        }
        let merging = self.inner.lora.as_ref().is_some_and(|l| {
            l.mode == LoraMode::Merge
                && name == "weight"
                && l.config.targets(
                    self.stored_name(&self.path("weight"))
                        .name
                        .trim_end_matches(".weight"),
                )
        });
        if merging {
            return Ok(Weight::Dense(self.merged(name, self.get(shape, name)?)?));
        }
        match self.load(shape, name)? {
            StoredTensor::Quantized(q) if self.inner.keep_quantized => {
                Ok(Weight::Quantized(Arc::new(q)))
            }
            StoredTensor::Quantized(q) => Ok(Weight::Dense(
                q.dequantize(&self.inner.device)?
                    .to_dtype(self.inner.dtype)?,
            )),
            StoredTensor::Dense(t) => Ok(Weight::Dense(t.to_dtype(self.inner.dtype)?)),
        }
    }

    /// `name` as a view of its [`Var`] (created on first use, as stored, in the compute
    /// dtype), transposed when the checkpoint stores it so.
    fn load_parameter(&self, shape: Shape, name: &str) -> Result<Tensor> {
        if let Some(t) = self.saved_module_parameter(&shape, name)? {
            return Ok(t);
        }
        if self.freezes_base() {
            // Frozen under LoRA: a plain tensor, so no gradient is computed for it.
            return Ok(self.load_dense(shape, name)?.to_dtype(self.inner.dtype)?);
        }
        let stored = self.stored_name(&self.path(name));
        let parameters = self
            .inner
            .parameters
            .as_ref()
            .ok_or_else(|| Error::InvalidInput("the loader is not trainable".into()))?;
        let known = parameters
            .lock()
            .map_err(|_| Error::InvalidInput("weight loader lock poisoned".into()))?
            .get(&stored.name)
            .cloned();
        let var = match known {
            Some(var) => {
                let mut expected = shape.dims().to_vec();
                if stored.transposed {
                    expected.reverse();
                }
                if var.dims() != expected {
                    return Err(Error::ShapeMismatch {
                        name: stored.name,
                        expected,
                        actual: var.dims().to_vec(),
                    });
                }
                var
            }
            None => {
                let (tensor, _) = self.load_stored(shape, name)?;
                let dense = match tensor {
                    StoredTensor::Dense(t) => t,
                    StoredTensor::Quantized(q) => q.dequantize(&self.inner.device)?,
                };
                let var = Var::from_tensor(&dense.to_dtype(self.inner.dtype)?)?;
                parameters
                    .lock()
                    .map_err(|_| Error::InvalidInput("weight loader lock poisoned".into()))?
                    .insert(stored.name.clone(), var.clone());
                var
            }
        };
        let tensor = var.as_tensor().clone();
        Ok(if stored.transposed {
            tensor.t()?
        } else {
            tensor
        })
    }

    pub(crate) fn load(&self, shape: Shape, name: &str) -> Result<StoredTensor> {
        let (tensor, transposed) = self.load_stored(shape, name)?;
        if !transposed {
            return Ok(tensor);
        }
        match tensor {
            StoredTensor::Dense(t) if t.rank() == 2 => {
                Ok(StoredTensor::Dense(t.t()?.contiguous()?))
            }
            _ => Err(Error::UnsupportedTensor {
                name: self.stored_name(&self.path(name)).name,
                reason: "only dense matrices can be stored transposed".into(),
            }),
        }
    }

    /// `name` as the checkpoint stores it, after the shape check, and whether it is stored
    /// transposed.
    fn load_stored(&self, shape: Shape, name: &str) -> Result<(StoredTensor, bool)> {
        let StoredName {
            name: full,
            transposed,
        } = self.stored_name(&self.path(name));
        let actual = self
            .inner
            .source
            .shape(&full)
            .ok_or_else(|| Error::MissingTensor { name: full.clone() })?;
        let mut expected = shape.dims().to_vec();
        if transposed {
            expected.reverse();
        }
        if actual != expected {
            return Err(Error::ShapeMismatch {
                name: full,
                expected,
                actual,
            });
        }
        let tensor = self.inner.source.load(&full, &self.inner.device)?;
        if transposed && !matches!(&tensor, StoredTensor::Dense(t) if t.rank() == 2) {
            return Err(Error::UnsupportedTensor {
                name: full,
                reason: "only dense matrices can be stored transposed".into(),
            });
        }
        if let Ok(mut used) = self.inner.used.lock() {
            used.insert(full);
        }
        Ok((tensor, transposed))
    }

    /// The checkpoint's tensors that were never loaded.
    pub fn unused(&self) -> Result<Vec<String>> {
        let used = self
            .inner
            .used
            .lock()
            .map_err(|_| Error::InvalidInput("weight loader lock poisoned".into()))?;
        Ok(self
            .inner
            .source
            .names()
            .into_iter()
            .filter(|n| !used.contains(n))
            .collect())
    }

    /// Fails with [`Error::UnusedTensors`] if the checkpoint holds tensors that were never
    /// loaded, except those whose name ends with one of `ignored` (buffers transformers
    /// itself skips, such as `rotary_emb.inv_freq`).
    pub fn finish(&self, ignored: &[&str]) -> Result<()> {
        self.finish_unless(|n| ignored.iter().any(|s| n.ends_with(s)))
    }

    /// Fails with [`Error::UnusedTensors`] if the checkpoint holds tensors that were never
    /// loaded and `may_skip` does not allow: the model that was built decides.
    pub fn finish_unless(&self, may_skip: impl Fn(&str) -> bool) -> Result<()> {
        let unused: Vec<String> = self
            .unused()?
            .into_iter()
            .filter(|n| !may_skip(n))
            .collect();
        if unused.is_empty() {
            Ok(())
        } else {
            Err(Error::UnusedTensors { names: unused })
        }
    }

    /// Describes the files behind this loader.
    pub fn describe(&self) -> String {
        self.inner.source.describe()
    }
}

/// A model's trainable tensors by their checkpoint names (sorted), as
/// [`Weights::parameters`] collected them.
#[derive(Clone, Default)]
pub struct Parameters(BTreeMap<String, Var>);

impl Parameters {
    /// The parameter stored under `name`.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.0.get(name)
    }

    /// Every parameter with its name, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.0.iter()
    }

    /// How many tensors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many numbers, all tensors together.
    pub fn numel(&self) -> usize {
        self.0.values().map(|v| v.elem_count()).sum()
    }
}
