//! Any UTF-8 text through the fixture tokenizers (byte-level BPE, WordPiece, Unigram,
//! SentencePiece BPE) and, when `tools/fetch_models.sh` has cached them, the real ones:
//! SmolLM2's byte-level BPE (49k tokens, from its GGUF), all-MiniLM-L6-v2's WordPiece and
//! Gemma 3's SentencePiece (262k tokens). Byte-level BPE is lossless for text whose bytes
//! all have a token (SmolLM2's vocabulary lacks 21 of the 256, e.g. 0x13, which it drops as
//! transformers does), so for such text decode(encode(x)) must equal x.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use trustformers_core::gguf::GgufFile;
use trustformers_tokenizers::formats::gguf::bytes_to_unicode;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions, Tokenizer};

struct Case {
    name: String,
    tokenizer: Tokenizer,
    /// For byte-level BPE: which bytes have a token of their own.
    byte_tokens: Option<[bool; 256]>,
}

/// The bytes a byte-level BPE vocabulary spells as single tokens.
fn byte_tokens(tokenizer: &Tokenizer) -> [bool; 256] {
    let spelling = bytes_to_unicode();
    std::array::from_fn(|b| tokenizer.token_to_id(&spelling[b].to_string()).is_some())
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("TRUSTFORMERS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/trustformers")))?;
    base.is_dir().then_some(base)
}

fn tokenizers() -> &'static [Case] {
    static TOKENIZERS: OnceLock<Vec<Case>> = OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizers");
        let mut cases: Vec<Case> = ["gpt2", "wordpiece", "unigram", "spm_bpe", "spm_unigram"]
            .into_iter()
            .map(|name| {
                let tokenizer = AutoTokenizer::from_pretrained(root.join(name))
                    .unwrap_or_else(|e| panic!("fixture tokenizer {name}: {e}"));
                Case {
                    name: name.to_string(),
                    byte_tokens: (name == "gpt2").then(|| byte_tokens(&tokenizer)),
                    tokenizer,
                }
            })
            .collect();
        if let Some(cache) = cache_dir() {
            let real = [
                (
                    "smollm2",
                    "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
                    true,
                ),
                ("gemma3", "gemma-3-270m/gemma-3-270m-q4_k_m.gguf", false),
                ("all-minilm", "all-minilm-l6-v2", false),
            ];
            for (name, rel, lossless) in real {
                let path = cache.join(rel);
                let tokenizer = if rel.ends_with(".gguf") {
                    GgufFile::open(&path).and_then(|f| AutoTokenizer::from_gguf(&f))
                } else {
                    AutoTokenizer::from_pretrained(&path)
                };
                if let Ok(tokenizer) = tokenizer {
                    eprintln!("tokenize_text: also fuzzing the real {name} tokenizer");
                    cases.push(Case {
                        name: name.to_string(),
                        byte_tokens: lossless.then(|| byte_tokens(&tokenizer)),
                        tokenizer,
                    });
                }
            }
        }
        cases
    })
}

fuzz_target!(init: {
    // Building the 262k-token Gemma vocabulary takes seconds under the sanitizer: do it
    // before the per-input timeout starts counting.
    let _ = tokenizers();
}, |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = EncodeOptions {
        add_special_tokens: false,
        ..Default::default()
    };
    for case in tokenizers() {
        let name = &case.name;
        let enc = case
            .tokenizer
            .encode(text, &opts)
            .unwrap_or_else(|e| panic!("{name}: encode failed: {e}"));
        let decoded = case
            .tokenizer
            .decode(enc.input_ids(), false)
            .unwrap_or_else(|e| panic!("{name}: decode failed: {e}"));
        if let Some(covered) = &case.byte_tokens {
            if text.bytes().all(|b| covered[b as usize]) {
                assert_eq!(decoded, text, "{name}: byte-level BPE round trip");
            }
        }
    }
});
