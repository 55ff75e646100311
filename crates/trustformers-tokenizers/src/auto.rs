//! `AutoTokenizer`: finds the tokenizer files of a checkpoint in transformers' order of
//! preference and builds the same pipeline transformers builds from them.

use crate::config::TokenizerConfig;
use crate::formats::{self, vocab_files};
use crate::models::Pipeline;
use crate::tokenizer::Tokenizer;
use serde_json::Value;
use std::path::Path;
use trustformers_core::config::{checkpoint_kind, read_json, read_small_file, CheckpointKind};
use trustformers_core::gguf::GgufFile;
use trustformers_core::memory::release_free_memory;
use trustformers_core::{Error, Result};

/// Loads tokenizers from checkpoint directories and GGUF files.
pub struct AutoTokenizer;

impl AutoTokenizer {
    /// `path` is a directory holding `tokenizer.json`, `vocab.txt`, or `vocab.json` +
    /// `merges.txt` (with the optional tokenizer_config.json, special_tokens_map.json,
    /// added_tokens.json, chat_template.jinja), or a `.gguf` file.
    pub fn from_pretrained(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        if checkpoint_kind(path)? == CheckpointKind::Gguf {
            return Self::from_gguf(&GgufFile::open(path)?);
        }
        let mut config = TokenizerConfig::from_dir(path)?;
        let config_path = path.join("tokenizer_config.json");
        let raw = if config_path.is_file() {
            read_json(&config_path)?
        } else {
            Value::Object(Default::default())
        };
        let tokenizer_json = path.join("tokenizer.json");
        let mut inner = if tokenizer_json.is_file() {
            let bytes = read_small_file(&tokenizer_json)?;
            with_tokenizer_json(&tokenizer_json, &bytes, &mut config)?
        } else if path.join("source.spm").is_file()
            || raw.get("tokenizer_class").and_then(Value::as_str) == Some("MarianTokenizer")
        {
            formats::sentencepiece::marian(path, &mut config)?
        } else if path.join("tokenizer.model").is_file() {
            formats::sentencepiece::from_model_file(path, &mut config, &raw)?
        } else if path.join("vocab.txt").is_file() {
            vocab_files::wordpiece(path, &mut config, &raw)?
        } else if path.join("vocab.json").is_file() && path.join("merges.txt").is_file() {
            vocab_files::gpt2(path, &mut config, &raw)?
        } else {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no tokenizer.json, tokenizer.model, vocab.txt, or vocab.json + merges.txt in this directory; \
                     copy the checkpoint's tokenizer files next to config.json, or use a .gguf file, which holds its tokenizer",
                ),
            ));
        };
        formats::apply_bos_eos_template(&mut inner, &config)?;
        let tokenizer = Tokenizer::new(inner, config)?;
        release_free_memory();
        Ok(tokenizer)
    }

    /// A tokenizer from files held in memory (WebAssembly has no file system): `read(name)`
    /// gives the bytes of the checkpoint's file `name`, `None` when it has none.
    /// `tokenizer.json` is required; tokenizer_config.json, special_tokens_map.json,
    /// added_tokens.json and chat_template.jinja are applied when present, as
    /// [`Self::from_pretrained`] applies them. `dir` names the files in messages.
    pub fn from_files(
        dir: &Path,
        read: &dyn Fn(&str) -> Result<Option<Vec<u8>>>,
    ) -> Result<Tokenizer> {
        let mut config = TokenizerConfig::from_files(dir, read)?;
        let tokenizer_json = dir.join("tokenizer.json");
        let bytes = read("tokenizer.json")?.ok_or_else(|| {
            Error::io(
                &tokenizer_json,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "a tokenizer held in memory needs its tokenizer.json",
                ),
            )
        })?;
        let mut inner = with_tokenizer_json(&tokenizer_json, &bytes, &mut config)?;
        formats::apply_bos_eos_template(&mut inner, &config)?;
        Tokenizer::new(inner, config)
    }

    /// Builds the tokenizer described by a GGUF file's metadata. What building it frees is
    /// handed back to the system (see [`release_free_memory`]), so that it does not stay
    /// resident beside the weights loaded next.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let (inner, config) = formats::gguf::from_gguf(file)?;
        let tokenizer = Tokenizer::new(inner, config)?;
        release_free_memory();
        Ok(tokenizer)
    }

    /// Wraps a `tokenizers` pipeline read from tokenizer.json bytes, with default settings.
    pub fn from_tokenizer_json(bytes: &[u8]) -> Result<Tokenizer> {
        let inner = parse_tokenizer_json(bytes).map_err(Error::Tokenizer)?;
        Tokenizer::new(inner, TokenizerConfig::default())
    }
}

/// The pipeline of a tokenizer.json (read from `path`) with `config`'s special tokens added.
fn with_tokenizer_json(
    path: &Path,
    bytes: &[u8],
    config: &mut TokenizerConfig,
) -> Result<Pipeline> {
    let mut t = parse_tokenizer_json(bytes)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
    // transformers ignores add_bos_token/add_eos_token when a tokenizer.json exists: its
    // post-processor already says what to add.
    config.add_bos_token = None;
    config.add_eos_token = None;
    formats::add_special_tokens(&mut t, config)?;
    Ok(t)
}

/// Reads a tokenizer.json. The bytes are parsed as JSON first and the pipeline is built from
/// that value: `tokenizers` panics (`expect("Helper")`) on a syntax error inside a
/// `decoder`, which a value can no longer contain.
fn parse_tokenizer_json(bytes: &[u8]) -> std::result::Result<Pipeline, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    check_bpe_merges(&value)?;
    // `tokenizers` is third-party code fed untrusted input: should it still panic, the
    // caller gets an error.
    std::panic::catch_unwind(|| serde_json::from_value(value).map_err(|e| e.to_string()))
        .unwrap_or_else(|_| Err("the tokenizers crate failed on this tokenizer.json".into()))
}

/// `tokenizers` builds each BPE merge's token in a buffer as long as the longest vocabulary
/// token, and panics on a merge of two vocabulary tokens that is longer (or whose second
/// part is shorter than the continuing-subword prefix it drops). Such a merge cannot name a
/// vocabulary token, so it is an error here, before the crate sees it.
fn check_bpe_merges(value: &Value) -> std::result::Result<(), String> {
    let Some(model) = value.get("model") else {
        return Ok(());
    };
    let (Some(vocab), Some(merges)) = (
        model.get("vocab").and_then(Value::as_object),
        model.get("merges").and_then(Value::as_array),
    ) else {
        return Ok(());
    };
    let longest = vocab.keys().map(String::len).max().unwrap_or(0);
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    for (i, merge) in merges.iter().enumerate() {
        // Either "a b" or ["a", "b"]; anything else `tokenizers` rejects itself.
        let pair = match merge {
            Value::String(s) => s.split_once(' '),
            Value::Array(p) => p
                .first()
                .and_then(Value::as_str)
                .zip(p.get(1).and_then(Value::as_str)),
            _ => None,
        };
        let Some((a, b)) = pair else { continue };
        if b.len() < prefix || a.len() + (b.len() - prefix) > longest {
            return Err(format!(
                "BPE merge {i} (`{a}` + `{b}`) makes a token longer than any in the vocabulary"
            ));
        }
    }
    Ok(())
}
