//! StableLM (`modeling_stablelm.py`, `StableLmForCausalLM`): the LLaMA block with LayerNorm
//! (with bias) instead of RMSNorm, partial rotary (`partial_rotary_factor`, 0.25 by
//! default), optional q/k/v bias (`use_qkv_bias`), optional per-head q/k LayerNorm
//! (`qk_layernorm`) and an optional parallel residual (`use_parallel_residual`).

use super::names::with_partial_rotary_default;
use crate::decoder::Residual;
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::QkLayerNorm;

/// Builds the spec from a `stablelm` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    // StableLM's partial_rotary_factor defaults to 0.25, not 1.
    let config = with_partial_rotary_default(config, Value::from(0.25));
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let eps = f.opt_f64("layer_norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.layer_norm = Some((eps, true));
    spec.attention.qkv_bias = f.opt_bool("use_qkv_bias")?.unwrap_or(false);
    if f.opt_bool("qk_layernorm")?.unwrap_or(false) {
        spec.attention.qk_layernorm = Some(QkLayerNorm::PerHead { eps });
    }
    if f.opt_bool("use_parallel_residual")?.unwrap_or(false) {
        spec.residual = Residual::Parallel;
    }
    Ok(spec)
}
