//! The malformed-file corpus. Every case builds a mutant of a small valid file in code, loads
//! it the way a user would (parse, build the model or tokenizer, run it once), and must come
//! back with the expected error variant: no panic, within a second, allocating at most the
//! size of its files plus 64 MiB.

pub mod adapter;
pub mod alloc;
pub mod chat;
pub mod config;
pub mod encoder;
pub mod gguf;
mod gguf_files;
pub mod image;
pub mod pth;
pub mod safetensors;
pub mod tokenizer;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use trustformers::{Error, Result};

/// Longest a case may take.
pub const TIME_LIMIT: Duration = Duration::from_secs(1);
/// Allocation allowed on top of the size of the case's files.
pub const ALLOC_SLACK: usize = 64 << 20;

/// The error a case must produce, as a pattern over [`Error`].
pub struct Expect {
    pub pattern: &'static str,
    pub test: fn(&Error) -> bool,
}

/// `expect!(Error::Gguf { .. })`: the case must fail with an error matching the pattern.
#[macro_export]
macro_rules! expect {
    ($($p:tt)+) => {
        $crate::hostile::Expect {
            pattern: stringify!($($p)+),
            test: |e: &trustformers::Error| matches!(e, $($p)+),
        }
    };
}

/// One malformed input.
pub struct Case {
    pub format: &'static str,
    pub name: String,
    /// Files written into a fresh directory, by relative name.
    pub files: Vec<(String, Vec<u8>)>,
    /// What `load` receives, relative to that directory (empty: the directory itself).
    pub entry: String,
    pub load: fn(&Path) -> Result<()>,
    pub expect: Expect,
}

impl Case {
    /// A case that loads the single file `name`.
    pub fn file(
        format: &'static str,
        name: impl Into<String>,
        file_name: &str,
        bytes: Vec<u8>,
        load: fn(&Path) -> Result<()>,
        expect: Expect,
    ) -> Self {
        Self {
            format,
            name: name.into(),
            files: vec![(file_name.to_string(), bytes)],
            entry: file_name.to_string(),
            load,
            expect,
        }
    }

    /// A case that loads a directory holding `files`.
    pub fn dir(
        format: &'static str,
        name: impl Into<String>,
        files: Vec<(&str, Vec<u8>)>,
        load: fn(&Path) -> Result<()>,
        expect: Expect,
    ) -> Self {
        Self {
            format,
            name: name.into(),
            files: files.into_iter().map(|(n, b)| (n.to_string(), b)).collect(),
            entry: String::new(),
            load,
            expect,
        }
    }
}

/// Every case of every format.
pub fn all_cases() -> Vec<Case> {
    let mut cases = gguf::cases();
    cases.extend(safetensors::cases());
    cases.extend(tokenizer::cases());
    cases.extend(config::cases());
    cases.extend(chat::cases());
    cases.extend(pth::cases());
    cases.extend(encoder::cases());
    cases.extend(adapter::cases());
    cases.extend(image::cases());
    cases
}

/// Runs one case; `Err` says how it failed the bar.
pub fn run(case: &Case) -> std::result::Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut size = 0;
    for (name, bytes) in &case.files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        size += bytes.len();
    }
    let target: PathBuf = if case.entry.is_empty() {
        dir.path().to_path_buf()
    } else {
        dir.path().join(&case.entry)
    };
    // Panics are expected to be rare and are reported by name; keep their backtraces out of
    // the output (and out of the allocation count).
    std::panic::set_hook(Box::new(|_| {}));
    let before = alloc::start();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| (case.load)(&target)));
    let elapsed = started.elapsed();
    if std::env::var_os("TRUSTFORMERS_CORPUS_TIMES").is_some() {
        eprintln!(
            "{:>10.3} ms  {} / {}",
            elapsed.as_secs_f64() * 1e3,
            case.format,
            case.name
        );
    }
    let allocated = alloc::peak_since(before);
    let _ = std::panic::take_hook();
    let mut problems = Vec::new();
    match &outcome {
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            problems.push(format!("panicked: {msg}"))
        }
        Ok(Ok(())) => problems.push(format!("loaded, expected {}", case.expect.pattern)),
        Ok(Err(e)) if !(case.expect.test)(e) => {
            problems.push(format!("got {e:?}, expected {}", case.expect.pattern))
        }
        Ok(Err(_)) => {}
    }
    if elapsed > TIME_LIMIT {
        problems.push(format!("took {elapsed:?}"));
    }
    if allocated > size + ALLOC_SLACK {
        problems.push(format!(
            "allocated {allocated} bytes for {size} bytes of files"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// With `TRUSTFORMERS_CORPUS_DUMP=DIR`, writes every case's files under
/// `DIR/<format>/<case>/` (and chat templates as `chat_template.jinja`): the fuzzers' seeds.
fn dump(case: &Case) {
    let Some(root) = std::env::var_os("TRUSTFORMERS_CORPUS_DUMP") else {
        return;
    };
    let slug = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    let dir = Path::new(&root)
        .join(slug(case.format))
        .join(slug(&case.name));
    for (name, bytes) in &case.files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        if name == "tokenizer_config.json" {
            let template = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|v| v.get("chat_template")?.as_str().map(str::to_string));
            if let Some(t) = template {
                std::fs::write(dir.join("chat_template.jinja"), t).unwrap();
            }
        }
    }
}

/// Runs `cases` and fails with every case that missed the bar.
pub fn run_all(cases: &[Case]) {
    cases.iter().for_each(dump);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            run(c)
                .err()
                .map(|why| format!("{} / {}: {why}", c.format, c.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A fixture file's bytes.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads a checkpoint directory in f32 and runs it once: the loader of the safetensors,
/// `.bin` and config.json cases.
pub fn load_dir_f32(dir: &Path) -> Result<()> {
    let opts = trustformers::LoadOptions {
        dtype: Some(trustformers::DType::F32),
        ..Default::default()
    };
    forward_once(&trustformers::AutoModelForCausalLM::from_pretrained(
        dir, &opts,
    )?)
}

/// Runs a loaded causal LM once on three tokens.
pub fn forward_once(model: &dyn trustformers::CausalLM) -> Result<()> {
    use trustformers::models::decoder::default_positions;
    let device = trustformers::Device::Cpu;
    let ids = trustformers::Tensor::new(&[[1u32, 2, 3]], &device)?;
    let positions = default_positions(1, 0, 3, &device)?;
    model.forward(&ids, &positions, &mut model.new_cache())?;
    Ok(())
}
