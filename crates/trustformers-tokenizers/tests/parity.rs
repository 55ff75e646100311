//! Tokenizer parity with transformers on the corpus of `tools/gen_tokenizer_fixtures.py`:
//! identical ids (with and without special tokens), decoded text, offsets, pairs, padded and
//! truncated batches with overflow, and rendered chat templates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::PathBuf;
use trustformers_tokenizers::{
    AutoTokenizer, EncodeOptions, Padding, Side, TextInput, Tokenizer, Truncation,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizers")
}

fn real_models() -> bool {
    std::env::var("TRUSTFORMERS_TEST_MODELS").is_ok_and(|v| v == "1")
}

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn with_sides(tok: &Tokenizer, side: Side) -> Tokenizer {
    let mut config = tok.config().clone();
    config.padding_side = side;
    config.truncation_side = side;
    tok.with_config(config).unwrap()
}

fn options(kwargs: &Value) -> EncodeOptions {
    let mut o = EncodeOptions::default();
    if kwargs.get("truncation") == Some(&Value::Bool(true)) {
        o.truncation = Some(Truncation::LongestFirst);
    }
    o.padding = match kwargs.get("padding") {
        Some(Value::Bool(true)) => Padding::Longest,
        Some(Value::String(s)) if s == "max_length" => Padding::MaxLength,
        _ => Padding::None,
    };
    o.max_length = kwargs
        .get("max_length")
        .and_then(Value::as_u64)
        .map(|x| x as usize);
    o.stride = kwargs.get("stride").and_then(Value::as_u64).unwrap_or(0) as usize;
    o.pad_to_multiple_of = kwargs
        .get("pad_to_multiple_of")
        .and_then(Value::as_u64)
        .map(|x| x as usize);
    o
}

fn check(name: &str, tok: &Tokenizer) {
    check_where(name, tok, |_| true);
}

