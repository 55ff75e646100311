//! `trustformers pipeline` and `trustformers embed` on the tiny BERT fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trustformers"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn fill_mask_prints_transformers_json() {
    let model = fixture("bert_mlm");
    let out = run(&[
        "pipeline",
        "fill-mask",
        "--model",
        model.to_str().unwrap(),
        "--targets",
        "weather,city,paris",
        "the [MASK] is sunny",
    ]);
    let got = json(&out);
    // transformers' answer (tests/fixtures/pipelines.json): city, weather, paris.
    let tokens: Vec<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["token_str"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["city", "weather", "paris"]);
    assert_eq!(got[0]["sequence"], "the city is sunny");
    // No mask: a clear error, exit status 1.
    let bad = run(&[
        "pipeline",
        "fill-mask",
        "--model",
        model.to_str().unwrap(),
        "no mask",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("mask"));
}

#[test]
fn embed_prints_json_and_writes_npy() {
    let model = fixture("bert_base");
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("e.npy");
    let out = run(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--npy",
        npy.to_str().unwrap(),
        "john lives in london",
        "the weather is sunny",
    ]);
    let got = json(&out);
    let rows = got["embeddings"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 32));
    let bytes = std::fs::read(&npy).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'shape': (2, 32)"), "{header}");
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(bytes.len(), 10 + header_len + 2 * 32 * 4);
    let first = f32::from_le_bytes(bytes[10 + header_len..14 + header_len].try_into().unwrap());
    assert_eq!(f64::from(first), rows[0][0].as_f64().unwrap() as f32 as f64);
}

/// The text-to-text tasks on the tiny T5 (with its task prefixes) and BART fixtures print
/// what the generator's reference gave (`pipelines.json`), under transformers' keys; and
/// `generate` runs an encoder-decoder.
#[test]
fn text2text_tasks_print_transformers_json() {
    for name in ["t5", "bart"] {
        let model = fixture(name);
        let cases: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(model.join("pipelines.json")).unwrap())
                .unwrap();
        for case in cases {
            let task = case["task"].as_str().unwrap();
            let mut args = vec![
                "pipeline",
                task,
                "--model",
                model.to_str().unwrap(),
                "--max-new-tokens",
                "8",
            ];
            let inputs: Vec<&str> = case["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            args.extend(&inputs);
            let got = json(&run(&args));
            let want = &case["output"];
            let want = if inputs.len() == 1 { &want[0] } else { want };
            assert_eq!(&got, want, "{name} {task}");
        }
    }
    let out = run(&[
        "generate",
        "--model",
        fixture("bart").to_str().unwrap(),
        "--max-new-tokens",
        "8",
        "--json",
        "water and light",
    ]);
    let v = json(&out);
    assert_eq!(v["sequences"][0]["text"], "as as as as as as as");
}
