//! One file per encoder `model_type`: the config fields, the task heads' layout, and (where
//! the checkpoint does not use BERT's names) the tensor-name map.

pub mod albert;
pub mod bert;
pub mod distilbert;
pub mod electra;
pub mod roberta;

use trustformers_core::StoredName;

/// Splits a canonical name into the base-model prefix (`bert.`, or empty) and the rest, when
/// the rest is a base-model tensor.
pub(crate) fn split_base<'a>(canonical: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = canonical
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or(canonical);
    let base = &canonical[..canonical.len() - rest.len()];
    ["embeddings", "encoder.", "pooler."]
        .iter()
        .any(|p| rest.starts_with(p))
        .then_some((base, rest))
}

/// Renames the layer tensors of a BERT-layout name (`encoder.layer.{i}.{tensor}`) by `block`
/// (`(BERT prefix, stored prefix)`), under `layers` (`{i}` is the layer or group index).
pub(crate) fn rename_layer(rest: &str, layers: &str, block: &[(&str, &str)]) -> Option<String> {
    let (layer, tensor) = rest.strip_prefix("encoder.layer.")?.split_once('.')?;
    let (from, to) = block.iter().find(|(from, _)| tensor.starts_with(from))?;
    Some(format!(
        "{}.{}",
        layers.replace("{i}", layer),
        tensor.replacen(from, to, 1)
    ))
}

pub(crate) fn plain(name: Option<String>) -> Option<StoredName> {
    name.map(StoredName::plain)
}
