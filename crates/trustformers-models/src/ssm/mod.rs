//! State-space and recurrent language models: a fixed-size state per layer in the cache
//! (`Cache::State`) instead of keys and values, so memory per sequence does not grow with
//! its length.

pub mod mamba;
pub mod mamba2;
pub mod rwkv;

pub use mamba2::from_gguf as mamba2_from_gguf;

pub use mamba::{from_gguf as mamba_from_gguf, MambaForCausalLM, MambaSpec};
pub use rwkv::{RwkvForCausalLM, RwkvSpec};

/// Checkpoint tensors these models may leave unused.
pub const IGNORED_TENSORS: &[&str] = &[];
