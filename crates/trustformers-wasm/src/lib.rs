//! TrustformeRS in WebAssembly: tokenizers, sentence embeddings and text generation for
//! Node and the browser, through wasm-bindgen.
//!
//! There is no file system in `wasm32-unknown-unknown`: a checkpoint arrives as bytes, either
//! one GGUF file or the files of a Hub checkpoint by their path inside it (`config.json`,
//! `model.safetensors`, `tokenizer.json`, `1_Pooling/config.json`, ...), fetched by the page
//! or read by Node. Everything else is the native crates' code: the same loaders, tokenizer,
//! models and generation loop, so the numbers are the native build's.
//!
//! Errors come back as JavaScript exceptions (`Error` with the Rust message). The build
//! aborts on panic (WebAssembly has no unwinding), so nothing reachable from JavaScript
//! panics on bad input: every argument is checked and every failure is a `Result`.

use js_sys::{Function, Object, Uint8Array};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use trustformers::pipelines::sentence_embeddings::{EmbedParams, SentenceTransformer};
use trustformers::{GenerationConfig, LoadOptions, LoadedModel, MemoryCheckpoint};
use trustformers_core::gguf::GgufFile;
use trustformers_generate::FinishReason;
use trustformers_tokenizers::chat::{ChatOptions, Message};
use trustformers_tokenizers::AutoTokenizer;
use wasm_bindgen::prelude::*;

/// The largest file handed over: WebAssembly's memory is 4 GiB in all, and the model built
/// from a file needs about as much again.
const MAX_FILE_BYTES: u32 = 1 << 31;

/// A Rust error as a JavaScript `Error` carrying its message.
fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

type JsResult<T> = Result<T, JsError>;

/// Copies a JavaScript byte array into this module's memory, refusing (rather than aborting
/// on) an array the memory cannot hold.
fn bytes_of(array: &Uint8Array, what: &str) -> JsResult<Vec<u8>> {
    let len = array.length();
    if len > MAX_FILE_BYTES {
        return Err(js_error(format!(
            "{what}: {len} bytes is more than WebAssembly's memory can load (at most {MAX_FILE_BYTES})"
        )));
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len as usize).map_err(|_| {
        js_error(format!(
            "{what}: out of memory copying {len} bytes into WebAssembly's memory"
        ))
    })?;
    bytes.resize(len as usize, 0);
    array.copy_to(&mut bytes);
    Ok(bytes)
}

/// Checks that `bytes` more can be allocated before a model of about that size is built
/// from them: a failed allocation inside the model code would abort the module.
fn ensure_room(bytes: usize, what: &str) -> JsResult<()> {
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).map_err(|_| {
        js_error(format!(
            "{what}: out of memory: the model needs about {} MB more than WebAssembly's 4 GiB memory has left",
            bytes >> 20
        ))
    })
}

/// The files of a checkpoint from a JavaScript object mapping each file's path inside the
/// checkpoint to its bytes (`Uint8Array`).
fn checkpoint_files(files: &Object) -> JsResult<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for entry in Object::entries(files).iter() {
        let pair = js_sys::Array::from(&entry);
        let name = pair
            .get(0)
            .as_string()
            .ok_or_else(|| js_error("checkpoint files: a key is not a string"))?;
        let value = pair.get(1);
        let array = value.dyn_ref::<Uint8Array>().ok_or_else(|| {
            js_error(format!(
                "checkpoint file `{name}`: expected a Uint8Array of the file's bytes"
            ))
        })?;
        let bytes = bytes_of(array, &name)?;
        out.insert(name, bytes);
    }
    if out.is_empty() {
        return Err(js_error("checkpoint files: no files given"));
    }
    Ok(out)
}

/// A checkpoint in memory: one `.gguf` file's bytes, or an object of files.
fn checkpoint(name: &str, model: &JsValue) -> JsResult<MemoryCheckpoint> {
    let files = if let Some(array) = model.dyn_ref::<Uint8Array>() {
        let file = if name.ends_with(".gguf") {
            name.to_owned()
        } else {
            format!("{name}.gguf")
        };
        BTreeMap::from([(file, bytes_of(array, name)?)])
    } else if let Some(object) = model.dyn_ref::<Object>() {
        checkpoint_files(object)?
    } else {
        return Err(js_error(format!(
            "{name}: expected the bytes of a GGUF file (Uint8Array) or an object of checkpoint files"
        )));
    };
    let total: usize = files.values().map(Vec::len).sum();
    ensure_room(total, name)?;
    Ok(MemoryCheckpoint::new(name, files))
}

