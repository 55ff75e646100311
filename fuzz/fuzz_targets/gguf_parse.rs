//! Any bytes as a GGUF file: parsing either fails with an error or yields tensor ranges that
//! lie inside the file, and the model config and tokenizer built from the metadata either
//! fail with an error or succeed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustformers_core::gguf;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = gguf::parse(data) else {
        return;
    };
    for t in &header.tensors {
        assert!(
            t.start + t.len <= data.len(),
            "tensor `{}` out of bounds",
            t.name
        );
    }
    // The metadata-driven paths need a file; write it where only this process looks.
    let path = std::env::temp_dir().join(format!("trustformers-fuzz-{}.gguf", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(file) = gguf::GgufFile::open(&path) {
        if let Ok((arch, json)) = trustformers_models::gguf::config_from_gguf(&file) {
            if arch.is_causal_lm() {
                let _ = arch.decoder_spec(&json);
            } else {
                let _ = arch.encoder_spec(&json);
            }
        }
        // Building a real 30k-token vocabulary takes tens of milliseconds under the sanitizer;
        // mutants of the small files exercise the same code at fuzzing speed.
        if data.len() > 64 << 10 {
            return;
        }
        if let Ok(tok) = trustformers_tokenizers::AutoTokenizer::from_gguf(&file) {
            if let Ok(ids) = tok.encode_ids("Hello world", true) {
                let _ = tok.decode(&ids, false);
            }
        }
    }
});
