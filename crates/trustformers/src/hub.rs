//! Checkpoints from the Hugging Face Hub, downloaded with hf-hub into the standard cache
//! (`$HF_HOME/hub`, by default `~/.cache/huggingface/hub`, shared with Python), and found there
//! again without the network. `HF_HUB_OFFLINE=1` uses only the cache.
//!
//! A reference is `org/name` (a transformers checkpoint: config.json, safetensors, tokenizer
//! files), `org/name/file.gguf` (one GGUF file), either with an optional `@revision`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use trustformers_core::{Error, Result};

/// A model on the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    pub repo: String,
    pub revision: String,
    /// One file to fetch (a GGUF) instead of a checkpoint directory.
    pub file: Option<String>,
}

impl HubRef {
    /// Parses `org/name[/file.gguf][@revision]`; `None` when `name` does not look like one.
    pub fn parse(name: &str) -> Option<Self> {
        let (path, revision) = match name.rsplit_once('@') {
            Some((p, r)) if !r.is_empty() => (p, r.to_owned()),
            Some(_) => return None,
            None => (name, "main".to_owned()),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match parts.as_slice() {
            [org, repo] if ok(org) && ok(repo) => Some(Self {
                repo: format!("{org}/{repo}"),
                revision,
                file: None,
            }),
            [org, repo, file] if ok(org) && ok(repo) && ok(file) && file.ends_with(".gguf") => {
                Some(Self {
                    repo: format!("{org}/{repo}"),
                    revision,
                    file: Some((*file).to_owned()),
                })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.repo)?;
        if let Some(file) = &self.file {
            write!(f, "/{file}")?;
        }
        if self.revision != "main" {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

/// Whether `HF_HUB_OFFLINE` asks for no network, as huggingface_hub reads it.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The hub cache directory (`$HF_HOME/hub` or `~/.cache/huggingface/hub`).
pub fn cache_root() -> PathBuf {
    match std::env::var_os("HF_HOME") {
        Some(home) => PathBuf::from(home).join("hub"),
        None => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join(".cache")
            .join("huggingface")
            .join("hub"),
    }
}

pub(crate) const SINGLE: &str = "model.safetensors";
pub(crate) const INDEX: &str = "model.safetensors.index.json";

/// The snapshot directory `r` resolves to in the cache at `root`, if the ref is known.
fn snapshot(root: &Path, r: &HubRef) -> Option<PathBuf> {
    let folder = root.join(format!("models--{}", r.repo.replace('/', "--")));
    let is_commit = r.revision.len() == 40 && r.revision.chars().all(|c| c.is_ascii_hexdigit());
    let commit = if is_commit {
        r.revision.clone()
    } else {
        std::fs::read_to_string(folder.join("refs").join(&r.revision))
            .ok()?
            .trim()
            .to_owned()
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.contains("..") {
        return None;
    }
    Some(folder.join("snapshots").join(commit))
}

/// Shard file names listed by a safetensors index.
pub(crate) fn shards(index: &Path) -> Result<BTreeSet<String>> {
    let json = trustformers_core::config::read_json(index)?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::config("weight_map", format!("missing in {}", index.display())))?;
    Ok(map
        .values()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect())
}

/// `r` from the cache at `root` when everything needed is there: the GGUF file, or
/// config.json with all its weights.
pub fn cached_in(root: &Path, r: &HubRef) -> Option<PathBuf> {
    let snap = snapshot(root, r)?;
    if let Some(file) = &r.file {
        let path = snap.join(file);
        return path.is_file().then_some(path);
    }
    if !snap.join("config.json").is_file() {
        return None;
    }
    if snap.join(SINGLE).is_file() {
        return Some(snap);
    }
    let names = shards(&snap.join(INDEX)).ok()?;
    names.iter().all(|s| snap.join(s).is_file()).then_some(snap)
}

/// `r` from the standard cache, without the network.
pub fn cached(r: &HubRef) -> Option<PathBuf> {
    cached_in(&cache_root(), r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_repo_ids() {
        let r = HubRef::parse("HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
        assert_eq!(r.repo, "HuggingFaceTB/SmolLM2-135M-Instruct");
        assert_eq!((r.revision.as_str(), r.file.as_deref()), ("main", None));
        let r = HubRef::parse("org/repo-GGUF/model.Q4_1.gguf@v1.0").unwrap();
        assert_eq!(r.file.as_deref(), Some("model.Q4_1.gguf"));
        assert_eq!(r.revision, "v1.0");
        assert_eq!(r.to_string(), "org/repo-GGUF/model.Q4_1.gguf@v1.0");
        for bad in [
            "gpt2",
            "a/b/c",
            "a/../b",
            "../a",
            "a/b@",
            "a b/c",
            "/abs/path",
            "a/b/c.bin",
        ] {
            assert_eq!(HubRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn finds_complete_snapshots_in_the_cache() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("models--org--tiny");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let snap = folder.join("snapshots").join(sha);
        std::fs::create_dir_all(folder.join("refs")).unwrap();
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(folder.join("refs/main"), sha).unwrap();
        let r = HubRef::parse("org/tiny").unwrap();
        assert_eq!(cached_in(root.path(), &r), None, "no config.json yet");
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        std::fs::write(
            snap.join(INDEX),
            r#"{"weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(snap.join("m-1.safetensors"), "").unwrap();
        assert_eq!(cached_in(root.path(), &r), None, "a shard is missing");
        std::fs::write(snap.join("m-2.safetensors"), "").unwrap();
        assert_eq!(cached_in(root.path(), &r), Some(snap.clone()));
        // A commit hash names the snapshot directly; an unknown branch finds nothing.
        let pinned = HubRef::parse(&format!("org/tiny@{sha}")).unwrap();
        assert_eq!(cached_in(root.path(), &pinned), Some(snap.clone()));
        assert_eq!(
            cached_in(root.path(), &HubRef::parse("org/tiny@dev").unwrap()),
            None
        );
        // A GGUF file in the same snapshot.
        std::fs::write(snap.join("m.gguf"), "").unwrap();
        let gguf = HubRef::parse("org/tiny/m.gguf").unwrap();
        assert_eq!(cached_in(root.path(), &gguf), Some(snap.join("m.gguf")));
        // A ref that tries to leave the cache is ignored.
        std::fs::write(folder.join("refs/main"), "../../etc").unwrap();
        assert_eq!(cached_in(root.path(), &r), None);
    }
}
