//! StableLM (`modeling_stablelm.py`, `StableLmForCausalLM`): the LLaMA block with LayerNorm
//! (with bias) instead of RMSNorm, partial rotary (`partial_rotary_factor`, 0.25 by
//! default), optional q/k/v bias (`use_qkv_bias`), optional per-head q/k LayerNorm
//! (`qk_layernorm`) and an optional parallel residual (`use_parallel_residual`).

use super::names::with_partial_rotary_default;
use crate::decoder::Residual;
use crate::gguf::has_block_tensor;
use crate::hf_config::dropout;
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::Result;
use trustformers_nn::{NormKind, QkNorm};

/// The flags llama.cpp leaves to the tensors: q/k/v biases, per-head q/k norms, and a
/// sequential block (which has a pre-MLP norm).
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    for (key, value) in [
        ("use_qkv_bias", has_block_tensor(file, "attn_q.bias")),
        ("qk_layernorm", has_block_tensor(file, "attn_q_norm.weight")),
        (
            "use_parallel_residual",
            !has_block_tensor(file, "ffn_norm.weight"),
        ),
    ] {
        config.insert(key.into(), Value::from(value));
    }
    Ok(())
}

/// Builds the spec from a `stablelm` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    // StableLM's partial_rotary_factor defaults to 0.25, not 1.
    let config = with_partial_rotary_default(config, Value::from(0.25));
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let eps = f.opt_f64("layer_norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    spec.attention.qkv_bias = f.opt_bool("use_qkv_bias")?.unwrap_or(false);
    if f.opt_bool("qk_layernorm")?.unwrap_or(false) {
        spec.attention.qk_norm = Some(QkNorm::LayerPerHead { eps });
    }
    if f.opt_bool("use_parallel_residual")?.unwrap_or(false) {
        spec.residual = Residual::Parallel;
    }
    // `hidden_dropout` on the MLP's output only.
    spec.dropout.mlp_output = dropout(&f, &["hidden_dropout"], 0.0)?;
    Ok(spec)
}
