//! Gemma 2 (`modeling_gemma2.py`, `Gemma2ForCausalLM`): Gemma's block with sandwich norms,
//! `tanh` soft-capping of the attention scores and of the final logits, scores scaled by
//! `query_pre_attn_scalar^-0.5`, and sliding-window layers alternating with global ones (or
//! `layer_types`).

use super::gemma::gemma_common;
use crate::decoder::Residual;
use crate::hf_config;
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::Result;

/// llama.cpp scales Gemma 2 and 3 scores by `1/sqrt(key_length)` (transformers:
/// `query_pre_attn_scalar`, equal to `head_dim` in every released size but Gemma 3 27B).
pub fn from_gguf(_file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    if let Some(d) = config.get("head_dim").cloned() {
        config.insert("query_pre_attn_scalar".into(), d);
    }
    Ok(())
}

/// Builds the spec from a `gemma2` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = gemma_common(&f)?;
    spec.residual = Residual::Sandwich;
    let scalar = f
        .opt_f64("query_pre_attn_scalar", 1e-6..=1e9)?
        .unwrap_or(256.0);
    spec.attention.scale = Some(scalar.powf(-0.5));
    // transformers' defaults are 50 and 30; null turns them off.
    spec.attention.softcap = match f.raw("attn_logit_softcapping") {
        None if config.get("attn_logit_softcapping").is_some() => None,
        _ => Some(
            f.opt_f64("attn_logit_softcapping", 1e-6..=1e9)?
                .unwrap_or(50.0),
        ),
    };
    spec.final_logit_softcapping = match f.raw("final_logit_softcapping") {
        None if config.get("final_logit_softcapping").is_some() => None,
        _ => Some(
            f.opt_f64("final_logit_softcapping", 1e-6..=1e9)?
                .unwrap_or(30.0),
        ),
    };
    let window = DecoderSpec::sliding_window(&f)?.unwrap_or(4096);
    let n = spec.num_hidden_layers;
    spec.layer_windows = match hf_config::layer_types_windows(&f, n, Some(window))? {
        Some(w) => w,
        // Even layers slide, odd layers are global.
        None => (0..n).map(|i| (i % 2 == 0).then_some(window)).collect(),
    };
    Ok(spec)
}
