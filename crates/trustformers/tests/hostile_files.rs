//! The malformed-file corpus (see `hostile/mod.rs`): GGUF, safetensors, tokenizer.json,
//! config.json, chat templates, images and image-processor configs. Each format's cases run
//! in this process, one at a time (panics are caught and counted), and the whole corpus runs
//! again in a child process to show that no case kills the process with a signal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hostile;

use hostile::{alloc::Counting, run_all};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Set in the child process.
const CHILD_ENV: &str = "TRUSTFORMERS_CORPUS_CHILD";

/// The cases share one allocation counter, so they must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn gguf_corpus() {
    let _g = serial();
    let cases = hostile::gguf::cases();
    assert!(cases.len() >= 45, "{} GGUF cases", cases.len());
    run_all(&cases);
}

#[test]
fn safetensors_corpus() {
    let _g = serial();
    let cases = hostile::safetensors::cases();
    assert!(cases.len() >= 30, "{} safetensors cases", cases.len());
    run_all(&cases);
}

#[test]
fn tokenizer_corpus() {
    let _g = serial();
    let cases = hostile::tokenizer::cases();
    assert!(cases.len() >= 20, "{} tokenizer cases", cases.len());
    run_all(&cases);
}

#[test]
fn adapter_corpus() {
    let _g = serial();
    let cases = hostile::adapter::cases();
    assert!(cases.len() >= 19, "{} adapter cases", cases.len());
    run_all(&cases);
}

#[test]
fn image_corpus() {
    let _g = serial();
    let cases = hostile::image::cases();
    assert!(cases.len() >= 30, "{} image cases", cases.len());
    run_all(&cases);
}

#[test]
fn config_corpus() {
    let _g = serial();
    let cases = hostile::config::cases();
    assert!(cases.len() >= 15, "{} config cases", cases.len());
    run_all(&cases);
}

#[test]
fn chat_template_corpus() {
    let _g = serial();
    let cases = hostile::chat::cases();
    assert!(cases.len() >= 10, "{} chat template cases", cases.len());
    run_all(&cases);
}

#[test]
fn encoder_corpus() {
    let _g = serial();
    let cases = hostile::encoder::cases();
    assert!(cases.len() >= 10, "{} encoder cases", cases.len());
    run_all(&cases);
}

#[test]
fn pytorch_bin_corpus() {
    let _g = serial();
    let cases = hostile::pth::cases();
    assert!(cases.len() >= 20, "{} .bin cases", cases.len());
    run_all(&cases);
}

#[test]
fn valid_bases_load() {
    let _g = serial();
    hostile::gguf::base_loads();
    hostile::safetensors::base_loads();
    hostile::tokenizer::base_loads();
    hostile::chat::base_loads();
    hostile::pth::base_loads();
}

/// The whole corpus in this process; run by `corpus_survives_in_a_child_process`.
#[test]
#[ignore = "run in a child process by corpus_survives_in_a_child_process"]
fn corpus_child() {
    let _g = serial();
    run_all(&hostile::all_cases());
}

#[test]
fn corpus_survives_in_a_child_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "corpus_child", "--ignored", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            None,
            "the corpus child died by a signal"
        );
    }
    assert!(
        out.status.success(),
        "corpus child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
