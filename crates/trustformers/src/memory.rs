//! Checkpoints held in memory. WebAssembly has no file system: there the files of a
//! checkpoint arrive as bytes (`fetch` in a browser, `fs` in Node) and are handed over by
//! their path inside the checkpoint, as the Hub lists them (`config.json`,
//! `model.safetensors`, `tokenizer.json`, `1_Pooling/config.json`, ...), or as one GGUF file.

use crate::auto::ModelConfig;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trustformers_core::config::json_from_bytes;
use trustformers_core::gguf::GgufFile;
use trustformers_core::weights::SafetensorsSource;
use trustformers_core::{Error, Result};
use trustformers_generate::GenerationConfig;
use trustformers_tokenizers::{AutoTokenizer, Tokenizer};

/// The files of one checkpoint, by their path inside it (`/`-separated).
pub struct MemoryCheckpoint {
    /// Stands for the checkpoint's directory in messages.
    name: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
}

impl MemoryCheckpoint {
    /// `files`: path inside the checkpoint (`/`-separated; `.` and `..` parts are dropped)
    /// -> the file's bytes. `name` stands for the checkpoint's directory in messages.
    pub fn new(name: impl Into<PathBuf>, files: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            // `./config.json` and `config.json` name the same file.
            files: files
                .into_iter()
                .map(|(path, bytes)| (key(Path::new(&path)), bytes))
                .collect(),
        }
    }

    /// The name messages give the file at `rel`.
    pub fn path_of(&self, rel: &Path) -> PathBuf {
        self.name.join(rel)
    }

    /// The bytes of the file at `rel`, if the checkpoint has it.
    pub fn bytes(&self, rel: &Path) -> Option<&[u8]> {
        self.files.get(&key(rel)).map(Vec::as_slice)
    }

    /// The JSON file at `rel`, parsed; `None` if the checkpoint has no such file.
    pub fn json(&self, rel: &Path) -> Result<Option<Value>> {
        self.bytes(rel)
            .map(|bytes| json_from_bytes(&self.path_of(rel), bytes))
            .transpose()
    }

    /// Whether the checkpoint is one GGUF file.
    pub fn is_gguf(&self) -> bool {
        self.gguf_name().is_some()
    }

    /// The only `.gguf` file, when the checkpoint is one.
    fn gguf_name(&self) -> Option<String> {
        let mut ggufs = self.files.keys().filter(|k| k.ends_with(".gguf"));
        match (ggufs.next(), ggufs.next()) {
            (Some(name), None) => Some(name.clone()),
            _ => None,
        }
    }

    /// The model in the directory `rel` (`""`: the checkpoint's root): its config.json with
    /// its `model.safetensors` (the weights leave this checkpoint: they are not copied), or
    /// the checkpoint's one GGUF file.
    pub fn model_config(&mut self, rel: &Path) -> Result<ModelConfig> {
        if let Some(name) = self.gguf_name() {
            let bytes = self.files.remove(&name).unwrap_or_default();
            let file = GgufFile::from_bytes(self.name.join(&name), bytes)?;
            return ModelConfig::from_gguf(Arc::new(file));
        }
        let json = self
            .json(&rel.join("config.json"))?
            .ok_or_else(|| self.missing(&rel.join("config.json")))?;
        let tensors = self.take_safetensors(rel)?;
        ModelConfig::from_memory(json, Arc::new(tensors))
    }

    /// The `model.safetensors` in the directory `rel`, taken out of the checkpoint.
    pub fn take_safetensors(&mut self, rel: &Path) -> Result<SafetensorsSource> {
        let rel = rel.join("model.safetensors");
        let bytes = self
            .files
            .remove(&key(&rel))
            .ok_or_else(|| self.missing(&rel))?;
        SafetensorsSource::from_bytes(vec![(self.path_of(&rel), bytes)])
    }

    /// The tokenizer of the model in the directory `rel`, from its tokenizer.json and
    /// config files (a GGUF file's tokenizer comes from its parsed metadata:
    /// [`AutoTokenizer::from_gguf`] on [`ModelConfig::gguf`]).
    pub fn tokenizer(&self, rel: &Path) -> Result<Tokenizer> {
        AutoTokenizer::from_files(&self.path_of(rel), &|name| {
            Ok(self.bytes(&rel.join(name)).map(<[u8]>::to_vec))
        })
    }

    /// The checkpoint's generation_config.json (defaults without one), with the tokenizer's
    /// EOS when it names none, as [`crate::session::generation_defaults`].
    pub fn generation_config(&self, tokenizer: &Tokenizer) -> Result<GenerationConfig> {
        let mut generation = GenerationConfig::default();
        if let Some(json) = self.json(Path::new("generation_config.json"))? {
            generation.apply_json(&json)?;
        }
        if generation.eos_token_id.is_empty() {
            generation.eos_token_id.extend(tokenizer.eos_token_id());
        }
        Ok(generation)
    }

    fn missing(&self, rel: &Path) -> Error {
        Error::io(
            self.path_of(rel),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the checkpoint handed over in memory has no such file",
            ),
        )
    }
}

/// The map key of a path inside the checkpoint: `/`-separated, no leading `./`.
fn key(rel: &Path) -> String {
    rel.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}
