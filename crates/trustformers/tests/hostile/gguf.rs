//! GGUF mutants of the tiny LLaMA fixture (a quantized model with a SentencePiece vocabulary),
//! and of the same model carrying a byte-level BPE vocabulary with merges.

use super::gguf_files::{
    base, base_parts, bpe_parts, info_at, put_u32, put_u64, remove, set, strings, write, Kv,
};
use super::{forward_once, Case, Expect};
use crate::expect;
use std::path::Path;
use trustformers::core::gguf::{self, GgufFile, GgufValue, RawTensor};
use trustformers::core::GgufError as G;
use trustformers::{AutoModelForCausalLM, AutoTokenizer, Error, LoadOptions, Result};

/// Opens the file, builds its tokenizer when it has one and encodes a line, then loads the
/// model with its weights quantized and runs it.
fn load(path: &Path) -> Result<()> {
    let file = GgufFile::open(path)?;
    if file.get("tokenizer.ggml.model").is_some() {
        let tok = AutoTokenizer::from_gguf(&file)?;
        let ids = tok.encode_ids("hello world", true)?;
        tok.decode(&ids, false)?;
    }
    let model = AutoModelForCausalLM::from_pretrained(path, &LoadOptions::default())?;
    forward_once(&model)
}

fn case(name: &str, bytes: Vec<u8>, expect: Expect) -> Case {
    Case::file("gguf", name, "model.gguf", bytes, load, expect)
}

fn kv_case(name: &str, edit: impl FnOnce(&mut Kv), expect: Expect) -> Case {
    let (mut kv, t) = base_parts();
    edit(&mut kv);
    case(name, write(&kv, &t), expect)
}

fn bpe_case(name: &str, edit: impl FnOnce(&mut Kv), expect: Expect) -> Case {
    let (mut kv, t) = bpe_parts();
    edit(&mut kv);
    case(name, write(&kv, &t), expect)
}

fn tensor_case(name: &str, edit: impl FnOnce(&mut Vec<RawTensor>), expect: Expect) -> Case {
    let (kv, mut t) = base_parts();
    edit(&mut t);
    case(name, write(&kv, &t), expect)
}

fn patched(name: &str, patch: impl FnOnce(&mut Vec<u8>), expect: Expect) -> Case {
    let mut bytes = base();
    patch(&mut bytes);
    case(name, bytes, expect)
}

