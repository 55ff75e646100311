//! Training every tokenizer kind, streaming decode, corpus statistics, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use trustformers_core::Error;
use trustformers_tokenizers::chat::{ChatOptions, Message};
use trustformers_tokenizers::stats::corpus_stats;
use trustformers_tokenizers::train::{self, TokenizerKind, TrainOptions};
use trustformers_tokenizers::{AutoTokenizer, DecodeStream, EncodeOptions, Tokenizer};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizers")
}

fn corpus() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("corpus.json")).unwrap()).unwrap()
}

#[test]
fn every_kind_trains_saves_and_reloads() {
    let texts = corpus();
    for kind in ["bpe", "byte-level-bpe", "wordpiece", "unigram", "char"] {
        let mut opts = TrainOptions::new(kind.parse().unwrap());
        opts.vocab_size = 300;
        opts.min_frequency = 1;
        let tok = train::train_from_iter(texts.iter(), &opts).unwrap();
        // WordPiece always keeps its whole alphabet (with and without `##`), as in Python.
        if kind != "wordpiece" {
            assert!(tok.len() <= 300, "{kind}: {} tokens", tok.len());
        }
        for s in &opts.special_tokens {
            assert!(
                tok.token_to_id(s).is_some(),
                "{kind}: special token {s} missing"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        train::save(&tok, dir.path()).unwrap();
        let again = AutoTokenizer::from_pretrained(dir.path()).unwrap();
        let opts = EncodeOptions::default();
        for text in texts.iter().take(200) {
            let a = tok
                .encode(text.as_str(), &opts)
                .unwrap()
                .input_ids()
                .to_vec();
            assert_eq!(
                a,
                again.encode(text.as_str(), &opts).unwrap().input_ids(),
                "{kind}: {text:?}"
            );
        }
        // Byte-level and character tokenizers reproduce any text exactly.
        if matches!(kind, "byte-level-bpe" | "char") {
            for text in texts.iter().filter(|t| t.is_ascii()).take(100) {
                let ids = tok
                    .encode(text.as_str(), &EncodeOptions::default())
                    .unwrap()
                    .input_ids()
                    .to_vec();
                assert_eq!(tok.decode(&ids, true).unwrap(), *text, "{kind}");
            }
        }
    }
}

#[test]
fn training_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"fine line\nbroken \xff\xfe line\n").unwrap();
    let opts = TrainOptions::new(TokenizerKind::Bpe);
    match train::train_from_files(&[bad], &opts) {
        Err(Error::InvalidInput(msg)) => assert!(msg.contains("bad.txt line 2"), "{msg}"),
        other => panic!(
            "expected an error naming the line, got {:?}",
            other.map(|t| t.len())
        ),
    }
    let missing = dir.path().join("missing.txt");
    assert!(matches!(
        train::train_from_files(&[missing], &opts),
        Err(Error::Io { .. })
    ));
    let mut zero = TrainOptions::new(TokenizerKind::Bpe);
    zero.vocab_size = 0;
    assert!(train::train_from_iter(["a"].iter(), &zero).is_err());
}

fn stream_all(tok: &Tokenizer, ids: &[u32]) -> (String, Vec<String>) {
    let mut s = DecodeStream::new(tok, false);
    let mut pieces = Vec::new();
    for &id in ids {
        pieces.extend(s.step(id).unwrap());
    }
    pieces.extend(s.finish().unwrap());
    (pieces.concat(), pieces)
}

#[test]
fn streaming_decode_adds_up_and_never_splits_a_character() {
    let texts = corpus();
    for name in ["gpt2", "unigram", "wordpiece"] {
        let tok = AutoTokenizer::from_pretrained(fixtures().join(name)).unwrap();
        for text in &texts {
            let ids = tok
                .encode(text.as_str(), &EncodeOptions::default())
                .unwrap()
                .input_ids()
                .to_vec();
            let (streamed, pieces) = stream_all(&tok, &ids);
            assert_eq!(
                streamed,
                tok.decode(&ids, false).unwrap(),
                "{name}: {text:?}"
            );
            if !tok.decode(&ids, false).unwrap().contains('\u{FFFD}') {
                assert!(
                    pieces.iter().all(|p| !p.contains('\u{FFFD}')),
                    "{name}: {pieces:?}"
                );
            }
        }
    }
    // Byte-level BPE splits multi-byte characters across tokens: "😀" is 4 byte tokens.
    let tok = AutoTokenizer::from_pretrained(fixtures().join("gpt2")).unwrap();
    let ids = tok
        .encode("😀", &EncodeOptions::default())
        .unwrap()
        .input_ids()
        .to_vec();
    assert!(ids.len() > 1);
    let mut s = DecodeStream::new(&tok, false);
    let out: Vec<Option<String>> = ids.iter().map(|&id| s.step(id).unwrap()).collect();
    assert!(out[..ids.len() - 1].iter().all(Option::is_none), "{out:?}");
    assert_eq!(out.last().unwrap().as_deref(), Some("😀"));
}

