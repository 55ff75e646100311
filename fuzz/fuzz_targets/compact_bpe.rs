//! Differential: the compact BPE that GGUF vocabularies get against `tokenizers`' BPE over
//! the generated merge list, on random text. Two sources of vocabularies: the GGUF BPE
//! tokenizers the project reads (the tiny Llama fixture, and SmolLM2's and Gemma 3's when
//! `tools/fetch_models.sh` has cached them), and one made from the input itself: the bytes
//! before the first NUL are `kind` (first byte: SentencePiece with scores, Gemma's file
//! order, byte-level by id) and newline-separated tokens, the rest is the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use trustformers_core::gguf::{GgufFile, GgufValue};
use trustformers_tokenizers::formats::gguf::{from_gguf_with, BpeModel};
use trustformers_tokenizers::{EncodeOptions, Tokenizer};

struct Case {
    name: String,
    compact: Tokenizer,
    reference: Tokenizer,
}

fn case(name: &str, file: &GgufFile) -> Option<Case> {
    let build = |bpe| {
        from_gguf_with(file, bpe).and_then(|(inner, config)| Tokenizer::new(inner, config))
    };
    match (build(BpeModel::Compact), build(BpeModel::Tokenizers)) {
        (Ok(compact), Ok(reference)) => Some(Case {
            name: name.to_string(),
            compact,
            reference,
        }),
        (Err(_), Err(_)) => None,
        (a, b) => panic!(
            "{name}: compact built: {}, tokenizers built: {}",
            a.is_ok(),
            b.is_ok()
        ),
    }
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("TRUSTFORMERS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/trustformers")))?;
    base.is_dir().then_some(base)
}

fn known() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut paths = vec![fixtures.join("llama_gguf/tiny-llama.gguf")];
        if let Some(cache) = cache_dir() {
            paths.push(cache.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"));
            paths.push(cache.join("gemma-3-270m/gemma-3-270m-q4_k_m.gguf"));
        }
        paths
            .iter()
            .filter_map(|p| GgufFile::open(p).ok().map(|f| (p, f)))
            .filter_map(|(p, f)| case(&p.display().to_string(), &f))
            .collect()
    })
}

/// A vocabulary from `spec`: its first byte picks the kind, the rest are tokens.
fn made(spec: &[u8]) -> Option<Case> {
    let (&kind, tokens) = spec.split_first()?;
    let tokens: Vec<&str> = std::str::from_utf8(tokens).ok()?.split('\n').take(256).collect();
    let (model, arch) = match kind % 3 {
        0 => ("llama", "llama"),
        1 => ("llama", "gemma3"),
        _ => ("gpt2", "gpt2"),
    };
    let strings = |v: &[&str]| GgufValue::Array(v.iter().map(|t| GgufValue::String(t.to_string())).collect());
    let mut kv = vec![
        ("tokenizer.ggml.model".to_string(), GgufValue::String(model.into())),
        ("general.architecture".to_string(), GgufValue::String(arch.into())),
        ("tokenizer.ggml.tokens".to_string(), strings(&tokens)),
    ];
    if model == "llama" {
        // Few distinct scores, so that ties are common.
        let scores = tokens.iter().map(|t| GgufValue::F32(-((t.len() % 4) as f32))).collect();
        kv.push(("tokenizer.ggml.scores".to_string(), GgufValue::Array(scores)));
    }
    let file = GgufFile::from_bytes("input", trustformers_core::gguf::write(&kv, &[])).ok()?;
    case(arch, &file)
}

fn compare(case: &Case, text: &str) {
    let opts = EncodeOptions {
        add_special_tokens: false,
        ..Default::default()
    };
    let name = &case.name;
    let a = case.compact.encode(text, &opts);
    let b = case.reference.encode(text, &opts);
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.input_ids(), b.input_ids(), "{name}: ids of {text:?}");
            assert_eq!(a.tokens(), b.tokens(), "{name}: tokens of {text:?}");
            assert_eq!(a.offsets(), b.offsets(), "{name}: offsets of {text:?}");
        }
        (a, b) => assert_eq!(a.is_ok(), b.is_ok(), "{name}: encoding {text:?} failed in one"),
    }
}

fuzz_target!(init: {
    // Building Gemma 3's reference BPE takes seconds under the sanitizer: do it before the
    // per-input timeout starts counting.
    let _ = known();
}, |data: &[u8]| {
    let (spec, text) = match data.iter().position(|&b| b == 0) {
        Some(at) => (Some(&data[..at]), &data[at + 1..]),
        None => (None, data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    for case in known() {
        compare(case, text);
    }
    if let Some(case) = spec.and_then(made) {
        compare(&case, text);
    }
});