/// Both valid bases load and run.
pub fn base_loads() {
    let dir = tempfile::tempdir().unwrap();
    for (name, (kv, t)) in [("spm", base_parts()), ("bpe", bpe_parts())] {
        let path = dir.path().join(format!("{name}.gguf"));
        std::fs::write(&path, write(&kv, &t)).unwrap();
        load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

pub fn cases() -> Vec<Case> {
    let good = base();
    let header = gguf::parse(&good).unwrap();
    let data_end = header
        .tensors
        .iter()
        .map(|t| t.start + t.len)
        .max()
        .unwrap();
    let first_tensor = header.tensors[0].name.clone();
    let last_tensor = header.tensors.last().unwrap().name.clone();
    let second_tensor = header.tensors[1].name.clone();
    let first_info = info_at(&good, &first_tensor);
    let second_offset = info_at(&good, &second_tensor).offset;
    let third_offset = info_at(&good, &header.tensors[2].name).offset;
    let last_offset = info_at(&good, &last_tensor).offset;
    let truncated = |len: usize| good[..len].to_vec();

    let mut cases = vec![
        // Truncation.
        case(
            "truncated at 0",
            truncated(0),
            expect!(Error::Gguf {
                source: G::Truncated { .. },
                ..
            }),
        ),
        case(
            "truncated at 4",
            truncated(4),
            expect!(Error::Gguf {
                source: G::Truncated { .. },
                ..
            }),
        ),
        case(
            "truncated at 8",
            truncated(8),
            expect!(Error::Gguf {
                source: G::Truncated { .. },
                ..
            }),
        ),
        case(
            "truncated at 24",
            truncated(24),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. } | G::Truncated { .. },
                ..
            }),
        ),
        case(
            "truncated in the first key",
            truncated(40),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. } | G::Truncated { .. },
                ..
            }),
        ),
        case(
            "truncated in a tensor info",
            truncated(first_info.dims + 3),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. } | G::Truncated { .. },
                ..
            }),
        ),
        case(
            "one byte short of the data",
            truncated(data_end - 1),
            expect!(Error::Gguf {
                source: G::TensorOutOfBounds { .. },
                ..
            }),
        ),
        case(
            "not GGUF",
            b"GGML\x03\0\0\0".repeat(8),
            expect!(Error::Gguf {
                source: G::BadMagic(_),
                ..
            }),
        ),
        patched(
            "version 1",
            |b| put_u32(b, 4, 1),
            expect!(Error::Gguf {
                source: G::UnsupportedVersion(1),
                ..
            }),
        ),
        patched(
            "version 4",
            |b| put_u32(b, 4, 4),
            expect!(Error::Gguf {
                source: G::UnsupportedVersion(4),
                ..
            }),
        ),
        // Counts and lengths.
        patched(
            "tensor count 2^63",
            |b| put_u64(b, 8, 1 << 63),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. },
                ..
            }),
        ),
        patched(
            "tensor count 2^64-1",
            |b| put_u64(b, 8, u64::MAX),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. },
                ..
            }),
        ),
        patched(
            "metadata count 2^63",
            |b| put_u64(b, 16, 1 << 63),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. },
                ..
            }),
        ),
        patched(
            "metadata count 2^64-1",
            |b| put_u64(b, 16, u64::MAX),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. },
                ..
            }),
        ),
        patched(
            "metadata count one too many",
            |b| {
                let n = u64::from_le_bytes(b[16..24].try_into().unwrap());
                put_u64(b, 16, n + 1)
            },
            expect!(Error::Gguf { .. }),
        ),
        patched(
            "string length 2^63",
            |b| put_u64(b, 24, 1 << 63),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. },
                ..
            }),
        ),
        patched(
            "string length past the file",
            |b| {
                let len = b.len() as u64;
                put_u64(b, 24, len)
            },
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. },
                ..
            }),
        ),
        patched(
            "tensor name length 2^64-1",
            |b| put_u64(b, first_info.n_dims - 8 - first_tensor.len(), u64::MAX),
            expect!(Error::Gguf {
                source: G::CountTooLarge { .. },
                ..
            }),
        ),
    ];

    // Arrays.
    cases.push(patched(
        "array of 2^62 strings",
        |b| {
            let key = b"tokenizer.ggml.tokens";
            let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len();
            // value type (9), item type (8), then the count.
            put_u64(b, at + 8, 1 << 62);
        },
        expect!(Error::Gguf {
            source: G::CountTooLarge { .. },
            ..
        }),
    ));
    cases.push(kv_case(
        "arrays nested 5 deep",
        |kv| {
            let mut v = GgufValue::U8(1);
            for _ in 0..6 {
                v = GgufValue::Array(vec![v]);
            }
            set(kv, "general.nested", v);
        },
        expect!(Error::Gguf {
            source: G::NestingTooDeep { .. },
            ..
        }),
    ));
    // Hyperparameters of the wrong type name their key.
    cases.push(kv_case(
        "block count as a string",
        |kv| set(kv, "llama.block_count", GgufValue::String("two".into())),
        expect!(Error::Config { field, .. } if field == "llama.block_count"),
    ));
    cases.push(kv_case(
        "head count as a float",
        |kv| set(kv, "llama.attention.head_count", GgufValue::F32(4.0)),
        expect!(Error::Config { field, .. } if field == "llama.attention.head_count"),
    ));
    cases.push(kv_case(
        "NaN epsilon",
        |kv| {
            set(
                kv,
                "llama.attention.layer_norm_rms_epsilon",
                GgufValue::F32(f32::NAN),
            )
        },
        expect!(Error::Config { field, .. } if field == "llama.attention.layer_norm_rms_epsilon"),
    ));
    cases.push(kv_case(
        "rope scaling type as a number",
        |kv| set(kv, "llama.rope.scaling.type", GgufValue::U32(1)),
        expect!(Error::Config { field, .. } if field == "llama.rope.scaling.type"),
    ));
    cases.push(kv_case(
        "vocabulary as nested arrays",
        |kv| {
            let inner = GgufValue::Array(vec![GgufValue::String("a".into())]);
            set(
                kv,
                "tokenizer.ggml.tokens",
                GgufValue::Array(vec![inner; 128]),
            );
        },
        expect!(Error::Config { .. }),
    ));
    cases.push(patched(
        "unknown value type",
        |b| put_u32(b, 24 + 8 + "general.architecture".len(), 13),
        expect!(Error::Gguf {
            source: G::UnknownValueType { value_type: 13, .. },
            ..
        }),
    ));
    cases.push(kv_case(
        "bool byte 2",
        |kv| set(kv, "tokenizer.ggml.add_bos_token", GgufValue::Bool(true)),
        expect!(Error::Gguf {
            source: G::BadMetadata { .. },
            ..
        }),
    ));
    // The last case wrote a valid bool; make it 2 in place.
    if let Some(last) = cases.last_mut() {
        let bytes = &mut last.files[0].1;
        let key = b"tokenizer.ggml.add_bos_token";
        let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
        bytes[at] = 2;
    }

    // Tensor infos.
    cases.extend([
        patched(
            "5 dimensions",
            |b| put_u32(b, first_info.n_dims, 5),
            expect!(Error::Gguf {
                source: G::TooManyDims { n_dims: 5, .. },
                ..
            }),
        ),
        patched(
            "2^32-1 dimensions",
            |b| put_u32(b, first_info.n_dims, u32::MAX),
            expect!(Error::Gguf {
                source: G::TooManyDims { .. },
                ..
            }),
        ),
        patched(
            "0 dimensions",
            |b| put_u32(b, first_info.n_dims, 0),
            expect!(Error::Gguf {
                source: G::TooManyDims { n_dims: 0, .. },
                ..
            }),
        ),
        patched(
            "dimension 2^64-1",
            |b| put_u64(b, first_info.dims + 8, u64::MAX),
            expect!(Error::Gguf {
                source: G::BadTensorSize { .. },
                ..
            }),
        ),
        tensor_case(
            "element count overflows",
            |t| t[0].dims = vec![32, 1 << 40, 1 << 40],
            expect!(Error::Gguf {
                source: G::BadTensorSize { .. },
                ..
            }),
        ),
        tensor_case(
            "byte size overflows",
            |t| {
                t[0].ggml_type = 0;
                t[0].dims = vec![1 << 62];
            },
            expect!(Error::Gguf {
                source: G::BadTensorSize { .. },
                ..
            }),
        ),
        tensor_case(
            "row not a whole number of blocks",
            |t| t[0].dims[0] = 33,
            expect!(Error::Gguf {
                source: G::BadTensorSize { .. },
                ..
            }),
        ),
        tensor_case(
            "MXFP4 row not a whole number of blocks",
            |t| {
                t[0].ggml_type = 39;
                t[0].dims[0] = 48;
            },
            expect!(Error::Gguf {
                source: G::BadTensorSize { .. },
                ..
            }),
        ),
        patched(
            "MXFP4 type over another type's bytes",
            |b| put_u32(b, first_info.ggml_type, 39),
            expect!(Error::Gguf {
                source: G::UnexpectedOffset { .. },
                ..
            }),
        ),
        patched(
            "unknown ggml type",
            |b| put_u32(b, first_info.ggml_type, 99),
            expect!(Error::Gguf {
                source: G::UnknownTensorType { ggml_type: 99, .. },
                ..
            }),
        ),
        patched(
            "ggml type 2^32-1",
            |b| put_u32(b, first_info.ggml_type, u32::MAX),
            expect!(Error::Gguf {
                source: G::UnknownTensorType { .. },
                ..
            }),
        ),
        patched(
            "ggml type removed from ggml (Q4_2)",
            |b| put_u32(b, first_info.ggml_type, 4),
            expect!(Error::Gguf {
                source: G::UnknownTensorType { ggml_type: 4, .. },
                ..
            }),
        ),
        patched(
            "overlapping offsets",
            |b| put_u64(b, second_offset, 0),
            expect!(Error::Gguf {
                source: G::UnexpectedOffset { .. },
                ..
            }),
        ),
        patched(
            "aliased offsets",
            |b| {
                let prev = u64::from_le_bytes(b[second_offset..][..8].try_into().unwrap());
                put_u64(b, third_offset, prev)
            },
            expect!(Error::Gguf {
                source: G::UnexpectedOffset { .. },
                ..
            }),
        ),
        patched(
            "gap between tensors",
            |b| {
                let at = second_offset;
                let v = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
                put_u64(b, at, v + 32)
            },
            expect!(Error::Gguf {
                source: G::UnexpectedOffset { .. },
                ..
            }),
        ),
        patched(
            "unaligned offset",
            |b| {
                let at = second_offset;
                let v = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
                put_u64(b, at, v + 3)
            },
            expect!(Error::Gguf {
                source: G::MisalignedTensor { .. },
                ..
            }),
        ),
        patched(
            "offset past the end",
            |b| {
                let at = last_offset;
                let v = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
                put_u64(b, at, v + (1 << 20))
            },
            expect!(Error::Gguf {
                source: G::UnexpectedOffset { .. } | G::TensorOutOfBounds { .. },
                ..
            }),
        ),
        patched(
            "offset 2^64-32",
            |b| put_u64(b, first_info.offset, u64::MAX - 31),
            expect!(Error::Gguf { .. }),
        ),
        tensor_case(
            "duplicate tensor name",
            |t| {
                let copy = t[1].clone();
                t.push(copy);
            },
            expect!(Error::Gguf {
                source: G::DuplicateTensor(_),
                ..
            }),
        ),
        patched(
            "tensor name not UTF-8",
            |b| {
                let at = first_info.n_dims - 1;
                b[at] = 0xff;
            },
            expect!(Error::Gguf {
                source: G::InvalidUtf8 { .. },
                ..
            }),
        ),
    ]);

    // Alignment.
    for (what, value) in [
        ("alignment 0", GgufValue::U32(0)),
        ("alignment 3", GgufValue::U32(3)),
        ("alignment 2^31", GgufValue::U32(1 << 31)),
        ("alignment as a string", GgufValue::String("32".into())),
        ("alignment as a float", GgufValue::F32(32.0)),
    ] {
        cases.push(kv_case(
            what,
            |kv| set(kv, "general.alignment", value),
            expect!(Error::Gguf {
                source: G::BadMetadata { .. },
                ..
            }),
        ));
    }

    // Keys.
    cases.extend([
        kv_case(
            "duplicate key",
            |kv| {
                let dup = kv[0].clone();
                kv.push(dup);
            },
            expect!(Error::Gguf {
                source: G::DuplicateKey(_),
                ..
            }),
        ),
        patched(
            "key not UTF-8",
            |b| b[24 + 8] = 0xc0,
            expect!(Error::Gguf {
                source: G::InvalidUtf8 { .. },
                ..
            }),
        ),
        kv_case(
            "architecture not UTF-8",
            |kv| {
                set(
                    kv,
                    "general.architecture",
                    GgufValue::String("llama".into()),
                )
            },
            expect!(Error::Gguf {
                source: G::InvalidUtf8 { .. },
                ..
            }),
        ),
    ]);
    if let Some(last) = cases.last_mut() {
        let bytes = &mut last.files[0].1;
        let needle = b"\x05\0\0\0\0\0\0\0llama";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
            + 8;
        bytes[at + 2] = 0xfe;
    }

    // Vocabulary.
    cases.extend([
        kv_case(
            "vocabulary of numbers",
            |kv| {
                set(
                    kv,
                    "tokenizer.ggml.tokens",
                    GgufValue::Array((0..128).map(GgufValue::U32).collect()),
                )
            },
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "vocabulary as a string",
            |kv| set(kv, "tokenizer.ggml.tokens", GgufValue::String("abc".into())),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "scores shorter than the vocabulary",
            |kv| {
                set(
                    kv,
                    "tokenizer.ggml.scores",
                    GgufValue::Array(vec![GgufValue::F32(0.0); 5]),
                )
            },
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "token types longer than the vocabulary",
            |kv| {
                set(
                    kv,
                    "tokenizer.ggml.token_type",
                    GgufValue::Array(vec![GgufValue::I32(1); 500]),
                )
            },
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "empty vocabulary",
            |kv| {
                set(kv, "tokenizer.ggml.tokens", GgufValue::Array(vec![]));
                remove(kv, "tokenizer.ggml.scores");
                remove(kv, "tokenizer.ggml.token_type");
            },
            expect!(Error::Config { .. } | Error::Tokenizer(_)),
        ),
        kv_case(
            "bos id beyond the vocabulary",
            |kv| set(kv, "tokenizer.ggml.bos_token_id", GgufValue::U32(128)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "eos id 2^32-1",
            |kv| set(kv, "tokenizer.ggml.eos_token_id", GgufValue::U32(u32::MAX)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "negative unk id",
            |kv| set(kv, "tokenizer.ggml.unknown_token_id", GgufValue::I32(-1)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "unknown tokenizer model",
            |kv| {
                set(
                    kv,
                    "tokenizer.ggml.model",
                    GgufValue::String("bogus".into()),
                )
            },
            expect!(Error::Config { .. } | Error::Tokenizer(_)),
        ),
        bpe_case(
            "merge of tokens beyond the vocabulary",
            |kv| {
                set(kv, "tokenizer.ggml.merges", strings(&["zz qq".to_string()]));
            },
            expect!(Error::Tokenizer(_) | Error::Config { .. }),
        ),
        bpe_case(
            "merge without a space",
            |kv| {
                set(kv, "tokenizer.ggml.merges", strings(&["ab".to_string()]));
            },
            expect!(Error::Config { .. }),
        ),
        bpe_case(
            "merges of numbers",
            |kv| {
                set(
                    kv,
                    "tokenizer.ggml.merges",
                    GgufValue::Array(vec![GgufValue::U32(7); 3]),
                );
            },
            expect!(Error::Config { .. }),
        ),
    ]);

    // Model hyper-parameters.
    cases.extend([
        kv_case(
            "block_count of a million",
            |kv| set(kv, "llama.block_count", GgufValue::U32(1_000_000)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "block_count above the tensors",
            |kv| set(kv, "llama.block_count", GgufValue::U32(3)),
            expect!(Error::MissingTensor { .. }),
        ),
        kv_case(
            "block_count below the tensors",
            |kv| set(kv, "llama.block_count", GgufValue::U32(1)),
            expect!(Error::UnusedTensors { .. }),
        ),
        kv_case(
            "embedding_length 0",
            |kv| set(kv, "llama.embedding_length", GgufValue::U32(0)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "embedding_length disagrees with the tensors",
            |kv| set(kv, "llama.embedding_length", GgufValue::U32(64)),
            expect!(Error::ShapeMismatch { .. } | Error::Config { .. }),
        ),
        kv_case(
            "heads do not divide embedding_length",
            |kv| set(kv, "llama.attention.head_count", GgufValue::U32(5)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "kv heads do not divide heads",
            |kv| set(kv, "llama.attention.head_count_kv", GgufValue::U32(3)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "context_length 2^40",
            |kv| set(kv, "llama.context_length", GgufValue::U64(1 << 40)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "rope base NaN",
            |kv| set(kv, "llama.rope.freq_base", GgufValue::F32(f32::NAN)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "rope base infinite",
            |kv| set(kv, "llama.rope.freq_base", GgufValue::F32(f32::INFINITY)),
            expect!(Error::Config { .. }),
        ),
        kv_case(
            "unknown architecture",
            |kv| {
                set(
                    kv,
                    "general.architecture",
                    GgufValue::String("bogus".into()),
                )
            },
            expect!(Error::UnknownModelType { .. }),
        ),
        kv_case(
            "no architecture",
            |kv| remove(kv, "general.architecture"),
            expect!(Error::Config { .. }),
        ),
        tensor_case(
            "missing tensor",
            |t| {
                t.pop();
            },
            expect!(Error::MissingTensor { .. }),
        ),
    ]);
    cases.extend(converter_layout_cases());
    cases
}

fn f32_tensor(name: &str, dims: Vec<u64>, values: &[f32]) -> RawTensor {
    RawTensor {
        name: name.into(),
        ggml_type: 0,
        dims,
        data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Tensors whose layout comes from llama.cpp's converters: RoPE factor tensors read into the
/// config, stacked experts split per expert.
fn converter_layout_cases() -> Vec<Case> {
    let with_tensor = |name: &str, tensor: RawTensor, expect: Expect| {
        tensor_case(name, move |t| t.push(tensor), expect)
    };
    vec![
        with_tensor(
            "rope_freqs quantized",
            RawTensor {
                name: "rope_freqs.weight".into(),
                ggml_type: 8,
                dims: vec![32],
                data: vec![0; 34],
            },
            expect!(Error::UnsupportedTensor { .. }),
        ),
        with_tensor(
            "rope_freqs holding NaN",
            f32_tensor("rope_freqs.weight", vec![4], &[1.0, f32::NAN, 1.0, 1.0]),
            expect!(Error::UnsupportedTensor { .. }),
        ),
        with_tensor(
            "rope_freqs of the wrong length",
            f32_tensor("rope_freqs.weight", vec![3], &[1.0, 2.0, 4.0]),
            expect!(Error::Config { .. }),
        ),
        with_tensor(
            "rope_freqs of zeros",
            f32_tensor("rope_freqs.weight", vec![4], &[0.0; 4]),
            expect!(Error::Config { .. }),
        ),
        with_tensor(
            "LongRoPE long factors without short ones",
            f32_tensor("rope_factors_long.weight", vec![4], &[1.0; 4]),
            expect!(Error::MissingTensor { .. }),
        ),
        kv_case(
            "expert count with dense MLPs",
            |kv| {
                set(kv, "llama.expert_count", GgufValue::U32(4));
                set(kv, "llama.expert_used_count", GgufValue::U32(2));
            },
            expect!(Error::MissingTensor { .. }),
        ),
        {
            let (mut kv, mut t) = base_parts();
            set(&mut kv, "llama.expert_count", GgufValue::U32(2));
            set(&mut kv, "llama.expert_used_count", GgufValue::U32(1));
            t.push(f32_tensor(
                "blk.0.ffn_gate_exps.weight",
                vec![64],
                &[0.0; 64],
            ));
            case(
                "stacked experts in a vector",
                write(&kv, &t),
                expect!(Error::UnsupportedTensor { .. }),
            )
        },
        kv_case(
            "more experts used than exist",
            |kv| {
                set(kv, "llama.expert_count", GgufValue::U32(2));
                set(kv, "llama.expert_used_count", GgufValue::U32(3));
            },
            expect!(Error::Config { .. }),
        ),
    ]
}
