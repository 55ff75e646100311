//! `generate`, `chat` and `bench` end to end on a tiny checkpoint (the llama fixture with a
//! character tokenizer trained here and a chat template), and their bad-input errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trustformers"))
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The llama fixture plus a character tokenizer (ids < its vocabulary of 128) and a template.
fn tiny_chat_model(dir: &Path) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llama");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), model.join(f)).unwrap();
    }
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, "hello world, how are you?\nthe quick brown fox\n").unwrap();
    let out = bin()
        .args([
            "tokenizer",
            "train",
            "--type",
            "char",
            "--vocab-size",
            "100",
        ])
        .args([
            "--special-tokens",
            "<unk>,<s>,</s>,<pad>,<|user|>,<|bot|>,<|end|>",
        ])
        .arg("--out")
        .arg(&model)
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = model.join("tokenizer_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["eos_token"] = "<|end|>".into();
    config["chat_template"] = "{% for m in messages %}{% if m.role == 'user' %}<|user|>{% else %}<|bot|>{% endif %}{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|bot|>{% endif %}".into();
    std::fs::write(&path, config.to_string()).unwrap();
    model
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn chat_generate_and_bench_on_a_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_chat_model(dir.path());
    let m = model.to_str().unwrap();

    // Not a terminal: one message per line, one reply line each; history is kept and the
    // oldest exchanges are dropped when the 64-token context fills up.
    let out = run_with_stdin(
        &[
            "chat",
            "--model",
            m,
            "--max-new-tokens",
            "6",
            "--system",
            "be brief",
        ],
        b"hello\nhow are you\nthe fox\nworld\nquick\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 5);

    // Beam search with several sequences, as JSON.
    let out = bin()
        .args([
            "generate",
            "--model",
            m,
            "--num-beams",
            "3",
            "--num-return-sequences",
            "2",
        ])
        .args(["--max-new-tokens", "5", "--json", "hello"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let seqs = v["sequences"].as_array().unwrap();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0]["score"].as_f64().unwrap() >= seqs[1]["score"].as_f64().unwrap());

    // Streaming with logprobs; the prompt comes from stdin.
    let out = run_with_stdin(
        &[
            "generate",
            "--model",
            m,
            "--max-new-tokens",
            "4",
            "--json",
            "--top-logprobs",
            "2",
        ],
        b"the quick",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = v["token_ids"].as_array().unwrap();
    assert_eq!(v["logprobs"].as_array().unwrap().len(), ids.len());

    let out = bin()
        .args([
            "bench", "--model", m, "-p", "8,16", "-n", "4", "-r", "2", "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["load_s", "pp8_tok_s", "pp16_tok_s", "tg4_tok_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    if cfg!(target_os = "linux") {
        assert!(v["peak_rss_mb"].as_f64().unwrap() > 0.0);
    }

    // Tests after tokens already in the cache (llama-bench's -d), with an f16 cache.
    let out = bin()
        .args([
            "bench",
            "--model",
            m,
            "-p",
            "8",
            "-n",
            "4",
            "-d",
            "16",
            "-r",
            "1",
            "--kv-cache-dtype",
            "f16",
            "--ubatch-size",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["pp8_d16_tok_s", "tg4_d16_tok_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    assert_eq!(v["ubatch_size"], 3, "{v}");
}

#[test]
fn bad_input_gets_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_chat_model(dir.path());
    let m = model.to_str().unwrap();
    let long = "x".repeat(100);
    let cases: Vec<(Vec<&str>, &[u8], &str)> = vec![
        (
            vec!["generate", "--model", m],
            b"caf\xe9",
            "not valid UTF-8",
        ),
        (
            vec!["chat", "--model", m, "--max-new-tokens", "3"],
            b"hi\n\xff\xfe\n",
            "line 2 of stdin is not valid UTF-8",
        ),
        (
            vec!["generate", "--model", m, "--top-p", "1.5", "hi"],
            b"",
            "top_p",
        ),
        (
            vec![
                "generate",
                "--model",
                m,
                "--do-sample",
                "--temperature",
                "-1",
                "hi",
            ],
            b"",
            "temperature",
        ),
        (
            vec!["generate", "--model", m, "--max-new-tokens", "1000", "hi"],
            b"",
            "context of 64 tokens",
        ),
        (
            vec!["generate", "--model", m, "--raw", &long],
            b"",
            "does not fit the model's context",
        ),
        (
            vec!["generate", "--model", m, "   "],
            b"",
            "the prompt is empty",
        ),
        (
            vec![
                "generate",
                "--model",
                m,
                "--num-return-sequences",
                "2",
                "hi",
            ],
            b"",
            "num_return_sequences",
        ),
        (
            vec!["generate", "--model", m, "--no-such-flag", "hi"],
            b"",
            "unexpected argument",
        ),
        (vec!["bench", "--model", m, "-p", "0"], b"", "test length 0"),
        (
            vec!["bench", "--model", m, "-p", "8", "-d", "60"],
            b"",
            "with a depth of 60",
        ),
        (
            vec!["bench", "--model", m, "--kv-cache-dtype", "bf16"],
            b"",
            "a KV cache keeps f32 or f16",
        ),
        (
            vec!["bench", "--model", m, "--ubatch-size", "0"],
            b"",
            "--ubatch-size must be at least 1",
        ),
    ];
    for (args, stdin, want) in cases {
        let out = run_with_stdin(&args, stdin);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A checkpoint of the wrong kind is named as such, with what it is for; a missing file is
/// said once; a file of the wrong kind is not reported in the operating system's words.
#[test]
fn wrong_kinds_and_missing_files_get_one_message_that_says_what_to_do() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let bert = fixtures.join("bert_base");
    let gguf = fixtures.join("llama_gguf/tiny-llama.gguf");
    let dir = tempfile::tempdir().unwrap();
    let no_tokenizer = dir.path().join("model");
    std::fs::create_dir_all(&no_tokenizer).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures.join("llama").join(f), no_tokenizer.join(f)).unwrap();
    }
    let (bert, gguf, no_tokenizer) = (
        bert.to_str().unwrap(),
        gguf.to_str().unwrap(),
        no_tokenizer.to_str().unwrap(),
    );
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["generate", "--model", bert, "hi"],
            &["`bert` is a text encoder", "embeddings (`embed`)"],
        ),
        (
            vec!["embed", "--model", gguf, "hi"],
            &[
                "`llama` is a decoder-only causal language model",
                "text generation (`generate`",
            ],
        ),
        (
            vec!["pipeline", "fill-mask", "--model", gguf, "a [MASK]"],
            &["`llama` is a decoder-only causal language model"],
        ),
        (
            vec!["generate", "--model", no_tokenizer, "hi"],
            &["no tokenizer.json", "copy the checkpoint's tokenizer files"],
        ),
    ];
    for (args, wants) in cases {
        let out = run_with_stdin(&args, b"");
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        for want in wants {
            assert!(err.contains(want), "{args:?}: {err}");
            assert_eq!(
                err.matches(want).count(),
                1,
                "{args:?} repeats itself: {err}"
            );
        }
        assert!(!err.contains("os error"), "{args:?}: {err}");
        assert!(!err.contains("unknown model type"), "{args:?}: {err}");
    }
}
