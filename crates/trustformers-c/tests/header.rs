//! `include/trustformers.h` is what cbindgen generates from the crate (with
//! `cbindgen.toml`); `TRUSTFORMERS_BLESS=1` rewrites it after an API change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[test]
fn the_committed_header_is_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .unwrap()
        .write(&mut generated);
    let path = dir.join("include/trustformers.h");
    if std::env::var("TRUSTFORMERS_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date: run `TRUSTFORMERS_BLESS=1 cargo test -p trustformers-c --test header`",
        path.display()
    );
}
