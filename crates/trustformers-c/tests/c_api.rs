//! The C API from C and C++: `tests/c/test_api.c` and `tests/c/test_api.cpp` are built with
//! the system compiler against the library (shared, through the pkg-config file, and
//! static), run on the tiny fixtures, and their printed results compared with the facade's
//! and with `trustformers generate --json` / `trustformers embed --json` (when the CLI has
//! been built, as `cargo test --workspace` does). The C program also runs under valgrind
//! (required when `TRUSTFORMERS_REQUIRE_VALGRIND=1`, as `.ci/run` sets): no invalid
//! accesses, nothing definitely or indirectly lost. With `TRUSTFORMERS_TEST_MODELS=1` the
//! same comparison runs on SmolLM2 and all-MiniLM-L6-v2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use trustformers::pipelines::{EmbedParams, SentenceTransformer};
use trustformers::{LoadOptions, LoadedModel};

const PROMPT: &str = "hello there";
const MAX_NEW_TOKENS: usize = 12;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    crate_dir().join("../../tests/fixtures")
}

/// `target/<profile>`: where cargo puts the library and the CLI.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// `target/<profile>/deps`: where `cargo test` builds the library (it is copied up to
/// `target/<profile>` by `cargo build` only).
fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn library(ext: &str) -> PathBuf {
    let lib = deps_dir().join(format!("libtrustformers_c.{ext}"));
    assert!(
        lib.is_file(),
        "{} is missing: cargo builds it with the tests",
        lib.display()
    );
    lib
}

/// The llama fixture with the character tokenizer and chat template of `serve_chat`.
fn chat_model(dir: &Path) -> PathBuf {
    let model = dir.join("chat");
    std::fs::create_dir_all(&model).unwrap();
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("llama/config.json")).unwrap(),
    )
    .unwrap();
    config["max_position_embeddings"] = 512.into();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        fixtures().join("llama/model.safetensors"),
        model.join("model.safetensors"),
    )
    .unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("serve_chat").join(f), model.join(f)).unwrap();
    }
    model
}

/// A prefix as `make install` would lay it out (lib/, include/, lib/pkgconfig/), with the
/// pkg-config file made from `trustformers.pc.in`.
fn staged_prefix(dir: &Path) -> PathBuf {
    let prefix = dir.join("prefix");
    let (lib, include) = (prefix.join("lib"), prefix.join("include"));
    std::fs::create_dir_all(lib.join("pkgconfig")).unwrap();
    std::fs::create_dir_all(&include).unwrap();
    std::fs::copy(library("so"), lib.join("libtrustformers_c.so")).unwrap();
    for h in ["trustformers.h", "trustformers.hpp"] {
        std::fs::copy(crate_dir().join("include").join(h), include.join(h)).unwrap();
    }
    let pc = std::fs::read_to_string(crate_dir().join("trustformers.pc.in"))
        .unwrap()
        .replace("@PREFIX@", prefix.to_str().unwrap())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(lib.join("pkgconfig/trustformers.pc"), pc).unwrap();
    prefix
}

