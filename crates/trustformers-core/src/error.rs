//! The one error type of the library crates. Every variant names what went wrong: the file,
//! the tensor, the config field.

use std::path::PathBuf;

/// Result alias used across TrustformeRS.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, mapped or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A safetensors file is malformed (header, dtype, offsets, sizes).
    #[error("{path}: invalid safetensors file: {source}")]
    Safetensors {
        path: PathBuf,
        #[source]
        source: SafetensorsError,
    },
    /// A PyTorch `.bin` checkpoint is malformed or uses something the safe reader refuses.
    #[error("{path}: invalid PyTorch checkpoint: {source}")]
    Pth {
        path: PathBuf,
        #[source]
        source: PthError,
    },
    /// A sharded checkpoint's `model.safetensors.index.json` is malformed or inconsistent.
    #[error("{path}: invalid safetensors index: {reason}")]
    ShardIndex { path: PathBuf, reason: String },
    /// A GGUF file is malformed.
    #[error("{path}: invalid GGUF file: {source}")]
    Gguf {
        path: PathBuf,
        #[source]
        source: GgufError,
    },
    /// A JSON file (config.json, index, ...) is not valid JSON or not UTF-8.
    #[error("{path}: {reason}")]
    Json { path: PathBuf, reason: String },
    /// A config field is missing, has the wrong type, or holds an unusable value.
    #[error("config field `{field}`: {reason}")]
    Config { field: String, reason: String },
    /// The model type / GGUF architecture has no registered implementation.
    #[error("unknown model type `{model_type}`; known types: {}", known.join(", "))]
    UnknownModelType {
        model_type: String,
        known: Vec<&'static str>,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("tensor `{name}` is missing from the checkpoint")]
    MissingTensor { name: String },
    /// A checkpoint tensor has a different shape than the model expects.
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    /// Checkpoint tensors that no part of the model consumed.
    #[error("checkpoint tensors not used by the model: {}", names.join(", "))]
    UnusedTensors { names: Vec<String> },
    /// A tensor is stored in a dtype this operation cannot handle.
    #[error("tensor `{name}`: {reason}")]
    UnsupportedTensor { name: String, reason: String },
    /// A tokenizer file is malformed or a tokenizer operation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template failed to parse or render (including templates that raise or run
    /// out of fuel).
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// An image could not be decoded, or is one the limits refuse (dimensions, pixels).
    #[error("{image}: {reason}")]
    Image { image: String, reason: String },
    /// Invalid argument from a caller (shapes, dtypes, parameters).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An error from the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The message of a caught panic's payload (`catch_unwind`'s error), for the bindings that
/// turn a panic into an error instead of letting it cross into their caller.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// What kind of failure an [`Error`] is, for callers that turn errors into their own kinds
/// (the Python exception classes, the C API's status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file or directory that does not exist.
    NotFound,
    /// A file that cannot be read, or is not a usable checkpoint (malformed, missing or
    /// mismatched tensors).
    BadFile,
    /// A bad argument, configuration value, tokenizer input or chat template.
    InvalidInput,
    /// A failure of the tensor engine.
    Internal,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Self::Io { .. }
            | Self::Safetensors { .. }
            | Self::Pth { .. }
            | Self::ShardIndex { .. }
            | Self::Gguf { .. }
            | Self::Json { .. }
            | Self::MissingTensor { .. }
            | Self::ShapeMismatch { .. }
            | Self::UnusedTensors { .. }
            | Self::UnsupportedTensor { .. }
            | Self::Image { .. } => ErrorKind::BadFile,
            Self::Config { .. }
            | Self::UnknownModelType { .. }
            | Self::Tokenizer(_)
            | Self::ChatTemplate(_)
            | Self::InvalidInput(_) => ErrorKind::InvalidInput,
            Self::Candle(_) => ErrorKind::Internal,
        }
    }

    /// Shorthand for a [`Error::Config`] error.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::Io`] error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// What is wrong with a GGUF file. Offsets are byte offsets into the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (magic {0:#010x})")]
    BadMagic(u32),
    #[error("unsupported GGUF version {0} (supported: 2, 3)")]
    UnsupportedVersion(u32),
    #[error("file ends at byte {offset} while reading {what}")]
    Truncated { what: String, offset: u64 },
    #[error("{what} count {count} cannot fit in the file")]
    CountTooLarge { what: String, count: u64 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("metadata `{key}` has unknown value type {value_type}")]
    UnknownValueType { key: String, value_type: u32 },
    #[error("metadata `{key}` nests arrays deeper than {max_depth}")]
    NestingTooDeep { key: String, max_depth: usize },
    #[error("duplicate metadata key `{0}`")]
    DuplicateKey(String),
    #[error("duplicate tensor `{0}`")]
    DuplicateTensor(String),
    #[error("metadata `{key}`: {reason}")]
    BadMetadata { key: String, reason: String },
    #[error("tensor `{tensor}` has {n_dims} dimensions (at most 4 are allowed)")]
    TooManyDims { tensor: String, n_dims: u32 },
    #[error("tensor `{tensor}` has unknown ggml type {ggml_type}")]
    UnknownTensorType { tensor: String, ggml_type: u32 },
    #[error("tensor `{tensor}` has a size that overflows or does not fit its block size")]
    BadTensorSize { tensor: String },
    #[error(
        "tensor `{tensor}` data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor `{tensor}` data (bytes {start}..{end}) lies past the end of the file ({file_len})"
    )]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    #[error("tensor `{tensor}` data starts at offset {offset}, expected {expected} (tensors must follow each other in order, padded to the alignment)")]
    UnexpectedOffset {
        tensor: String,
        offset: u64,
        expected: u64,
    },
}

