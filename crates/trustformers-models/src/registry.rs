//! `model_type` -> constructor. Adding an architecture is one entry here plus its file.

use crate::decoder::presets;
use crate::encoder::heads::{EncoderTask, HeadLayout};
use crate::{gguf, DecoderSpec, EncoderSpec};
use serde_json::{Map, Value};
use trustformers_core::gguf::GgufFile;
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

/// How llama.cpp's converter lays out a fused QKV projection (`attn_qkv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufQkvLayout {
    /// Rows as in the HF checkpoint.
    Hf,
    /// All query heads, then all key heads, then all value heads, where the HF checkpoint
    /// groups them per key/value head (Falcon's "jploski" transform, GPT-NeoX's per-head
    /// split); regrouped at load time.
    Stacked,
}

/// How llama.cpp's converter stores the norms of this GGUF architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufNorms {
    /// As in the HF checkpoint.
    Plain,
    /// Weights stored as `1 + w` for the unit-offset RMSNorm (`convert_hf_to_gguf.py`'s Gemma
    /// `norm_shift`); the shift is undone at load time.
    UnitOffset,
}

/// Architecture-specific config fields read from a GGUF file into the config.json
/// equivalent (which already holds the common ones).
pub type GgufConfig = fn(&GgufFile, &mut Map<String, Value>) -> Result<()>;

/// What the GGUF side of an architecture looks like.
#[derive(Debug, Clone, Copy)]
pub struct GgufDialect {
    /// `general.architecture`.
    pub arch: &'static str,
    /// Whether this dialect is the mixture-of-experts one (`{arch}.expert_count` > 0):
    /// llama.cpp writes Mixtral as `llama`.
    pub experts: bool,
    pub qk: GgufQkLayout,
    pub qkv: GgufQkvLayout,
    pub norms: GgufNorms,
    /// Block tensors whose canonical names differ from the common table's (GGUF name after
    /// `blk.{i}.` -> canonical name after `model.layers.{i}.`), looked up first. `{}` in a
    /// canonical name splits the tensor along its outermost dimension (one tensor per entry);
    /// `{q,k,v}` splits a fused projection's rows into q, k and v.
    pub block: &'static [(&'static str, &'static str)],
    /// More block names, looked up before [`Self::block`] when the config field (as built
    /// from the GGUF) is `true`.
    pub block_if: Option<(&'static str, &'static [(&'static str, &'static str)])>,
    /// Architecture-specific config fields.
    pub config: Option<GgufConfig>,
}

impl GgufDialect {
    const fn new(arch: &'static str) -> Self {
        Self {
            arch,
            experts: false,
            qk: GgufQkLayout::Hf,
            qkv: GgufQkvLayout::Hf,
            norms: GgufNorms::Plain,
            block: &[],
            block_if: None,
            config: None,
        }
    }
    const fn qk(mut self, qk: GgufQkLayout) -> Self {
        self.qk = qk;
        self
    }
    const fn qkv(mut self, qkv: GgufQkvLayout) -> Self {
        self.qkv = qkv;
        self
    }
    const fn norms(mut self, norms: GgufNorms) -> Self {
        self.norms = norms;
        self
    }
    const fn experts(mut self) -> Self {
        self.experts = true;
        self
    }
    const fn block(mut self, block: &'static [(&'static str, &'static str)]) -> Self {
        self.block = block;
        self
    }
    const fn block_if(
        mut self,
        flag: &'static str,
        block: &'static [(&'static str, &'static str)],
    ) -> Self {
        self.block_if = Some((flag, block));
        self
    }
    const fn config(mut self, config: GgufConfig) -> Self {
        self.config = Some(config);
        self
    }
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
    /// Checkpoint tensor names, for architectures that do not use the LLaMA ones. GGUF files
    /// are mapped to the canonical (LLaMA) names by [`crate::gguf`] instead.
    pub tensor_names: Option<TensorNames>,
}

impl Architecture {
    const fn new(
        model_type: &'static str,
        decoder_spec: fn(&Value) -> Result<DecoderSpec>,
    ) -> Self {
        Self {
            model_type,
            gguf: None,
            decoder_spec,
            tensor_names: None,
        }
    }
    /// Also loads from GGUF files written as `dialect`.
    const fn gguf(mut self, dialect: GgufDialect) -> Self {
        self.gguf = Some(dialect);
        self
    }
    /// Checkpoints name tensors their own way.
    const fn names(mut self, tensor_names: TensorNames) -> Self {
        self.tensor_names = Some(tensor_names);
        self
    }
}

use gguf::names as g;
use presets::*;
use Architecture as A;
use GgufDialect as D;
use GgufNorms::UnitOffset;
use GgufQkLayout::Interleaved;
use GgufQkvLayout::Stacked;

