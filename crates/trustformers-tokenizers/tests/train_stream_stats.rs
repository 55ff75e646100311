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
            let a = tok.encode(text.as_str(), &opts).unwrap().input_ids;
            assert_eq!(
                a,
                again.encode(text.as_str(), &opts).unwrap().input_ids,
                "{kind}: {text:?}"
            );
        }
        // Byte-level and character tokenizers reproduce any text exactly.
        if matches!(kind, "byte-level-bpe" | "char") {
            for text in texts.iter().filter(|t| t.is_ascii()).take(100) {
                let ids = tok
                    .encode(text.as_str(), &EncodeOptions::default())
                    .unwrap()
                    .input_ids;
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
                .input_ids;
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
        .input_ids;
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
