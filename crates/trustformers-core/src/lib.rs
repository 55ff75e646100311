//! Foundations shared by every TrustformeRS crate: the error type, the dtype/device policy,
//! memory-mapped weight sources (safetensors, sharded safetensors, GGUF) and the strict loader
//! that makes sure every checkpoint tensor is found, has the right shape, and is used.

pub mod cache;
pub mod config;
pub mod dtype;
pub mod error;
pub mod gguf;
pub mod loader;
pub mod lora;
pub mod memory;
pub mod numeric;
pub mod pickle;
pub mod safetensors_header;
pub mod weights;

pub use cache::cache_dir;
pub use candle_core::{DType, Device, Tensor};
pub use dtype::parse_dtype;
pub use error::{panic_message, Error, ErrorKind, GgufError, PthError, Result, SafetensorsError};
pub use loader::{Parameters, StoredName, TensorNames, Weight, Weights};
pub use lora::{LoraAdapter, LoraMode};
