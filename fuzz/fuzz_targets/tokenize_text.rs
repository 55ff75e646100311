//! Any UTF-8 text through the fixture tokenizers (byte-level BPE, WordPiece, Unigram,
//! SentencePiece BPE). The byte-level BPE is lossless, so decode(encode(x)) must equal x.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions, Tokenizer};

fn tokenizers() -> &'static [(&'static str, Tokenizer)] {
    static TOKENIZERS: OnceLock<Vec<(&'static str, Tokenizer)>> = OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizers");
        ["gpt2", "wordpiece", "unigram", "spm_bpe", "spm_unigram"]
            .into_iter()
            .map(|name| {
                let tok = AutoTokenizer::from_pretrained(root.join(name))
                    .unwrap_or_else(|e| panic!("fixture tokenizer {name}: {e}"));
                (name, tok)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = EncodeOptions {
        add_special_tokens: false,
        ..Default::default()
    };
    for (name, tok) in tokenizers() {
        let enc = tok.encode(text, &opts).unwrap_or_else(|e| panic!("{name}: encode failed: {e}"));
        let decoded = tok
            .decode(enc.input_ids(), false)
            .unwrap_or_else(|e| panic!("{name}: decode failed: {e}"));
        if *name == "gpt2" {
            assert_eq!(decoded, text, "byte-level BPE round trip");
        }
    }
});