#[test]
fn corpus_stats_count_what_they_say() {
    let tok = AutoTokenizer::from_pretrained(fixtures().join("wordpiece")).unwrap();
    let text = "hello world\n\nhello again 漢字\n";
    let stats = corpus_stats(&tok, text, 2).unwrap();
    assert_eq!((stats.lines, stats.words, stats.chars), (2, 5, 25));
    let expected_tokens: usize = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| tok.encode_ids(l, false).unwrap().len())
        .sum();
    assert_eq!(stats.tokens, expected_tokens);
    assert_eq!(stats.most_split_words.len(), 2);
    assert!(stats.most_split_words[0].1 >= stats.most_split_words[1].1);
    assert!(stats.vocab_used() > 0.0 && stats.vocab_used() <= 1.0);
}

#[test]
fn chat_templates_render_and_refuse_hostile_ones() {
    let tok = AutoTokenizer::from_pretrained(fixtures().join("unigram")).unwrap();
    let msgs = [
        Message::new("system", "Be brief."),
        Message::new("user", " Hi "),
    ];
    let out = tok
        .apply_chat_template(
            &msgs,
            &ChatOptions {
                add_generation_prompt: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out, "<s>[SYSTEM] Be brief.\n[USER] Hi\n[ASSISTANT]");
    let no_template = AutoTokenizer::from_pretrained(fixtures().join("gpt2")).unwrap();
    assert!(matches!(
        no_template.apply_chat_template(&msgs, &ChatOptions::default()),
        Err(Error::ChatTemplate(_))
    ));
}

#[test]
fn malformed_tokenizer_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixtures().join("unigram/tokenizer.json")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", good.as_bytes()[..good.len() / 2].to_vec()),
        ("not json", b"hello".to_vec()),
        ("not utf-8", b"{\"version\": \"1.0\xff\"}".to_vec()),
        (
            "wrong model type",
            good.replace("\"Unigram\"", "\"Quantum\"").into_bytes(),
        ),
        ("array", b"[1, 2, 3]".to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(dir.path().join("tokenizer.json"), &bytes).unwrap();
        assert!(
            AutoTokenizer::from_pretrained(dir.path()).is_err(),
            "{what} loaded"
        );
    }
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let model = std::fs::read(fixtures().join("spm_bpe/tokenizer.model")).unwrap();
    for cut in [1, 7, model.len() / 2, model.len() - 1] {
        std::fs::write(dir.path().join("tokenizer.model"), &model[..cut]).unwrap();
        assert!(
            matches!(
                AutoTokenizer::from_pretrained(dir.path()),
                Err(Error::Tokenizer(_))
            ),
            "cut at {cut}"
        );
    }
    std::fs::remove_file(dir.path().join("tokenizer.model")).unwrap();
    std::fs::write(dir.path().join("vocab.txt"), b"[UNK]\n\xff\xfe\n").unwrap();
    assert!(matches!(
        AutoTokenizer::from_pretrained(dir.path()),
        Err(Error::Json { .. })
    ));
    std::fs::remove_file(dir.path().join("vocab.txt")).unwrap();
    std::fs::write(dir.path().join("vocab.json"), b"{\"a\": -1}").unwrap();
    std::fs::write(dir.path().join("merges.txt"), b"#version: 0.2\n").unwrap();
    assert!(matches!(
        AutoTokenizer::from_pretrained(dir.path()),
        Err(Error::Json { .. })
    ));
    std::fs::write(dir.path().join("vocab.json"), b"{\"a\": 0, \"b\": 1}").unwrap();
    std::fs::write(dir.path().join("merges.txt"), b"#version: 0.2\nab\n").unwrap();
    assert!(matches!(
        AutoTokenizer::from_pretrained(dir.path()),
        Err(Error::Tokenizer(_))
    ));
}

