//! Any bytes as a PEFT `adapter_config.json`: reading it fails with an error or gives a
//! LoRA config that passes its own checks (rank at least 1, some target, scale finite when
//! alpha is).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustformers_core::lora::LoraConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let path = std::path::Path::new("adapter_config.json");
    if let Ok(config) = LoraConfig::from_peft_json(path, &json) {
        assert!(config.r >= 1 && !config.target_modules.is_empty());
        assert!(config.validate().is_ok());
        if config.lora_alpha.is_finite() {
            assert!(config.scale().is_finite());
        }
        let _ = config.targets("model.layers.0.self_attn.q_proj");
    }
});
