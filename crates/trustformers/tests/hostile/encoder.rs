//! Encoder and sentence-transformers mutants of the tiny BERT checkpoint: config.json fields
//! of the encoder family, `modules.json` and pooling configs, and inputs the pipelines must
//! refuse.

use super::{fixture, Case, Expect};
use crate::expect;
use serde_json::{json, Value};
use std::path::Path;
use trustformers::pipelines::{EmbedParams, SentenceTransformer};
use trustformers::{Error, LoadOptions, Result};

/// Loads the directory as sentence-transformers does and embeds two texts.
fn load(dir: &Path) -> Result<()> {
    let model = SentenceTransformer::from_pretrained(dir, &LoadOptions::default())?;
    model.encode(
        &["john lives in london", "the weather"],
        &EmbedParams::default(),
    )?;
    Ok(())
}

/// The BERT fixture's files with `edit` applied to them (name -> bytes).
fn case(name: &str, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>), expect: Expect) -> Case {
    let mut files: Vec<(String, Vec<u8>)> = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    .iter()
    .map(|f| (f.to_string(), fixture(&format!("bert_base/{f}"))))
    .collect();
    edit(&mut files);
    let mut c = Case::dir("encoder", name, vec![], load, expect);
    c.files = files;
    c
}

fn set(files: &mut Vec<(String, Vec<u8>)>, name: &str, value: &Value) {
    let bytes = serde_json::to_vec(value).unwrap();
    match files.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = bytes,
        None => files.push((name.to_string(), bytes)),
    }
}

fn config(name: &str, field: &str, value: Value, expect: Expect) -> Case {
    case(
        name,
        |files| {
            let mut c: Value = serde_json::from_slice(&fixture("bert_base/config.json")).unwrap();
            c[field] = value;
            set(files, "config.json", &c);
        },
        expect,
    )
}

fn modules(name: &str, modules: Value, pooling: Option<Value>, expect: Expect) -> Case {
    case(
        name,
        |files| {
            set(files, "modules.json", &modules);
            if let Some(p) = pooling {
                set(files, "1_Pooling/config.json", &p);
            }
        },
        expect,
    )
}

fn st_modules() -> Value {
    json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ])
}

pub fn cases() -> Vec<Case> {
    vec![
        config(
            "heads do not divide hidden_size",
            "num_attention_heads",
            json!(5),
            expect!(Error::Config { .. }),
        ),
        config(
            "relative position embeddings",
            "position_embedding_type",
            json!("relative_key"),
            expect!(Error::Config { .. }),
        ),
        config(
            "negative type_vocab_size",
            "type_vocab_size",
            json!(-1),
            expect!(Error::Config { .. }),
        ),
        config(
            "pad_token_id a string",
            "pad_token_id",
            json!("0"),
            expect!(Error::Config { .. }),
        ),
        config(
            "unknown activation",
            "hidden_act",
            json!("swish2"),
            expect!(Error::Config { .. }),
        ),
        config(
            "unknown model_type",
            "model_type",
            json!("bort"),
            expect!(Error::UnknownModelType { .. }),
        ),
        config(
            "vocab_size smaller than the table",
            "vocab_size",
            json!(64),
            expect!(Error::ShapeMismatch { .. }),
        ),
        config(
            "positions shorter than the input",
            "max_position_embeddings",
            json!(4),
            expect!(Error::ShapeMismatch { .. }),
        ),
        modules(
            "modules.json not a list",
            json!({"a": 1}),
            None,
            expect!(Error::Config { .. }),
        ),
        modules(
            "module path leaves the directory",
            json!([{"type": "sentence_transformers.models.Transformer", "path": "../elsewhere"}]),
            None,
            expect!(Error::Config { .. }),
        ),
        modules(
            "unknown module",
            json!([
                {"type": "sentence_transformers.models.Transformer", "path": ""},
                {"type": "sentence_transformers.models.LSTM", "path": "1_LSTM"}
            ]),
            None,
            expect!(Error::Config { .. }),
        ),
        modules(
            "no Transformer module",
            json!([{"type": "sentence_transformers.models.Normalize", "path": "2_Normalize"}]),
            None,
            expect!(Error::Config { .. }),
        ),
        modules(
            "pooling selects nothing",
            st_modules(),
            Some(json!({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": false})),
            expect!(Error::Config { .. }),
        ),
        modules(
            "unknown pooling mode",
            st_modules(),
            Some(json!({"pooling_mode": "median"})),
            expect!(Error::Config { .. }),
        ),
        modules(
            "pooling config missing",
            st_modules(),
            None,
            expect!(Error::Io { .. }),
        ),
    ]
}
