//! One table of architectures: `model_type` (and GGUF `general.architecture`) -> what kind
//! of model it builds and how. Adding an architecture is one entry here plus its file.

use crate::decoder::presets;
use crate::encoder::heads::{EncoderTask, HeadLayout};
use crate::encoder::{deberta, modernbert, nomic_bert, presets as enc};
use crate::multimodal::{self, VisionLanguageModel};
use crate::seq2seq::{self, BartForConditionalGeneration, BartSpec};
use crate::seq2seq::{T5ForConditionalGeneration, T5Spec};
use crate::ssm;
use crate::traits::{CausalLM, EncoderDecoderLM, RuntimeOptions};
use crate::vision::{self, ImageModel, ImageTextModel, VisionTask};
use crate::{gguf, DecoderForCausalLM, DecoderSpec, EncoderSpec};
use serde_json::{Map, Value};
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result, StoredName, Weights};

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
    /// The family's tensor names ([`gguf::DECODER_NAMES`] unless said otherwise).
    pub names: &'static gguf::GgufNames,
    /// The family's config.json names for the common hyperparameters
    /// ([`gguf::HF_KEYS`] unless said otherwise).
    pub keys: &'static gguf::ConfigKeys,
    /// The GGUF name of each tensor the model asks for, when the model looks its tensors up
    /// by GGUF names directly rather than through [`Self::names`] (T5, whose GGUF blocks are
    /// `enc.blk.{i}` and `dec.blk.{i}`).
    pub rename: Option<TensorNames>,
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
            names: &gguf::DECODER_NAMES,
            keys: &gguf::HF_KEYS,
            rename: None,
        }
    }
    /// The model's tensors are looked up under their GGUF names by `rename`.
    const fn renamed(mut self, rename: TensorNames) -> Self {
        self.names = &gguf::NO_NAMES;
        self.rename = Some(rename);
        self
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
    const fn names(mut self, names: &'static gguf::GgufNames) -> Self {
        self.names = names;
        self
    }
    const fn keys(mut self, keys: &'static gguf::ConfigKeys) -> Self {
        self.keys = keys;
        self
    }
}

/// The one name a checkpoint of the architecture (with its config) stores a tensor under,
/// for the name the model asks for; `None`: that same name.
pub type TensorNames = fn(&str, &Value) -> Option<StoredName>;

/// What kind of model an architecture builds, and so what it can be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A causal language model built from self-attention layers (LLaMA, GPT-2, MoE).
    Decoder,
    /// A bidirectional text encoder with task heads (BERT family).
    Encoder,
    /// An encoder and a decoder with cross-attention (T5, BART).
    EncoderDecoder,
    /// An image encoder (ViT, CLIP's vision tower).
    Vision,
    /// Images and text together (LLaVA, BLIP-2).
    Multimodal,
    /// A recurrent or state-space language model (Mamba, RWKV) or a hybrid.
    StateSpace,
}

impl ModelKind {
    /// What such a model is, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Decoder => "a decoder-only causal language model",
            Self::Encoder => "a text encoder",
            Self::EncoderDecoder => "an encoder-decoder model",
            Self::Vision => "a vision model",
            Self::Multimodal => "a multimodal model",
            Self::StateSpace => "a state-space language model",
        }
    }

    /// What it can be used for, as the commands and pipelines that take it.
    pub fn uses(self) -> &'static str {
        match self {
            Self::Decoder | Self::StateSpace => "text generation (`generate`, `chat`, `bench`)",
            Self::Encoder => {
                "embeddings (`embed`) and the `fill-mask`, `text-classification`, \
                 `token-classification`, `question-answering`, `zero-shot-classification` and \
                 `feature-extraction` pipelines"
            }
            Self::EncoderDecoder => "translation, summarization and text2text generation",
            Self::Vision => {
                "image classification and image embeddings (the `image-classification`, \
                 `zero-shot-image-classification` and `image-feature-extraction` pipelines, \
                 `embed --image`)"
            }
            Self::Multimodal => {
                "image-text-to-text generation (the `image-text-to-text` pipeline, `chat \
                 --image`) and text generation"
            }
        }
    }
}