/// A JSON value from JavaScript (an object or array), through `JSON.stringify`.
fn json_of(value: &JsValue, what: &str) -> JsResult<Value> {
    if value.is_undefined() || value.is_null() {
        return Ok(Value::Null);
    }
    let text = js_sys::JSON::stringify(value)
        .map_err(|_| js_error(format!("{what}: not serializable as JSON")))?;
    let text = String::from(text);
    serde_json::from_str(&text).map_err(|e| js_error(format!("{what}: {e}")))
}

/// A string argument. wasm-bindgen's own conversion of a `&str` parameter reads a number or
/// an object as if it were a string (out of bounds: a trap), so strings are checked here.
fn string_arg(value: &JsValue, what: &str) -> JsResult<String> {
    value
        .as_string()
        .ok_or_else(|| js_error(format!("{what}: expected a string")))
}

/// An array of strings (`sentences`).
fn strings_arg(value: &JsValue, what: &str) -> JsResult<Vec<String>> {
    if !js_sys::Array::is_array(value) {
        return Err(js_error(format!("{what}: expected an array of strings")));
    }
    js_sys::Array::from(value)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_string()
                .ok_or_else(|| js_error(format!("{what}[{i}]: expected a string")))
        })
        .collect()
}

/// Token ids: a `Uint32Array`, or an array of integers in 0..2^32.
fn ids_arg(value: &JsValue, what: &str) -> JsResult<Vec<u32>> {
    if let Some(array) = value.dyn_ref::<js_sys::Uint32Array>() {
        return Ok(array.to_vec());
    }
    if !js_sys::Array::is_array(value) {
        return Err(js_error(format!(
            "{what}: expected a Uint32Array or an array of token ids"
        )));
    }
    js_sys::Array::from(value)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .filter(|x| x.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(x))
                .map(|x| x as u32)
                .ok_or_else(|| js_error(format!("{what}[{i}]: not a token id: {v:?}")))
        })
        .collect()
}

/// Chat messages (`[{role, content}, ...]`) from JavaScript.
fn messages_of(value: &JsValue) -> JsResult<Vec<Message>> {
    let json = json_of(value, "messages")?;
    if !json.is_array() {
        return Err(js_error(
            "messages: expected an array of {role, content} objects",
        ));
    }
    serde_json::from_value(json).map_err(|e| js_error(format!("messages: {e}")))
}

/// A tokenizer: the same pipeline as the native `AutoTokenizer`.
#[wasm_bindgen]
pub struct Tokenizer {
    inner: trustformers_tokenizers::Tokenizer,
}

#[wasm_bindgen]
impl Tokenizer {
    /// The tokenizer of a checkpoint's files: `{"tokenizer.json": bytes, ...}` with the
    /// optional tokenizer_config.json, special_tokens_map.json, added_tokens.json and
    /// chat_template.jinja.
    #[wasm_bindgen(js_name = fromFiles)]
    pub fn from_files(files: &Object) -> JsResult<Tokenizer> {
        let files = checkpoint_files(files)?;
        let inner =
            AutoTokenizer::from_files(Path::new("tokenizer"), &|name| Ok(files.get(name).cloned()))
                .map_err(js_error)?;
        Ok(Self { inner })
    }

    /// The tokenizer inside a GGUF file's metadata.
    #[wasm_bindgen(js_name = fromGguf)]
    pub fn from_gguf(bytes: &Uint8Array) -> JsResult<Tokenizer> {
        let file =
            GgufFile::from_bytes("model.gguf", bytes_of(bytes, "model.gguf")?).map_err(js_error)?;
        let inner = AutoTokenizer::from_gguf(&file).map_err(js_error)?;
        Ok(Self { inner })
    }

    /// Token ids of `text` (`addSpecialTokens`: the tokenizer's BOS/CLS/SEP, default true).
    pub fn encode(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] text: &JsValue,
        add_special_tokens: Option<bool>,
    ) -> JsResult<Vec<u32>> {
        self.inner
            .encode_ids(
                &string_arg(text, "text")?,
                add_special_tokens.unwrap_or(true),
            )
            .map_err(js_error)
    }

    /// The text of `ids` (`skipSpecialTokens`: leave special tokens out, default false).
    pub fn decode(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint32Array | number[]")] ids: &JsValue,
        skip_special_tokens: Option<bool>,
    ) -> JsResult<String> {
        self.inner
            .decode(&ids_arg(ids, "ids")?, skip_special_tokens.unwrap_or(false))
            .map_err(js_error)
    }

    /// Renders the chat template over `messages` (`[{role, content}, ...]`), as
    /// transformers' `apply_chat_template(messages, tokenize=False)`; `tools`: function
    /// definitions (JSON schemas) the template receives.
    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(
        &self,
        messages: &JsValue,
        add_generation_prompt: Option<bool>,
        tools: &JsValue,
    ) -> JsResult<String> {
        render_chat(&self.inner, messages, add_generation_prompt, tools)
    }

    /// The id of `token`, or `undefined`.
    #[wasm_bindgen(js_name = tokenToId)]
    pub fn token_to_id(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] token: &JsValue,
    ) -> JsResult<Option<u32>> {
        Ok(self.inner.token_to_id(&string_arg(token, "token")?))
    }

    /// The token of `id`, or `undefined`.
    #[wasm_bindgen(js_name = idToToken)]
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether the tokenizer has a chat template.
    #[wasm_bindgen(getter, js_name = hasChatTemplate)]
    pub fn has_chat_template(&self) -> bool {
        self.inner.config().chat_template.is_some()
    }
}

