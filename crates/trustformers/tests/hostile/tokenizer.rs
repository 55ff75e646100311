//! tokenizer.json mutants of three valid pipelines: byte-level BPE (GPT-2), WordPiece (BERT)
//! and Unigram. Each case loads the directory and encodes and decodes a few lines.

use super::{fixture, Case, Expect};
use crate::expect;
use serde_json::{json, Value};
use std::path::Path;
use trustformers::tokenizers::EncodeOptions;
use trustformers::{AutoTokenizer, Error, Result};

const TEXTS: [&str; 4] = [
    "Hello world, this is a test.",
    "naïve café — 東京 🤗",
    "",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
];

fn load(dir: &Path) -> Result<()> {
    let tok = AutoTokenizer::from_pretrained(dir)?;
    for text in TEXTS {
        let enc = tok.encode(text, &EncodeOptions::default())?;
        tok.decode(enc.input_ids(), false)?;
    }
    Ok(())
}

fn base_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tokenizers")
        .join(name)
}

/// The tokenizer.json of a fixture tokenizer, as JSON.
fn tokenizer_json(kind: &str) -> Value {
    match kind {
        "unigram" => serde_json::from_slice(&fixture("tokenizers/unigram/tokenizer.json")).unwrap(),
        other => {
            let tok = AutoTokenizer::from_pretrained(base_dir(other)).unwrap();
            serde_json::from_str(&tok.to_hf().unwrap().to_string(false).unwrap()).unwrap()
        }
    }
}

fn case_bytes(name: &str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case::dir(
        "tokenizer.json",
        name,
        vec![("tokenizer.json", bytes)],
        load,
        expect,
    )
}

fn case(kind: &str, name: &str, edit: impl FnOnce(&mut Value), expect: Expect) -> Case {
    let mut json = tokenizer_json(kind);
    edit(&mut json);
    case_bytes(
        &format!("{kind}: {name}"),
        serde_json::to_vec(&json).unwrap(),
        expect,
    )
}

fn config_case(name: &str, config: Value, expect: Expect) -> Case {
    Case::dir(
        "tokenizer.json",
        name,
        vec![
            (
                "tokenizer.json",
                serde_json::to_vec(&tokenizer_json("unigram")).unwrap(),
            ),
            (
                "tokenizer_config.json",
                serde_json::to_vec(&config).unwrap(),
            ),
        ],
        load,
        expect,
    )
}

