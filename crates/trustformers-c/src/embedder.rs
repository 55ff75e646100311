//! A sentence embedder: sentence-transformers' `encode` into the caller's buffer.

use crate::ffi::*;
use crate::handles::Registry;
use crate::session::{load_options, trustformers_load_options};
use std::ffi::c_char;
use trustformers::pipelines::{EmbedParams, SentenceTransformer};

/// A loaded sentence-embedding model (opaque).
pub struct trustformers_embedder {
    _private: [u8; 0],
}

static EMBEDDERS: Registry<SentenceTransformer> = Registry::new("embedder");

/// Loads the embedding model `model` (a sentence-transformers directory, a BERT-family
/// checkpoint, a GGUF embedding model, a Hub repo id, or "all-minilm-l6-v2") and writes its
/// handle to `out`.
///
/// # Safety
/// `model` is NUL-terminated; `options` NULL or valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_embedder_load(
    model: *const c_char,
    options: *const trustformers_load_options,
    out: *mut *mut trustformers_embedder,
) -> trustformers_status {
    run(|| {
        // SAFETY: the caller's contract, for each argument.
        let (name, opts) = unsafe { (str_arg(model, "model")?, load_options(options)?) };
        if out.is_null() {
            return Err(Failure::invalid("`out` is NULL"));
        }
        let model = SentenceTransformer::from_pretrained(resolve(name)?, &opts)?;
        // SAFETY: checked non-null; writable by the caller's contract.
        unsafe { write_out(out, EMBEDDERS.insert(model), "out") }
    })
}

/// Frees an embedder (NULL: nothing to do).
#[no_mangle]
pub extern "C" fn trustformers_embedder_free(
    embedder: *mut trustformers_embedder,
) -> trustformers_status {
    run(|| EMBEDDERS.remove(embedder))
}

/// The size of one embedding.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_embedder_dimension(
    embedder: *const trustformers_embedder,
    out: *mut usize,
) -> trustformers_status {
    run(|| {
        let e = EMBEDDERS.get(embedder)?;
        // SAFETY: the caller's contract.
        unsafe { write_out(out, e.dimension(), "out") }
    })
}

/// Embeds `count` texts into `out` (`capacity` floats, row-major `[count, dimension]`),
/// L2-normalized when `normalize` is non-zero (a model with a Normalize module always
/// is); the number of floats written into `out_len`. A buffer too small gets
/// TRUSTFORMERS_BUFFER_TOO_SMALL and the count needed, before any work.
///
/// # Safety
/// `texts` holds `count` NUL-terminated strings; `out` holds `capacity` writable floats;
/// `out_len` is writable.
#[no_mangle]
pub unsafe extern "C" fn trustformers_embedder_embed(
    embedder: *const trustformers_embedder,
    texts: *const *const c_char,
    count: usize,
    normalize: i32,
    out: *mut f32,
    capacity: usize,
    out_len: *mut usize,
) -> trustformers_status {
    run(|| {
        let e = EMBEDDERS.get(embedder)?;
        // SAFETY: the caller's contract.
        let ptrs = unsafe { slice_arg(texts, count, "texts")? };
        let texts = ptrs
            .iter()
            .enumerate()
            // SAFETY: each pointer is NUL-terminated by the caller's contract.
            .map(|(i, &p)| unsafe { str_arg(p, &format!("texts[{i}]")) })
            .collect::<Result<Vec<&str>, _>>()?;
        if texts.is_empty() {
            return Err(Failure::invalid("no texts to embed"));
        }
        let needed = count
            .checked_mul(e.dimension())
            .ok_or_else(|| Failure::invalid("count * dimension overflows"))?;
        if capacity < needed {
            // SAFETY: the caller's contract.
            unsafe { write_out(out_len, needed, "out_len")? };
            return Err(Failure {
                status: TRUSTFORMERS_BUFFER_TOO_SMALL,
                message: format!("`out` holds {capacity} floats, {needed} are needed"),
            });
        }
        let params = EmbedParams {
            normalize: normalize != 0,
            ..Default::default()
        };
        let rows = e.encode(&texts, &params)?;
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        // SAFETY: the caller's contract.
        unsafe { fill(&flat, out, capacity, out_len, "out") }
    })
}
