//! The seams between models and everything that runs them. Generation, pipelines, the CLI,
//! the server and the bindings hold a `dyn CausalLM` (or a `dyn EncoderDecoderLM`) and a
//! [`Cache`] made by that model; they never name a concrete model type.

use candle_core::{DType, Device, Tensor};
use trustformers_core::{Error, Result};
use trustformers_nn::Cache;

/// Prompt tokens run through the layers at once, by default: llama.cpp's `n_ubatch`.
pub const DEFAULT_PREFILL_CHUNK: usize = 512;

/// Settings that change how a loaded model runs, not what it computes (beyond rounding):
/// chosen when it is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeOptions {
    /// What caches keep keys and values as (f32 or f16). `None`: f16 for quantized weights
    /// (as llama.cpp does), f32 otherwise.
    pub kv_cache_dtype: Option<DType>,
    /// The most tokens one pass through the layers takes (llama.cpp's `n_ubatch`): a longer
    /// prompt goes in chunks, so its activations take one chunk's memory.
    pub prefill_chunk: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            kv_cache_dtype: None,
            prefill_chunk: DEFAULT_PREFILL_CHUNK,
        }
    }
}

impl RuntimeOptions {
    /// Refuses settings no model can run with, naming the parameter.
    pub fn validate(&self) -> Result<()> {
        if self.prefill_chunk == 0 {
            return Err(Error::config(
                "prefill_chunk",
                "must hold at least one token (llama.cpp's --ubatch-size)",
            ));
        }
        match self.kv_cache_dtype {
            None | Some(DType::F32) | Some(DType::F16) => Ok(()),
            Some(other) => Err(Error::config(
                "kv_cache_dtype",
                format!("a KV cache keeps f32 or f16, not {other:?}"),
            )),
        }
    }
}

/// Options for one forward pass.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// `[batch, past + seq]` 0/1 mask over cached and new tokens (transformers'
    /// `attention_mask`); `None` means no padding.
    pub attention_mask: Option<Tensor>,
    /// Also return the hidden state after the embeddings and after every layer.
    pub output_hidden_states: bool,
    /// transformers' `logits_to_keep`: compute logits for the last `n` positions only
    /// (generation needs one; the head is often the largest matrix). `None` keeps all.
    pub logits_to_keep: Option<usize>,
}

/// Outputs of a language model's forward pass.
pub struct CausalLmOutput {
    /// `[batch, kept, vocab]` f32, `kept` = `logits_to_keep` or the whole sequence.
    pub logits: Tensor,
    /// `[batch, seq, hidden]` after the final norm.
    pub last_hidden_state: Tensor,
    /// With `output_hidden_states`: transformers' `hidden_states` tuple, `num_layers + 1`
    /// tensors: for decoders the embeddings, then each layer's output, the last one after
    /// the final norm; for Mamba each layer's output, then the last one after the final norm.
    pub hidden_states: Vec<Tensor>,
}

/// A language model that predicts the next token from the ones before it: decoders
/// (LLaMA, GPT-2, MoE), and state-space and recurrent models. transformers'
/// `AutoModelForCausalLM`.
pub trait CausalLM: Send + Sync {
    /// config.json's `model_type` of the loaded checkpoint.
    fn model_type(&self) -> &str;

