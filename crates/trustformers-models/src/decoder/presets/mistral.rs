//! Mistral (`modeling_mistral.py`): LLaMA with a sliding attention window on every layer.

use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;

/// Builds the spec from a `mistral` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let window = DecoderSpec::sliding_window(&f)?;
    spec.layer_windows = vec![window; spec.num_hidden_layers];
    Ok(spec)
}
