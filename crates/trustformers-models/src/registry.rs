//! `model_type` -> constructor. Adding an architecture is one line here plus its file.

use crate::decoder::presets;
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::{Error, Result, TensorNames};

/// How llama.cpp's converter lays out the rows of Q and K for this GGUF architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufQkLayout {
    /// Rows as in the HF checkpoint.
    Hf,
    /// Rows permuted per head to interleaved-pair RoPE order (`convert_hf_to_gguf.py`'s
    /// `LlamaModel.permute`); undone at load time.
    Interleaved,
}

/// How llama.cpp's converter stores the norms of this GGUF architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufNorms {
    /// `ffn_norm` is the pre-MLP norm (`post_attention_layernorm` in HF LLaMA naming);
    /// weights as in the HF checkpoint.
    Plain,
    /// Plain norm names, weights stored as `1 + w` for the unit-offset RMSNorm (Gemma); the
    /// shift is undone at load time.
    UnitOffset,
    /// Sandwich norms (`post_attention_norm`, `ffn_norm`, `post_ffw_norm`) stored as `1 + w`
    /// for the unit-offset RMSNorm (`convert_hf_to_gguf.py`'s Gemma `norm_shift`); the shift
    /// is undone at load time.
    UnitOffsetSandwich,
}

/// What the GGUF side of an architecture looks like.
#[derive(Debug, Clone, Copy)]
pub struct GgufDialect {
    /// `general.architecture`.
    pub arch: &'static str,
    pub qk: GgufQkLayout,
    pub norms: GgufNorms,
}

/// One supported architecture.
#[derive(Debug, Clone, Copy)]
pub struct Architecture {
    /// config.json `model_type`.
    pub model_type: &'static str,
    /// The GGUF architecture that maps to this model type, if any.
    pub gguf: Option<GgufDialect>,
    /// Builds the decoder spec from config.json.
    pub decoder_spec: fn(&Value) -> Result<DecoderSpec>,
    /// Checkpoint tensor names, for architectures that do not use the LLaMA ones.
    pub tensor_names: Option<TensorNames>,
}

const fn gguf(arch: &'static str, qk: GgufQkLayout, norms: GgufNorms) -> Option<GgufDialect> {
    Some(GgufDialect { arch, qk, norms })
}

const fn arch(
    model_type: &'static str,
    gguf: Option<GgufDialect>,
    decoder_spec: fn(&Value) -> Result<DecoderSpec>,
) -> Architecture {
    Architecture {
        model_type,
        gguf,
        decoder_spec,
        tensor_names: None,
    }
}

/// An architecture whose checkpoints name tensors their own way.
const fn named(
    model_type: &'static str,
    decoder_spec: fn(&Value) -> Result<DecoderSpec>,
    tensor_names: TensorNames,
) -> Architecture {
    Architecture {
        model_type,
        gguf: None,
        decoder_spec,
        tensor_names: Some(tensor_names),
    }
}

use GgufNorms::{Plain, UnitOffset, UnitOffsetSandwich};
use GgufQkLayout::{Hf, Interleaved};

/// Every supported architecture, one line each.
pub const ARCHITECTURES: &[Architecture] = &[
    arch(
        "llama",
        gguf("llama", Interleaved, Plain),
        presets::llama::spec,
    ),
    named("gpt2", presets::gpt2::spec, presets::gpt2::tensor_name),
    named(
        "gpt_neo",
        presets::gpt_neo::spec,
        presets::gpt_neo::tensor_name,
    ),
    named(
        "gpt_neox",
        presets::gpt_neox::spec,
        presets::gpt_neox::tensor_name,
    ),
    named("gptj", presets::gptj::spec, presets::gptj::tensor_name),
    arch("mistral", None, presets::mistral::spec),
    arch("mixtral", None, presets::mixtral::spec),
    named("phi", presets::phi::spec, presets::phi::tensor_name),
    arch("phi3", None, presets::phi3::spec),
    arch("stablelm", None, presets::stablelm::spec),
    arch("qwen2", gguf("qwen2", Hf, Plain), presets::qwen2::spec),
    arch("qwen3", gguf("qwen3", Hf, Plain), presets::qwen3::spec),
    named(
        "falcon",
        presets::falcon::spec,
        presets::falcon::tensor_name,
    ),
    arch("gemma", gguf("gemma", Hf, UnitOffset), presets::gemma::spec),
    arch(
        "gemma2",
        gguf("gemma2", Hf, UnitOffsetSandwich),
        presets::gemma2::spec,
    ),
    arch(
        "gemma3_text",
        gguf("gemma3", Hf, UnitOffsetSandwich),
        presets::gemma3::spec,
    ),
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
        .find(|a| a.gguf.is_some_and(|g| g.arch == name))
        .ok_or_else(|| Error::UnknownModelType {
            model_type: format!("{name} (GGUF general.architecture)"),
            known: ARCHITECTURES
                .iter()
                .filter_map(|a| a.gguf.map(|g| g.arch))
                .collect(),
        })
}