fn render_chat(
    tokenizer: &trustformers_tokenizers::Tokenizer,
    messages: &JsValue,
    add_generation_prompt: Option<bool>,
    tools: &JsValue,
) -> JsResult<String> {
    let messages = messages_of(messages)?;
    let tools = match json_of(tools, "tools")? {
        Value::Null => None,
        Value::Array(tools) => Some(tools),
        _ => return Err(js_error("tools: expected an array of function definitions")),
    };
    let opts = ChatOptions {
        add_generation_prompt: add_generation_prompt.unwrap_or(false),
        tools,
        ..Default::default()
    };
    tokenizer
        .apply_chat_template(&messages, &opts)
        .map_err(js_error)
}

/// Sentence embeddings, as sentence-transformers computes them (the modules of
/// `modules.json`: Transformer, Pooling, Dense, Normalize), from a BERT-family checkpoint
/// or a GGUF embedding model.
#[wasm_bindgen]
pub struct Embedder {
    inner: SentenceTransformer,
}

#[wasm_bindgen]
impl Embedder {
    /// Loads `model`: the bytes of a GGUF file, or an object of the checkpoint's files by
    /// their path inside it (`modules.json`, `config.json`, `model.safetensors`,
    /// `tokenizer.json`, `tokenizer_config.json`, `1_Pooling/config.json`, ...). `name`
    /// stands for the model in messages.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | Record<string, Uint8Array>")]
        model: &JsValue,
    ) -> JsResult<Embedder> {
        let files = checkpoint(&string_arg(name, "name")?, model)?;
        let inner =
            SentenceTransformer::from_memory(files, &LoadOptions::default()).map_err(js_error)?;
        Ok(Self { inner })
    }

    /// The size of one embedding.
    #[wasm_bindgen(getter)]
    pub fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    /// The embeddings of `sentences`, one after another in one array
    /// (`sentences.length * dimension` numbers); `normalize`: L2-normalize each.
    pub fn embed(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] sentences: &JsValue,
        normalize: Option<bool>,
        batch_size: Option<usize>,
    ) -> JsResult<Vec<f32>> {
        let sentences = strings_arg(sentences, "sentences")?;
        if sentences.is_empty() {
            return Ok(Vec::new());
        }
        let params = EmbedParams {
            batch_size: batch_size.unwrap_or(32).max(1),
            normalize: normalize.unwrap_or(false),
        };
        let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let rows = self.inner.encode(&texts, &params).map_err(js_error)?;
        Ok(rows.concat())
    }
}

/// A causal language model with its tokenizer and generation defaults.
#[wasm_bindgen]
pub struct TextGenerator {
    inner: LoadedModel,
}

/// What a generation produced.
#[wasm_bindgen(getter_with_clone)]
pub struct Generation {
    /// The generated ids (the final end-of-sequence token included, as transformers
    /// returns it).
    pub ids: Vec<u32>,
    /// The generated text, without special tokens.
    pub text: String,
    /// `eos` (an end-of-sequence token), `stop_string`, `length` (`max_new_tokens`),
    /// `max_time` or `stopped` (`onText` returned `false`).
    #[wasm_bindgen(js_name = finishReason)]
    pub finish_reason: String,
    /// Tokens in the prompt.
    #[wasm_bindgen(js_name = promptTokens)]
    pub prompt_tokens: usize,
    /// Seconds spent on the prompt and on the generated tokens.
    #[wasm_bindgen(js_name = prefillSeconds)]
    pub prefill_seconds: f64,
    #[wasm_bindgen(js_name = decodeSeconds)]
    pub decode_seconds: f64,
}

/// Why a generation ended, in the words of `trustformers generate --json`.
fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Eos => "eos",
        FinishReason::StopString => "stop_string",
        FinishReason::Length => "length",
        FinishReason::MaxTime => "max_time",
        FinishReason::Stopped => "stopped",
    }
}

