//! Gemma (`modeling_gemma.py`, `GemmaForCausalLM`): the LLaMA block with unit-offset RMSNorm
//! (`x * (1 + w)`), embeddings scaled by `sqrt(hidden_size)`, a GeLU-tanh gated MLP, head_dim
//! 256 by default and a tied head.

use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::{Activation, NormKind};

/// The knobs Gemma 1 and 2 share: unit-offset norms, scaled embeddings, the activation, the
/// biases and the tied head.
pub(crate) fn gemma_common(f: &Fields<'_>) -> Result<DecoderSpec> {
    let mut spec = DecoderSpec::llama_like(f, Some(256))?;
    spec.max_position_embeddings = f
        .opt_usize(
            "max_position_embeddings",
            crate::hf_config::limits::POSITIONS,
        )?
        .unwrap_or(8192);
    // `hidden_activation` wins; old configs only have `hidden_act`.
    let act = match f.opt_str("hidden_activation")? {
        Some(a) => a,
        None => f.opt_str("hidden_act")?.unwrap_or("gelu_pytorch_tanh"),
    };
    spec.hidden_act = Activation::from_hf(act)?;
    spec.attention_bias(f, false)?;
    spec.embed_scale = Some((spec.hidden_size as f64).sqrt());
    spec.norm = NormKind::Rms {
        eps: spec.norm.eps(),
        unit_offset: true,
    };
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    Ok(spec)
}

/// Builds the spec from a `gemma` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    gemma_common(&Fields::new(config, "")?)
}
