//! A model session: a causal language model with its tokenizer, generation defaults and
//! chat template (the facade's `LoadedModel`), generating text or token ids.

use crate::ffi::*;
use crate::handles::Registry;
use crate::tokenizer::{render_chat, trustformers_tokenizer, TOKENIZERS};
use serde_json::Value;
use std::ffi::{c_char, c_void, CString};
use trustformers::generation::generate_batch;
use trustformers::{GenerationConfig, LoadOptions, LoadedModel};

/// A loaded causal language model with its tokenizer (opaque).
pub struct trustformers_session {
    _private: [u8; 0],
}

pub(crate) static SESSIONS: Registry<LoadedModel> = Registry::new("session");

/// How to load a model. Fill it with [`trustformers_load_options_default`] first, then set
/// what you need; a NULL options pointer means the defaults.
#[repr(C)]
pub struct trustformers_load_options {
    /// Compute dtype: "f32", "f16", "bf16", or NULL for the checkpoint's way (f32; GGUF
    /// weights stay quantized, and "f32" dequantizes them).
    pub dtype: *const c_char,
    /// What the KV cache keeps: "f32", "f16", or NULL (f16 for quantized weights, f32
    /// otherwise).
    pub kv_cache_dtype: *const c_char,
    /// The most prompt tokens one pass takes (llama.cpp's ubatch); 0 for the default (512).
    pub prefill_chunk: usize,
    /// A PEFT LoRA adapter directory merged at load, or NULL.
    pub adapter: *const c_char,
}

/// Fills `options` with the defaults.
///
/// # Safety
/// `options` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_load_options_default(
    options: *mut trustformers_load_options,
) -> trustformers_status {
    run(|| {
        let defaults = trustformers_load_options {
            dtype: std::ptr::null(),
            kv_cache_dtype: std::ptr::null(),
            prefill_chunk: 0,
            adapter: std::ptr::null(),
        };
        // SAFETY: the caller's contract.
        unsafe { write_out(options, defaults, "options") }
    })
}

/// The facade's options from the caller's (NULL: defaults).
///
/// # Safety
/// `options` is NULL or a valid struct whose strings are NULL or NUL-terminated.
pub(crate) unsafe fn load_options(
    options: *const trustformers_load_options,
) -> Result<LoadOptions, Failure> {
    let mut out = LoadOptions::default();
    if options.is_null() {
        return Ok(out);
    }
    // SAFETY: non-null and valid by the caller's contract.
    let o = unsafe { &*options };
    let dtype = |ptr: *const c_char, name: &str| -> Result<_, Failure> {
        // SAFETY: as the caller's contract.
        match unsafe { opt_str_arg(ptr, name)? } {
            None => Ok(None),
            Some(d) => Ok(Some(trustformers::core::parse_dtype(d)?)),
        }
    };
    out.dtype = dtype(o.dtype, "options.dtype")?;
    out.kv_cache_dtype = dtype(o.kv_cache_dtype, "options.kv_cache_dtype")?;
    if o.prefill_chunk > 0 {
        out.prefill_chunk = o.prefill_chunk;
    }
    // SAFETY: as the caller's contract.
    out.adapter = unsafe { opt_str_arg(o.adapter, "options.adapter")? }.map(Into::into);
    out.validate()?;
    Ok(out)
}

/// Loads the causal language model `model` (a checkpoint directory, a `.gguf` file, a
/// Hugging Face Hub repo id, or a known name such as "smollm2-135m-instruct"; NULL for the
/// default model) with its tokenizer, and writes its handle to `out`.
///
/// # Safety
/// `model` is NULL or a NUL-terminated string; `options` as in
/// [`trustformers_load_options`]; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_session_load(
    model: *const c_char,
    options: *const trustformers_load_options,
    out: *mut *mut trustformers_session,
) -> trustformers_status {
    run(|| {
        // SAFETY: the caller's contract, for each argument.
        let (name, opts) = unsafe { (opt_str_arg(model, "model")?, load_options(options)?) };
        if out.is_null() {
            return Err(Failure::invalid("`out` is NULL"));
        }
        let path = match name {
            Some(n) => resolve(n)?,
            None => trustformers::resolve_model(None)?,
        };
        let loaded = LoadedModel::from_path(path, &opts)?;
        // SAFETY: checked non-null above; writable by the caller's contract.
        unsafe { write_out(out, SESSIONS.insert(loaded), "out") }
    })
}