/// A GGUF file with only metadata: (key, value) where value is a string, a u32, or an array
/// of strings / f32 / i32.
enum Meta<'a> {
    Str(&'a str),
    U32(u32),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn gguf_metadata(kv: &[(&str, Meta)]) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend((kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        s(&mut out, k);
        match v {
            Meta::Str(x) => {
                out.extend(8u32.to_le_bytes());
                s(&mut out, x);
            }
            Meta::U32(x) => {
                out.extend(4u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
            Meta::Strs(xs) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|x| s(&mut out, x));
            }
            Meta::F32s(xs) => {
                out.extend(9u32.to_le_bytes());
                out.extend(6u32.to_le_bytes());
                out.extend((xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|x| out.extend(x.to_le_bytes()));
            }
            Meta::I32s(xs) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|x| out.extend(x.to_le_bytes()));
            }
        }
    }
    out
}

#[test]
fn gguf_tokenizer_metadata_is_checked() {
    let tokens: Vec<String> = ["<unk>", "<s>", "</s>", "▁", "a", "▁a"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    let load = |kv: &[(&str, Meta)]| {
        std::fs::write(&path, gguf_metadata(kv)).unwrap();
        AutoTokenizer::from_pretrained(&path)
    };
    let good = load(&[
        ("tokenizer.ggml.model", Meta::Str("llama")),
        ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
        (
            "tokenizer.ggml.scores",
            Meta::F32s(vec![0.0, 0.0, 0.0, -1.0, -2.0, -3.0]),
        ),
        (
            "tokenizer.ggml.token_type",
            Meta::I32s(vec![2, 3, 3, 1, 1, 1]),
        ),
        ("tokenizer.ggml.bos_token_id", Meta::U32(1)),
    ])
    .unwrap();
    assert_eq!(good.encode_ids("a a", true).unwrap(), [1, 5, 5]);
    assert_eq!(good.decode(&[1, 5, 5], true).unwrap(), "a a");
    let bad: Vec<(&str, Vec<(&str, Meta)>)> = vec![
        (
            "no model",
            vec![("tokenizer.ggml.tokens", Meta::Strs(tokens.clone()))],
        ),
        (
            "unknown model",
            vec![
                ("tokenizer.ggml.model", Meta::Str("quantum")),
                ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
            ],
        ),
        (
            "no tokens",
            vec![("tokenizer.ggml.model", Meta::Str("llama"))],
        ),
        (
            "tokens not strings",
            vec![
                ("tokenizer.ggml.model", Meta::Str("llama")),
                ("tokenizer.ggml.tokens", Meta::I32s(vec![1, 2])),
            ],
        ),
        (
            "score count",
            vec![
                ("tokenizer.ggml.model", Meta::Str("llama")),
                ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
                ("tokenizer.ggml.scores", Meta::F32s(vec![0.0; 5])),
            ],
        ),
        (
            "type count",
            vec![
                ("tokenizer.ggml.model", Meta::Str("gpt2")),
                ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
                ("tokenizer.ggml.token_type", Meta::I32s(vec![1; 7])),
            ],
        ),
        (
            "bos beyond vocab",
            vec![
                ("tokenizer.ggml.model", Meta::Str("gpt2")),
                ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
                ("tokenizer.ggml.bos_token_id", Meta::U32(1000)),
            ],
        ),
        (
            "bad merge",
            vec![
                ("tokenizer.ggml.model", Meta::Str("gpt2")),
                ("tokenizer.ggml.tokens", Meta::Strs(tokens.clone())),
                ("tokenizer.ggml.merges", Meta::Strs(vec!["nospace".into()])),
            ],
        ),
    ];
    for (what, kv) in bad {
        match load(&kv) {
            Err(Error::Config { .. }) => {}
            Err(e) => panic!("{what}: unexpected error {e}"),
            Ok(_) => panic!("{what}: loaded"),
        }
    }
}

#[test]
fn the_tiny_llama_gguf_fixture_is_self_sufficient() {
    let path = fixtures().join("../llama_gguf/tiny-llama.gguf");
    let tok = AutoTokenizer::from_pretrained(path).unwrap();
    assert_eq!(tok.len(), 128);
    assert_eq!(tok.bos_token_id(), Some(1));
    assert_eq!(tok.encode_ids("t5", true).unwrap()[0], 1);
}
