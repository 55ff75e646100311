//! State-space and recurrent language models: a fixed-size state per layer in the cache
//! (`Cache::State`) instead of keys and values, so memory per sequence does not grow with
//! its length.

pub mod mamba;
pub mod mamba2;
pub mod rwkv;

pub use mamba2::from_gguf as mamba2_from_gguf;

pub use mamba::{from_gguf as mamba_from_gguf, MambaForCausalLM, MambaSpec};
pub use rwkv::{RwkvForCausalLM, RwkvSpec};

use crate::traits::{CausalLmOutput, ForwardOptions};
use candle_core::{DType, Device, Tensor};
use trustformers_core::Result;
use trustformers_nn::Linear;

/// A recurrent model's pass over `seq` new tokens of `batch` rows: `pass(start, len)` runs
/// tokens `start..start + len` through the layers (advancing the states it holds) and gives
/// their final hidden states and, when asked, the hidden-state tuple. A prompt goes
/// `chunk` tokens at a time, which with the states carried over is the same as one pass
/// (all at once when hidden states are asked for, since they are per pass); then `head`
/// gives the logits of the positions `opts.logits_to_keep` keeps.
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunked_pass(
    (batch, seq): (usize, usize),
    hidden_size: usize,
    (dtype, device): (DType, &Device),
    chunk: usize,
    opts: &ForwardOptions,
    head: &Linear,
    mut pass: impl FnMut(usize, usize) -> Result<(Tensor, Vec<Tensor>)>,
) -> Result<CausalLmOutput> {
    let chunk = match opts.output_hidden_states {
        true => seq.max(1),
        false => chunk,
    };
    let mut finals = Vec::new();
    let mut hidden_states = Vec::new();
    let mut start = 0;
    while start < seq {
        let len = chunk.min(seq - start);
        let (last, all) = pass(start, len)?;
        finals.push(last);
        hidden_states = all;
        start += len;
    }
    let last_hidden_state = match finals.len() {
        0 => Tensor::zeros((batch, 0, hidden_size), dtype, device)?,
        1 => finals.remove(0),
        _ => Tensor::cat(&finals, 1)?,
    };
    let kept = match opts.logits_to_keep {
        Some(n) if n < seq => last_hidden_state.narrow(1, seq - n, n)?,
        _ => last_hidden_state.clone(),
    };
    let logits = head.forward(&kept)?.to_dtype(DType::F32)?;
    Ok(CausalLmOutput {
        logits,
        last_hidden_state,
        hidden_states,
    })
}

/// Checkpoint tensors these models may leave unused.
pub const IGNORED_TENSORS: &[&str] = &[];
