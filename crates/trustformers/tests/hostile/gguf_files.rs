//! Building the GGUF files the corpus mutates: the tiny LLaMA fixture, the same model with a
//! byte-level BPE vocabulary, and byte offsets of the fields the cases patch.

use super::fixture;
use trustformers::core::gguf::{self, GgufValue, RawTensor};

pub(super) type Kv = Vec<(String, GgufValue)>;

pub(super) fn base_parts() -> (Kv, Vec<RawTensor>) {
    let bytes = fixture("llama_gguf/tiny-llama.gguf");
    let header = gguf::parse(&bytes).unwrap();
    let kv = header.metadata.into_iter().collect();
    let tensors = header
        .tensors
        .iter()
        .map(|t| RawTensor {
            name: t.name.clone(),
            ggml_type: t.dtype.id(),
            dims: t.shape.iter().rev().map(|&d| d as u64).collect(),
            data: bytes[t.start..t.start + t.len].to_vec(),
        })
        .collect();
    (kv, tensors)
}

pub(super) fn set(kv: &mut Kv, key: &str, value: GgufValue) {
    match kv.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => kv.push((key.to_string(), value)),
    }
}

pub(super) fn remove(kv: &mut Kv, key: &str) {
    kv.retain(|(k, _)| k != key);
}

pub(super) fn strings(items: &[String]) -> GgufValue {
    GgufValue::Array(items.iter().cloned().map(GgufValue::String).collect())
}

/// The fixture with a GPT-2 style vocabulary: 3 specials, 62 letters and digits, and 63
/// merged pairs with their merges.
pub(super) fn bpe_parts() -> (Kv, Vec<RawTensor>) {
    let (mut kv, tensors) = base_parts();
    let chars: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    tokens.extend(chars.iter().map(|c| c.to_string()));
    let mut merges = Vec::new();
    for i in 0..63 {
        let (a, b) = (chars[i % chars.len()], chars[(i + 1) % chars.len()]);
        tokens.push(format!("{a}{b}"));
        merges.push(format!("{a} {b}"));
    }
    set(
        &mut kv,
        "tokenizer.ggml.model",
        GgufValue::String("gpt2".into()),
    );
    set(&mut kv, "tokenizer.ggml.tokens", strings(&tokens));
    set(&mut kv, "tokenizer.ggml.merges", strings(&merges));
    remove(&mut kv, "tokenizer.ggml.scores");
    set(
        &mut kv,
        "tokenizer.ggml.token_type",
        GgufValue::Array(
            (0..128)
                .map(|i| GgufValue::I32(if i < 3 { 3 } else { 1 }))
                .collect(),
        ),
    );
    (kv, tensors)
}

pub(super) fn write(kv: &Kv, tensors: &[RawTensor]) -> Vec<u8> {
    gguf::write(kv, tensors)
}

pub(super) fn base() -> Vec<u8> {
    let (kv, t) = base_parts();
    write(&kv, &t)
}

/// Byte offsets of one tensor info's fields.
pub(super) struct InfoAt {
    pub(super) n_dims: usize,
    pub(super) dims: usize,
    pub(super) ggml_type: usize,
    pub(super) offset: usize,
}

pub(super) fn info_at(bytes: &[u8], name: &str) -> InfoAt {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend(name.as_bytes());
    // Tensor infos come after the metadata; search from the end for the last occurrence.
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle.as_slice())
        .unwrap();
    let n_dims = at + needle.len();
    let count = u32::from_le_bytes(bytes[n_dims..n_dims + 4].try_into().unwrap()) as usize;
    let dims = n_dims + 4;
    let ggml_type = dims + 8 * count;
    InfoAt {
        n_dims,
        dims,
        ggml_type,
        offset: ggml_type + 4,
    }
}

pub(super) fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub(super) fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