    /// Logits (and hidden states when asked) for new tokens after what `cache` holds, which
    /// the pass extends.
    ///
    /// # Shapes
    /// `input_ids`, `positions`: `[batch, seq]` integers -> logits `[batch, kept, vocab]`.
    fn forward_with(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<CausalLmOutput>;

    /// Logits for every new position, with no padding.
    ///
    /// # Shapes
    /// `input_ids`, `positions`: `[batch, seq]` -> `[batch, seq, vocab]`.
    fn forward(&self, input_ids: &Tensor, positions: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        Ok(self
            .forward_with(input_ids, positions, &ForwardOptions::default(), cache)?
            .logits)
    }

    /// Next-token logits for rows that each continue their own cache (sequences of
    /// different lengths stepped together, as a server's scheduler does): row `i` of
    /// `input_ids` and `positions` follows what `caches[i]` holds, with no padding, and
    /// extends it. The results are those of one [`CausalLM::forward_with`] per row; a
    /// model may run the rows in one pass (the decoders do: each weight is read once for
    /// all rows).
    ///
    /// # Shapes
    /// `input_ids`, `positions`: `[rows, seq]` -> logits of each row's last position
    /// `[rows, vocab]` f32.
    fn forward_rows(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        caches: &mut [&mut Cache],
    ) -> Result<Tensor> {
        let rows = input_ids.dim(0)?;
        if caches.len() != rows {
            return Err(Error::InvalidInput(format!(
                "{rows} rows of input_ids with {} caches",
                caches.len()
            )));
        }
        let opts = ForwardOptions {
            logits_to_keep: Some(1),
            ..Default::default()
        };
        let logits = caches
            .iter_mut()
            .enumerate()
            .map(|(i, cache)| {
                let row = |t: &Tensor| t.narrow(0, i, 1);
                let out = self.forward_with(&row(input_ids)?, &row(positions)?, &opts, cache)?;
                Ok(out.logits.squeeze(1)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&logits, 0)?)
    }

    /// An empty cache of the kind this model fills.
    fn new_cache(&self) -> Cache;

    /// Size of the vocabulary (the logits' last dimension).
    fn vocab_size(&self) -> usize;

    /// The longest sequence the model takes, prompt and generated tokens together.
    fn max_position_embeddings(&self) -> usize;

    /// Number of layers (transformers' `config.num_hidden_layers`).
    fn num_hidden_layers(&self) -> usize;

    /// Where the weights live; inputs go there too.
    fn device(&self) -> &Device;

    /// The compute dtype of activations.
    fn dtype(&self) -> DType;
}

/// A boxed or shared model is a model too, so `&Box<dyn CausalLM>` and `&Arc<dyn CausalLM>`
/// go wherever a `&dyn CausalLM` does.
macro_rules! forward_causal_lm {
    ($($ptr:ident)::+) => {
        impl<T: CausalLM + ?Sized> CausalLM for $($ptr)::+<T> {
            fn model_type(&self) -> &str {
                (**self).model_type()
            }
            fn forward_with(
                &self,
                input_ids: &Tensor,
                positions: &Tensor,
                opts: &ForwardOptions,
                cache: &mut Cache,
            ) -> Result<CausalLmOutput> {
                (**self).forward_with(input_ids, positions, opts, cache)
            }
            fn forward_rows(
                &self,
                input_ids: &Tensor,
                positions: &Tensor,
                caches: &mut [&mut Cache],
            ) -> Result<Tensor> {
                (**self).forward_rows(input_ids, positions, caches)
            }
            fn new_cache(&self) -> Cache {
                (**self).new_cache()
            }
            fn vocab_size(&self) -> usize {
                (**self).vocab_size()
            }
            fn max_position_embeddings(&self) -> usize {
                (**self).max_position_embeddings()
            }
            fn num_hidden_layers(&self) -> usize {
                (**self).num_hidden_layers()
            }
            fn device(&self) -> &Device {
                (**self).device()
            }
            fn dtype(&self) -> DType {
                (**self).dtype()
            }
        }
    };
}
forward_causal_lm!(Box);
forward_causal_lm!(std::sync::Arc);

/// Outputs of an encoder-decoder's decoder pass.
pub struct Seq2SeqOutput {
    /// `[batch, kept, vocab]` f32.
    pub logits: Tensor,
    /// `[batch, seq, hidden]` of the decoder.
    pub last_hidden_state: Tensor,
}

/// A model that encodes a source sequence once and decodes a target sequence against it
/// (T5, BART, Marian, Pegasus): transformers' `AutoModelForSeq2SeqLM`. Generation encodes,
/// keeps the encoder output in an [`Cache::EncoderDecoder`], then decodes step by step.
pub trait EncoderDecoderLM: Send + Sync {
    /// config.json's `model_type` of the loaded checkpoint.
    fn model_type(&self) -> &str;

    /// The encoder's last hidden state.
    ///
    /// # Shapes
    /// `input_ids`, `attention_mask`: `[batch, source_len]` -> `[batch, source_len, hidden]`.
    fn encode(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor>;

    /// A cache holding `encoder_output` (and the source's padding mask) for the decoder.
    fn new_cache(&self, encoder_output: Tensor, attention_mask: Option<Tensor>) -> Result<Cache>;

    /// Logits for new decoder tokens after what `cache` holds.
    ///
    /// # Shapes
    /// `decoder_input_ids`: `[batch, seq]` -> logits `[batch, kept, vocab]`.
    fn decode(
        &self,
        decoder_input_ids: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<Seq2SeqOutput>;

    /// The id the decoder starts from (`decoder_start_token_id`).
    fn decoder_start_token_id(&self) -> u32;

    /// Size of the target vocabulary.
    fn vocab_size(&self) -> usize;

    /// The longest target sequence the decoder takes.
    fn max_target_positions(&self) -> usize;

    /// Where the weights live.
    fn device(&self) -> &Device;

    /// The compute dtype of activations.
    fn dtype(&self) -> DType;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn runtime_options_are_checked_by_name() {
        assert!(RuntimeOptions::default().validate().is_ok());
        let zero = RuntimeOptions {
            prefill_chunk: 0,
            ..Default::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("prefill_chunk"));
        let bf16 = RuntimeOptions {
            kv_cache_dtype: Some(DType::BF16),
            ..Default::default()
        };
        assert!(bf16
            .validate()
            .unwrap_err()
            .to_string()
            .contains("kv_cache_dtype"));
    }

    #[test]
    fn the_traits_are_object_safe_and_shareable() {
        fn shareable<T: Send + Sync + ?Sized>() {}
        shareable::<dyn CausalLM>();
        shareable::<dyn EncoderDecoderLM>();
    }
}
