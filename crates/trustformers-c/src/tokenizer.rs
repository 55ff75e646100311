//! A tokenizer: text to ids and back, and chat templates.

use crate::ffi::*;
use crate::handles::Registry;
use std::ffi::c_char;
use trustformers::tokenizers::chat::{ChatOptions, Message};
use trustformers::{AutoTokenizer, Tokenizer};

/// A loaded tokenizer (opaque).
pub struct trustformers_tokenizer {
    _private: [u8; 0],
}

pub(crate) static TOKENIZERS: Registry<Tokenizer> = Registry::new("tokenizer");

/// Chat messages from JSON text: a list of `{"role", "content", ...}` objects.
fn chat_messages(json: &str) -> Result<Vec<Message>, Failure> {
    serde_json::from_str(json).map_err(|e| {
        Failure::invalid(format!(
            "messages must be a JSON list of {{\"role\", \"content\"}} objects: {e}"
        ))
    })
}

/// Renders `messages_json` through `tokenizer`'s chat template into `out_text`.
///
/// # Safety
/// `messages_json` is NULL or NUL-terminated; `out_text` is NULL or writable.
pub(crate) unsafe fn render_chat(
    tokenizer: &Tokenizer,
    messages_json: *const c_char,
    add_generation_prompt: i32,
    out_text: *mut *mut c_char,
) -> Result<(), Failure> {
    // SAFETY: the caller's contract.
    let messages = chat_messages(unsafe { str_arg(messages_json, "messages_json")? })?;
    if out_text.is_null() {
        return Err(Failure::invalid("`out_text` is NULL"));
    }
    let opts = ChatOptions {
        add_generation_prompt: add_generation_prompt != 0,
        ..Default::default()
    };
    let text = give_string(tokenizer.apply_chat_template(&messages, &opts)?)?;
    // SAFETY: checked non-null; writable by the caller's contract.
    unsafe { write_out(out_text, text, "out_text") }
}

/// Loads the tokenizer of `model` (a checkpoint directory, a `.gguf` file, a Hub repo id
/// or a known name) and writes its handle to `out`.
///
/// # Safety
/// `model` is NUL-terminated; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_tokenizer_load(
    model: *const c_char,
    out: *mut *mut trustformers_tokenizer,
) -> trustformers_status {
    run(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(model, "model")? };
        if out.is_null() {
            return Err(Failure::invalid("`out` is NULL"));
        }
        let tokenizer = AutoTokenizer::from_pretrained(resolve(name)?)?;
        // SAFETY: checked non-null; writable by the caller's contract.
        unsafe { write_out(out, TOKENIZERS.insert(tokenizer), "out") }
    })
}

/// Frees a tokenizer (NULL: nothing to do).
#[no_mangle]
pub extern "C" fn trustformers_tokenizer_free(
    tokenizer: *mut trustformers_tokenizer,
) -> trustformers_status {
    run(|| TOKENIZERS.remove(tokenizer))
}

/// The ids of `text` (with the tokenizer's special tokens when `add_special_tokens` is
/// non-zero) into `ids` (`capacity` elements); the count into `out_len`. A buffer too
/// small gets TRUSTFORMERS_BUFFER_TOO_SMALL and the count needed.
///
/// # Safety
/// `text` is NUL-terminated; `ids` holds `capacity` writable elements; `out_len` is
/// writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_tokenizer_encode(
    tokenizer: *const trustformers_tokenizer,
    text: *const c_char,
    add_special_tokens: i32,
    ids: *mut u32,
    capacity: usize,
    out_len: *mut usize,
) -> trustformers_status {
    run(|| {
        let t = TOKENIZERS.get(tokenizer)?;
        // SAFETY: the caller's contract.
        let text = unsafe { str_arg(text, "text")? };
        let tokens = t.encode_ids(text, add_special_tokens != 0)?;
        // SAFETY: the caller's contract.
        unsafe { fill(&tokens, ids, capacity, out_len, "ids") }
    })
}

/// The text of `len` ids (special tokens left out when `skip_special_tokens` is non-zero)
/// into `out_text` (free it with `trustformers_string_free`).
///
/// # Safety
/// `ids` holds `len` elements; `out_text` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_tokenizer_decode(
    tokenizer: *const trustformers_tokenizer,
    ids: *const u32,
    len: usize,
    skip_special_tokens: i32,
    out_text: *mut *mut c_char,
) -> trustformers_status {
    run(|| {
        let t = TOKENIZERS.get(tokenizer)?;
        // SAFETY: the caller's contract.
        let ids = unsafe { slice_arg(ids, len, "ids")? };
        if out_text.is_null() {
            return Err(Failure::invalid("`out_text` is NULL"));
        }
        let text = give_string(t.decode(ids, skip_special_tokens != 0)?)?;
        // SAFETY: checked non-null; writable by the caller's contract.
        unsafe { write_out(out_text, text, "out_text") }
    })
}

/// Renders `messages_json` through the tokenizer's chat template (see
/// `trustformers_session_apply_chat_template`).
///
/// # Safety
/// `messages_json` is NUL-terminated; `out_text` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_tokenizer_apply_chat_template(
    tokenizer: *const trustformers_tokenizer,
    messages_json: *const c_char,
    add_generation_prompt: i32,
    out_text: *mut *mut c_char,
) -> trustformers_status {
    run(|| {
        let t = TOKENIZERS.get(tokenizer)?;
        // SAFETY: the caller's contract.
        unsafe { render_chat(&t, messages_json, add_generation_prompt, out_text) }
    })
}
