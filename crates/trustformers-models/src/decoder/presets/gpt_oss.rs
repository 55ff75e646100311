//! gpt-oss (`modeling_gpt_oss.py`, `GptOssForCausalLM`): LLaMA's layout with biased
//! attention projections, a learned sink logit per head in every softmax, sliding-window
//! and full layers alternating (`layer_types`; window `sliding_window`, default 128), YaRN
//! rotary, and a mixture of `num_local_experts` experts in every layer: a router with a bias,
//! the top `num_experts_per_tok` weighted by a softmax over their logits, each expert a
//! clamped SwiGLU with biases (`swiglu_alpha`, `swiglu_limit`). Experts load from dense
//! tensors or from the MXFP4 blocks and scales the released checkpoints ship, dequantized.

use crate::hf_config::{self, limits};
use crate::DecoderSpec;
use serde_json::{json, Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::Result;
use trustformers_nn::{ExpertKind, MoeSpec};

/// llama.cpp's `gpt-oss` files: the generic keys say everything but YaRN's truncation, which
/// gpt-oss's config turns off (`truncate: false`) and the file cannot state; sliding and full
/// layers alternate from layer 0 as llama.cpp's default pattern and transformers' agree.
pub fn from_gguf(_file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    if let Some(Value::Object(scaling)) = config.get_mut("rope_scaling") {
        scaling.insert("truncate".into(), Value::Bool(false));
    }
    Ok(())
}

/// Builds the spec from a `gpt_oss` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    // transformers' default rotary when the config states none.
    let mut config = config.clone();
    if let Some(obj) = config.as_object_mut() {
        if !obj.contains_key("rope_parameters") && !obj.contains_key("rope_scaling") {
            obj.insert(
                "rope_parameters".into(),
                json!({
                    "rope_type": "yarn",
                    "factor": 32.0,
                    "beta_fast": 32.0,
                    "beta_slow": 1.0,
                    "truncate": false,
                    "original_max_position_embeddings": 4096,
                }),
            );
        }
    }
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, Some(64))?;
    spec.attention_bias(&f, true)?;
    spec.attention.sinks = true;
    let window = DecoderSpec::sliding_window(&f)?.unwrap_or(128);
    let n = spec.num_hidden_layers;
    spec.layer_windows = match hf_config::layer_types_windows(&f, n, Some(window))? {
        Some(w) => w,
        None => (0..n)
            .map(|i| ((i + 1) % 2 == 1).then_some(window))
            .collect(),
    };
    let moe = MoeSpec {
        norm_topk_prob: true,
        router_bias: true,
        expert: ExpertKind::ClampedSwiGlu {
            alpha: f.opt_f64("swiglu_alpha", -1e6..=1e6)?.unwrap_or(1.702),
            limit: f.opt_f64("swiglu_limit", 0.0..=1e9)?.unwrap_or(7.0),
        },
        ..MoeSpec::new(
            f.opt_usize("num_local_experts", limits::EXPERTS)?
                .unwrap_or(128),
            f.opt_usize("num_experts_per_tok", limits::EXPERTS)?
                .unwrap_or(4),
            spec.intermediate_size,
        )
    };
    moe.validate()?;
    spec.moe = Some(moe);
    Ok(spec)
}
