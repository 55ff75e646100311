//! Qwen3-MoE (`modeling_qwen3_moe.py`): Qwen3's attention (q/k RMSNorm per head, optional
//! `attention_bias`; `head_dim` defaults to `hidden_size / num_attention_heads` here) with
//! Qwen-MoE's experts and no shared expert; `norm_topk_prob` renormalises the chosen
//! experts' weights (the released models set it). With `use_sliding_window`, every layer
//! slides.

use super::qwen2_moe::{qwen_moe, MoeDefaults};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::QkNorm;

/// Builds the spec from a `qwen3_moe` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    spec.attention_bias(&f, false)?;
    spec.attention.qk_norm = Some(QkNorm::Rms {
        eps: spec.norm.eps(),
        unit_offset: false,
    });
    let window = match f.opt_bool("use_sliding_window")?.unwrap_or(false) {
        true => DecoderSpec::sliding_window(&f)?,
        false => None,
    };
    spec.layer_windows = vec![window; spec.num_hidden_layers];
    qwen_moe(
        &f,
        &mut spec,
        MoeDefaults {
            experts: 128,
            top_k: 8,
            intermediate: 768,
        },
        None,
    )?;
    Ok(spec)
}
