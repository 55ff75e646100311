//! OPT (`modeling_opt.py`, `OPTForCausalLM`): learned absolute positions offset by 2 (the
//! table has two rows more than `max_position_embeddings`), pre-sublayer LayerNorms with bias,
//! biased q/k/v/out projections, a plain MLP (`fc1`, `fc2`, ReLU), a final LayerNorm and a
//! tied head. The language model of BLIP-2's OPT checkpoints.

use super::names::{plain, rename};
use crate::decoder::Positions;
use crate::hf_config::{dropout, Dropouts};
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, StoredName};
use trustformers_nn::{Activation, NormKind};

/// OPT's position ids start at 2 in its table (`OPTLearnedPositionalEmbedding.offset`).
const POSITION_OFFSET: usize = 2;

/// Builds the spec from an `opt` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let obj = config
        .as_object()
        .ok_or_else(|| Error::config("config", "must be a JSON object"))?;
    let mut renamed: Map<String, Value> = obj.clone();
    renamed.remove("num_key_value_heads");
    for (from, to) in [
        ("ffn_dim", "intermediate_size"),
        ("activation_function", "hidden_act"),
    ] {
        if let Some(v) = obj.get(from) {
            renamed.insert(to.into(), v.clone());
        }
    }
    renamed
        .entry("hidden_act")
        .or_insert(Value::String("relu".into()));
    let config = Value::Object(renamed);
    let f = Fields::new(&config, "")?;
    if !f.opt_bool("do_layer_norm_before")?.unwrap_or(true) {
        return Err(Error::config(
            "do_layer_norm_before",
            "OPT with norms after the sublayers (OPT-350m) is not supported",
        ));
    }
    if f.opt_bool("_remove_final_layer_norm")?.unwrap_or(false) {
        return Err(Error::config(
            "_remove_final_layer_norm",
            "OPT without its final LayerNorm is not supported",
        ));
    }
    if !f.opt_bool("layer_norm_elementwise_affine")?.unwrap_or(true) {
        return Err(Error::config(
            "layer_norm_elementwise_affine",
            "LayerNorms without weights are not supported",
        ));
    }
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    if let Some(proj) = f.opt_usize("word_embed_proj_dim", crate::hf_config::limits::HIDDEN)? {
        if proj != spec.hidden_size {
            return Err(Error::config(
                "word_embed_proj_dim",
                format!(
                    "{proj} differs from hidden_size {}: project_in/project_out are not supported",
                    spec.hidden_size
                ),
            ));
        }
    }
    spec.max_position_embeddings = f
        .opt_usize(
            "max_position_embeddings",
            crate::hf_config::limits::POSITIONS,
        )?
        .unwrap_or(2048);
    spec.positions = Positions::Learned;
    spec.learned_position_offset = POSITION_OFFSET;
    spec.norm = NormKind::Layer {
        eps: 1e-5,
        bias: true,
    };
    spec.hidden_act = Activation::from_hf(f.opt_str("hidden_act")?.unwrap_or("relu"))?;
    let bias = f.opt_bool("enable_bias")?.unwrap_or(true);
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.mlp_bias = bias;
    spec.gated_mlp = false;
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    let hidden = dropout(&f, &["dropout"], 0.1)?;
    spec.dropout = Dropouts {
        embedding: hidden,
        attention: dropout(&f, &["attention_dropout"], 0.0)?,
        attention_output: hidden,
        mlp_output: hidden,
        mlp_activation: 0.0,
    };
    Ok(spec)
}

/// LLaMA-style canonical names -> OPT's (`model.decoder.*`).
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    plain(rename(
        canonical,
        &[
            ("embed_tokens.", "model.decoder.embed_tokens."),
            ("embed_positions.", "model.decoder.embed_positions."),
            ("norm.", "model.decoder.final_layer_norm."),
        ],
        "model.decoder.layers",
        &[
            ("input_layernorm.", "self_attn_layer_norm."),
            ("post_attention_layernorm.", "final_layer_norm."),
            ("self_attn.o_proj.", "self_attn.out_proj."),
            ("self_attn.", "self_attn."),
            ("mlp.up_proj.", "fc1."),
            ("mlp.down_proj.", "fc2."),
        ],
    ))
}