/// Compiler flags from the staged pkg-config file.
fn pkg_config(prefix: &Path) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "--libs", "trustformers"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config (Debian's pkgconf) is needed to build the C tests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The C and C++ compilers: `TRUSTFORMERS_TEST_CC` / `TRUSTFORMERS_TEST_CXX` (a cross
/// compiler, see scripts/cross_aarch64.sh), else the system's `cc` / `c++`.
fn compiler(cpp: bool) -> String {
    let (var, default) = match cpp {
        true => ("TRUSTFORMERS_TEST_CXX", "c++"),
        false => ("TRUSTFORMERS_TEST_CC", "cc"),
    };
    std::env::var(var).unwrap_or_else(|_| default.into())
}

/// What runs the compiled programs and the CLI: `TRUSTFORMERS_TEST_RUNNER` (e.g.
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu`), or nothing.
fn runner() -> Option<Vec<String>> {
    std::env::var("TRUSTFORMERS_TEST_RUNNER")
        .ok()
        .map(|r| r.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
}

fn compile(cpp: bool, std: &str, source: &str, flags: &[String], out: &Path) {
    let compiler = compiler(cpp);
    let status = Command::new(&compiler)
        .args([std, "-Wall", "-Wextra", "-Werror", "-g", "-pthread"])
        .arg(crate_dir().join("tests/c").join(source))
        .args(flags)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("{compiler}: {e}"));
    assert!(status.success(), "{compiler} failed on {source}");
}

fn run(program: &Path, args: &[&str], wrapper: Option<&[&str]>) -> Output {
    let wrapper: Option<Vec<String>> = wrapper
        .map(|w| w.iter().map(|s| s.to_string()).collect())
        .or_else(runner);
    let mut cmd = match wrapper.as_deref() {
        Some([first, rest @ ..]) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        _ => Command::new(program),
    };
    // cargo points LD_LIBRARY_PATH at target/<profile>, whose copy of the library may be
    // older than the one the program was linked against (its RUNPATH): drop it.
    let out = cmd
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON lines a test program printed, merged into one object.
fn results(out: &Output) -> serde_json::Map<String, Value> {
    let mut all = serde_json::Map::new();
    for line in String::from_utf8(out.stdout.clone()).unwrap().lines() {
        let Value::Object(o) = serde_json::from_str(line).unwrap() else {
            panic!("not an object: {line}")
        };
        all.extend(o);
    }
    all
}

fn floats(v: &Value) -> Vec<Vec<f32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{what}");
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() <= 1e-6, "{what}: {a} vs {b}");
        }
    }
}

const TEXTS: [&str; 3] = ["the weather is sunny today", "john lives in london", "a"];

/// Checks a program's printed results against the facade and, when built, the CLI.
fn check_results(
    r: &serde_json::Map<String, Value>,
    chat: &str,
    embed: &str,
    prompt: &str,
    n: usize,
) {
    let opts = LoadOptions::default();
    let loaded = LoadedModel::load(Some(chat), &opts).unwrap();
    let mut config = loaded.generation.clone();
    config.max_new_tokens = n;
    let ids = loaded.prompt_ids(prompt, false).unwrap();
    let want = loaded.generate_text(&ids, &config, |_| true).unwrap();
    let gen = &r["generate"];
    assert_eq!(gen["text"], want.text.as_str(), "generated text");
    if let Some(got_ids) = gen.get("token_ids") {
        assert_eq!(
            got_ids,
            &serde_json::json!(want.tokens.ids),
            "generated ids"
        );
        assert_eq!(gen["prompt_ids"], serde_json::json!(ids), "prompt ids");
    }
    let enc = loaded.tokenizer.encode_ids(prompt, true).unwrap();
    assert_eq!(r["encode"], serde_json::json!(enc));
    assert_eq!(
        r["decode"],
        loaded.tokenizer.decode(&enc, true).unwrap().as_str()
    );
    let st = SentenceTransformer::from_pretrained(
        trustformers::resolve_model(Some(embed)).unwrap(),
        &opts,
    )
    .unwrap();
    let emb = st.encode(&TEXTS, &EmbedParams::default()).unwrap();
    assert_close(&floats(&r["embeddings"]), &emb, "embeddings");

    let cli = profile_dir().join("trustformers");
    if !cli.is_file() {
        eprintln!("no CLI at {}: compared with the facade only", cli.display());
        return;
    }
    let out = run(
        &cli,
        &[
            "generate",
            "--model",
            chat,
            "--max-new-tokens",
            &n.to_string(),
            "--json",
            prompt,
        ],
        None,
    );
    let cli_gen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(gen["text"], cli_gen["text"], "text against the CLI");
    if let Some(got_ids) = gen.get("token_ids") {
        assert_eq!(got_ids, &cli_gen["token_ids"], "ids against the CLI");
    }
    let mut args = vec!["embed", "--model", embed, "--json"];
    args.extend(TEXTS);
    let out = run(&cli, &args, None);
    let cli_emb: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_close(
        &floats(&r["embeddings"]),
        &floats(&cli_emb["embeddings"]),
        "embeddings against the CLI",
    );
}

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn c_and_cpp_programs_match_the_cli_and_pass_valgrind() {
    let dir = tempfile::tempdir().unwrap();
    let chat = chat_model(dir.path());
    let chat = chat.to_str().unwrap();
    let embed = fixtures().join("bert_base");
    let embed = embed.to_str().unwrap();
    let prefix = staged_prefix(dir.path());
    let mut flags = pkg_config(&prefix);
    flags.push(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    let (c_bin, cpp_bin) = (dir.path().join("test_api"), dir.path().join("test_api_cpp"));
    compile(false, "-std=c11", "test_api.c", &flags, &c_bin);
    compile(true, "-std=c++17", "test_api.cpp", &flags, &cpp_bin);
    let n = MAX_NEW_TOKENS.to_string();
    let args = [chat, embed, PROMPT, n.as_str()];

    let c = results(&run(&c_bin, &args, None));
    check_results(&c, chat, embed, PROMPT, MAX_NEW_TOKENS);
    let cpp = results(&run(&cpp_bin, &args, None));
    check_results(&cpp, chat, embed, PROMPT, MAX_NEW_TOKENS);
    assert_eq!(c["generate"]["text"], cpp["generate"]["text"]);

    // The static library: the same program, nothing to find at run time.
    let static_bin = dir.path().join("test_api_static");
    let static_flags = vec![
        format!("-I{}", crate_dir().join("include").display()),
        library("a").display().to_string(),
        "-lpthread".into(),
        "-ldl".into(),
        "-lm".into(),
    ];
    compile(false, "-std=c11", "test_api.c", &static_flags, &static_bin);
    let st = results(&run(&static_bin, &args, None));
    assert_eq!(st["generate"], c["generate"]);

    if runner().is_some() {
        eprintln!("skipped valgrind: the programs run under TRUSTFORMERS_TEST_RUNNER");
        return;
    }
    if !valgrind_available() {
        assert!(
            std::env::var("TRUSTFORMERS_REQUIRE_VALGRIND").as_deref() != Ok("1"),
            "valgrind is required (TRUSTFORMERS_REQUIRE_VALGRIND=1) but not installed"
        );
        eprintln!("skipped valgrind: not installed");
        return;
    }
    let out = run(
        &c_bin,
        &[chat, embed, PROMPT, "4"],
        Some(&[
            "valgrind",
            "-q",
            "--error-exitcode=99",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
        ]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Invalid read") && !stderr.contains("Invalid write"),
        "{stderr}"
    );
}

#[test]
fn real_models_through_the_c_api_match_the_cli() {
    if std::env::var("TRUSTFORMERS_TEST_MODELS").as_deref() != Ok("1") {
        eprintln!("skipped: set TRUSTFORMERS_TEST_MODELS=1 (and run tools/fetch_models.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("test_api");
    let flags = vec![
        format!("-I{}", crate_dir().join("include").display()),
        format!("-L{}", deps_dir().display()),
        "-ltrustformers_c".into(),
        format!("-Wl,-rpath,{}", deps_dir().display()),
    ];
    compile(false, "-std=c11", "test_api.c", &flags, &bin);
    let prompt = "What is the capital of France?";
    let (chat, embed) = ("smollm2-135m-instruct", "all-minilm-l6-v2");
    let r = results(&run(&bin, &[chat, embed, prompt, "16"], None));
    check_results(&r, chat, embed, prompt, 16);
}
