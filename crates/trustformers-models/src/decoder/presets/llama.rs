//! LLaMA 1/2/3 (`modeling_llama.py`): the baseline. Optional biases on attention
//! (`attention_bias`) and MLP (`mlp_bias`); RoPE scaling linear, dynamic, yarn, llama3.

use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;

/// Builds the spec from a `llama` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    spec.attention_bias(&f, false)?;
    spec.mlp_bias = f.opt_bool("mlp_bias")?.unwrap_or(false);
    Ok(spec)
}