/// How an architecture turns its config into a model.
#[derive(Debug, Clone, Copy)]
pub enum Builder {
    /// The config-driven decoder, through a preset that builds its spec.
    Decoder(fn(&Value) -> Result<DecoderSpec>),
    /// An encoder: its spec, and the layout of each task head it has.
    Encoder {
        spec: fn(&Value) -> Result<EncoderSpec>,
        head: fn(EncoderTask, &EncoderSpec) -> Option<HeadLayout>,
    },
    /// An encoder-decoder: builds the model of `model_type` from its config and weights.
    EncoderDecoder(SeqToSeqBuilder),
    /// A state-space or recurrent language model: builds it from its config and weights.
    StateSpace(StateSpaceBuilder),
    /// A language model that reads images (LLaVA).
    Multimodal(MultimodalBuilder),
    /// An image model, and the image-text model when the architecture is one (CLIP).
    Vision {
        image: ImageBuilder,
        image_text: Option<ImageTextBuilder>,
    },
}

/// Builds an image model of a `model_type` for a task, its classifier with `num_labels`
/// outputs, from its config and weights.
pub type ImageBuilder =
    fn(&str, &Value, VisionTask, usize, &Weights) -> Result<Box<dyn ImageModel>>;

/// Builds a vision-language model of a `model_type` from its config and weights.
pub type MultimodalBuilder =
    fn(&str, &Value, &Weights, &RuntimeOptions) -> Result<Box<dyn VisionLanguageModel>>;

/// Builds an image-text model of a `model_type` from its config and weights.
pub type ImageTextBuilder = fn(&str, &Value, &Weights) -> Result<Box<dyn ImageTextModel>>;

/// Builds a state-space language model of a `model_type` from its config and weights.
pub type StateSpaceBuilder =
    fn(&str, &Value, &Weights, &RuntimeOptions) -> Result<Box<dyn CausalLM>>;

fn mamba(
    model_type: &str,
    config: &Value,
    vb: &Weights,
    runtime: &RuntimeOptions,
) -> Result<Box<dyn CausalLM>> {
    let spec = ssm::MambaSpec::from_config(config)?;
    Ok(Box::new(ssm::MambaForCausalLM::new(
        model_type, &spec, vb, runtime,
    )?))
}

fn rwkv(
    model_type: &str,
    config: &Value,
    vb: &Weights,
    runtime: &RuntimeOptions,
) -> Result<Box<dyn CausalLM>> {
    let spec = ssm::RwkvSpec::from_config(config)?;
    Ok(Box::new(ssm::RwkvForCausalLM::new(
        model_type, &spec, vb, runtime,
    )?))
}

/// Builds an encoder-decoder of a `model_type` from its config and weights.
pub type SeqToSeqBuilder = fn(&str, &Value, &Weights) -> Result<Box<dyn EncoderDecoderLM>>;

fn t5(model_type: &str, config: &Value, vb: &Weights) -> Result<Box<dyn EncoderDecoderLM>> {
    let spec = T5Spec::from_config(config, model_type)?;
    Ok(Box::new(T5ForConditionalGeneration::new(
        model_type, &spec, vb,
    )?))
}

fn bart(model_type: &str, config: &Value, vb: &Weights) -> Result<Box<dyn EncoderDecoderLM>> {
    let spec = BartSpec::from_config(config, model_type)?;
    Ok(Box::new(BartForConditionalGeneration::new(
        model_type, &spec, vb,
    )?))
}

/// One supported architecture: one entry of [`ARCHITECTURES`].
#[derive(Debug, Clone, Copy)]
pub struct Architecture {
    /// config.json `model_type`.
    pub model_type: &'static str,
    /// What the checkpoint builds.
    pub builder: Builder,
    /// The GGUF architecture that maps to this model type, if any.
    pub gguf: Option<GgufDialect>,
    /// Checkpoint tensor names, for architectures that do not use their family's. GGUF
    /// files are mapped to the family's names by [`crate::gguf`] instead.
    pub tensor_names: Option<TensorNames>,
}

