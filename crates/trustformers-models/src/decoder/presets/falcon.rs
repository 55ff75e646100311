//! Falcon (`modeling_falcon.py`, `FalconForCausalLM`): LayerNorm, one `query_key_value`
//! projection, a plain GeLU MLP and rotary positions, in three layouts:
//! - 7B style (`multi_query`, `parallel_attn`): one key/value head, attention and MLP in
//!   parallel off one norm;
//! - `new_decoder_architecture` (40B/180B): `num_kv_heads` groups each holding its queries,
//!   key and value, and separate `ln_attn` / `ln_mlp` norms of the same input
//!   (`num_ln_in_parallel_attn`, 2 by default);
//! - neither: full multi-head attention laid out head by head, sequential or parallel.
//!
//! ALiBi Falcon (`alibi: true`, falcon-rw) biases attention scores per head instead of
//! rotating q and k. transformers' default (SDPA) attention adds the bias once; its eager
//! path adds it twice (once to the scores, once through the mask), and is not followed.

use crate::decoder::{Positions, Residual};
use crate::gguf::has_block_tensor;
use crate::hf_config::dropout;
use crate::hf_config::limits;
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result, StoredName};
use trustformers_nn::{Activation, NormKind, QkvLayout};

/// Falcon's layout flags from a GGUF file: llama.cpp writes the kv head count (read into
/// `num_kv_heads`) and runs attention and MLP in parallel; a second norm per block
/// (`attn_norm_2`) marks the new decoder architecture.
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    let new_arch = has_block_tensor(file, "attn_norm_2.weight");
    let kv = config.get("num_kv_heads").and_then(Value::as_u64);
    config.insert("new_decoder_architecture".into(), Value::from(new_arch));
    config.insert("parallel_attn".into(), Value::from(true));
    config.insert(
        "multi_query".into(),
        Value::from(!new_arch && kv == Some(1)),
    );
    config.insert(
        "bias".into(),
        Value::from(has_block_tensor(file, "attn_qkv.bias")),
    );
    Ok(())
}

/// Builds the spec from a `falcon` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let mut config = config.clone();
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::config("config", "must be a JSON object"))?;
    for (from, to) in [
        ("n_embed", "hidden_size"),
        ("n_layer", "num_hidden_layers"),
        ("n_head", "num_attention_heads"),
        ("ffn_hidden_size", "intermediate_size"),
    ] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()).cloned() {
            obj.insert(to.into(), v);
        }
    }
    if obj.get("intermediate_size").is_none_or(Value::is_null) {
        if let Some(h) = obj.get("hidden_size").and_then(Value::as_u64) {
            obj.insert("intermediate_size".into(), Value::from(4 * h));
        }
    }
    let flag = |key: &str, default: bool| obj.get(key).and_then(Value::as_bool).unwrap_or(default);
    let new_arch = flag("new_decoder_architecture", false);
    let multi_query = flag("multi_query", true);
    let parallel = flag("parallel_attn", true);
    let alibi = flag("alibi", false);
    // The kv heads the attention really has, whatever num_key_value_heads says.
    let heads = obj
        .get("num_attention_heads")
        .cloned()
        .unwrap_or(Value::Null);
    let kv_heads = if new_arch {
        obj.get("num_kv_heads")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(heads)
    } else if multi_query {
        Value::from(1)
    } else {
        heads
    };
    obj.insert("num_key_value_heads".into(), kv_heads);
    obj.remove("head_dim");

    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    // Its embedding has no padding_idx.
    spec.padding_idx = None;
    let eps = f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    spec.hidden_act = Activation::from_hf(f.opt_str("activation")?.unwrap_or("gelu"))?;
    let bias = f.opt_bool("bias")?.unwrap_or(false);
    spec.attention.qkv = if new_arch || !multi_query {
        QkvLayout::FusedGrouped
    } else {
        QkvLayout::Fused
    };
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.gated_mlp = false;
    spec.mlp_bias = bias;
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    if alibi {
        spec.positions = Positions::Alibi;
    }
    let norms = f
        .opt_usize("num_ln_in_parallel_attn", limits::LAYERS)?
        .unwrap_or(if new_arch { 2 } else { 1 });
    spec.residual = match (new_arch, parallel, norms) {
        (true, _, 2) => Residual::ParallelTwoNorms,
        (true, true, 1) | (false, true, _) => Residual::Parallel,
        (false, false, _) => Residual::Sequential,
        _ => {
            return Err(Error::config(
                "num_ln_in_parallel_attn",
                format!("{norms} is not supported with this layout"),
            ))
        }
    };
    // `dropout_add`: a sequential layer drops the attention output with
    // `attention_dropout`; every layer drops its MLP output (plus the attention output when
    // parallel) with `hidden_dropout`.
    spec.dropout.attention_output = match spec.residual {
        Residual::Sequential => spec.dropout.attention,
        _ => 0.0,
    };
    spec.dropout.mlp_output = dropout(&f, &["hidden_dropout"], 0.0)?;
    spec.dropout_branch_sum = spec.residual != Residual::Sequential;
    Ok(spec)
}

/// LLaMA-style names -> Falcon checkpoint names. The new decoder architecture with two
/// norms per layer stores them as `ln_attn` and `ln_mlp`; every other layout keeps
/// `input_layernorm` (and `post_attention_layernorm` when sequential).
pub fn tensor_name(canonical: &str, config: &Value) -> Option<StoredName> {
    let rest = canonical.strip_prefix("model.")?;
    if let Some(r) = rest.strip_prefix("embed_tokens.") {
        return Some(StoredName::plain(format!(
            "transformer.word_embeddings.{r}"
        )));
    }
    if let Some(r) = rest.strip_prefix("norm.") {
        return Some(StoredName::plain(format!("transformer.ln_f.{r}")));
    }
    let (layer, tensor) = rest.strip_prefix("layers.")?.split_once('.')?;
    let new_arch = config
        .get("new_decoder_architecture")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let norms = config
        .get("num_ln_in_parallel_attn")
        .and_then(Value::as_u64)
        .unwrap_or(if new_arch { 2 } else { 1 });
    let two_norms = new_arch && norms == 2;
    let table: &[(&str, &str)] = &[
        (
            "input_layernorm.",
            if two_norms {
                "ln_attn."
            } else {
                "input_layernorm."
            },
        ),
        (
            "post_attention_layernorm.",
            if two_norms {
                "ln_mlp."
            } else {
                "post_attention_layernorm."
            },
        ),
        ("self_attn.qkv_proj.", "self_attention.query_key_value."),
        ("self_attn.o_proj.", "self_attention.dense."),
        ("mlp.up_proj.", "mlp.dense_h_to_4h."),
        ("mlp.down_proj.", "mlp.dense_4h_to_h."),
    ];
    table
        .iter()
        .find_map(|(from, to)| tensor.strip_prefix(from).map(|r| (to, r)))
        .map(|(to, r)| StoredName::plain(format!("transformer.h.{layer}.{to}{r}")))
}
