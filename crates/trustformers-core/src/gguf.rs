//! A bounds-checked GGUF (v2/v3) reader over a memory-mapped file.
//!
//! Layout (little-endian): magic `GGUF`, version, tensor count, metadata count, the metadata
//! key/values, the tensor infos, padding up to `general.alignment`, then the tensor data.
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated, so a hostile file can neither overflow size arithmetic nor make the
//! reader allocate more than the file holds.

use crate::{Error, GgufError, Result};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::Device;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const MAGIC: u32 = u32::from_le_bytes(*b"GGUF");
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_ALIGNMENT: u64 = 1 << 16;
const MAX_DIMS: u32 = 4;
const MAX_ARRAY_DEPTH: usize = 4;

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

/// Everything before the tensor data, validated against the file it came from.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos in file order, with byte ranges checked against the file.
    pub tensors: Vec<GgufTensorInfo>,
}

/// A cursor over the file bytes that never reads past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(GgufError::Truncated {
                what: what.to_string(),
                offset: self.buf.len() as u64,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], GgufError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads a count of items that each take at least `min_item_size` bytes, refusing counts
    /// the rest of the file cannot hold.
    fn count(&mut self, min_item_size: usize, what: &str) -> std::result::Result<usize, GgufError> {
        let count = self.u64(what)?;
        let fits = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(min_item_size))
            .is_some_and(|bytes| bytes <= self.remaining());
        if !fits {
            return Err(GgufError::CountTooLarge {
                what: what.to_string(),
                count,
            });
        }
        Ok(count as usize)
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, GgufError> {
        let len = self.count(1, what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            what: what.to_string(),
        })
    }

    fn value(
        &mut self,
        value_type: u32,
        key: &str,
        depth: usize,
    ) -> std::result::Result<GgufValue, GgufError> {
        let what = format!("metadata `{key}`");
        Ok(match value_type {
            0 => GgufValue::U8(self.array::<1>(&what)?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(&what)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    return Err(GgufError::BadMetadata {
                        key: key.to_string(),
                        reason: format!("bool byte {b} is neither 0 nor 1"),
                    })
                }
            },
            8 => GgufValue::String(self.string(&what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestingTooDeep {
                        key: key.to_string(),
                        max_depth: MAX_ARRAY_DEPTH,
                    });
                }
                let item_type = self.u32(&what)?;
                let min_size = min_value_size(item_type).ok_or(GgufError::UnknownValueType {
                    key: key.to_string(),
                    value_type: item_type,
                })?;
                let len = self.count(min_size, &what)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(item_type, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => {
                return Err(GgufError::UnknownValueType {
                    key: key.to_string(),
                    value_type: other,
                })
            }
        })
    }
}