/// Frees a session (NULL: nothing to do). Calls running on it in other threads finish
/// first; the handle is invalid afterwards.
#[no_mangle]
pub extern "C" fn trustformers_session_free(
    session: *mut trustformers_session,
) -> trustformers_status {
    run(|| SESSIONS.remove(session))
}

/// The longest sequence the model takes, prompt and generated tokens together.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_session_context_size(
    session: *const trustformers_session,
    out: *mut usize,
) -> trustformers_status {
    run(|| {
        let s = SESSIONS.get(session)?;
        // SAFETY: the caller's contract.
        unsafe { write_out(out, s.context_size(), "out") }
    })
}

/// A new tokenizer handle for the session's tokenizer (free it with
/// `trustformers_tokenizer_free`).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_session_tokenizer(
    session: *const trustformers_session,
    out: *mut *mut trustformers_tokenizer,
) -> trustformers_status {
    run(|| {
        let s = SESSIONS.get(session)?;
        if out.is_null() {
            return Err(Failure::invalid("`out` is NULL"));
        }
        // SAFETY: checked non-null; writable by the caller's contract.
        unsafe { write_out(out, TOKENIZERS.insert(s.tokenizer.clone()), "out") }
    })
}

/// Settings of one generation. Fill it with [`trustformers_generate_options_default`]
/// first; a NULL options pointer means the defaults.
#[repr(C)]
pub struct trustformers_generate_options {
    /// Overrides of the model's generation config as JSON, with transformers'
    /// generation_config.json names (`{"max_new_tokens": 64, "do_sample": true,
    /// "temperature": 0.7, "top_p": 0.9}`), plus `"seed"`; NULL for none.
    pub config_json: *const c_char,
    /// Non-zero: the prompt is plain text even when the model has a chat template. Zero:
    /// an instruct model gets it as a user message through its template (as
    /// `trustformers generate` does).
    pub raw: i32,
}

/// Fills `options` with the defaults (no overrides, chat template on).
///
/// # Safety
/// `options` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_generate_options_default(
    options: *mut trustformers_generate_options,
) -> trustformers_status {
    run(|| {
        let defaults = trustformers_generate_options {
            config_json: std::ptr::null(),
            raw: 0,
        };
        // SAFETY: the caller's contract.
        unsafe { write_out(options, defaults, "options") }
    })
}

/// The session's generation config with the caller's overrides; and whether the prompt is
/// raw text.
///
/// # Safety
/// `options` is NULL or a valid struct.
unsafe fn generation(
    session: &LoadedModel,
    options: *const trustformers_generate_options,
) -> Result<(GenerationConfig, bool), Failure> {
    let mut config = session.generation.clone();
    if options.is_null() {
        return Ok((config, false));
    }
    // SAFETY: non-null and valid by the caller's contract.
    let o = unsafe { &*options };
    // SAFETY: as the caller's contract.
    if let Some(text) = unsafe { opt_str_arg(o.config_json, "options.config_json")? } {
        let json: Value = serde_json::from_str(text)
            .map_err(|e| Failure::invalid(format!("options.config_json: {e}")))?;
        if !json.is_object() {
            return Err(Failure::invalid(
                "options.config_json must be a JSON object",
            ));
        }
        config.apply_json(&json)?;
        match json.get("seed") {
            None | Some(Value::Null) => {}
            Some(seed) => {
                config.seed = seed.as_u64().ok_or_else(|| {
                    Failure::invalid(format!("seed must be a non-negative integer, got {seed}"))
                })?
            }
        }
    }
    Ok((config, o.raw != 0))
}

/// Called with each piece of generated text (NUL-terminated, `len` bytes) and the
/// caller's `user_data`; returning non-zero stops the generation.
pub type trustformers_text_callback =
    Option<unsafe extern "C" fn(text: *const c_char, len: usize, user_data: *mut c_void) -> i32>;

