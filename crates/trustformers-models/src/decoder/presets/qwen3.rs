//! Qwen3 (`modular_qwen3.py`): Qwen2's window rule, RMSNorm on each q/k head before RoPE,
//! an explicit `head_dim` (default 128), and optional `attention_bias` instead of fixed
//! q/k/v biases.

use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::QkNorm;

/// Builds the spec from a `qwen3` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, Some(128))?;
    spec.attention_bias(&f, false)?;
    spec.attention.qk_norm = Some(QkNorm::Rms {
        eps: spec.norm.eps(),
        unit_offset: false,
    });
    spec.qwen_windows(&f)?;
    Ok(spec)
}
