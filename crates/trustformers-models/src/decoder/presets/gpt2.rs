//! GPT-2 (`modeling_gpt2.py`, `GPT2LMHeadModel`): learned absolute positions instead of RoPE,
//! LayerNorm, one `c_attn` projection (all of q, then k, then v), a plain gelu_new MLP, biases
//! everywhere, a tied head, and `Conv1D` layers that store weights as `[in, out]` (transposed
//! at load time).

use super::names::{by_prefix, gpt2_style_names, GPT2_GLOBALS};
use crate::decoder::Positions;
use crate::hf_config::{dropout, Dropouts};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, StoredName};
use trustformers_nn::{Activation, NormKind, QkvLayout};

/// Builds the spec from a `gpt2` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let config = gpt2_style_names(config)?;
    let f = Fields::new(&config, "")?;
    for unsupported in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] {
        if f.opt_bool(unsupported)?.unwrap_or(false) {
            return Err(Error::config(unsupported, "is not supported"));
        }
    }
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    // Its embedding has no padding_idx.
    spec.padding_idx = None;
    spec.max_position_embeddings = f
        .opt_usize(
            "max_position_embeddings",
            crate::hf_config::limits::POSITIONS,
        )?
        .unwrap_or(1024);
    let eps = f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    spec.hidden_act = Activation::from_hf(f.opt_str("activation_function")?.unwrap_or("gelu_new"))?;
    let att = &mut spec.attention;
    att.qkv = QkvLayout::Fused;
    att.qkv_bias = true;
    att.o_bias = true;
    if !f.opt_bool("scale_attn_weights")?.unwrap_or(true) {
        att.scale = Some(1.0);
    }
    spec.gated_mlp = false;
    spec.mlp_bias = true;
    spec.positions = Positions::Learned;
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    let resid = dropout(&f, &["resid_pdrop"], 0.1)?;
    spec.dropout = Dropouts {
        embedding: dropout(&f, &["embd_pdrop"], 0.1)?,
        attention: dropout(&f, &["attn_pdrop"], 0.1)?,
        attention_output: resid,
        mlp_output: resid,
        mlp_activation: 0.0,
    };
    Ok(spec)
}

/// LLaMA-style canonical names -> GPT-2 checkpoint names (Conv1D weights transposed).
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    let rest = canonical.strip_prefix("model.")?;
    if let Some(name) = by_prefix(rest, GPT2_GLOBALS) {
        return Some(StoredName::plain(name));
    }
    let (layer, tensor) = rest.strip_prefix("layers.")?.split_once('.')?;
    let (stored, conv1d) = [
        ("input_layernorm.", "ln_1.", false),
        ("post_attention_layernorm.", "ln_2.", false),
        ("self_attn.qkv_proj.", "attn.c_attn.", true),
        ("self_attn.o_proj.", "attn.c_proj.", true),
        ("mlp.up_proj.", "mlp.c_fc.", true),
        ("mlp.down_proj.", "mlp.c_proj.", true),
    ]
    .iter()
    .find_map(|(from, to, conv)| {
        tensor
            .strip_prefix(from)
            .map(|r| (format!("{to}{r}"), *conv && r == "weight"))
    })?;
    let name = format!("transformer.h.{layer}.{stored}");
    Some(if conv1d {
        StoredName::transposed(name)
    } else {
        StoredName::plain(name)
    })
}