/// Generates a reply to `prompt` (greedy unless the options sample), calling `callback`
/// (may be NULL) with each piece of text as it comes, and writes the whole text to
/// `out_text` (may be NULL; free it with `trustformers_string_free`). Special tokens are
/// not part of the text.
///
/// # Safety
/// `prompt` is a NUL-terminated string; `options` as in
/// [`trustformers_generate_options`]; `out_text` NULL or writable; `callback` is safe to
/// call with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn trustformers_session_generate(
    session: *const trustformers_session,
    prompt: *const c_char,
    options: *const trustformers_generate_options,
    callback: trustformers_text_callback,
    user_data: *mut c_void,
    out_text: *mut *mut c_char,
) -> trustformers_status {
    run(|| {
        let s = SESSIONS.get(session)?;
        // SAFETY: the caller's contract, for each argument.
        let (prompt, (config, raw)) =
            unsafe { (str_arg(prompt, "prompt")?, generation(&s, options)?) };
        let ids = s.prompt_ids(prompt, raw)?;
        let mut piece_error = None;
        let out = s.generate_text(&ids, &config, |piece| {
            let Some(cb) = callback else { return true };
            match CString::new(piece) {
                // SAFETY: the callback's contract is the caller's.
                Ok(c) => unsafe { cb(c.as_ptr(), piece.len(), user_data) == 0 },
                Err(_) => {
                    piece_error = Some(Failure::invalid(
                        "the generated text holds a NUL character, which C strings cannot",
                    ));
                    false
                }
            }
        })?;
        if let Some(e) = piece_error {
            return Err(e);
        }
        if !out_text.is_null() {
            let text = give_string(out.text)?;
            // SAFETY: non-null and writable by the caller's contract.
            unsafe { write_out(out_text, text, "out_text")? };
        }
        Ok(())
    })
}

/// The token ids of `prompt` as the session generates from it (through the chat template
/// unless `raw` is non-zero): into `ids` (`capacity` elements), the count into `out_len`.
///
/// # Safety
/// `prompt` is NUL-terminated; `ids` holds `capacity` writable elements; `out_len` is
/// writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_session_prompt_ids(
    session: *const trustformers_session,
    prompt: *const c_char,
    raw: i32,
    ids: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> trustformers_status {
    run(|| {
        let s = SESSIONS.get(session)?;
        // SAFETY: the caller's contract.
        let prompt = unsafe { str_arg(prompt, "prompt")? };
        let tokens = s.prompt_ids(prompt, raw != 0)?;
        // SAFETY: the caller's contract.
        unsafe { fill(&tokens, ids, capacity, out_len, "ids") }
    })
}

/// Generates after the token ids `prompt` (`prompt_len` of them): the new ids into
/// `out_ids` (`capacity` elements, at least the generation's `max_new_tokens`; the final
/// end-of-sequence token included, as transformers returns it), their count into
/// `out_len`. Greedy, sampled or beam search as the options say; the options' `raw` is
/// not used.
///
/// # Safety
/// `prompt` holds `prompt_len` elements; `out_ids` holds `capacity` writable elements;
/// `out_len` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_session_generate_ids(
    session: *const trustformers_session,
    prompt: *const u32,
    prompt_len: usize,
    options: *const trustformers_generate_options,
    out_ids: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> trustformers_status {
    run(|| {
        let s = SESSIONS.get(session)?;
        // SAFETY: the caller's contract, for each argument.
        let (prompt, (config, _)) = unsafe {
            (
                slice_arg(prompt, prompt_len, "prompt")?,
                generation(&s, options)?,
            )
        };
        if config.num_return_sequences != 1 {
            return Err(Failure::invalid(
                "num_return_sequences must be 1: one sequence fits the output buffer",
            ));
        }
        if capacity < config.max_new_tokens {
            // SAFETY: the caller's contract.
            unsafe { write_out(out_len, config.max_new_tokens, "out_len")? };
            return Err(Failure {
                status: TRUSTFORMERS_BUFFER_TOO_SMALL,
                message: format!(
                    "`out_ids` holds {capacity} ids; max_new_tokens is {}",
                    config.max_new_tokens
                ),
            });
        }
        let vocab = s.model.vocab_size();
        if let Some(bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(Failure::invalid(format!(
                "prompt holds {bad}, outside the vocabulary of {vocab} tokens"
            )));
        }
        let out = generate_batch(&*s.model, &[prompt.to_vec()], &config)?;
        let ids = out.first().map(|o| o.ids.as_slice()).unwrap_or_default();
        // SAFETY: the caller's contract.
        unsafe { fill(ids, out_ids, capacity, out_len, "out_ids") }
    })
}

/// Renders `messages_json` (a JSON list of `{"role", "content"}` objects) through the
/// model's chat template, ending with the assistant's header when
/// `add_generation_prompt` is non-zero; the text goes to `out_text` (free it with
/// `trustformers_string_free`).
///
/// # Safety
/// `messages_json` is NUL-terminated; `out_text` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_session_apply_chat_template(
    session: *const trustformers_session,
    messages_json: *const c_char,
    add_generation_prompt: i32,
    out_text: *mut *mut c_char,
) -> trustformers_status {
    run(|| {
        let s = SESSIONS.get(session)?;
        // SAFETY: the caller's contract.
        unsafe { render_chat(&s.tokenizer, messages_json, add_generation_prompt, out_text) }
    })
}
