//! GPT-Neo (`modeling_gpt_neo.py`, `GPTNeoForCausalLM`): GPT-2's block with separate q/k/v
//! projections (no bias), unscaled attention scores, learned absolute positions, and layers
//! alternating between global attention and local attention over the last `window_size`
//! tokens (`attention_types` / `attention_layers`).

use super::names::{gpt2_style_names, plain, rename, GPT2_GLOBALS};
use crate::decoder::Positions;
use crate::hf_config::limits;
use crate::hf_config::{dropout, Dropouts};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, StoredName};
use trustformers_nn::{Activation, NormKind};

/// `attention_layers`, or `attention_types` expanded (`[[["global", "local"], 12]]`).
fn layer_types(config: &Value, n: usize) -> Result<Vec<String>> {
    let bad = |why: &str| Error::config("attention_types", why.to_string());
    let mut types = Vec::new();
    if let Some(list) = config.get("attention_layers").and_then(Value::as_array) {
        for t in list {
            types.push(
                t.as_str()
                    .ok_or_else(|| bad("entries must be strings"))?
                    .to_string(),
            );
        }
    } else {
        let groups = config
            .get("attention_types")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing"))?;
        for g in groups {
            let (names, repeat) = match g.as_array().map(Vec::as_slice) {
                Some([names, repeat]) => (
                    names
                        .as_array()
                        .ok_or_else(|| bad("expected [[types], count]"))?,
                    repeat
                        .as_u64()
                        .ok_or_else(|| bad("expected [[types], count]"))?,
                ),
                _ => return Err(bad("expected [[types], count]")),
            };
            for _ in 0..repeat.min(limits::LAYERS as u64) {
                for t in names {
                    types.push(
                        t.as_str()
                            .ok_or_else(|| bad("types must be strings"))?
                            .to_string(),
                    );
                }
                if types.len() > limits::LAYERS {
                    return Err(bad("describes too many layers"));
                }
            }
        }
    }
    if types.len() != n {
        return Err(Error::config(
            "attention_types",
            format!("describes {} layers, the model has {n}", types.len()),
        ));
    }
    Ok(types)
}

/// Builds the spec from a `gpt_neo` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let config = gpt2_style_names(config)?;
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    // Its embedding has no padding_idx.
    spec.padding_idx = None;
    let eps = f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    spec.hidden_act = Activation::from_hf(f.opt_str("activation_function")?.unwrap_or("gelu_new"))?;
    spec.attention.o_bias = true;
    spec.attention.scale = Some(1.0);
    spec.gated_mlp = false;
    spec.mlp_bias = true;
    spec.positions = Positions::Learned;
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    let resid = dropout(&f, &["resid_dropout"], 0.0)?;
    spec.dropout = Dropouts {
        embedding: dropout(&f, &["embed_dropout"], 0.0)?,
        attention: dropout(&f, &["attention_dropout"], 0.0)?,
        attention_output: resid,
        mlp_output: resid,
        mlp_activation: 0.0,
    };
    let window = f
        .opt_usize("window_size", limits::POSITIONS)?
        .unwrap_or(256);
    spec.layer_windows = layer_types(&config, spec.num_hidden_layers)?
        .iter()
        .map(|t| match t.as_str() {
            "global" => Ok(None),
            "local" => Ok(Some(window)),
            other => Err(Error::config(
                "attention_types",
                format!("unknown attention type `{other}` (global, local)"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(spec)
}

/// LLaMA-style canonical names -> GPT-Neo checkpoint names.
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    plain(rename(
        canonical,
        GPT2_GLOBALS,
        "transformer.h",
        &[
            ("input_layernorm.", "ln_1."),
            ("post_attention_layernorm.", "ln_2."),
            ("self_attn.o_proj.", "attn.attention.out_proj."),
            ("self_attn.", "attn.attention."),
            ("mlp.up_proj.", "mlp.c_fc."),
            ("mlp.down_proj.", "mlp.c_proj."),
        ],
    ))
}