impl Architecture {
    const fn decoder(model_type: &'static str, spec: fn(&Value) -> Result<DecoderSpec>) -> Self {
        Self {
            model_type,
            builder: Builder::Decoder(spec),
            gguf: None,
            tensor_names: None,
        }
    }
    const fn encoder(
        model_type: &'static str,
        spec: fn(&Value) -> Result<EncoderSpec>,
        head: fn(EncoderTask, &EncoderSpec) -> Option<HeadLayout>,
    ) -> Self {
        Self {
            model_type,
            builder: Builder::Encoder { spec, head },
            gguf: None,
            tensor_names: None,
        }
    }
    const fn encoder_decoder(model_type: &'static str, build: SeqToSeqBuilder) -> Self {
        Self {
            model_type,
            builder: Builder::EncoderDecoder(build),
            gguf: None,
            tensor_names: None,
        }
    }
    const fn state_space(model_type: &'static str, build: StateSpaceBuilder) -> Self {
        Self {
            model_type,
            builder: Builder::StateSpace(build),
            gguf: None,
            tensor_names: None,
        }
    }
    const fn multimodal(model_type: &'static str, build: MultimodalBuilder) -> Self {
        Self {
            model_type,
            builder: Builder::Multimodal(build),
            gguf: None,
            tensor_names: None,
        }
    }
    const fn vision(
        model_type: &'static str,
        image: ImageBuilder,
        image_text: Option<ImageTextBuilder>,
    ) -> Self {
        Self {
            model_type,
            builder: Builder::Vision { image, image_text },
            gguf: None,
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

    /// What kind of model this architecture builds.
    pub fn kind(&self) -> ModelKind {
        match self.builder {
            Builder::Decoder(_) => ModelKind::Decoder,
            Builder::Encoder { .. } => ModelKind::Encoder,
            Builder::EncoderDecoder(_) => ModelKind::EncoderDecoder,
            Builder::StateSpace(_) => ModelKind::StateSpace,
            Builder::Vision { .. } => ModelKind::Vision,
            Builder::Multimodal(_) => ModelKind::Multimodal,
        }
    }

    /// Whether [`Self::causal_lm`] can build it.
    pub fn is_causal_lm(&self) -> bool {
        matches!(self.kind(), ModelKind::Decoder | ModelKind::StateSpace)
    }

    /// The error for using this architecture as something it is not: names it, what it
    /// is, what it can be used for, and what `wanted` needed.
    pub fn wrong_kind(&self, wanted: &str) -> Error {
        let kind = self.kind();
        Error::InvalidInput(format!(
            "`{}` is {}, not {wanted}; it can be used for {}",
            self.model_type,
            kind.describe(),
            kind.uses()
        ))
    }

    /// The decoder spec for `config`, if this is a decoder.
    pub fn decoder_spec(&self, config: &Value) -> Result<DecoderSpec> {
        match self.builder {
            Builder::Decoder(spec) => spec(config),
            _ => Err(self.wrong_kind("a decoder-only causal language model")),
        }
    }

    /// The encoder spec for `config`, if this is an encoder.
    pub fn encoder_spec(&self, config: &Value) -> Result<EncoderSpec> {
        match self.builder {
            Builder::Encoder { spec, .. } => spec(config),
            _ => Err(self.wrong_kind("a text encoder")),
        }
    }

    /// The layout of the head of `task`, if this encoder has one.
    pub fn encoder_head(&self, task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
        match self.builder {
            Builder::Encoder { head, .. } => head(task, spec),
            _ => None,
        }
    }

    /// Builds the causal language model of this architecture from `config` and `vb`, or
    /// says what the architecture is for when it is not one.
    pub fn causal_lm(
        &self,
        config: &Value,
        vb: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Box<dyn CausalLM>> {
        match self.builder {
            Builder::Decoder(spec) => Ok(Box::new(DecoderForCausalLM::new(
                self.model_type,
                &spec(config)?,
                vb,
                runtime,
            )?)),
            Builder::StateSpace(build) => build(self.model_type, config, vb, runtime),
            _ => Err(self.wrong_kind("a causal language model")),
        }
    }

    /// Builds the encoder-decoder of this architecture from `config` and `vb`, or says what
    /// the architecture is for when it is not one.
    pub fn encoder_decoder_lm(
        &self,
        config: &Value,
        vb: &Weights,
    ) -> Result<Box<dyn EncoderDecoderLM>> {
        match self.builder {
            Builder::EncoderDecoder(build) => build(self.model_type, config, vb),
            _ => Err(self.wrong_kind("an encoder-decoder model")),
        }
    }

    /// Checkpoint tensors a model of this architecture may leave unused (buffers
    /// transformers itself skips when loading), by name suffix.
    pub fn ignored_tensors(&self) -> &'static [&'static str] {
        match self.builder {
            Builder::Decoder(_) => crate::decoder::IGNORED_TENSORS,
            Builder::Encoder { .. } => crate::encoder::IGNORED_TENSORS,
            Builder::EncoderDecoder(_) => seq2seq::IGNORED_TENSORS,
            Builder::StateSpace(_) => ssm::IGNORED_TENSORS,
            Builder::Vision { .. } => vision::IGNORED_TENSORS,
            Builder::Multimodal(_) => crate::decoder::IGNORED_TENSORS,
        }
    }

    /// Builds the vision-language model of this architecture, or says what the architecture
    /// is for when it is not one.
    pub fn vision_language_model(
        &self,
        config: &Value,
        vb: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Box<dyn VisionLanguageModel>> {
        match self.builder {
            Builder::Multimodal(build) => build(self.model_type, config, vb, runtime),
            _ => Err(self.wrong_kind("a vision-language model (LLaVA)")),
        }
    }

    /// Builds the image model of this architecture for `task` (its classifier with
    /// `num_labels` outputs), or says what the architecture is for when it is not one.
    pub fn image_model(
        &self,
        config: &Value,
        task: VisionTask,
        num_labels: usize,
        vb: &Weights,
    ) -> Result<Box<dyn ImageModel>> {
        match self.builder {
            Builder::Vision { image, .. } => image(self.model_type, config, task, num_labels, vb),
            _ => Err(self.wrong_kind("an image model")),
        }
    }

    /// Whether this architecture embeds images and texts together (CLIP, SigLIP).
    pub fn is_image_text(&self) -> bool {
        matches!(
            self.builder,
            Builder::Vision {
                image_text: Some(_),
                ..
            }
        )
    }

    /// Builds the image-text model of this architecture, or says what the architecture is
    /// for when it is not one.
    pub fn image_text_model(
        &self,
        config: &Value,
        vb: &Weights,
    ) -> Result<Box<dyn ImageTextModel>> {
        match self.builder {
            Builder::Vision {
                image_text: Some(build),
                ..
            } => build(self.model_type, config, vb),
            _ => Err(self.wrong_kind("an image-text model (CLIP, SigLIP)")),
        }
    }
}

use gguf as g;
use presets::*;
use Architecture as A;
use GgufDialect as D;
use GgufNorms::UnitOffset;
use GgufQkLayout::Interleaved;
use GgufQkvLayout::Stacked;

/// llama.cpp's `deepseek2`, shared by DeepSeek-V2 and V3 (its hook tells them apart).
const DEEPSEEK2: GgufDialect = D::new("deepseek2")
    .block(g::names::DEEPSEEK2)
    .config(deepseek::from_gguf);

/// llama.cpp's `mamba`, shared by Mamba and Falcon-Mamba (its hook tells them apart).
const MAMBA: GgufDialect = D::new("mamba")
    .names(&gguf::MAMBA_NAMES)
    .config(ssm::mamba_from_gguf);

/// Every supported architecture.
pub const ARCHITECTURES: &[Architecture] = &[
    A::decoder("llama", llama::spec).gguf(D::new("llama").qk(Interleaved)),
    A::decoder("gpt2", gpt2::spec)
        .names(gpt2::tensor_name)
        .gguf(D::new("gpt2").keys(&g::GPT2_KEYS)),
    A::decoder("gpt_neo", gpt_neo::spec).names(gpt_neo::tensor_name),
    A::decoder("opt", opt::spec).names(opt::tensor_name),
    A::decoder("gpt_neox", gpt_neox::spec)
        .names(gpt_neox::tensor_name)
        .gguf(D::new("gptneox").qkv(Stacked)),
    A::decoder("gptj", gptj::spec)
        .names(gptj::tensor_name)
        .gguf(D::new("gptj").keys(&g::GPT2_KEYS)),
    A::decoder("mistral", mistral::spec),
    A::decoder("mixtral", mixtral::spec).gguf(D::new("llama").qk(Interleaved).experts()),
    A::decoder("phi", phi::spec)
        .names(phi::tensor_name)
        .gguf(D::new("phi2").block(g::names::PHI2)),
    A::decoder("phi3", phi3::spec).gguf(D::new("phi3").block(g::names::PHI3)),
    A::decoder("stablelm", stablelm::spec).gguf(
        D::new("stablelm")
            .block(g::names::STABLELM)
            .config(stablelm::from_gguf),
    ),
    A::decoder("qwen2", qwen2::spec).gguf(D::new("qwen2")),
    A::decoder("qwen3", qwen3::spec).gguf(D::new("qwen3")),
    A::decoder("qwen2_moe", qwen2_moe::spec).gguf(
        D::new("qwen2moe")
            .block(g::names::QWEN_MOE)
            .config(qwen2_moe::from_gguf),
    ),
    A::decoder("qwen3_moe", qwen3_moe::spec).gguf(
        D::new("qwen3moe")
            .block(g::names::QWEN_MOE)
            .config(qwen2_moe::from_gguf),
    ),
    A::decoder("olmo2", olmo2::spec).gguf(
        D::new("olmo2")
            .block(g::names::OLMO2)
            .config(olmo2::from_gguf),
    ),
    A::decoder("granite", granite::spec)
        .gguf(D::new("granite").qk(Interleaved).config(granite::from_gguf)),
    A::decoder("granitemoe", granite::moe_spec).gguf(
        D::new("granitemoe")
            .qk(Interleaved)
            .config(granite::from_gguf),
    ),
    A::decoder("starcoder2", starcoder2::spec)
        .names(starcoder2::tensor_name)
        .gguf(D::new("starcoder2").config(starcoder2::from_gguf)),
    A::decoder("smollm3", smollm3::spec)
        .gguf(D::new("smollm3").qk(Interleaved).config(smollm3::from_gguf)),
    A::decoder("gpt_oss", gpt_oss::spec).gguf(
        D::new("gpt-oss")
            .block(g::names::GPT_OSS)
            .config(gpt_oss::from_gguf),
    ),
    A::decoder("llama4_text", llama4::spec)
        .names(llama4::tensor_name)
        .gguf(
            D::new("llama4")
                .block(g::names::QWEN_MOE)
                .config(llama4::from_gguf),
        ),
    A::decoder("deepseek_v2", deepseek::spec_v2).gguf(DEEPSEEK2),
    A::decoder("deepseek_v3", deepseek::spec_v3).gguf(DEEPSEEK2),
    A::decoder("cohere", cohere::spec).gguf(D::new("command-r").config(cohere::from_gguf)),
    A::decoder("cohere2", cohere::spec2).gguf(D::new("cohere2").config(cohere::from_gguf)),
    A::decoder("falcon", falcon::spec)
        .names(falcon::tensor_name)
        .gguf(
            D::new("falcon")
                .qkv(Stacked)
                .keys(&g::FALCON_KEYS)
                .block_if("new_decoder_architecture", g::names::FALCON_NEW)
                .config(falcon::from_gguf),
        ),
    A::decoder("gemma", gemma::spec).gguf(D::new("gemma").norms(UnitOffset)),
    A::decoder("gemma2", gemma2::spec).gguf(
        D::new("gemma2")
            .norms(UnitOffset)
            .block(g::names::SANDWICH)
            .config(gemma2::from_gguf),
    ),
    A::decoder("gemma3_text", gemma3::spec).gguf(
        D::new("gemma3")
            .norms(UnitOffset)
            .block(g::names::SANDWICH)
            .config(gemma2::from_gguf),
    ),
    // Encoders.
    A::encoder("bert", enc::bert::spec, enc::bert::head).gguf(
        D::new("bert")
            .names(&gguf::BERT_NAMES)
            .config(enc::bert::from_gguf),
    ),
    A::encoder("roberta", enc::roberta::spec, enc::roberta::head),
    A::encoder("xlm-roberta", enc::roberta::spec, enc::roberta::head),
    A::encoder("camembert", enc::roberta::spec, enc::roberta::head),
    A::encoder("distilbert", enc::distilbert::spec, enc::distilbert::head)
        .names(enc::distilbert::tensor_name),
    A::encoder("electra", enc::electra::spec, enc::electra::head),
    A::encoder("deberta-v2", deberta::spec, deberta::head).names(deberta::tensor_name),
    A::encoder("modernbert", modernbert::spec, modernbert::head),
    A::encoder("albert", enc::albert::spec, enc::albert::head).names(enc::albert::tensor_name),
    A::encoder("nomic_bert", nomic_bert::spec, nomic_bert::head).gguf(
        D::new("nomic-bert")
            .names(&gguf::NOMIC_BERT_NAMES)
            .config(enc::bert::from_gguf),
    ),
    // Encoder-decoders.
    A::encoder_decoder("t5", t5).gguf(
        D::new("t5")
            .renamed(seq2seq::t5::gguf_tensor_name)
            .config(seq2seq::t5::from_gguf),
    ),
    // llama.cpp's encoder-only T5 files (a `T5EncoderModel` converted): no config.json names
    // this type; `load_t5_encoder` loads them.
    A::encoder_decoder("t5encoder", t5).gguf(
        D::new("t5encoder")
            .renamed(seq2seq::t5::gguf_tensor_name)
            .config(seq2seq::t5::from_gguf),
    ),
    A::encoder_decoder("mt5", t5),
    A::encoder_decoder("umt5", t5),
    A::encoder_decoder("bart", bart),
    A::encoder_decoder("mbart", bart),
    A::encoder_decoder("marian", bart),
    // State-space models.
    A::state_space("mamba", mamba).gguf(MAMBA),
    A::state_space("rwkv", rwkv),
    A::state_space("falcon_mamba", mamba).gguf(MAMBA),
    A::state_space("mamba2", mamba).gguf(
        D::new("mamba2")
            .names(&gguf::MAMBA2_NAMES)
            .config(ssm::mamba2_from_gguf),
    ),
    A::encoder_decoder("pegasus", bart),
    // Vision and image-text models.
    A::vision("vit", vision::vit, None),
    A::vision("deit", vision::vit, None),
    A::vision("clip", vision::clip_vision, Some(vision::clip)),
    A::vision("clip_vision_model", vision::clip_vision, None),
    A::vision("clip_text_model", vision::clip_vision, Some(vision::clip)),
    A::vision("siglip", vision::siglip_vision, Some(vision::siglip)),
    A::vision("siglip_vision_model", vision::siglip_vision, None),
    // Vision-language models.
    A::multimodal("llava", multimodal::llava),
    A::multimodal("blip-2", multimodal::blip2).names(multimodal::language_model_names),
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

/// The architecture for a GGUF `general.architecture`, with or without experts.
pub fn by_gguf_architecture(name: &str, experts: bool) -> Result<&'static Architecture> {
    // `llama` files are LLaMA or, with experts, Mixtral; the other architectures name one
    // model each, with or without experts.
    let by_name = |exact: bool| {
        ARCHITECTURES.iter().find(|a| {
            a.gguf
                .is_some_and(|g| g.arch == name && (!exact || g.experts == experts))
        })
    };
    by_name(true)
        .or_else(|| by_name(false))
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
