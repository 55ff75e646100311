//! Any bytes as a request body of `trustformers serve` (chat and text completions,
//! embeddings) and as a `response_format` JSON schema with a reply to check against it:
//! each is parsed or refused with an error, and the JSON-constrained decoder (schema
//! compiler, automaton, logits processor) never panics, whatever the schema and the text.
//! Input: the body, then optionally a 0xFF byte and the text to run through the automaton.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use trustformers_generate::processors::{Context, JsonConstraint, LogitsProcessor};
use trustformers_serve::api::{ChatRequest, CompletionRequest, EmbeddingRequest, Sampling};

fuzz_target!(|data: &[u8]| {
    let (body, text) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], String::from_utf8_lossy(&data[i + 1..]).into_owned()),
        None => (data, String::new()),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let _ = serde_json::from_value::<ChatRequest>(value.clone());
    let _ = serde_json::from_value::<CompletionRequest>(value.clone());
    let _ = serde_json::from_value::<EmbeddingRequest>(value.clone());
    let _ = serde_json::from_value::<Sampling>(value.clone());
    // A small vocabulary of JSON pieces and the text's own characters.
    let mut vocab: Vec<Option<String>> = ["{", "}", "[", "]", "\"", ":", ",", " ", "1", "-", ".", "e", "true", "null", "\"a\"", "\\u00e9"]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect();
    vocab.extend(text.chars().take(64).map(|c| Some(c.to_string())));
    vocab.push(None);
    let vocab = Arc::new(vocab);
    let schema = value
        .pointer("/response_format/json_schema/schema")
        .cloned()
        .unwrap_or(value);
    let constraints = [
        Some(JsonConstraint::object(vocab.clone(), vec![0])),
        JsonConstraint::schema(vocab.clone(), vec![0], &schema).ok(),
    ];
    for c in constraints.into_iter().flatten() {
        let _ = c.accepts(&text);
        // The processor over the text as generated ids (its characters' entries).
        let ids: Vec<u32> = (16..vocab.len() as u32 - 1).collect();
        let mut scores = vec![0f32; vocab.len()];
        c.process(
            &Context {
                ids: &ids,
                prompt_len: 0,
                padding: 0,
                source: &[],
            },
            &mut scores,
        );
        let mut scores = vec![0f32; vocab.len()];
        c.process(
            &Context {
                ids: &[],
                prompt_len: 0,
                padding: 0,
                source: &[],
            },
            &mut scores,
        );
    }
});
