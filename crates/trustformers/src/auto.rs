//! `AutoConfig`, `AutoModel`, `AutoModelForCausalLM`: find the files, read the config, pick
//! the architecture from the registry, load the weights strictly.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trustformers_core::config::{checkpoint_kind, CheckpointKind};
use trustformers_core::gguf::GgufFile;
use trustformers_core::memory::release_free_memory;
use trustformers_core::{config, DType, Device, Error, Result, Weights};
use trustformers_models::decoder::IGNORED_TENSORS;
use trustformers_models::registry::{self, Architecture};
use trustformers_models::{gguf, DecoderForCausalLM, DecoderModel, DecoderSpec};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype. `None`: f32, and GGUF weights stay quantized. `Some(f32)` on a GGUF
    /// file dequantizes every weight instead.
    pub dtype: Option<DType>,
    pub device: Device,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: None,
            device: Device::Cpu,
        }
    }
}

enum Files {
    Dir(PathBuf),
    Gguf(Arc<GgufFile>),
}

/// A parsed model configuration and the checkpoint it belongs to.
pub struct ModelConfig {
    /// The config.json contents (for GGUF, the equivalent built from its metadata).
    pub json: Value,
    /// The registered architecture for `model_type`.
    pub architecture: &'static Architecture,
    files: Files,
}

impl ModelConfig {
    /// config.json's `model_type`.
    pub fn model_type(&self) -> &'static str {
        self.architecture.model_type
    }

    /// The decoder spec with every default applied.
    pub fn decoder_spec(&self) -> Result<DecoderSpec> {
        (self.architecture.decoder_spec)(&self.json)
    }

    fn weights(&self, opts: &LoadOptions) -> Result<Weights> {
        let dtype = opts.dtype.unwrap_or(DType::F32);
        match &self.files {
            Files::Dir(dir) => {
                let source = trustformers_core::weights::open_dir(dir)?;
                let weights = Weights::new(source, dtype, opts.device.clone(), false);
                match self.architecture.tensor_names {
                    Some(names) => weights.with_names(names),
                    None => Ok(weights),
                }
            }
            // GGUF tensors are renamed to the canonical names already.
            Files::Gguf(file) => {
                let source = gguf::gguf_source(file.clone(), self.architecture, &self.json)?;
                Ok(Weights::new(
                    Box::new(source),
                    dtype,
                    opts.device.clone(),
                    opts.dtype.is_none(),
                ))
            }
        }
    }
}

/// Reads a model's configuration.
pub struct AutoConfig;

impl AutoConfig {
    /// `path` is a checkpoint directory (with config.json) or a `.gguf` file.
    pub fn from_pretrained(path: impl AsRef<Path>) -> Result<ModelConfig> {
        let path = path.as_ref();
        if checkpoint_kind(path)? == CheckpointKind::Gguf {
            let file = Arc::new(GgufFile::open(path)?);
            let (architecture, json) = gguf::config_from_gguf(&file)?;
            return Ok(ModelConfig {
                json,
                architecture,
                files: Files::Gguf(file),
            });
        }
        let config_path = path.join("config.json");
        let json = config::read_json(&config_path)?;
        let model_type = json
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::config(
                    "model_type",
                    format!("missing from {}", config_path.display()),
                )
            })?;
        Ok(ModelConfig {
            architecture: registry::by_model_type(model_type)?,
            json,
            files: Files::Dir(path.to_path_buf()),
        })
    }
}

/// Loads the base model (hidden states, no head).
pub struct AutoModel;

impl AutoModel {
    /// Loads the base model from a checkpoint directory or GGUF file. Accepts checkpoints
    /// saved from the base model or from a model with a head (whose head is skipped, as
    /// transformers does).
    pub fn from_pretrained(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<DecoderModel> {
        let config = AutoConfig::from_pretrained(path)?;
        let spec = config.decoder_spec()?;
        let vb = config.weights(opts)?;
        let with_head = vb.contains("model.embed_tokens.weight");
        let model = DecoderModel::new(
            &spec,
            &if with_head {
                vb.pp("model")
            } else {
                vb.clone()
            },
        )?;
        let mut ignored = IGNORED_TENSORS.to_vec();
        if with_head {
            ignored.push("lm_head.weight");
        }
        vb.finish(&ignored)?;
        Ok(model)
    }
}

/// Loads a model with its language-modelling head.
pub struct AutoModelForCausalLM;

impl AutoModelForCausalLM {
    /// Loads a causal LM from a checkpoint directory or GGUF file.
    pub fn from_pretrained(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<DecoderForCausalLM> {
        let model = Self::from_config(&AutoConfig::from_pretrained(path)?, opts)?;
        // A GGUF file's parsed metadata (its whole vocabulary) has just been freed.
        release_free_memory();
        Ok(model)
    }

    /// Loads the weights for an already-read config.
    pub fn from_config(config: &ModelConfig, opts: &LoadOptions) -> Result<DecoderForCausalLM> {
        let spec = config.decoder_spec()?;
        let vb = config.weights(opts)?;
        let model = DecoderForCausalLM::new(&spec, &vb)?;
        vb.finish(IGNORED_TENSORS)?;
        Ok(model)
    }
}
