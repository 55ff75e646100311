//! `model_type` -> constructor. Adding an architecture is one line here plus its file.

use crate::decoder::presets;
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::{Error, Result};

/// How llama.cpp's converter lays out the rows of Q and K for this GGUF architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufQkLayout {
    /// Rows as in the HF checkpoint.
    Hf,
    /// Rows permuted per head to interleaved-pair RoPE order (`convert_hf_to_gguf.py`'s
    /// `LlamaModel.permute`); undone at load time.
    Interleaved,
}

/// One supported architecture.
#[derive(Debug, Clone, Copy)]
pub struct Architecture {
    /// config.json `model_type`.
    pub model_type: &'static str,
    /// GGUF `general.architecture` that maps to this model type, if any, and its Q/K layout.
    pub gguf: Option<(&'static str, GgufQkLayout)>,
    /// Builds the decoder spec from config.json.
    pub decoder_spec: fn(&Value) -> Result<DecoderSpec>,
}

const fn arch(
    model_type: &'static str,
    gguf: Option<(&'static str, GgufQkLayout)>,
    decoder_spec: fn(&Value) -> Result<DecoderSpec>,
) -> Architecture {
    Architecture {
        model_type,
        gguf,
        decoder_spec,
    }
}

use GgufQkLayout::{Hf, Interleaved};

/// Every supported architecture, one line each.
pub const ARCHITECTURES: &[Architecture] = &[
    arch("llama", Some(("llama", Interleaved)), presets::llama::spec),
    arch("mistral", None, presets::mistral::spec),
    arch("qwen2", Some(("qwen2", Hf)), presets::qwen2::spec),
    arch("qwen3", Some(("qwen3", Hf)), presets::qwen3::spec),
    arch("gemma3_text", Some(("gemma3", Hf)), presets::gemma3::spec),
];

fn known() -> Vec<&'static str> {
    ARCHITECTURES.iter().map(|a| a.model_type).collect()
}

/// The architecture for a config.json `model_type`.
pub fn by_model_type(model_type: &str) -> Result<&'static Architecture> {
    ARCHITECTURES
        .iter()
        .find(|a| a.model_type == model_type)
        .ok_or_else(|| Error::UnknownModelType {
            model_type: model_type.to_string(),
            known: known(),
        })
}

/// The architecture for a GGUF `general.architecture`.
pub fn by_gguf_architecture(name: &str) -> Result<&'static Architecture> {
    ARCHITECTURES
        .iter()
        .find(|a| a.gguf.is_some_and(|(g, _)| g == name))
        .ok_or_else(|| Error::UnknownModelType {
            model_type: format!("{name} (GGUF general.architecture)"),
            known: ARCHITECTURES
                .iter()
                .filter_map(|a| a.gguf.map(|g| g.0))
                .collect(),
        })
}