#[wasm_bindgen]
impl TextGenerator {
    /// Loads `model`: the bytes of a GGUF file (e.g. SmolLM2-135M-Instruct Q4_1; its
    /// tokenizer is inside), or an object of the checkpoint's files (`config.json`,
    /// `model.safetensors`, `tokenizer.json`, `generation_config.json`, ...). `name` stands
    /// for the model in messages.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | Record<string, Uint8Array>")]
        model: &JsValue,
    ) -> JsResult<TextGenerator> {
        let files = checkpoint(&string_arg(name, "name")?, model)?;
        let inner = LoadedModel::from_memory(files, &LoadOptions::default()).map_err(js_error)?;
        Ok(Self { inner })
    }

    /// The tokenizer's id of each token of a plain-text prompt (with its special tokens).
    #[wasm_bindgen(js_name = encode)]
    pub fn encode(&self, text: &str) -> JsResult<Vec<u32>> {
        self.inner
            .tokenizer
            .encode_ids(text, true)
            .map_err(js_error)
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint32Array | number[]")] ids: &JsValue,
    ) -> JsResult<String> {
        self.inner
            .tokenizer
            .decode(&ids_arg(ids, "ids")?, true)
            .map_err(js_error)
    }

    /// Whether the model has a chat template (an instruct model).
    #[wasm_bindgen(getter, js_name = hasChatTemplate)]
    pub fn has_chat_template(&self) -> bool {
        self.inner.has_chat_template()
    }

    /// The longest sequence the model takes, prompt and generated tokens together.
    #[wasm_bindgen(getter, js_name = contextSize)]
    pub fn context_size(&self) -> usize {
        self.inner.context_size()
    }

    /// Generates after the prompt `ids`. `options`: transformers' generation_config fields
    /// (`max_new_tokens`, `do_sample`, `temperature`, `top_k`, `top_p`,
    /// `repetition_penalty`, `seed`, `stop_strings`, ...) over the model's own defaults.
    /// `onText(piece)` receives the text as it is produced; returning `false` stops.
    pub fn generate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint32Array | number[]")] ids: &JsValue,
        options: &JsValue,
        on_text: Option<Function>,
    ) -> JsResult<Generation> {
        self.generate_ids(&ids_arg(ids, "ids")?, options, on_text)
    }

    /// Generates a reply to `messages` (`[{role, content}, ...]`) through the chat
    /// template, as `generate` does.
    pub fn chat(
        &self,
        messages: &JsValue,
        options: &JsValue,
        on_text: Option<Function>,
    ) -> JsResult<Generation> {
        let prompt = render_chat(&self.inner.tokenizer, messages, Some(true), &JsValue::NULL)?;
        // A chat template writes its own special tokens.
        let ids = self
            .inner
            .tokenizer
            .encode_ids(&prompt, false)
            .map_err(js_error)?;
        self.generate_ids(&ids, options, on_text)
    }

    /// [`Self::generate`] after ids already checked.
    fn generate_ids(
        &self,
        ids: &[u32],
        options: &JsValue,
        on_text: Option<Function>,
    ) -> JsResult<Generation> {
        let config = self.config(options)?;
        let mut callback_error = None;
        let out = self
            .inner
            .generate_text(ids, &config, |piece| {
                let Some(f) = &on_text else { return true };
                match f.call1(&JsValue::NULL, &JsValue::from_str(piece)) {
                    // Only an explicit `false` stops.
                    Ok(v) => v.as_bool() != Some(false),
                    Err(e) => {
                        callback_error = Some(e);
                        false
                    }
                }
            })
            .map_err(js_error)?;
        if let Some(e) = callback_error {
            let message = e
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .unwrap_or_else(|| format!("{e:?}"));
            return Err(js_error(format!("onText threw: {message}")));
        }
        Ok(Generation {
            ids: out.tokens.ids,
            text: out.text,
            finish_reason: finish_reason(out.tokens.finish_reason).to_owned(),
            prompt_tokens: ids.len(),
            prefill_seconds: out.tokens.prefill.as_secs_f64(),
            decode_seconds: out.tokens.decode.as_secs_f64(),
        })
    }

    /// The model's generation defaults with `options` applied.
    fn config(&self, options: &JsValue) -> JsResult<GenerationConfig> {
        let mut config = self.inner.generation.clone();
        match json_of(options, "options")? {
            Value::Null => {}
            json @ Value::Object(_) => {
                config.apply_json(&json).map_err(js_error)?;
                // Not a generation_config.json field, but how a caller fixes sampling.
                if let Some(seed) = json.get("seed").filter(|v| !v.is_null()) {
                    config.seed = seed.as_u64().ok_or_else(|| {
                        js_error(format!(
                            "options.seed: expected a non-negative integer, got {seed}"
                        ))
                    })?;
                }
            }
            _ => return Err(js_error("options: expected an object of generation fields")),
        }
        config.validate().map_err(js_error)?;
        Ok(config)
    }
}