/// What is wrong with a safetensors file. Offsets are relative to the start of the data
/// section, as in the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetensorsError {
    #[error("file is {len} bytes, too short for the 8-byte header length")]
    TooShort { len: usize },
    #[error("header length {header_len} is too small for a JSON object")]
    HeaderTooSmall { header_len: u64 },
    #[error("header length {header_len} is larger than the 100,000,000 bytes allowed")]
    HeaderTooLarge { header_len: u64 },
    #[error("header of {header_len} bytes runs past the end of the {file_len}-byte file")]
    HeaderPastEnd { header_len: u64, file_len: u64 },
    #[error("header is not valid UTF-8")]
    HeaderNotUtf8,
    #[error("header is not a JSON object of tensors: {0}")]
    InvalidJson(String),
    #[error("tensor `{0}` appears twice")]
    DuplicateKey(String),
    #[error("`__metadata__` must be an object of strings")]
    BadMetadata,
    #[error("more than {max} tensors")]
    TooManyTensors { max: usize },
    #[error("tensor `{tensor}` has unknown dtype `{dtype}`")]
    UnknownDtype { tensor: String, dtype: String },
    #[error("tensor `{tensor}` has {dims} dimensions")]
    TooManyDims { tensor: String, dims: usize },
    #[error("tensor `{tensor}` has a shape whose byte size overflows")]
    ShapeOverflow { tensor: String },
    #[error("tensor `{tensor}` ends ({end}) before it begins ({begin})")]
    EndBeforeBegin {
        tensor: String,
        begin: u64,
        end: u64,
    },
    #[error("tensor `{tensor}` spans {bytes} bytes but its shape and dtype need {expected}")]
    SizeMismatch {
        tensor: String,
        bytes: u64,
        expected: u64,
    },
    #[error("tensor `{tensor}` ends at {end}, past the {data_len} bytes of data")]
    TensorPastEnd {
        tensor: String,
        end: u64,
        data_len: u64,
    },
    #[error("tensor `{tensor}` starts at {offset}, expected {expected} (tensors must be back to back, without gaps or overlaps)")]
    NotContiguous {
        tensor: String,
        offset: u64,
        expected: u64,
    },
    #[error("{bytes} bytes after the last tensor")]
    TrailingBytes { bytes: u64 },
    #[error("tensor `{tensor}` appears in more than one file")]
    DuplicateAcrossFiles { tensor: String },
}

/// What is wrong with a PyTorch `.bin` checkpoint. Offsets are byte offsets into `data.pkl`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PthError {
    #[error("{0}")]
    NotZip(String),
    #[error("no `<name>/data.pkl` in the archive")]
    NoPickle,
    #[error("pickle ends at byte {offset}")]
    PickleTruncated { offset: usize },
    #[error("pickle byte {offset}: {reason}")]
    BadPickle { offset: usize, reason: String },
    #[error("pickle byte {offset}: refusing global `{name}` (only state-dict tensors are read)")]
    ForbiddenGlobal { name: String, offset: usize },
    #[error("{0}")]
    NotAStateDict(String),
    #[error("tensor `{tensor}` {reason}")]
    BadTensor { tensor: String, reason: String },
    #[error("tensor `{tensor}`: storage `{key}` is missing from the archive")]
    MissingStorage { tensor: String, key: String },
}
