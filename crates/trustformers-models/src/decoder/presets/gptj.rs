//! GPT-J (`modeling_gptj.py`, `GPTJForCausalLM`): one LayerNorm feeding a parallel attention +
//! MLP block, rotary on the first `rotary_dim` dimensions with adjacent pairs rotated
//! (`rotate_every_two`), no attention biases, a plain gelu_new MLP with biases and a biased
//! head. Config fields use GPT-2 names (`n_embd`, `n_head`, `n_layer`, `n_positions`,
//! `n_inner`).

use super::names::rename;
use crate::decoder::Residual;
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::StoredName;
use trustformers_core::{Error, Result};
use trustformers_nn::Activation;

/// GPT-2 style config names -> the LLaMA names the shared reader uses.
pub(crate) fn gpt2_style_names(config: &Value) -> Result<Value> {
    let obj = config
        .as_object()
        .ok_or_else(|| Error::config("config", "must be a JSON object"))?;
    let mut out: Map<String, Value> = obj.clone();
    // These models have no grouped-query attention; transformers ignores the field.
    out.remove("num_key_value_heads");
    for (from, to) in [
        ("n_embd", "hidden_size"),
        ("n_head", "num_attention_heads"),
        ("n_layer", "num_hidden_layers"),
        ("n_positions", "max_position_embeddings"),
        ("n_inner", "intermediate_size"),
    ] {
        if let Some(v) = obj.get(from) {
            out.entry(to).or_insert(v.clone());
        }
    }
    // n_inner null means 4 * n_embd.
    if out.get("intermediate_size").is_none_or(Value::is_null) {
        if let Some(h) = out.get("hidden_size").and_then(Value::as_u64) {
            out.insert("intermediate_size".into(), Value::from(4 * h));
        }
    }
    Ok(Value::Object(out))
}

/// Builds the spec from a `gptj` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let config = gpt2_style_names(config)?;
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let head_dim = spec.attention.head_dim;
    let rotary_dim = match f.opt_usize("rotary_dim", head_dim)? {
        Some(d) => d,
        None => head_dim,
    };
    if rotary_dim % 2 != 0 || rotary_dim == 0 {
        return Err(Error::config(
            "rotary_dim",
            format!("must be even and positive, got {rotary_dim}"),
        ));
    }
    spec.rope.rotary_dim = rotary_dim;
    spec.rope.interleaved = true;
    let eps = f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.layer_norm = Some((eps, true));
    spec.hidden_act = Activation::from_hf(f.opt_str("activation_function")?.unwrap_or("gelu_new"))?;
    spec.gated_mlp = false;
    spec.mlp_bias = true;
    spec.residual = Residual::Parallel;
    spec.lm_head_bias = true;
    Ok(spec)
}

/// LLaMA-style canonical names -> GPT-J checkpoint names.
pub fn tensor_name(canonical: &str) -> Vec<StoredName> {
    stored(canonical)
        .map(StoredName::plain)
        .into_iter()
        .collect()
}

fn stored(canonical: &str) -> Option<String> {
    rename(
        canonical,
        &[
            ("embed_tokens.", "transformer.wte."),
            ("norm.", "transformer.ln_f."),
        ],
        "transformer.h",
        &[
            ("input_layernorm.", "ln_1."),
            ("self_attn.o_proj.", "attn.out_proj."),
            ("self_attn.", "attn."),
            ("mlp.up_proj.", "mlp.fc_in."),
            ("mlp.down_proj.", "mlp.fc_out."),
        ],
    )
}
