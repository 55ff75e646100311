//! Granite and GraniteMoE (`modeling_granite.py`, `modeling_granitemoe.py`): LLaMA with μP
//! multipliers: embeddings times `embedding_multiplier`, attention scores scaled by
//! `attention_multiplier` (instead of `1 / sqrt(head_dim)`), sublayer outputs times
//! `residual_multiplier` before the residual add, logits divided by `logits_scaling`.
//! GraniteMoE replaces the MLP by `num_local_experts` experts, the top `num_experts_per_tok`
//! weighted by a softmax over their logits.

use crate::gguf::{arch_value, copy_metadata};
use crate::hf_config::limits;
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result};
use trustformers_nn::MoeSpec;

/// The multipliers of llama.cpp's `granite` and `granitemoe` files (`embedding_scale`,
/// `residual_scale`, `attention.scale`, `logit_scale`). Without `attention.scale` llama.cpp
/// scales scores by `1 / sqrt(head_dim)`, so that is what the config gets.
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    if let Some((key, _)) = arch_value(file, "expert_shared_feed_forward_length") {
        return Err(Error::config(
            key,
            "GraniteMoeShared's shared experts are not supported",
        ));
    }
    copy_metadata(
        file,
        config,
        &[
            ("embedding_scale", "embedding_multiplier"),
            ("residual_scale", "residual_multiplier"),
            ("attention.scale", "attention_multiplier"),
            ("logit_scale", "logits_scaling"),
        ],
    )?;
    if !config.contains_key("attention_multiplier") {
        let head_dim = match (
            config.get("hidden_size").and_then(Value::as_u64),
            config.get("num_attention_heads").and_then(Value::as_u64),
        ) {
            (Some(h), Some(n)) if n > 0 => h / n,
            _ => return Ok(()),
        };
        if let Some(scale) = serde_json::Number::from_f64((head_dim as f64).powf(-0.5)) {
            config.insert("attention_multiplier".into(), Value::Number(scale));
        }
    }
    Ok(())
}

/// Builds the spec from a `granite` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    spec.attention_bias(&f, false)?;
    spec.mlp_bias = f.opt_bool("mlp_bias")?.unwrap_or(false);
    multipliers(&f, &mut spec)?;
    Ok(spec)
}

/// Builds the spec from a `granitemoe` config.json.
pub fn moe_spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    spec.attention_bias(&f, false)?;
    multipliers(&f, &mut spec)?;
    let moe = MoeSpec {
        norm_topk_prob: true,
        ..MoeSpec::new(
            f.opt_usize("num_local_experts", limits::EXPERTS)?
                .unwrap_or(8),
            f.opt_usize("num_experts_per_tok", limits::EXPERTS)?
                .unwrap_or(2),
            spec.intermediate_size,
        )
    };
    moe.validate()?;
    spec.moe = Some(moe);
    Ok(spec)
}

/// The four μP multipliers (transformers' defaults: 1, 1, 1, 1; each must be positive).
fn multipliers(f: &Fields<'_>, spec: &mut DecoderSpec) -> Result<()> {
    let multiplier = |name: &str| f.opt_f64(name, 1e-9..=1e9);
    if let Some(m) = multiplier("embedding_multiplier")? {
        spec.embed_scale = Some(m);
    }
    spec.attention.scale = Some(multiplier("attention_multiplier")?.unwrap_or(1.0));
    spec.residual_scale = Some(multiplier("residual_multiplier")?.unwrap_or(1.0));
    spec.logit_scale = Some(1.0 / multiplier("logits_scaling")?.unwrap_or(1.0));
    Ok(())
}
