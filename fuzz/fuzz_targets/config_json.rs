//! Any bytes as config.json (read as `read_json` reads it): for its `model_type` (or every registered type), building the
//! model spec fails with an error or yields a spec within the configured limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustformers_models::registry;

fuzz_target!(|data: &[u8]| {
    // As config.json is read: UTF-8, then JSON with Python's bare Infinity / NaN.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(json) = trustformers_core::config::parse_json(text) else {
        return;
    };
    let model_type = json
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("llama");
    for ty in [
        model_type,
        "llama",
        "gemma3_text",
        "qwen3",
        "bert",
        "modernbert",
        "nomic_bert",
    ] {
        if let Ok(arch) = registry::by_model_type(ty) {
            if let Ok(spec) = arch.decoder_spec(&json) {
                assert_eq!(spec.layer_windows.len(), spec.num_hidden_layers);
            }
            let _ = arch.encoder_spec(&json);
        }
    }
});
