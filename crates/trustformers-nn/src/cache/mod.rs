//! What a model keeps between forward passes, one enum for every kind of model: the
//! generation loop, beam search and a server's scheduler hold a [`Cache`] without knowing
//! which model filled it.
//!
//! - [`KvCache`]: keys and values of self-attention (decoders).
//! - [`EncoderDecoderCache`]: the decoder's self-attention cache, the cross-attention keys and
//!   values computed once from the encoder output, and that output (T5, BART, Marian).
//! - [`RecurrentState`]: a fixed-size state per layer (Mamba's conv and SSM states, RWKV's
//!   token-shift and WKV states), whose memory does not grow with the sequence.

pub mod enc_dec;
pub mod kv;
pub mod state;

pub use enc_dec::EncoderDecoderCache;
pub use kv::KvCache;
pub use state::RecurrentState;

use candle_core::DType;
use trustformers_core::{Error, Result};

/// A model's cache, of the kind the model makes with its `new_cache`.
#[derive(Debug, Clone)]
pub enum Cache {
    /// Self-attention keys and values.
    Kv(KvCache),
    /// Self-attention and cross-attention caches plus the encoder output.
    EncoderDecoder(EncoderDecoderCache),
    /// Fixed-size recurrent state.
    State(RecurrentState),
}

/// A tensor's size in bytes.
fn tensor_bytes(t: &candle_core::Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

impl From<KvCache> for Cache {
    fn from(cache: KvCache) -> Self {
        Self::Kv(cache)
    }
}

impl From<EncoderDecoderCache> for Cache {
    fn from(cache: EncoderDecoderCache) -> Self {
        Self::EncoderDecoder(cache)
    }
}

impl From<RecurrentState> for Cache {
    fn from(cache: RecurrentState) -> Self {
        Self::State(cache)
    }
}

impl Cache {
    /// The cache kind's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kv(_) => "key/value cache",
            Self::EncoderDecoder(_) => "encoder-decoder cache",
            Self::State(_) => "recurrent state",
        }
    }

    /// Bytes the cache holds: what a server counts per sequence.
    pub fn memory_bytes(&self) -> usize {
        match self {
            Self::Kv(c) => c.memory_bytes(),
            Self::EncoderDecoder(c) => c.memory_bytes(),
            Self::State(c) => c.memory_bytes(),
        }
    }

    /// Positions seen so far (for an encoder-decoder, decoder positions).
    pub fn seq_len(&self) -> usize {
        match self {
            Self::Kv(c) => c.seq_len(),
            Self::EncoderDecoder(c) => c.seq_len(),
            Self::State(c) => c.seq_len(),
        }
    }

    /// What keys and values (or states) are kept as.
    pub fn dtype(&self) -> DType {
        match self {
            Self::Kv(c) => c.dtype(),
            Self::EncoderDecoder(c) => c.self_attn().dtype(),
            Self::State(c) => c.dtype(),
        }
    }

    /// Keeps batch rows `rows` (in that order, repeats allowed): how beam search follows the
    /// beams it continues, and how one prefilled prompt is copied to several beams.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        match self {
            Self::Kv(c) => c.select_rows(rows),
            Self::EncoderDecoder(c) => c.select_rows(rows),
            Self::State(c) => c.select_rows(rows),
        }
    }

    /// Keeps the first `len` positions (a shared prompt prefix reused by another sequence).
    /// A recurrent state summarises every position it has seen and cannot be cut back: an
    /// error.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        match self {
            Self::Kv(c) => c.truncate(len),
            Self::EncoderDecoder(c) => c.self_attn_mut().truncate(len),
            Self::State(_) => Err(trustformers_core::Error::InvalidInput(
                "a recurrent state cannot be cut back to a prefix".into(),
            )),
        }
    }

    /// Empties the cache.
    pub fn clear(&mut self) {
        match self {
            Self::Kv(c) => c.clear(),
            Self::EncoderDecoder(c) => c.clear(),
            Self::State(c) => c.clear(),
        }
    }

    /// The key/value cache, or an error naming `model` and the kind it was given.
    pub fn kv_mut(&mut self, model: &str) -> Result<&mut KvCache> {
        match self {
            Self::Kv(c) => Ok(c),
            other => Err(wrong_kind(model, "key/value cache", other)),
        }
    }

    /// The encoder-decoder cache, or an error naming `model` and the kind it was given.
    pub fn encoder_decoder_mut(&mut self, model: &str) -> Result<&mut EncoderDecoderCache> {
        match self {
            Self::EncoderDecoder(c) => Ok(c),
            other => Err(wrong_kind(model, "encoder-decoder cache", other)),
        }
    }

    /// The recurrent state, or an error naming `model` and the kind it was given.
    pub fn state_mut(&mut self, model: &str) -> Result<&mut RecurrentState> {
        match self {
            Self::State(c) => Ok(c),
            other => Err(wrong_kind(model, "recurrent state", other)),
        }
    }
}

fn wrong_kind(model: &str, wanted: &str, got: &Cache) -> Error {
    Error::InvalidInput(format!(
        "{model} keeps a {wanted} between steps, but was given a {}; make caches with the \
         model's own new_cache()",
        got.kind()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cache_of_the_wrong_kind_is_an_error_that_names_both() {
        let mut cache = Cache::from(RecurrentState::new(2, DType::F32));
        let err = cache.kv_mut("llama").unwrap_err().to_string();
        assert!(err.contains("llama"), "{err}");
        assert!(err.contains("key/value cache"), "{err}");
        assert!(err.contains("recurrent state"), "{err}");
        assert!(cache.state_mut("mamba").is_ok());
        let mut kv = Cache::from(KvCache::new(2));
        assert!(kv.encoder_decoder_mut("t5").is_err());
        assert_eq!(kv.seq_len(), 0);
    }
}
