//! Where checkpoint tensors come from. A [`TensorSource`] lists tensors by their Hugging Face
//! name and loads them on demand from a memory-mapped file.

mod gguf_source;
mod safetensors_source;

pub use gguf_source::{GgufSource, GgufTensorRef, Renamed};
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
