//! A bounds-checked GGUF (v2/v3) reader over a memory-mapped file.
//!
//! Layout (little-endian): magic `GGUF`, version, tensor count, metadata count, the metadata
//! key/values, the tensor infos, padding up to `general.alignment`, then the tensor data.
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated, so a hostile file can neither overflow size arithmetic nor make the
//! reader allocate more than the file holds.

use crate::{Error, Result};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::Device;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod parse;
mod write;

pub use parse::{parse, GgufHeader};
pub use write::{value_type, write, RawTensor};

/// `general.alignment` when the file does not set it.
const DEFAULT_ALIGNMENT: u64 = 32;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// Where one tensor lives in the file, with shape in row-major (PyTorch/candle) order.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Dimensions, outermost first (GGUF stores them innermost first).
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
    /// Absolute byte range in the file.
    pub start: usize,
    pub len: usize,
}

/// A parsed, memory-mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not
        // being truncated by another process while it is mapped.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        let parsed = parse(&mmap).map_err(|source| Error::Gguf {
            path: path.clone(),
            source,
        })?;
        let index = parsed
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path,
            mmap,
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            index,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Metadata value for `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// Tensor info for `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor.
    pub fn tensor_bytes(&self, info: &GgufTensorInfo) -> &[u8] {
        // Bounds were validated at parse time.
        &self.mmap[info.start..info.start + info.len]
    }

    /// Loads a tensor as a quantized tensor, keeping its ggml type. `row_order` optionally
    /// reorders the outermost dimension (used to undo llama.cpp's Q/K head permutation).
    pub fn qtensor(
        &self,
        name: &str,
        row_order: Option<&[usize]>,
        device: &Device,
    ) -> Result<QTensor> {
        let info = self.tensor_info(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })?;
        let bytes = self.tensor_bytes(info);
        let data: Cow<'_, [u8]> = match row_order {
            Some(order) => Cow::Owned(reorder_rows(info, bytes, order)?),
            None => Cow::Borrowed(bytes),
        };
        // candle reinterprets the bytes as blocks in place: they must be 8-byte aligned.
        let words: Vec<u64>;
        let bytes: &[u8] = if data.as_ptr().align_offset(8) == 0 {
            &data
        } else {
            let mut buf = vec![0u64; data.len().div_ceil(8)];
            bytemuck::cast_slice_mut::<u64, u8>(&mut buf)[..data.len()].copy_from_slice(&data);
            words = buf;
            &bytemuck::cast_slice::<u64, u8>(&words)[..data.len()]
        };
        let storage = QStorage::from_data(Cow::Borrowed(bytes), device, info.dtype)?;
        Ok(QTensor::new(storage, info.shape.clone())?)
    }
}

fn reorder_rows(info: &GgufTensorInfo, bytes: &[u8], order: &[usize]) -> Result<Vec<u8>> {
    let rows = info.shape.first().copied().unwrap_or(0);
    if order.len() != rows || rows == 0 || bytes.len() % rows != 0 {
        return Err(Error::UnsupportedTensor {
            name: info.name.clone(),
            reason: format!("cannot reorder {} rows by {} indices", rows, order.len()),
        });
    }
    let row_len = bytes.len() / rows;
    let mut out = Vec::with_capacity(bytes.len());
    for &src in order {
        let row = bytes
            .get(src * row_len..(src + 1) * row_len)
            .ok_or_else(|| Error::UnsupportedTensor {
                name: info.name.clone(),
                reason: format!("row {src} out of range"),
            })?;
        out.extend_from_slice(row);
    }
    Ok(out)
}

/// Maps a ggml type id to candle's type; `None` for types candle cannot compute with.
pub fn ggml_dtype(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// The ggml type id of a candle type (the inverse of [`ggml_dtype`]).
pub fn ggml_type_id(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}
