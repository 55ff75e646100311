//! The compact BPE that GGUF vocabularies get against `tokenizers`' BPE over the generated
//! merge list (the model it replaces), for every GGUF tokenizer the project reads: the same
//! model when saved (vocabulary and every merge in order), and the same ids, tokens, offsets
//! and decoded text on the tokenizer corpus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use trustformers_core::gguf::{GgufFile, GgufValue};
use trustformers_tokenizers::formats::gguf::{from_gguf_with, BpeModel};
use trustformers_tokenizers::models::TokenizerModel;
use trustformers_tokenizers::{EncodeOptions, Tokenizer};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn corpus() -> Vec<String> {
    let path = fixtures().join("tokenizers/corpus.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn build(file: &GgufFile, bpe: BpeModel) -> Tokenizer {
    let (inner, config) = from_gguf_with(file, bpe).unwrap();
    Tokenizer::new(inner, config).unwrap()
}

/// Whether the file's tokenizer is a BPE (the only kind the compact model replaces).
fn is_bpe(file: &GgufFile) -> bool {
    matches!(
        file.get("tokenizer.ggml.model").and_then(GgufValue::as_str),
        Some("gpt2" | "llama")
    )
}

/// Compares the two models on `path`.
fn compare(path: &Path, texts: &[String]) {
    compare_file(
        &path.display().to_string(),
        &GgufFile::open(path).unwrap(),
        texts,
    );
}

/// Compares the two models of `file`: saved as tokenizer.json, and on `texts`.
fn compare_file(name: &str, file: &GgufFile, texts: &[String]) {
    assert!(is_bpe(file), "{name} has no BPE tokenizer");
    let compact = build(file, BpeModel::Compact);
    let reference = build(file, BpeModel::Tokenizers);
    assert!(matches!(compact.model(), TokenizerModel::Compact(_)));
    assert!(matches!(reference.model(), TokenizerModel::Hf(_)));
    assert_eq!(compact.len(), reference.len(), "{name}: vocabulary size");
    for id in 0..compact.len() as u32 + 2 {
        let token = reference.id_to_token(id);
        assert_eq!(compact.id_to_token(id), token, "{name}: id {id}");
        if let Some(t) = token {
            assert_eq!(
                compact.token_to_id(&t),
                reference.token_to_id(&t),
                "{name}: `{t}`"
            );
        }
    }
    let json = |t: &Tokenizer| t.to_hf().unwrap().to_string(false).unwrap();
    assert!(
        json(&compact) == json(&reference),
        "{name}: saved models differ"
    );
    for plain in [false, true] {
        let opts = EncodeOptions {
            add_special_tokens: !plain,
            ..Default::default()
        };
        for text in texts {
            let a = compact.encode(text.as_str(), &opts).unwrap();
            let b = reference.encode(text.as_str(), &opts).unwrap();
            assert_eq!(a.input_ids(), b.input_ids(), "{name}: ids of {text:?}");
            assert_eq!(a.tokens(), b.tokens(), "{name}: tokens of {text:?}");
            assert_eq!(a.offsets(), b.offsets(), "{name}: offsets of {text:?}");
            assert_eq!(
                compact.decode(a.input_ids(), plain).unwrap(),
                reference.decode(b.input_ids(), plain).unwrap(),
                "{name}: decoding {text:?}"
            );
        }
    }
}

/// Every GGUF file under `tests/fixtures` with a BPE tokenizer (llama.cpp's conversions of
/// the tiny decoders: byte-level vocabularies with merge lists, SentencePiece ones with
/// scores, Gemma's file-ordered one).
fn bpe_fixtures() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![fixtures()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "gguf")
                && is_bpe(&GgufFile::open(&path).unwrap())
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn compact_bpe_equals_tokenizers_on_every_gguf_fixture() {
    let fixtures = bpe_fixtures();
    assert!(!fixtures.is_empty(), "no GGUF fixture with a BPE tokenizer");
    let texts = corpus();
    for path in &fixtures {
        compare(path, &texts);
    }
}

/// Vocabularies built to hit the rules' corners: repeated tokens (a string's last id wins,
/// its first position breaks score ties), tied scores, unknown characters with and without
/// byte fallback, merges across byte-fallback tokens.
#[test]
fn compact_bpe_equals_tokenizers_on_corner_vocabularies() {
    let texts: Vec<String> = [
        "ab abc abcd",
        "aaaa bbbb",
        "cab bac",
        "a\u{e9}b \u{4e16}ab",
        "<0x41>b",
        "",
        "  a  b ",
        "\u{1f600}abc\u{1f600}\u{1f600}",
        "ba ab ba ab",
        "abcabcabc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (model, arch, tokens, scores) in [
        (
            "llama",
            "llama",
            vec![
                "<unk>", "<s>", "</s>", "<0x41>", "<0xC3>", "<0xA9>", "▁", "a", "b", "c", "ab",
                "bc", "abc", "▁a", "▁ab", "ab", "ca", "<0x41>b", "aa", "aaa", "cab", "bca",
            ],
            Some(vec![
                0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -3.0, -4.0, -4.0, -5.0, -4.0, -6.0,
                -7.0, -4.0, -1.0, -4.0, -4.0, -0.0, -5.0,
            ]),
        ),
        (
            "llama",
            "gemma3",
            vec![
                "<pad>", "<eos>", "<bos>", "<unk>", "▁", "a", "b", "c", "  ", "ab", "bc", "▁▁",
                "abc", "ca", "ab", "cab", "<0xF0>",
            ],
            Some(vec![0.0; 17]),
        ),
        (
            "gpt2",
            "gpt2",
            vec![
                "a", "b", "c", "Ġ", "ab", "bc", "Ġa", "Ġab", "abc", "ca", "ab", "cab", "Ġc",
            ],
            None,
        ),
    ] {
        let mut kv = vec![
            ("tokenizer.ggml.model", GgufValue::String(model.into())),
            ("general.architecture", GgufValue::String(arch.into())),
            (
                "tokenizer.ggml.tokens",
                GgufValue::Array(
                    tokens
                        .iter()
                        .map(|t| GgufValue::String(t.to_string()))
                        .collect(),
                ),
            ),
        ];
        if let Some(s) = scores {
            kv.push((
                "tokenizer.ggml.scores",
                GgufValue::Array(s.into_iter().map(GgufValue::F32).collect()),
            ));
        }
        if arch == "gemma3" {
            kv.push(("tokenizer.ggml.unknown_token_id", GgufValue::U32(3)));
        }
        let kv: Vec<(String, GgufValue)> = kv.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let file = GgufFile::from_bytes(arch, trustformers_core::gguf::write(&kv, &[])).unwrap();
        compare_file(arch, &file, &texts);
    }
}

/// The real models' tokenizers (`TRUSTFORMERS_TEST_MODELS=1`): SmolLM2's byte-level
/// vocabulary with 49k merges and Gemma 3's 262k-token SentencePiece one.
#[test]
fn compact_bpe_equals_tokenizers_on_real_models() {
    if std::env::var("TRUSTFORMERS_TEST_MODELS").is_ok_and(|v| v == "1") {
        let cache = trustformers_core::cache_dir();
        let texts = corpus();
        for file in [
            "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
            "gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
        ] {
            compare(&cache.join(file), &texts);
        }
    } else {
        eprintln!("skipped: set TRUSTFORMERS_TEST_MODELS=1 (and run tools/fetch_models.sh)");
    }
}
