//! Where downloaded models live.

use std::path::PathBuf;

/// `$TRUSTFORMERS_CACHE`, or `~/.cache/trustformers` (what `tools/fetch_models.sh` fills).
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("TRUSTFORMERS_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache").join("trustformers")
        }
    }
}
