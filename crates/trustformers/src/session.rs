//! What running a language model takes besides the model: its tokenizer, its generation
//! defaults and its chat template. [`LoadedModel`] is loaded once and shared (the CLI, a
//! server, the bindings); [`ChatSession`] is one conversation with it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use trustformers::{ChatSession, LoadOptions, LoadedModel};
//! # fn main() -> trustformers::Result<()> {
//! let loaded = Arc::new(LoadedModel::load(Some("smollm2-135m-instruct"), &LoadOptions::default())?);
//! let mut config = loaded.generation.clone();
//! config.max_new_tokens = 40;
//! let ids = loaded.prompt_ids("Once upon a time", true)?; // true: plain text, no chat template
//! let out = loaded.generate_text(&ids, &config, |piece| { print!("{piece}"); true })?;
//! let mut chat = ChatSession::new(loaded.clone(), Some("Answer in one word.".into()))?;
//! let reply = chat.send("What is 2 + 2?", &config, |_| true)?;
//! # let _ = (out, reply);
//! # Ok(()) }
//! ```

use crate::auto::{AutoConfig, LoadOptions, ModelConfig};
use crate::memory::MemoryCheckpoint;
use crate::resolve::resolve_model;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trustformers_core::memory::release_free_memory;
use trustformers_core::{Error, Result};
use trustformers_generate::{generate_text, GenerationConfig, TextOutput};
use trustformers_models::CausalLM;
use trustformers_tokenizers::chat::{ChatOptions, Message};
use trustformers_tokenizers::{AutoTokenizer, Tokenizer};

/// A causal LM with its tokenizer and generation defaults, ready to generate.
pub struct LoadedModel {
    /// Where the checkpoint was found (a directory or a `.gguf` file).
    pub path: PathBuf,
    pub model: Arc<dyn CausalLM>,
    pub tokenizer: Tokenizer,
    /// generation_config.json of a checkpoint directory, with the tokenizer's EOS when it
    /// names none (transformers' fallback).
    pub generation: GenerationConfig,
}

/// A checkpoint's generation settings: its directory's generation_config.json (defaults for
/// a GGUF file), with the tokenizer's EOS when it names none (transformers' fallback).
pub fn generation_defaults(path: &Path, tokenizer: &Tokenizer) -> Result<GenerationConfig> {
    let mut generation = if path.is_dir() {
        GenerationConfig::from_dir(path)?
    } else {
        GenerationConfig::default()
    };
    if generation.eos_token_id.is_empty() {
        generation.eos_token_id.extend(tokenizer.eos_token_id());
    }
    Ok(generation)
}

impl LoadedModel {
    /// Resolves `model` (a path, a Hub repo id or an alias; `None` for the default model,
    /// see [`resolve_model`]) and loads it.
    pub fn load(model: Option<&str>, opts: &LoadOptions) -> Result<Self> {
        opts.validate()?;
        Self::from_path(resolve_model(model)?, opts)
    }

    /// Loads the checkpoint directory or GGUF file at `path`.
    pub fn from_path(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        opts.validate()?;
        // The architecture first, so a checkpoint of another kind is named as such before
        // anything large is read.
        let config = AutoConfig::from_pretrained(&path)?;
        let (model, tokenizer) =
            Self::model_and_tokenizer(config, opts, || AutoTokenizer::from_pretrained(&path))?;
        let generation = generation_defaults(&path, &tokenizer)?;
        Ok(Self {
            path,
            model,
            tokenizer,
            generation,
        })
    }

    /// Loads a checkpoint held in memory: its files by their path inside it (config.json,
    /// model.safetensors, tokenizer.json, generation_config.json, ...), or one GGUF file.
    /// `path` of the result is the checkpoint's name.
    pub fn from_memory(mut files: MemoryCheckpoint, opts: &LoadOptions) -> Result<Self> {
        opts.validate()?;
        let config = files.model_config(Path::new(""))?;
        let (model, tokenizer) =
            Self::model_and_tokenizer(config, opts, || files.tokenizer(Path::new("")))?;
        let generation = files.generation_config(&tokenizer)?;
        Ok(Self {
            path: files.path_of(Path::new("")),
            model,
            tokenizer,
            generation,
        })
    }

    /// The causal LM of `config` and its tokenizer: a GGUF file's from the metadata already
    /// parsed (not a second parse), otherwise `tokenizer()`. Other kinds of model are
    /// refused before anything large is read.
    fn model_and_tokenizer(
        config: ModelConfig,
        opts: &LoadOptions,
        tokenizer: impl FnOnce() -> Result<Tokenizer>,
    ) -> Result<(Arc<dyn CausalLM>, Tokenizer)> {
        if !config.architecture.is_causal_lm() {
            return Err(config
                .architecture
                .wrong_kind("a causal language model, which text generation needs"));
        }
        let (tokenizer, model) = match config.gguf() {
            // A GGUF file's tokenizer (the compact one: tens of MiB while it is built) on a
            // second thread while this one copies the weights out.
            Some(file) => Self::beside(
                || AutoTokenizer::from_gguf(file),
                || config.load_causal_lm(opts),
            )?,
            // Other tokenizers before the weights: what their construction frees is handed
            // back before the weights arrive, so the two peaks do not add up.
            None => {
                let tokenizer = tokenizer()?;
                (tokenizer, config.load_causal_lm(opts)?)
            }
        };
        drop(config);
        // A GGUF file's parsed metadata (its whole vocabulary) has just been freed.
        release_free_memory();
        Ok((Arc::from(model), tokenizer))
    }

