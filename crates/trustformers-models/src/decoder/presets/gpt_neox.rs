//! GPT-NeoX / Pythia (`modeling_gpt_neox.py`, `GPTNeoXForCausalLM`): LayerNorm with bias, one
//! `query_key_value` projection laid out head by head (q, k, v of head 0, then head 1, ...),
//! partial rotary (`rotary_pct`, 0.25 by default), a plain GeLU MLP with biases, and a
//! parallel residual with two norms (`use_parallel_residual`, on by default):
//! `x + attn(ln1(x)) + mlp(ln2(x))`.

use super::names::{plain, rename};
use crate::decoder::Residual;
use crate::hf_config::{dropout, Dropouts};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::StoredName;
use trustformers_core::{Error, Result};
use trustformers_nn::{Activation, NormKind, QkvLayout};

/// Builds the spec from a `gpt_neox` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    // transformers 4 names: rotary_pct and rotary_emb_base.
    let mut config = config.clone();
    if let Some(obj) = config.as_object_mut() {
        if !obj.contains_key("partial_rotary_factor") {
            let pct = obj.get("rotary_pct").cloned().unwrap_or(Value::from(0.25));
            obj.insert("partial_rotary_factor".into(), pct);
        }
        if let Some(base) = obj.get("rotary_emb_base").cloned() {
            obj.entry("rope_theta").or_insert(base);
        }
    }
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    // Its embedding has no padding_idx.
    spec.padding_idx = None;
    if f.raw("num_key_value_heads").is_some()
        && spec.attention.num_kv_heads != spec.attention.num_heads
    {
        return Err(Error::config(
            "num_key_value_heads",
            "GPT-NeoX has no grouped-query attention",
        ));
    }
    let eps = f.opt_f64("layer_norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    spec.hidden_act = Activation::from_hf(f.opt_str("hidden_act")?.unwrap_or("gelu"))?;
    let bias = f.opt_bool("attention_bias")?.unwrap_or(true);
    spec.attention.qkv = QkvLayout::FusedGrouped;
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.gated_mlp = false;
    spec.mlp_bias = true;
    spec.residual = if f.opt_bool("use_parallel_residual")?.unwrap_or(true) {
        Residual::ParallelTwoNorms
    } else {
        Residual::Sequential
    };
    // `hidden_dropout` on the embeddings and each block's output.
    let hidden = dropout(&f, &["hidden_dropout"], 0.0)?;
    spec.dropout = Dropouts {
        embedding: hidden,
        attention_output: hidden,
        mlp_output: hidden,
        ..spec.dropout
    };
    Ok(spec)
}

/// LLaMA-style canonical names -> GPT-NeoX checkpoint names.
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    plain(stored(canonical))
}

fn stored(canonical: &str) -> Option<String> {
    if canonical == "lm_head.weight" {
        // transformers 4 saved the head as `embed_out`.
        return Some("embed_out.weight".into());
    }
    rename(
        canonical,
        &[
            ("embed_tokens.", "gpt_neox.embed_in."),
            ("norm.", "gpt_neox.final_layer_norm."),
        ],
        "gpt_neox.layers",
        &[
            ("self_attn.qkv_proj.", "attention.query_key_value."),
            ("self_attn.o_proj.", "attention.dense."),
            ("mlp.up_proj.", "mlp.dense_h_to_4h."),
            ("mlp.down_proj.", "mlp.dense_4h_to_h."),
            ("", ""),
        ],
    )
}