/// The fewest bytes a value of this type occupies in the file.
fn min_value_size(value_type: u32) -> Option<usize> {
    Some(match value_type {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

/// Parses and validates a whole GGUF file held in memory.
pub fn parse(buf: &[u8]) -> std::result::Result<GgufHeader, GgufError> {
    let mut r = Reader { buf, pos: 0 };
    let magic = r.u32("magic")?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    // A tensor info takes at least 8 (name) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; a
    // key/value at least 8 (key) + 4 (type) + 1 (value).
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.count(13, "metadata")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let value_type = r.u32(&format!("metadata `{key}` type"))?;
        let value = r.value(value_type, &key, 0)?;
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey(key));
        }
        metadata.insert(key, value);
    }
    let fits = usize::try_from(n_tensors)
        .ok()
        .and_then(|n| n.checked_mul(24))
        .is_some_and(|b| b <= r.remaining());
    if !fits {
        return Err(GgufError::CountTooLarge {
            what: "tensor".into(),
            count: n_tensors,
        });
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a)) if a.is_power_of_two() && u64::from(*a) <= MAX_ALIGNMENT => {
            u64::from(*a)
        }
        Some(other) => {
            return Err(GgufError::BadMetadata {
                key: "general.alignment".into(),
                reason: format!(
                    "must be a u32 power of two no larger than {MAX_ALIGNMENT}, got {other:?}"
                ),
            })
        }
    };

    let mut raw = Vec::with_capacity(n_tensors as usize);
    let mut seen = HashMap::new();
    for _ in 0..n_tensors {
        let name = r.string("tensor name")?;
        let n_dims = r.u32(&format!("tensor `{name}` dimension count"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = r.u64(&format!("tensor `{name}` dimensions"))?;
            let d = usize::try_from(d).map_err(|_| GgufError::BadTensorSize {
                tensor: name.clone(),
            })?;
            dims.push(d);
        }
        dims.reverse();
        let type_id = r.u32(&format!("tensor `{name}` type"))?;
        let dtype = ggml_dtype(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            tensor: name.clone(),
            ggml_type: type_id,
        })?;
        let offset = r.u64(&format!("tensor `{name}` offset"))?;
        if seen.insert(name.clone(), ()).is_some() {
            return Err(GgufError::DuplicateTensor(name));
        }
        raw.push((name, dims, dtype, offset));
    }

    let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
    let file_len = buf.len() as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    // Tensors are stored back to back in info order, each padded to the alignment (the layout
    // llama.cpp writes and requires): anything else is a gap, an overlap or an alias.
    let mut expected = 0u64;
    for (name, shape, dtype, offset) in raw {
        let len = tensor_byte_len(&shape, dtype).ok_or_else(|| GgufError::BadTensorSize {
            tensor: name.clone(),
        })?;
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: name,
                offset,
                alignment,
            });
        }
        if offset != expected {
            return Err(GgufError::UnexpectedOffset {
                tensor: name,
                offset,
                expected,
            });
        }
        let start = data_start.checked_add(offset);
        let end = start.and_then(|s| s.checked_add(len as u64));
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) if e <= file_len => (s, e),
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: name,
                    start: data_start.saturating_add(offset),
                    end: data_start.saturating_add(offset).saturating_add(len as u64),
                    file_len,
                })
            }
        };
        // `end <= file_len`, so this cannot overflow.
        expected = (offset + len as u64).div_ceil(alignment) * alignment;
        tensors.push(GgufTensorInfo {
            name,
            shape,
            dtype,
            start: start as usize,
            len: (end - start) as usize,
        });
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
    })
}

/// Bytes taken by a tensor of this shape and type, or `None` if the size overflows or the
/// innermost dimension is not a whole number of blocks.
fn tensor_byte_len(shape: &[usize], dtype: GgmlDType) -> Option<usize> {
    let inner = *shape.last()?;
    if inner % dtype.block_size() != 0 {
        return None;
    }
    let elems = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    (elems / dtype.block_size()).checked_mul(dtype.type_size())
}

/// A tensor for [`write`]: raw bytes in a ggml type, dimensions innermost first (GGUF order).
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub name: String,
    pub ggml_type: u32,
    pub dims: Vec<u64>,
    pub data: Vec<u8>,
}