/// Like `check`, on the corpus strings `keep` accepts.
fn check_where(name: &str, tok: &Tokenizer, keep: impl Fn(&str) -> bool) {
    let corpus: Vec<String> = serde_json::from_value(json(fixtures().join("corpus.json"))).unwrap();
    let exp = json(fixtures().join(format!("{name}.expected.json")));
    let defaults = EncodeOptions::default();
    let plain = EncodeOptions {
        add_special_tokens: false,
        ..Default::default()
    };
    let mut failures = Vec::new();
    for (text, case) in corpus.iter().zip(exp["cases"].as_array().unwrap()) {
        if !keep(text) {
            continue;
        }
        let enc = tok.encode(text.as_str(), &defaults).unwrap();
        let mut fail = |what: &str, got: String, want: String| {
            if got != want {
                failures.push(format!("{what} of {text:?}:\n   got {got}\n  want {want}"));
            }
        };
        fail(
            "ids",
            format!("{:?}", enc.input_ids()),
            format!("{:?}", ids(&case["ids"])),
        );
        let p = tok.encode(text.as_str(), &plain).unwrap();
        fail(
            "plain ids",
            format!("{:?}", p.input_ids()),
            format!("{:?}", ids(&case["ids_plain"])),
        );
        let want_ids = ids(&case["ids"]);
        fail(
            "decode",
            format!("{:?}", tok.decode(&want_ids, false).unwrap()),
            format!("{:?}", case["decoded"].as_str().unwrap()),
        );
        fail(
            "decode(skip_special_tokens)",
            format!("{:?}", tok.decode(&want_ids, true).unwrap()),
            format!("{:?}", case["decoded_skip"].as_str().unwrap()),
        );
        if let Some(offsets) = case.get("offsets") {
            let want: Vec<(usize, usize)> = serde_json::from_value(offsets.clone()).unwrap();
            fail(
                "offsets",
                format!("{:?}", enc.offsets()),
                format!("{want:?}"),
            );
            fail(
                "special_tokens_mask",
                format!("{:?}", enc.special_tokens_mask()),
                format!("{:?}", ids(&case["special_tokens_mask"])),
            );
            // transformers' convert_ids_to_tokens(ids).
            let tokens: Vec<String> = serde_json::from_value(case["tokens"].clone()).unwrap();
            let got: Vec<String> = enc
                .input_ids()
                .iter()
                .map(|&id| tok.id_to_token(id).unwrap())
                .collect();
            fail("tokens", format!("{got:?}"), format!("{tokens:?}"));
        }
    }
    for pair in exp["pairs"].as_array().unwrap() {
        let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
        let mut o = EncodeOptions::default();
        if let Some(strategy) = pair.get("truncation").and_then(Value::as_str) {
            o.truncation = Some(match strategy {
                "longest_first" => Truncation::LongestFirst,
                "only_first" => Truncation::OnlyFirst,
                _ => Truncation::OnlySecond,
            });
            o.max_length = pair
                .get("max_length")
                .and_then(Value::as_u64)
                .map(|x| x as usize);
        }
        let got = tok.encode((a, b), &o);
        match (pair.get("error"), got) {
            (Some(_), Err(_)) => {}
            (Some(e), Ok(enc)) => failures.push(format!(
                "pair {a:?}/{b:?} {o:?}: transformers refused ({e}), got {:?}",
                enc.input_ids()
            )),
            (None, Err(e)) => failures.push(format!("pair {a:?}/{b:?}: {e}")),
            (None, Ok(enc)) => {
                if enc.input_ids() != ids(&pair["ids"]) {
                    failures.push(format!(
                        "pair {a:?}/{b:?} {o:?}: got {:?} want {:?}",
                        enc.input_ids(),
                        ids(&pair["ids"])
                    ));
                }
                if let Some(tt) = pair.get("token_type_ids") {
                    if enc.token_type_ids() != ids(tt) {
                        failures.push(format!(
                            "pair {a:?}/{b:?} type ids: got {:?} want {:?}",
                            enc.token_type_ids(),
                            ids(tt)
                        ));
                    }
                }
            }
        }
    }
    let batch = [
        "Hello world",
        "A much longer sentence with many more tokens in it than the first one.",
        "",
        "café 😀",
        "short",
    ];
    let inputs: Vec<TextInput> = batch.iter().map(|s| TextInput::Single(s)).collect();
    for b in exp["batches"].as_array().unwrap() {
        let side = if b["side"] == "left" {
            Side::Left
        } else {
            Side::Right
        };
        let t = with_sides(tok, side);
        let o = options(&b["kwargs"]);
        let overflow = b["kwargs"].get("return_overflowing_tokens").is_some();
        let encs = t.encode_batch(&inputs, &o).unwrap();
        let mut got_ids = Vec::new();
        let mut got_mask = Vec::new();
        for e in encs {
            got_ids.push(e.input_ids().to_vec());
            got_mask.push(e.attention_mask().to_vec());
            if overflow {
                for o in e.overflowing() {
                    got_ids.push(o.input_ids().to_vec());
                    got_mask.push(o.attention_mask().to_vec());
                }
            }
        }
        let want_ids: Vec<Vec<u32>> = b["input_ids"].as_array().unwrap().iter().map(ids).collect();
        let want_mask: Vec<Vec<u32>> = b["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        if got_ids != want_ids || got_mask != want_mask {
            failures.push(format!(
                "batch {} {:?}:\n   got {got_ids:?}\n  want {want_ids:?}",
                b["kwargs"], side
            ));
        }
    }
    for chat in exp["chat"].as_array().unwrap() {
        let messages: Vec<trustformers_tokenizers::chat::Message> =
            serde_json::from_value(chat["messages"].clone()).unwrap();
        let gen = chat["add_generation_prompt"].as_bool().unwrap();
        let got = tok.apply_chat_template(
            &messages,
            &trustformers_tokenizers::chat::ChatOptions {
                add_generation_prompt: gen,
                ..Default::default()
            },
        );
        match (&chat["rendered"], got) {
            (Value::String(want), Ok(got)) if *want == got => {}
            (Value::Object(_), Err(_)) => {}
            (want, got) => failures.push(format!(
                "chat {messages:?} gen={gen}:\n   got {got:?}\n  want {want}"
            )),
        }
    }
    let n = failures.len();
    let shown: Vec<_> = failures.into_iter().take(15).collect();
    assert!(
        n == 0,
        "{name}: {n} mismatches, first ones:\n{}",
        shown.join("\n")
    );
}

