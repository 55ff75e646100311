//! Shared pieces of the presets whose checkpoints differ from the LLaMA layout: tensor-name
//! tables and config defaults.

use serde_json::Value;

/// `name` with its prefix replaced by the first entry of `table` that matches
/// (`(canonical prefix, stored prefix)`; an empty prefix matches everything).
pub(crate) fn by_prefix(name: &str, table: &[(&str, &str)]) -> Option<String> {
    table
        .iter()
        .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
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
