//! Any UTF-8 text through the fixture tokenizers (byte-level BPE, WordPiece, Unigram,
//! SentencePiece BPE) and, when `tools/fetch_models.sh` has cached them, the real ones:
//! SmolLM2's byte-level BPE (49k tokens, from its GGUF), all-MiniLM-L6-v2's WordPiece and
//! Gemma 3's SentencePiece (262k tokens). Byte-level BPE is lossless, so for those
//! decode(encode(x)) must equal x.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use trustformers_core::gguf::GgufFile;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions, Tokenizer};

struct Case {
    name: String,
    tokenizer: Tokenizer,
    lossless: bool,
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
            .map(|name| Case {
                name: name.to_string(),
                tokenizer: AutoTokenizer::from_pretrained(root.join(name))
                    .unwrap_or_else(|e| panic!("fixture tokenizer {name}: {e}")),
                lossless: name == "gpt2",
            })
            .collect();
        if let Some(cache) = cache_dir() {
            let real = [
                ("smollm2", "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", true),
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
                        tokenizer,
                        lossless,
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
        if case.lossless {
            assert_eq!(decoded, text, "{name}: byte-level BPE round trip");
        }
    }
});