#[test]
fn wordpiece_vocab_txt_matches_transformers() {
    check(
        "wordpiece",
        &AutoTokenizer::from_pretrained(fixtures().join("wordpiece")).unwrap(),
    );
}

#[test]
fn gpt2_vocab_json_merges_txt_matches_transformers() {
    check(
        "gpt2",
        &AutoTokenizer::from_pretrained(fixtures().join("gpt2")).unwrap(),
    );
}

#[test]
fn unigram_tokenizer_json_matches_transformers() {
    check(
        "unigram",
        &AutoTokenizer::from_pretrained(fixtures().join("unigram")).unwrap(),
    );
}

#[test]
fn sentencepiece_unigram_model_matches_transformers() {
    check(
        "spm_unigram",
        &AutoTokenizer::from_pretrained(fixtures().join("spm_unigram")).unwrap(),
    );
}

#[test]
fn sentencepiece_bpe_model_matches_transformers() {
    check(
        "spm_bpe",
        &AutoTokenizer::from_pretrained(fixtures().join("spm_bpe")).unwrap(),
    );
}

#[test]
fn gguf_t5_tokenizer_matches_transformers() {
    check(
        "gguf_t5",
        &AutoTokenizer::from_pretrained(fixtures().join("gguf_t5/t5-tokenizer.gguf")).unwrap(),
    );
}

/// llama.cpp's spelling of the wordpiece fixture's vocabulary must give back the tokenizer
/// transformers builds from the vocab.txt. That spelling cannot tell a continuation piece
/// starting with "▁" from a word start (the fixture's vocabulary, trained on this corpus,
/// has "##▁"), so texts containing "▁" are left out.
#[test]
fn gguf_bert_tokenizer_matches_the_vocab_txt_it_came_from() {
    let tok =
        AutoTokenizer::from_pretrained(fixtures().join("gguf_bert/bert-tokenizer.gguf")).unwrap();
    check_where("wordpiece", &tok, |text| !text.contains('▁'));
}

#[test]
fn real_tokenizers_match_transformers() {
    if !real_models() {
        eprintln!("skipped: set TRUSTFORMERS_TEST_MODELS=1 (and run tools/fetch_models.sh)");
        return;
    }
    check(
        "all-minilm-l6-v2",
        &AutoTokenizer::from_pretrained(trustformers_core::cache_dir().join("all-minilm-l6-v2"))
            .unwrap(),
    );
    check(
        "smollm2",
        &AutoTokenizer::from_pretrained(
            trustformers_core::cache_dir()
                .join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
        )
        .unwrap(),
    );
    check(
        "gemma3",
        &AutoTokenizer::from_pretrained(
            trustformers_core::cache_dir().join("gemma-3-270m/gemma-3-270m-q4_k_m.gguf"),
        )
        .unwrap(),
    );
}

/// Overflowing windows of a truncated pair keep the second sequence's type id, as
/// transformers gives them (`tokenizer(q, c, truncation="only_second", max_length=32,
/// stride=8, return_overflowing_tokens=True)` on the QA fixture's tokenizer).
#[test]
fn overflowing_pair_windows_keep_type_ids() {
    use trustformers_tokenizers::{EncodeOptions, TextInput, Truncation};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bert_qa");
    let tok = trustformers_tokenizers::AutoTokenizer::from_pretrained(&dir).unwrap();
    let context = "john was born in berlin . he lives in london and works at google . the river \
        seine flows through paris , the capital of france . paris is a great city and the \
        weather is sunny today .";
    let opts = EncodeOptions {
        truncation: Some(Truncation::OnlySecond),
        max_length: Some(32),
        stride: 8,
        ..Default::default()
    };
    let first = tok
        .encode(TextInput::Pair("who works at google ?", context), &opts)
        .unwrap();
    let windows: Vec<_> = std::iter::once(first.clone())
        .chain(first.overflowing())
        .collect();
    assert_eq!(windows.len(), 2);
    // transformers: 7 question tokens ([CLS] who works at google ? [SEP]) of type 0, the rest 1.
    for (w, len) in windows.iter().zip([32, 31]) {
        let want: Vec<u32> = (0..len).map(|i| u32::from(i >= 7)).collect();
        assert_eq!(w.token_type_ids(), want.as_slice());
    }
}

