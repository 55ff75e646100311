//! Phi-3 (`modeling_phi3.py`, `Phi3ForCausalLM`): the LLaMA block with q, k and v fused into
//! `qkv_proj`, gate and up fused into `gate_up_proj`, LongRoPE scaling (`rope_type`
//! `longrope`: per-frequency short/long factors and an attention scale), optional partial
//! rotary, and a sliding window on every layer when `sliding_window` is set.

use crate::hf_config::dropout;
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::QkvLayout;

/// Builds the spec from a `phi3` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    spec.attention.qkv = QkvLayout::Fused;
    spec.fused_gate_up = true;
    let window = DecoderSpec::sliding_window(&f)?;
    spec.layer_windows = vec![window; spec.num_hidden_layers];
    // `resid_pdrop` on both blocks' outputs (Phi-3 applies no `embd_pdrop`).
    let resid = dropout(&f, &["resid_pdrop"], 0.0)?;
    spec.dropout.attention_output = resid;
    spec.dropout.mlp_output = resid;
    Ok(spec)
}
