//! Any bytes as tokenizer.json: an error, or a tokenizer that encodes and decodes text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(tok) = AutoTokenizer::from_tokenizer_json(data) {
        for text in ["Hello world", "naïve 東京 🤗", ""] {
            if let Ok(enc) = tok.encode(text, &EncodeOptions::default()) {
                let _ = tok.decode(enc.input_ids(), false);
            }
        }
    }
});
