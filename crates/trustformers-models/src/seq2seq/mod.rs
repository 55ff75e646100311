//! Encoder-decoder models (transformers' `AutoModelForSeq2SeqLM`): [`t5`] (T5, mT5, UMT5)
//! and the [`bart`] family (BART, mBART, Marian, Pegasus). Each encodes a source once; its
//! decoder attends to its own tokens through the self-attention cache and to the encoder
//! output through cross-attention keys and values projected once per layer, both kept in
//! an [`EncoderDecoderCache`].

pub mod bart;
pub mod t5;

use crate::hf_config;
use candle_core::Tensor;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result};
use trustformers_nn::{CrossAttention, EncoderDecoderCache};

pub use bart::{
    BartForConditionalGeneration, BartForQuestionAnswering, BartForSequenceClassification,
    BartModel, BartSpec,
};
pub use t5::{T5EncoderModel, T5ForConditionalGeneration, T5Spec};

/// Checkpoint tensors an encoder-decoder may leave unused: copies of the shared embedding
/// table that transformers ties (`encoder.embed_tokens`, `decoder.embed_tokens`) and the
/// sinusoidal position tables some checkpoints store although they are computed (Marian,
/// Pegasus).
pub const IGNORED_TENSORS: &[&str] = &[
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "encoder.embed_positions.weight",
    "decoder.embed_positions.weight",
];

/// Self-attention through the layer's projections ([`CrossAttention::forward_self`]): in a
/// decoder, this step's keys and values join `cache`'s self-attention layer `layer`.
///
/// # Shapes
/// `xs`: `[batch, seq, hidden]`; `mask`: additive, broadcasting to `[batch, heads, seq,
/// keys]` -> `[batch, seq, hidden]`.
fn self_attention(
    attn: &CrossAttention,
    xs: &Tensor,
    mask: Option<&Tensor>,
    cache: Option<(&mut EncoderDecoderCache, usize)>,
) -> Result<Tensor> {
    attn.forward_self(xs, mask, cache.map(|(c, layer)| (c.self_attn_mut(), layer)))
}

/// `h + f(norm(h))` (pre-norm) or `norm(h + f(h))` (post-norm), a residual sublayer.
fn residual(
    h: &Tensor,
    pre_norm: bool,
    norm: impl Fn(&Tensor) -> Result<Tensor>,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if pre_norm {
        Ok((h + f(&norm(h)?)?)?)
    } else {
        norm(&(h + f(h)?)?)
    }
}

/// The source's additive padding mask for its own self-attention, `None` without padding.
///
/// # Shapes
/// `attention_mask`: `[batch, source_len]` -> `[batch, 1, 1, source_len]`.
fn source_mask(attention_mask: Option<&Tensor>, input_ids: &Tensor) -> Result<Option<Tensor>> {
    let (b, s) = input_ids.dims2()?;
    if let Some(m) = attention_mask {
        if m.dims() != [b, s] {
            return Err(Error::InvalidInput(format!(
                "attention_mask has shape {:?}, input_ids [{b}, {s}]",
                m.dims()
            )));
        }
    }
    trustformers_nn::attention::padding_mask(attention_mask, b, s)
}

/// `decoder_start_token_id` (`default` when absent), which must be in the decoder's
/// vocabulary of `vocab_size`.
fn decoder_start(f: &Fields<'_>, default: u32, vocab_size: usize) -> Result<u32> {
    let id = hf_config::token_id(f, "decoder_start_token_id")?.unwrap_or(default);
    if id as usize >= vocab_size {
        return Err(Error::config(
            "decoder_start_token_id",
            format!("{id} is outside the decoder's vocabulary of {vocab_size}"),
        ));
    }
    Ok(id)
}

/// A cache for `layers` decoder layers holding `encoder_output` and the source's padding
/// mask: what [`crate::EncoderDecoderLM::new_cache`] gives.
fn encoder_cache(
    layers: usize,
    encoder_output: Tensor,
    attention_mask: Option<Tensor>,
) -> Result<trustformers_nn::Cache> {
    let mut cache = EncoderDecoderCache::new(layers, candle_core::DType::F32)?;
    cache.set_encoder_output(encoder_output, attention_mask);
    Ok(cache.into())
}