    /// `first` (a tokenizer) on a scoped thread while `second` runs on this one (one after
    /// the other in WebAssembly, which has no threads).
    fn beside<A: Send, B>(
        first: impl FnOnce() -> Result<A> + Send,
        second: impl FnOnce() -> Result<B>,
    ) -> Result<(A, B)> {
        #[cfg(not(target_family = "wasm"))]
        {
            std::thread::scope(|s| {
                let handle = std::thread::Builder::new()
                    .name("tokenizer".into())
                    .spawn_scoped(s, first)
                    .map_err(|e| Error::Tokenizer(format!("no thread to build it on: {e}")))?;
                let b = second();
                let a = handle
                    .join()
                    .map_err(|_| Error::Tokenizer("its thread panicked".into()))?;
                Ok((a?, b?))
            })
        }
        #[cfg(target_family = "wasm")]
        {
            let a = first()?;
            Ok((a, second()?))
        }
    }

    /// Whether the tokenizer has a chat template (an instruct model).
    pub fn has_chat_template(&self) -> bool {
        self.tokenizer.config().chat_template.is_some()
    }

    /// The longest sequence the model takes, prompt and generated tokens together.
    pub fn context_size(&self) -> usize {
        self.model.max_position_embeddings()
    }

    /// A prompt's token ids: through the chat template as a user message when the model has
    /// one (unless `raw`), as plain text with the tokenizer's special tokens otherwise.
    pub fn prompt_ids(&self, text: &str, raw: bool) -> Result<Vec<u32>> {
        if raw || !self.has_chat_template() {
            return self.tokenizer.encode_ids(text, true);
        }
        let opts = ChatOptions {
            add_generation_prompt: true,
            ..Default::default()
        };
        let prompt = self
            .tokenizer
            .apply_chat_template(&[Message::new("user", text.to_owned())], &opts)?;
        // A chat template writes its own special tokens.
        self.tokenizer.encode_ids(&prompt, false)
    }

    /// Generates text after `ids`, streaming it to `on_text` (which returns `false` to stop).
    pub fn generate_text(
        &self,
        ids: &[u32],
        config: &GenerationConfig,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<TextOutput> {
        generate_text(&*self.model, &self.tokenizer, ids, config, on_text)
    }
}

/// One conversation with a [`LoadedModel`] through its chat template: the system message,
/// the turns so far, and the rule that drops the oldest turns when the context fills up.
pub struct ChatSession {
    model: Arc<LoadedModel>,
    system: Option<Message>,
    turns: Vec<Message>,
}

impl ChatSession {
    /// A new conversation, opened by `system` when given. Fails for a model without a chat
    /// template.
    pub fn new(model: Arc<LoadedModel>, system: Option<String>) -> Result<Self> {
        if !model.has_chat_template() {
            return Err(Error::InvalidInput(format!(
                "{} has no chat template; continue plain text with `generate` instead",
                model.path.display()
            )));
        }
        Ok(Self {
            model,
            system: system.map(|s| Message::new("system", s)),
            turns: Vec::new(),
        })
    }

    /// The model the conversation is with.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// The messages so far, the system message first.
    pub fn messages(&self) -> Vec<Message> {
        self.system.iter().chain(&self.turns).cloned().collect()
    }

    /// Forgets every turn; the system message stays.
    pub fn reset(&mut self) {
        self.turns.clear();
    }

    /// Token ids of the conversation ending in an assistant header, dropping the oldest
    /// exchanges until the prompt and `max_new_tokens` fit the model's context.
    fn prompt(&mut self, max_new_tokens: usize) -> Result<Vec<u32>> {
        let tok = &self.model.tokenizer;
        let context = self.model.context_size();
        let opts = ChatOptions {
            add_generation_prompt: true,
            ..Default::default()
        };
        loop {
            let text = tok.apply_chat_template(&self.messages(), &opts)?;
            let ids = tok.encode_ids(&text, false)?;
            if ids.len() + max_new_tokens <= context {
                return Ok(ids);
            }
            if self.turns.len() <= 1 {
                return Err(Error::InvalidInput(format!(
                    "the message ({} tokens with the template) and max_new_tokens \
                     ({max_new_tokens}) do not fit the model's context of {context} tokens; \
                     send a shorter message or lower max_new_tokens",
                    ids.len()
                )));
            }
            // Forget the oldest user message and the reply to it.
            self.turns.drain(..2.min(self.turns.len() - 1));
        }
    }

    /// Sends a user message and streams the reply to `on_text` (which returns `false` to
    /// stop); the reply joins the conversation. A message that cannot fit is refused and
    /// left out of the conversation.
    pub fn send(
        &mut self,
        text: &str,
        config: &GenerationConfig,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<TextOutput> {
        if config.num_beams > 1 || config.num_return_sequences > 1 {
            return Err(Error::config(
                "num_beams",
                "a chat streams one reply: num_beams and num_return_sequences must be 1",
            ));
        }
        self.turns.push(Message::new("user", text.to_owned()));
        let ids = match self.prompt(config.max_new_tokens) {
            Ok(ids) => ids,
            Err(e) => {
                self.turns.pop();
                return Err(e);
            }
        };
        let out = self.model.generate_text(&ids, config, on_text)?;
        self.turns
            .push(Message::new("assistant", out.text.trim().to_owned()));
        Ok(out)
    }
}
