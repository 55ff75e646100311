//! Qwen2 (`modular_qwen2.py`): LLaMA with biases on q/k/v (not o) and sliding windows on the
//! layers from `max_window_layers` on when `use_sliding_window` is set.

use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;

/// Builds the spec from a `qwen2` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    spec.attention.qkv_bias = true;
    spec.qwen_windows(&f)?;
    Ok(spec)
}