/// The decoder's causal mask for `decoder_input_ids` after what `cache` holds, with the
/// target's padding from `opts.attention_mask` (`[batch, past + seq]`).
fn decoder_mask(
    decoder_input_ids: &Tensor,
    opts: &crate::ForwardOptions,
    cache: &EncoderDecoderCache,
) -> Result<Option<Tensor>> {
    let (b, seq) = decoder_input_ids.dims2()?;
    trustformers_nn::attention::causal_mask(
        opts.attention_mask.as_ref(),
        b,
        cache.seq_len(),
        seq,
        None,
        decoder_input_ids.device(),
    )
}

/// Keeps the logits of the last `keep` positions (all when `None`).
fn keep_last(h: &Tensor, keep: Option<usize>) -> Result<Tensor> {
    let seq = h.dim(1)?;
    match keep {
        Some(n) if n < seq => Ok(h.narrow(1, seq - n, n)?),
        _ => Ok(h.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn t5_error(change: serde_json::Value) -> String {
        let mut config = json!({
            "vocab_size": 96, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
            "num_heads": 4, "relative_attention_num_buckets": 8,
        });
        for (k, v) in change.as_object().unwrap() {
            config[k] = v.clone();
        }
        T5Spec::from_config(&config, "t5").unwrap_err().to_string()
    }

    fn bart_error(change: serde_json::Value) -> String {
        let mut config = json!({
            "vocab_size": 96, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
            "encoder_attention_heads": 4, "decoder_attention_heads": 4,
            "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 64,
        });
        for (k, v) in change.as_object().unwrap() {
            config[k] = v.clone();
        }
        BartSpec::from_config(&config, "bart")
            .unwrap_err()
            .to_string()
    }

    /// Inconsistent configs are refused, naming the field.
    #[test]
    fn bad_configs_name_the_field() {
        for (change, field) in [
            (
                json!({"relative_attention_num_buckets": 1}),
                "relative_attention_num_buckets",
            ),
            (
                json!({"relative_attention_num_buckets": 0}),
                "relative_attention_num_buckets",
            ),
            (
                json!({"decoder_start_token_id": 96}),
                "decoder_start_token_id",
            ),
            (
                json!({"feed_forward_proj": "gated-gelu-x"}),
                "feed_forward_proj",
            ),
            (json!({"feed_forward_proj": "swishy"}), "feed_forward_proj"),
            (json!({"d_kv": 0}), "d_kv"),
        ] {
            let e = t5_error(change.clone());
            assert!(e.contains(field), "{change}: {e}");
        }
        for (change, field) in [
            (
                json!({"encoder_attention_heads": 5}),
                "encoder_attention_heads",
            ),
            (
                json!({"decoder_attention_heads": 3}),
                "decoder_attention_heads",
            ),
            (
                json!({"decoder_start_token_id": 1000}),
                "decoder_start_token_id",
            ),
            (
                json!({"activation_function": "nope"}),
                "activation_function",
            ),
            (json!({"d_model": "wide"}), "d_model"),
        ] {
            let e = bart_error(change.clone());
            assert!(e.contains(field), "{change}: {e}");
        }
        let config = json!({"d_model": 32});
        assert!(BartSpec::from_config(&config, "t5")
            .unwrap_err()
            .to_string()
            .contains("model_type"));
    }

    /// Marian's decoder starts from its padding token unless the config says otherwise.
    #[test]
    fn marian_starts_from_pad() {
        let config = json!({
            "vocab_size": 96, "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
            "encoder_attention_heads": 4, "decoder_attention_heads": 4,
            "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 64,
            "pad_token_id": 95,
        });
        let spec = BartSpec::from_config(&config, "marian").unwrap();
        assert_eq!(spec.decoder_start_token_id, 95);
        assert_eq!(spec.positions, bart::PositionKind::Sinusoidal);
    }
}