/// Every supported architecture.
pub const ARCHITECTURES: &[Architecture] = &[
    A::new("llama", llama::spec).gguf(D::new("llama").qk(Interleaved)),
    A::new("gpt2", gpt2::spec)
        .names(gpt2::tensor_name)
        .gguf(D::new("gpt2")),
    A::new("gpt_neo", gpt_neo::spec).names(gpt_neo::tensor_name),
    A::new("gpt_neox", gpt_neox::spec)
        .names(gpt_neox::tensor_name)
        .gguf(D::new("gptneox").qkv(Stacked)),
    A::new("gptj", gptj::spec)
        .names(gptj::tensor_name)
        .gguf(D::new("gptj")),
    A::new("mistral", mistral::spec),
    A::new("mixtral", mixtral::spec).gguf(D::new("llama").qk(Interleaved).experts()),
    A::new("phi", phi::spec)
        .names(phi::tensor_name)
        .gguf(D::new("phi2").block(g::PHI2)),
    A::new("phi3", phi3::spec).gguf(D::new("phi3").block(g::PHI3)),
    A::new("stablelm", stablelm::spec).gguf(
        D::new("stablelm")
            .block(g::STABLELM)
            .config(stablelm::from_gguf),
    ),
    A::new("qwen2", qwen2::spec).gguf(D::new("qwen2")),
    A::new("qwen3", qwen3::spec).gguf(D::new("qwen3")),
    A::new("falcon", falcon::spec)
        .names(falcon::tensor_name)
        .gguf(
            D::new("falcon")
                .qkv(Stacked)
                .block_if("new_decoder_architecture", g::FALCON_NEW)
                .config(falcon::from_gguf),
        ),
    A::new("gemma", gemma::spec).gguf(D::new("gemma").norms(UnitOffset)),
    A::new("gemma2", gemma2::spec).gguf(
        D::new("gemma2")
            .norms(UnitOffset)
            .block(g::SANDWICH)
            .config(gemma2::from_gguf),
    ),
    A::new("gemma3_text", gemma3::spec).gguf(
        D::new("gemma3")
            .norms(UnitOffset)
            .block(g::SANDWICH)
            .config(gemma2::from_gguf),
    ),
];

fn known() -> Vec<&'static str> {
    ARCHITECTURES
        .iter()
        .map(|a| a.model_type)
        .chain(ENCODERS.iter().map(|a| a.model_type))
        .collect()
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

/// The architecture for a GGUF `general.architecture`, with or without experts.
pub fn by_gguf_architecture(name: &str, experts: bool) -> Result<&'static Architecture> {
    ARCHITECTURES
        .iter()
        .find(|a| {
            a.gguf
                .is_some_and(|g| g.arch == name && g.experts == experts)
        })
        .ok_or_else(|| Error::UnknownModelType {
            model_type: format!("{name} (GGUF general.architecture)"),
            known: {
                let mut names: Vec<_> = ARCHITECTURES
                    .iter()
                    .filter_map(|a| a.gguf.map(|g| g.arch))
                    .collect();
                names.sort_unstable();
                names.dedup();
                names
            },
        })
}

/// One supported encoder architecture.
#[derive(Debug, Clone, Copy)]
pub struct EncoderArchitecture {
    /// config.json `model_type`.
    pub model_type: &'static str,
    /// Builds the encoder spec from config.json.
    pub spec: fn(&Value) -> Result<EncoderSpec>,
    /// The layout of each task head it has.
    pub head: fn(EncoderTask, &EncoderSpec) -> Option<HeadLayout>,
    /// Checkpoint tensor names, for architectures that do not use BERT's.
    pub tensor_names: Option<TensorNames>,
}

use crate::encoder::presets as enc;

const fn encoder(
    model_type: &'static str,
    spec: fn(&Value) -> Result<EncoderSpec>,
    head: fn(EncoderTask, &EncoderSpec) -> Option<HeadLayout>,
    tensor_names: Option<TensorNames>,
) -> EncoderArchitecture {
    EncoderArchitecture {
        model_type,
        spec,
        head,
        tensor_names,
    }
}

/// Every supported encoder architecture.
pub const ENCODERS: &[EncoderArchitecture] = &[
    encoder("bert", enc::bert::spec, enc::bert::head, None),
    encoder("roberta", enc::roberta::spec, enc::roberta::head, None),
    encoder("xlm-roberta", enc::roberta::spec, enc::roberta::head, None),
    encoder("camembert", enc::roberta::spec, enc::roberta::head, None),
    encoder(
        "distilbert",
        enc::distilbert::spec,
        enc::distilbert::head,
        Some(enc::distilbert::tensor_name),
    ),
    encoder("electra", enc::electra::spec, enc::electra::head, None),
    encoder(
        "deberta-v2",
        crate::encoder::deberta::spec,
        crate::encoder::deberta::head,
        Some(crate::encoder::deberta::tensor_name),
    ),
    encoder(
        "modernbert",
        crate::encoder::modernbert::spec,
        crate::encoder::modernbert::head,
        None,
    ),
    encoder(
        "albert",
        enc::albert::spec,
        enc::albert::head,
        Some(enc::albert::tensor_name),
    ),
];

/// The encoder architecture for a config.json `model_type`, if it is one.
pub fn encoder_by_model_type(model_type: &str) -> Option<&'static EncoderArchitecture> {
    ENCODERS.iter().find(|a| a.model_type == model_type)
}