pub fn base_loads() {
    for kind in ["gpt2", "wordpiece", "unigram"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tokenizer.json"),
            serde_json::to_vec(&tokenizer_json(kind)).unwrap(),
        )
        .unwrap();
        load(dir.path()).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

pub fn cases() -> Vec<Case> {
    let tokenizer = expect!(Error::Tokenizer(_));
    vec![
        case_bytes("empty file", vec![], expect!(Error::Tokenizer(_))),
        case_bytes(
            "not JSON",
            b"{\"model\": ".to_vec(),
            expect!(Error::Tokenizer(_)),
        ),
        case_bytes(
            "not UTF-8",
            b"{\"model\": \"\xff\xfe\"}".to_vec(),
            expect!(Error::Tokenizer(_)),
        ),
        // Found by the tokenizer_json fuzzer: `tokenizers` panicked on a syntax error inside
        // the decoder object.
        case_bytes(
            "decoder cut off mid-object",
            {
                let text = String::from_utf8(fixture("tokenizers/unigram/tokenizer.json")).unwrap();
                let at = text.find("\"decoder\"").unwrap();
                let mut b = text.as_bytes()[..at + 40].to_vec();
                b.extend(b"\x01\x00{\"x\": ]");
                b
            },
            expect!(Error::Tokenizer(_)),
        ),
        case_bytes(
            "a JSON array",
            b"[1, 2, 3]".to_vec(),
            expect!(Error::Tokenizer(_)),
        ),
        case_bytes(
            "nested 100,000 deep",
            [b'['; 100_000].to_vec(),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "unigram",
            "no model",
            |j| {
                j.as_object_mut().unwrap().remove("model");
            },
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "unigram",
            "unknown model type",
            |j| j["model"]["type"] = json!("Bogus"),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "unigram",
            "empty vocabulary",
            |j| j["model"]["vocab"] = json!([]),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "unigram",
            "unk_id beyond the vocabulary",
            |j| j["model"]["unk_id"] = json!(1_000_000),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "unigram",
            "score of 1e309",
            |j| j["model"]["vocab"][5][1] = json!("1e309"),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "unigram",
            "vocabulary entry not a pair",
            |j| j["model"]["vocab"][5] = json!(["x"]),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "merge of tokens beyond the vocabulary",
            |j| j["model"]["merges"] = json!([["zz", "qq"]]),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            // `tokenizers` 0.23 panicked on this one (found by the tokenizer_json fuzz target).
            "merge longer than any vocabulary token",
            |j| {
                let longest = j["model"]["vocab"]
                    .as_object()
                    .and_then(|v| v.keys().max_by_key(|k| k.len()).cloned())
                    .unwrap();
                j["model"]["merges"] = json!([[longest, longest]]);
            },
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "merge with one part",
            |j| j["model"]["merges"] = json!(["abc"]),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "vocabulary not an object",
            |j| j["model"]["vocab"] = json!([1, 2]),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "dropout 2",
            |j| j["model"]["dropout"] = json!(2.0),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "vocabulary id 2^32-1",
            |j| j["model"]["vocab"]["a"] = json!(u32::MAX),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "vocabulary id negative",
            |j| j["model"]["vocab"]["a"] = json!(-1),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "two tokens with one id",
            |j| {
                let id = j["model"]["vocab"]["a"].clone();
                j["model"]["vocab"]["b"] = id;
            },
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "wordpiece",
            "unk token not in the vocabulary",
            |j| j["model"]["unk_token"] = json!("<nope>"),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "wordpiece",
            "unknown normalizer",
            |j| j["normalizer"] = json!({"type": "Bogus"}),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "split pattern is not a regex",
            |j| j["pre_tokenizer"] = json!({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "gpt2",
            "split regex that compiles to millions of states",
            |j| j["pre_tokenizer"] = json!({"type": "Split", "pattern": {"Regex": "((a{100}){100}){100}"}, "behavior": "Isolated", "invert": false}),
            expect!(Error::Tokenizer(_)),
        ),
        case(
            "unigram",
            "post-processor names an unknown special token",
            |j| {
                j["post_processor"] = json!({
                    "type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {}
                })
            },
            tokenizer,
        ),
        case(
            "unigram",
            "unknown decoder",
            |j| j["decoder"] = json!({"type": "Bogus"}),
            expect!(Error::Tokenizer(_)),
        ),
        config_case(
            "tokenizer_config.json not an object",
            json!([1]),
            expect!(Error::Config { .. } | Error::Json { .. } | Error::Tokenizer(_)),
        ),
        config_case(
            "chat_template a number",
            json!({"chat_template": 5}),
            expect!(Error::Config { .. }),
        ),
        config_case(
            "model_max_length negative",
            json!({"model_max_length": -5}),
            expect!(Error::Config { .. }),
        ),
        config_case(
            "added token id 2^32-1",
            json!({"added_tokens_decoder": {"4294967295": {"content": "<new>", "special": true}}}),
            expect!(Error::Tokenizer(_) | Error::Config { .. }),
        ),
        config_case(
            "added token id not a number",
            json!({"added_tokens_decoder": {"x": {"content": "<new>"}}}),
            expect!(Error::Config { .. }),
        ),
        config_case(
            "bos_token an array",
            json!({"bos_token": [1, 2]}),
            expect!(Error::Config { .. }),
        ),
    ]
}
