//! Where checkpoint tensors come from. A [`TensorSource`] lists tensors by their Hugging Face
//! name and loads them on demand from a memory-mapped file.

mod file_bytes;
mod gguf_source;
mod pth_source;
mod safetensors_source;

pub use file_bytes::{advise_huge_pages, FileBytes};
pub use gguf_source::{GgufSource, GgufTensorRef, Renamed};
pub use pth_source::PthSource;
pub use safetensors_source::SafetensorsSource;

use crate::Result;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

/// A tensor as the checkpoint stores it.
pub enum StoredTensor {
    /// Plain floats (or ints), in the checkpoint's dtype.
    Dense(Tensor),
    /// A ggml block-quantized tensor.
    Quantized(QTensor),
}

/// A set of named tensors on disk.
pub trait TensorSource: Send + Sync {
    /// Every tensor name, sorted.
    fn names(&self) -> Vec<String>;
    /// The shape of `name`, outermost dimension first.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Loads `name` onto `device` without changing its representation.
    fn load(&self, name: &str, device: &Device) -> Result<StoredTensor>;
    /// Whether the source holds block-quantized tensors.
    fn is_quantized(&self) -> bool;
    /// The files behind this source, for messages.
    fn describe(&self) -> String;
}

/// Tensors already in memory, by name: weights built rather than read (tests, adapters).
impl TensorSource for std::collections::BTreeMap<String, Tensor> {
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.dims().to_vec())
    }
    fn load(&self, name: &str, device: &Device) -> Result<StoredTensor> {
        let t = self.get(name).ok_or_else(|| crate::Error::MissingTensor {
            name: name.to_string(),
        })?;
        Ok(StoredTensor::Dense(t.to_device(device)?))
    }
    fn is_quantized(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        format!("{} tensors in memory", self.len())
    }
}

/// A checkpoint with tensors added in memory: weights a model needs that the file does not
/// hold (a new task head, initialized as transformers initializes it). Tensors of the file
/// win over added ones of the same name.
pub struct WithAdded {
    pub source: Box<dyn TensorSource>,
    pub added: std::collections::BTreeMap<String, Tensor>,
}

impl TensorSource for WithAdded {
    fn names(&self) -> Vec<String> {
        let mut names = self.source.names();
        names.extend(self.added.keys().cloned());
        names.sort();
        names.dedup();
        names
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.source.shape(name).or_else(|| self.added.shape(name))
    }
    fn load(&self, name: &str, device: &Device) -> Result<StoredTensor> {
        match self.source.shape(name) {
            Some(_) => self.source.load(name, device),
            None => self.added.load(name, device),
        }
    }
    fn is_quantized(&self) -> bool {
        self.source.is_quantized()
    }
    fn describe(&self) -> String {
        format!(
            "{} (with {} new tensors)",
            self.source.describe(),
            self.added.len()
        )
    }
}

/// The weights of a checkpoint directory, as transformers picks them: `model.safetensors`
/// (or its sharded index) first, then `pytorch_model.bin`, read by a parser that never runs
/// code.
pub fn open_dir(dir: &std::path::Path) -> Result<Box<dyn TensorSource>> {
    let bin = dir.join("pytorch_model.bin");
    let has_safetensors = dir.join("model.safetensors").is_file()
        || dir.join("model.safetensors.index.json").is_file();
    if !has_safetensors && bin.is_file() {
        return Ok(Box::new(PthSource::open(&bin)?));
    }
    Ok(Box::new(SafetensorsSource::from_dir(dir)?))
}
