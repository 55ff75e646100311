//! Shared pieces of the presets whose checkpoints differ from the LLaMA layout: tensor-name
//! tables and config defaults.

use serde_json::{Map, Value};
use trustformers_core::{Error, Result, StoredName};

/// `name` with its prefix replaced by the first entry of `table` that matches
/// (`(canonical prefix, stored prefix)`; an empty prefix matches everything).
pub(crate) fn by_prefix(name: &str, table: &[(&str, &str)]) -> Option<String> {
    table
        .iter()
        .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

/// Stored names that are plain renames.
pub(crate) fn plain(name: Option<String>) -> Option<StoredName> {
    name.map(StoredName::plain)
}

/// The stored name of a canonical `model.*` name: outside the layers by `globals`, inside
/// layer `i` as `{layers}.{i}.` + the tensor renamed by `block`.
pub(crate) fn rename(
    canonical: &str,
    globals: &[(&str, &str)],
    layers: &str,
    block: &[(&str, &str)],
) -> Option<String> {
    let rest = canonical.strip_prefix("model.")?;
    if let Some(name) = by_prefix(rest, globals) {
        return Some(name);
    }
    let (layer, tensor) = rest.strip_prefix("layers.")?.split_once('.')?;
    Some(format!("{layers}.{layer}.{}", by_prefix(tensor, block)?))
}

/// The embeddings, positions and final norm of GPT-2 style checkpoints.
pub(crate) const GPT2_GLOBALS: &[(&str, &str)] = &[
    ("embed_tokens.", "transformer.wte."),
    ("embed_positions.", "transformer.wpe."),
    ("norm.", "transformer.ln_f."),
];

/// `config` with `partial_rotary_factor` set to `default` when neither it nor
/// `rope_parameters` states one (models whose default is not 1).
pub(crate) fn with_partial_rotary_default(config: &Value, default: Value) -> Value {
    let mut config = config.clone();
    if let Some(obj) = config.as_object_mut() {
        let in_params = obj
            .get("rope_parameters")
            .and_then(|p| p.get("partial_rotary_factor"))
            .is_some();
        if !in_params && !obj.contains_key("partial_rotary_factor") {
            obj.insert("partial_rotary_factor".into(), default);
        }
    }
    config
}

/// GPT-2 style config names (`n_embd`, `n_head`, ..., GPT-Neo's `num_layers`, `num_heads`)
/// -> the LLaMA names the shared reader uses; a null `n_inner` means `4 * n_embd`.
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
        // GPT-Neo's names.
        ("num_layers", "num_hidden_layers"),
        ("num_heads", "num_attention_heads"),
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