/// transformers' ids for every string of `{name}.expected.json`'s corpus, and the decoded
/// text of those ids.
fn check_ids_and_text(name: &str) {
    let tok = AutoTokenizer::from_pretrained(fixtures().join(name)).unwrap();
    let exp = json(fixtures().join(format!("{name}.expected.json")));
    let corpus = exp["corpus"].as_array().unwrap();
    let mut wrong = Vec::new();
    for (i, text) in corpus.iter().enumerate() {
        let text = text.as_str().unwrap();
        let got = tok.encode_ids(text, true).unwrap();
        if got != ids(&exp["ids"][i]) {
            wrong.push(format!("{text:?}: {got:?} != {}", exp["ids"][i]));
            continue;
        }
        let decoded = tok.decode(&got, true).unwrap();
        if decoded != exp["decoded"][i].as_str().unwrap() {
            wrong.push(format!(
                "{text:?}: decoded {decoded:?} != {}",
                exp["decoded"][i]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} of {}:\n{}",
        wrong.len(),
        corpus.len(),
        wrong.join("\n")
    );
}

/// `MarianTokenizer` (`source.spm`, `target.spm`, `vocab.json` with its own ids, a `>>de<<`
/// language code).
#[test]
fn marian_tokenizer_matches_transformers() {
    check_ids_and_text("marian");
}

/// `MBartTokenizer` as transformers saves it (fairseq's id offset, language codes, `x </s>
/// en_XX`).
#[test]
fn mbart_tokenizer_matches_transformers() {
    check_ids_and_text("mbart");
}

/// A Marian checkpoint without its source SentencePiece model names the missing file.
#[test]
fn marian_without_source_spm_names_it() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["vocab.json", "tokenizer_config.json", "target.spm"] {
        std::fs::copy(fixtures().join("marian").join(f), dir.path().join(f)).unwrap();
    }
    let err = match AutoTokenizer::from_pretrained(dir.path()) {
        Ok(_) => panic!("loaded without source.spm"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("source.spm"), "{err}");
}

/// mBART with another source language (transformers' `src_lang="de_DE"`): `x </s> de_DE`;
/// a code outside the vocabulary is an error naming it, a tokenizer without source
/// languages answers `None`.
#[test]
fn mbart_source_language_matches_transformers() {
    let tok = AutoTokenizer::from_pretrained(fixtures().join("mbart")).unwrap();
    let exp = json(fixtures().join("mbart.expected.json"));
    let german = tok.with_source_language("de_DE").unwrap().unwrap();
    let want = exp["ids_de_DE"].as_array().unwrap();
    for (i, w) in want.iter().enumerate() {
        let text = exp["corpus"][i].as_str().unwrap();
        assert_eq!(german.encode_ids(text, true).unwrap(), ids(w), "{text:?}");
    }
    let err = match tok.with_source_language("xx_XX") {
        Ok(_) => panic!("an unknown language code was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("xx_XX"), "{err}");
    let marian = AutoTokenizer::from_pretrained(fixtures().join("marian")).unwrap();
    assert!(marian.with_source_language("de").unwrap().is_none());
}

/// A Marian `vocab.json` that is not a dense map of pieces to ids is an error naming the
/// file, never a panic.
#[test]
fn marian_bad_vocab_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["source.spm", "target.spm", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("marian").join(f), dir.path().join(f)).unwrap();
    }
    for vocab in [
        "[]",
        "not json",
        r#"{"<unk>": 0, "a": 5}"#,
        r#"{"<unk>": 0, "a": 0}"#,
        r#"{"<unk>": 0, "a": -1}"#,
        r#"{"<unk>": 0, "a": 18446744073709551615}"#,
        r#"{"a": 0, "</s>": 1}"#,
        "{}",
    ] {
        std::fs::write(dir.path().join("vocab.json"), vocab).unwrap();
        match AutoTokenizer::from_pretrained(dir.path()) {
            Ok(_) => panic!("{vocab}: accepted"),
            Err(e) => assert!(
                e.to_string().contains("vocab.json") || e.to_string().contains("unknown"),
                "{vocab}: {e}"
            ),
        }
    }
}
