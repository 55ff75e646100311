//! Tokens added after loading (transformers' `add_tokens` / `add_special_tokens`) against
//! transformers on four tokenizers (tests/fixtures/tokenizers/added_tokens.json, from
//! tools/gen_added_tokens_fixtures.py): the same new ids, encodings and decoded text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::PathBuf;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn added_tokens_match_transformers() {
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("tokenizers/added_tokens.json")).unwrap(),
    )
    .unwrap();
    let plain = strings(&fx["plain"]);
    let pad = fx["special"]["pad_token"].as_str().unwrap().to_owned();
    let extra = strings(&fx["special"]["additional_special_tokens"]);
    let cases = fx["tokenizers"].as_object().unwrap();
    assert_eq!(cases.len(), 4);
    for (name, want) in cases {
        let tok = AutoTokenizer::from_pretrained(fixtures().join(name)).unwrap();
        assert_eq!(tok.len() as u64, want["len_before"].as_u64().unwrap());
        let (tok, n) = tok.with_added_tokens(&plain, false).unwrap();
        assert_eq!(n as u64, want["added_plain"].as_u64().unwrap(), "{name}");
        let (tok, a) = tok
            .with_added_tokens(std::slice::from_ref(&pad), true)
            .unwrap();
        let (tok, b) = tok.with_added_tokens(&extra, true).unwrap();
        assert_eq!((a + b) as u64, want["added_special"].as_u64().unwrap());
        assert_eq!(tok.len() as u64, want["len_after"].as_u64().unwrap());
        assert_eq!(
            tok.token_to_id(&pad).map(u64::from),
            want["pad_token_id"].as_u64()
        );
        for (text, w) in strings(&fx["texts"])
            .iter()
            .zip(want["encodings"].as_array().unwrap())
        {
            let ids = tok
                .encode(text.as_str(), &EncodeOptions::default())
                .unwrap()
                .input_ids()
                .to_vec();
            let want_ids: Vec<u32> = w["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(ids, want_ids, "{name}: {text}");
            assert_eq!(
                tok.decode(&ids, false).unwrap(),
                w["decoded"].as_str().unwrap()
            );
            assert_eq!(
                tok.decode(&ids, true).unwrap(),
                w["decoded_skip"].as_str().unwrap()
            );
        }
        // Already there: nothing new.
        assert_eq!(tok.with_added_tokens(&plain, false).unwrap().1, 0);
    }
    let tok = AutoTokenizer::from_pretrained(fixtures().join("t5")).unwrap();
    assert!(tok.with_added_tokens(&[String::new()], false).is_err());
}