/// The GGUF type id of a value.
pub fn value_type(v: &GgufValue) -> u32 {
    match v {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.extend(x.to_le_bytes()),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(items) => {
            // An empty array is written as an array of u8.
            let item_type = items.first().map_or(0, value_type);
            out.extend(item_type.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// Serializes a GGUF v3 file with the default alignment (32), laid out the way llama.cpp
/// writes it. Arrays must hold values of one type. Used to build test files and fuzz seeds.
pub fn write(metadata: &[(String, GgufValue)], tensors: &[RawTensor]) -> Vec<u8> {
    let align = DEFAULT_ALIGNMENT as usize;
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend(value_type(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ggml_type.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += t.data.len().div_ceil(align) as u64 * align as u64;
    }
    out.resize(out.len().div_ceil(align) * align, 0);
    for t in tensors {
        out.extend(&t.data);
        out.resize(out.len().div_ceil(align) * align, 0);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The writer with tensors given as (name, ggml type, dims innermost first, data).
    pub(crate) fn write_gguf(
        kv: &[(&str, GgufValue)],
        tensors: &[(&str, u32, Vec<u64>, Vec<u8>)],
    ) -> Vec<u8> {
        let kv: Vec<(String, GgufValue)> =
            kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let tensors: Vec<RawTensor> = tensors
            .iter()
            .map(|(name, ty, dims, data)| RawTensor {
                name: name.to_string(),
                ggml_type: *ty,
                dims: dims.clone(),
                data: data.clone(),
            })
            .collect();
        write(&kv, &tensors)
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sample() -> Vec<u8> {
        write_gguf(
            &[
                ("general.architecture", GgufValue::String("llama".into())),
                ("llama.block_count", GgufValue::U32(2)),
            ],
            &[
                (
                    "a",
                    0,
                    vec![4, 2],
                    f32_bytes(&[1., 2., 3., 4., 5., 6., 7., 8.]),
                ),
                ("b", 0, vec![3], f32_bytes(&[1., 2., 3.])),
            ],
        )
    }

    #[test]
    fn parses_a_valid_file() {
        let p = parse(&sample()).unwrap();
        assert_eq!(p.version, 3);
        assert_eq!(p.metadata["llama.block_count"], GgufValue::U32(2));
        assert_eq!(p.tensors[0].shape, vec![2, 4]);
        assert_eq!(p.tensors[1].len, 12);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        let data_end = parse(&bytes)
            .unwrap()
            .tensors
            .iter()
            .map(|t| t.start + t.len)
            .max()
            .unwrap();
        for cut in 0..data_end {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut} parsed");
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut bytes = sample();
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::CountTooLarge { .. })
        ));
        let mut bytes = sample();
        bytes[16..24].copy_from_slice(&(1u64 << 63).to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::CountTooLarge { .. })
        ));
        // First key's string length.
        let mut bytes = sample();
        bytes[24..32].copy_from_slice(&(1u64 << 63).to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::CountTooLarge { .. })
        ));
    }

    #[test]
    fn bad_tensor_infos_are_refused() {
        let data = f32_bytes(&[0.0; 4]);
        let unknown = write_gguf(&[], &[("t", 99, vec![4], data.clone())]);
        assert!(matches!(
            parse(&unknown),
            Err(GgufError::UnknownTensorType { ggml_type: 99, .. })
        ));
        let dims = write_gguf(&[], &[("t", 0, vec![1; 5], data.clone())]);
        assert!(matches!(
            parse(&dims),
            Err(GgufError::TooManyDims { n_dims: 5, .. })
        ));
        let overflow = write_gguf(&[], &[("t", 0, vec![1 << 40, 1 << 40], data.clone())]);
        assert!(matches!(
            parse(&overflow),
            Err(GgufError::BadTensorSize { .. })
        ));
        let past_end = write_gguf(&[], &[("t", 0, vec![1024], data.clone())]);
        assert!(matches!(
            parse(&past_end),
            Err(GgufError::TensorOutOfBounds { .. })
        ));
        let dup = write_gguf(
            &[],
            &[("t", 0, vec![4], data.clone()), ("t", 0, vec![4], data)],
        );
        assert!(matches!(parse(&dup), Err(GgufError::DuplicateTensor(_))));
    }

    #[test]
    fn overlapping_and_misaligned_offsets_are_refused() {
        let data = f32_bytes(&[0.0; 8]);
        let mut bytes = write_gguf(
            &[],
            &[("a", 0, vec![8], data.clone()), ("b", 0, vec![8], data)],
        );
        // Tensor "b"'s offset field is the last 8 bytes of its info; point it into "a".
        let info_end = 24 + (8 + 1 + 4 + 8 + 4 + 8) * 2;
        bytes[info_end - 8..info_end].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::UnexpectedOffset { .. })
        ));
        bytes[info_end - 8..info_end].copy_from_slice(&3u64.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::MisalignedTensor { .. })
        ));
    }

    #[test]
    fn bad_alignment_is_refused() {
        for a in [0u32, 3, 1 << 31] {
            let bytes = write_gguf(&[("general.alignment", GgufValue::U32(a))], &[]);
            assert!(
                matches!(parse(&bytes), Err(GgufError::BadMetadata { .. })),
                "{a}"
            );
        }
        let bytes = write_gguf(
            &[("general.alignment", GgufValue::String("32".into()))],
            &[],
        );
        assert!(matches!(parse(&bytes), Err(GgufError::BadMetadata { .. })));
    }
}
