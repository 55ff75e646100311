//! The image pipelines, `embed --image` and their errors from the command line, on the tiny
//! vision fixtures (transformers' answers in `tests/fixtures/vision_pipelines.json`).
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

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("vision_pipelines.json")).unwrap())
        .unwrap()
}

fn image(name: &str) -> String {
    fixture("images").join(name).to_str().unwrap().to_string()
}

fn close(got: &Value, want: &Value) {
    match (got, want) {
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len());
            g.iter().zip(w).for_each(|(g, w)| close(g, w));
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(g.len(), w.len());
            for (k, w) in w {
                close(&g[k], w);
            }
        }
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() <= 1e-4, "{g} vs {w}");
        }
        (g, w) => assert_eq!(g, w),
    }
}

#[test]
fn image_classification_prints_transformers_json() {
    let r = reference();
    let model = fixture("vit_classifier");
    let out = run(&[
        "pipeline",
        "image-classification",
        "--model",
        model.to_str().unwrap(),
        &image("rgb_37x53.png"),
        &image("rgba_90x120.png"),
    ]);
    let want = Value::Array(r["vit_classifier"]["default"].as_array().unwrap()[..2].to_vec());
    close(&json(&out), &want);
    let out = run(&[
        "pipeline",
        "image-classification",
        "--model",
        model.to_str().unwrap(),
        "--top-k",
        "2",
        &image("rgb_37x53.png"),
    ]);
    close(&json(&out), &r["vit_classifier"]["top_k_2"][0]);
}

#[test]
fn zero_shot_image_classification_prints_transformers_json() {
    let r = reference();
    for name in ["clip", "siglip"] {
        let model = fixture(name);
        let out = run(&[
            "pipeline",
            "zero-shot-image-classification",
            "--model",
            model.to_str().unwrap(),
            "--candidate-labels",
            "dog,cat",
            "--hypothesis-template",
            "a picture of the {}",
            &image("rgba_90x120.png"),
        ]);
        close(&json(&out), &r[name]["template"][1]);
    }
}

#[test]
fn embed_images_and_texts_with_an_image_text_model() {
    let r = reference();
    for name in ["clip", "siglip"] {
        let model = fixture(name);
        let out = run(&[
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--json",
            "--image",
            &image("rgb_37x53.png"),
        ]);
        close(&json(&out)["embeddings"], &r[name]["image_features"]);
        let out = run(&[
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--json",
            "a photo of a cat",
            "this is a dog .",
        ]);
        close(&json(&out)["embeddings"], &r[name]["text_features"]);
        let out = run(&[
            "embed",
            "--model",
            model.to_str().unwrap(),
            "--json",
            "--normalize",
            "--image",
            &image("rgb_37x53.png"),
        ]);
        let e = json(&out)["embeddings"][0].clone();
        let norm: f64 = e
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap().powi(2))
            .sum();
        assert!((norm - 1.0).abs() < 1e-5, "{name}: {norm}");
    }
}

/// `embed` with a text tower alone (`CLIPTextModelWithProjection`) gives the text features
/// of the whole CLIP model it came from.
#[test]
fn embed_texts_with_a_text_tower_alone() {
    let r = reference();
    let model = fixture("clip_text");
    let out = run(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "a photo of a cat",
        "this is a dog .",
    ]);
    close(&json(&out)["embeddings"], &r["clip"]["text_features"]);
    let out = run(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--image",
        &image("rgb_37x53.png"),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_images_and_models_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let model = fixture("vit_classifier");
    let out = run(&[
        "pipeline",
        "image-classification",
        "--model",
        model.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.png"), "{err}");
    // A text encoder is not an image-text model.
    let out = run(&[
        "embed",
        "--model",
        fixture("bert_base").to_str().unwrap(),
        "--image",
        &image("rgb_37x53.png"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("image-text model"));
    // An image classifier has no zero-shot head.
    let out = run(&[
        "pipeline",
        "zero-shot-image-classification",
        "--model",
        model.to_str().unwrap(),
        "--candidate-labels",
        "a,b",
        &image("rgb_37x53.png"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("image-text"));
}

/// `chat --image` with the LLaVA fixture: one message per stdin line, the reply on its own
/// line, equal to transformers' greedy reply (its image-text-to-text pipeline's text).
#[test]
fn chat_with_an_image() {
    use std::io::Write;
    let model = fixture("llava");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustformers"))
        .args(["chat", "--model", model.to_str().unwrap(), "--image"])
        .arg(image("rgb_37x53.png"))
        .args(["--max-new-tokens", "10"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"what is this ?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("llava").join("pipeline.json")).unwrap(),
    )
    .unwrap();
    let reply = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        reply.trim_end(),
        want["result"][0]["generated_text"]
            .as_str()
            .unwrap()
            .trim_start()
    );
    // The pipeline prints transformers' JSON.
    let out = run(&[
        "pipeline",
        "image-text-to-text",
        "--model",
        model.to_str().unwrap(),
        "--image",
        &image("rgb_37x53.png"),
        "--max-new-tokens",
        "10",
        "what is this ?",
    ]);
    let got = json(&out);
    let expected = &want["result"][0];
    assert_eq!(got[0]["generated_text"], expected["generated_text"]);
    // The chat echoed, the image by the path given (transformers': the URL given).
    assert_eq!(
        got[0]["input_text"][0]["content"][1],
        expected["input_text"][0]["content"][1]
    );
    assert_eq!(
        got[0]["input_text"][0]["content"][0]["url"],
        image("rgb_37x53.png").as_str()
    );
    // A text-only model refuses --image, naming what it is.
    let out = run(&[
        "chat",
        "--model",
        fixture("llama").to_str().unwrap(),
        "--image",
        &image("rgb_37x53.png"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vision-language"), "{err}");
}
