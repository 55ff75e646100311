//! State-space and recurrent language models: a fixed-size state per layer in the cache
//! (`Cache::State`) instead of keys and values, so memory per sequence does not grow with
//! its length.

pub mod mamba;

pub use mamba::{MambaForCausalLM, MambaSpec};

/// Checkpoint tensors these models may leave unused.
pub const IGNORED_TENSORS: &[&str] = &[];
