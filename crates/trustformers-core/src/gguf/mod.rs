//! A bounds-checked GGUF (v2/v3) reader over a memory-mapped file.
//!
//! Layout (little-endian): magic `GGUF`, version, tensor count, metadata count, the metadata
//! key/values, the tensor infos, padding up to `general.alignment`, then the tensor data.
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated, so a hostile file can neither overflow size arithmetic nor make the
//! reader allocate more than the file holds.

use crate::weights::FileBytes;
use crate::{Error, Result};
use candle_core::quantized::{GgmlDType, GgmlType, QStorage, QTensor, QuantizedType};
use candle_core::Device;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod parse;
mod write;

pub use parse::{parse, GgufHeader};
pub use write::{value_type, write, RawTensor};

/// Bytes of a tensor copied out of the map between two releases of its pages.
const COPY_CHUNK: usize = 4 << 20;

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

/// How a tensor's values are stored: a ggml type candle computes with, or ggml's MXFP4
/// (type 39, gpt-oss's experts), which candle does not know and which loads dequantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufDType {
    Ggml(GgmlDType),
    /// Blocks of 32 values: one e8m0 scale byte, then 16 bytes of e2m1 codes (value `j` in
    /// the low nibble of byte `j`, value `j + 16` in its high nibble).
    Mxfp4,
}

impl GgufDType {
    const MXFP4_ID: u32 = 39;

    /// The type of ggml type id `id`; `None` for types this crate cannot read.
    pub fn from_id(id: u32) -> Option<Self> {
        match id {
            Self::MXFP4_ID => Some(Self::Mxfp4),
            _ => ggml_dtype(id).map(Self::Ggml),
        }
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            Self::Ggml(t) => ggml_type_id(t),
            Self::Mxfp4 => Self::MXFP4_ID,
        }
    }

    /// The candle type, when candle has one.
    pub fn ggml(self) -> Option<GgmlDType> {
        match self {
            Self::Ggml(t) => Some(t),
            Self::Mxfp4 => None,
        }
    }

    /// Values per block.
    pub fn block_size(self) -> usize {
        match self {
            Self::Ggml(t) => t.block_size(),
            Self::Mxfp4 => 32,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            Self::Ggml(t) => t.type_size(),
            Self::Mxfp4 => 17,
        }
    }

    /// Whether values are stored as plain floats (f32, f16, bf16).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Self::Ggml(GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
        )
    }
}

/// Where one tensor lives in the file, with shape in row-major (PyTorch/candle) order.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Dimensions, outermost first (GGUF stores them innermost first).
    pub shape: Vec<usize>,
    pub dtype: GgufDType,
    /// Absolute byte range in the file.
    pub start: usize,
    pub len: usize,
}

/// A parsed GGUF file, memory-mapped (or handed over as bytes).
pub struct GgufFile {
    path: PathBuf,
    bytes: FileBytes,
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
        let bytes = FileBytes::map(&path)?;
        Self::parse_from(path, bytes)
    }

    /// Parses a GGUF file already in memory; `name` stands for its path in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::parse_from(name.into(), FileBytes::Owned(bytes))
    }

    fn parse_from(path: PathBuf, bytes: FileBytes) -> Result<Self> {
        let parsed = parse(&bytes).map_err(|source| Error::Gguf {
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
            bytes,
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
        &self.bytes[info.start..info.start + info.len]
    }

    /// Loads a tensor (or the `part` of it an HF tensor is) as a quantized tensor, keeping its
    /// ggml type. `row_order` optionally reorders the outermost dimension of that part (used
    /// to undo llama.cpp's Q/K head permutation).
    pub fn qtensor(
        &self,
        name: &str,
        part: &TensorPart,
        row_order: Option<&[usize]>,
        device: &Device,
    ) -> Result<QTensor> {
        let info = self.tensor_info(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })?;
        let dtype = info.dtype.ggml().ok_or_else(|| Error::UnsupportedTensor {
            name: name.to_string(),
            reason: format!(
                "{:?} has no quantized tensor type: it loads dequantized",
                info.dtype
            ),
        })?;
        let (range, shape) = part_layout(info, part)?;
        let tensor = match (row_order, device) {
            (None, Device::Cpu) => {
                let storage = QStorage::Cpu(self.copy_blocks(info, dtype, range, COPY_CHUNK)?);
                QTensor::new(storage, shape)?
            }
            _ => {
                let bytes = &self.tensor_bytes(info)[range];
                let data: Cow<'_, [u8]> = match row_order {
                    Some(order) => Cow::Owned(reorder_rows(&info.name, &shape, bytes, order)?),
                    None => Cow::Borrowed(bytes),
                };
                // candle reinterprets the bytes as blocks in place: they must be 8-byte
                // aligned.
                let words: Vec<u64>;
                let bytes: &[u8] = if data.as_ptr().align_offset(8) == 0 {
                    &data
                } else {
                    let mut buf = vec![0u64; data.len().div_ceil(8)];
                    bytemuck::cast_slice_mut::<u64, u8>(&mut buf)[..data.len()]
                        .copy_from_slice(&data);
                    words = buf;
                    &bytemuck::cast_slice::<u64, u8>(&words)[..data.len()]
                };
                let storage = QStorage::from_data(Cow::Borrowed(bytes), device, dtype)?;
                QTensor::new(storage, shape)?
            }
        };
        self.release(info.start, info.len);
        Ok(tensor)
    }

    /// Loads an MXFP4 tensor (or `part` of it) dequantized to f32: each value is its e2m1
    /// code times two to the power of its block's scale byte less 127, as ggml and
    /// transformers both decode it.
    pub fn dequantize_mxfp4(
        &self,
        name: &str,
        part: &TensorPart,
        device: &Device,
    ) -> Result<candle_core::Tensor> {
        const E2M1: [f32; 16] = [
            0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
        ];
        let info = self.tensor_info(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })?;
        if info.dtype != GgufDType::Mxfp4 {
            return Err(Error::UnsupportedTensor {
                name: name.to_string(),
                reason: format!("is {:?}, not MXFP4", info.dtype),
            });
        }
        let (range, shape) = part_layout(info, part)?;
        let bytes = &self.tensor_bytes(info)[range.clone()];
        let mut out = Vec::with_capacity(bytes.len() / 17 * 32);
        for block in bytes.chunks_exact(17) {
            let scale = (2f64).powi(i32::from(block[0]) - 127) as f32;
            let codes = &block[1..];
            out.extend(codes.iter().map(|&b| E2M1[usize::from(b & 0x0f)] * scale));
            out.extend(codes.iter().map(|&b| E2M1[usize::from(b >> 4)] * scale));
        }
        self.release(info.start + range.start, range.len());
        Ok(candle_core::Tensor::from_vec(out, shape, device)?)
    }

    /// Copies `range` of a tensor's bytes into an owned vector of its ggml blocks, `chunk`
    /// bytes at a time, dropping the map's pages behind the copy as it goes: at no point are
    /// both copies of a large tensor (Gemma 3's 178 MB embedding) resident.
    fn copy_blocks(
        &self,
        info: &GgufTensorInfo,
        dtype: GgmlDType,
        range: std::ops::Range<usize>,
        chunk: usize,
    ) -> Result<Box<dyn QuantizedType>> {
        use candle_core::quantized::k_quants::*;
        use half::{bf16, f16};
        let src = &self.tensor_bytes(info)[range.clone()];
        let start = info.start + range.start;
        Ok(match dtype {
            GgmlDType::F32 => self.copy_as::<f32>(info, src, start, chunk)?,
            GgmlDType::F16 => self.copy_as::<f16>(info, src, start, chunk)?,
            GgmlDType::BF16 => self.copy_as::<bf16>(info, src, start, chunk)?,
            GgmlDType::Q4_0 => self.copy_as::<BlockQ4_0>(info, src, start, chunk)?,
            GgmlDType::Q4_1 => self.copy_as::<BlockQ4_1>(info, src, start, chunk)?,
            GgmlDType::Q5_0 => self.copy_as::<BlockQ5_0>(info, src, start, chunk)?,
            GgmlDType::Q5_1 => self.copy_as::<BlockQ5_1>(info, src, start, chunk)?,
            GgmlDType::Q8_0 => self.copy_as::<BlockQ8_0>(info, src, start, chunk)?,
            GgmlDType::Q8_1 => self.copy_as::<BlockQ8_1>(info, src, start, chunk)?,
            GgmlDType::Q2K => self.copy_as::<BlockQ2K>(info, src, start, chunk)?,
            GgmlDType::Q3K => self.copy_as::<BlockQ3K>(info, src, start, chunk)?,
            GgmlDType::Q4K => self.copy_as::<BlockQ4K>(info, src, start, chunk)?,
            GgmlDType::Q5K => self.copy_as::<BlockQ5K>(info, src, start, chunk)?,
            GgmlDType::Q6K => self.copy_as::<BlockQ6K>(info, src, start, chunk)?,
            GgmlDType::Q8K => self.copy_as::<BlockQ8K>(info, src, start, chunk)?,
        })
    }

    /// [`Self::copy_blocks`] for one block type `T`; `src` starts at byte `start` of the map.
    fn copy_as<T: GgmlType + Send + Sync + 'static>(
        &self,
        info: &GgufTensorInfo,
        src: &[u8],
        start: usize,
        chunk: usize,
    ) -> Result<Box<dyn QuantizedType>> {
        let size = std::mem::size_of::<T>();
        if size == 0 || !src.len().is_multiple_of(size) {
            return Err(Error::UnsupportedTensor {
                name: info.name.clone(),
                reason: format!(
                    "{} bytes are not a whole number of {:?} blocks",
                    src.len(),
                    info.dtype
                ),
            });
        }
        let count = src.len() / size;
        let mut blocks: Vec<T> = Vec::with_capacity(count);
        let dst = blocks.as_mut_ptr().cast::<u8>();
        crate::weights::advise_huge_pages(dst, src.len());
        for offset in (0..src.len()).step_by(chunk.max(1)) {
            let len = chunk.max(1).min(src.len() - offset);
            self.bytes.populate(start + offset, len);
            // SAFETY: `dst` has room for `count * size == src.len()` bytes, the two buffers
            // do not overlap (one is the read-only map), and `offset + len <= src.len()`.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr().add(offset), dst.add(offset), len)
            };
            self.release(start + offset, len);
        }
        // SAFETY: every byte of the `count` blocks was written above. ggml blocks are plain
        // integers and f16 scales, for which any bit pattern is a valid value: candle reads
        // the same bytes as blocks in place (`from_data`).
        unsafe { blocks.set_len(count) };
        Ok(Box::new(blocks))
    }

    /// Drops the map's pages over `start..start + len` from this process's resident memory
    /// once they have been copied out: the copy is what the model keeps, so without this
    /// every weight would be resident twice while loading.
    fn release(&self, start: usize, len: usize) {
        self.bytes.release(start, len);
    }
}

/// Which part of a GGUF tensor an HF tensor is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TensorPart {
    /// All of it.
    #[default]
    Whole,
    /// Rows `start..end` of the outermost dimension (q, k or v of a fused projection).
    Rows(std::ops::Range<usize>),
    /// Entry `i` of the outermost dimension, which is dropped (expert `i` of a stacked
    /// `[experts, rows, cols]` tensor, head `i` of stacked per-head norms).
    Index(usize),
}

/// The shape `part` of a tensor shaped `shape` has, or `None` if it is out of range.
pub fn part_shape(shape: &[usize], part: &TensorPart) -> Option<Vec<usize>> {
    let (&outer, inner) = shape.split_first()?;
    match part {
        TensorPart::Whole => Some(shape.to_vec()),
        TensorPart::Rows(r) if r.start < r.end && r.end <= outer => Some(
            std::iter::once(r.len())
                .chain(inner.iter().copied())
                .collect(),
        ),
        TensorPart::Index(i) if *i < outer && !inner.is_empty() => Some(inner.to_vec()),
        _ => None,
    }
}

/// The byte range and shape of `part` of `info`'s data. Parts split the outermost dimension,
/// so each must hold whole quantization blocks.
fn part_layout(
    info: &GgufTensorInfo,
    part: &TensorPart,
) -> Result<(std::ops::Range<usize>, Vec<usize>)> {
    let unsupported = |reason: String| Error::UnsupportedTensor {
        name: info.name.clone(),
        reason,
    };
    let shape = part_shape(&info.shape, part)
        .ok_or_else(|| unsupported(format!("has no part {part:?} (shape {:?})", info.shape)))?;
    let (outer, range) = match part {
        TensorPart::Whole => return Ok((0..info.len, shape)),
        TensorPart::Rows(r) => (info.shape[0], r.clone()),
        TensorPart::Index(i) => (info.shape[0], *i..*i + 1),
    };
    let per_row: usize = info.shape[1..].iter().product();
    if !per_row.is_multiple_of(info.dtype.block_size()) || !info.len.is_multiple_of(outer) {
        return Err(unsupported(format!(
            "a {:?} tensor of shape {:?} cannot be split along its outermost dimension",
            info.dtype, info.shape
        )));
    }
    let row_bytes = info.len / outer;
    Ok((range.start * row_bytes..range.end * row_bytes, shape))
}

fn reorder_rows(name: &str, shape: &[usize], bytes: &[u8], order: &[usize]) -> Result<Vec<u8>> {
    let rows = shape.first().copied().unwrap_or(0);
    if order.len() != rows || rows == 0 || !bytes.len().is_multiple_of(rows) {
        return Err(Error::UnsupportedTensor {
            name: name.to_string(),
            reason: format!("cannot reorder {} rows by {} indices", rows, order.len()),
        });
    }
    let row_len = bytes.len() / rows;
    let mut out = Vec::with_capacity(bytes.len());
    for &src in order {
        let row = bytes
            .get(src * row_len..(src + 1) * row_len)
            .ok_or_else(|| Error::UnsupportedTensor {
                name: name.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    /// A GGUF file holding one tensor quantized to `dtype`, and the tensor dequantized.
    fn one_tensor(shape: &[usize], dtype: GgmlDType) -> (tempfile::TempDir, GgufFile, Tensor) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let t = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, dtype).unwrap();
        let raw = RawTensor {
            name: "w".into(),
            ggml_type: ggml_type_id(dtype),
            dims: shape.iter().rev().map(|&d| d as u64).collect(),
            data: q.data().unwrap().into_owned(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        std::fs::write(&path, write(&[], &[raw])).unwrap();
        let reference = q.dequantize(&Device::Cpu).unwrap();
        (dir, GgufFile::open(&path).unwrap(), reference)
    }

    fn load(file: &GgufFile, part: TensorPart, order: Option<&[usize]>) -> Tensor {
        file.qtensor("w", &part, order, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
    }

    fn assert_same(a: &Tensor, b: &Tensor) {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
    }

    /// A GGUF file holding MXFP4 tensor `w` of `dims` (GGUF order) with `data` as its bytes.
    fn mxfp4_file(dims: Vec<u64>, data: Vec<u8>) -> (tempfile::TempDir, std::path::PathBuf) {
        let raw = RawTensor {
            name: "w".into(),
            ggml_type: GgufDType::Mxfp4.id(),
            dims,
            data,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        std::fs::write(&path, write(&[], &[raw])).unwrap();
        (dir, path)
    }

    #[test]
    fn mxfp4_blocks_dequantize_as_ggml_decodes_them() {
        // Two rows of one block each: scale bytes 127 (x1) and 129 (x4); codes 0..16 in the
        // low nibbles (values 0-15) and 15 - k in the high ones (values 16-31).
        let mut data = Vec::new();
        for scale in [127u8, 129] {
            data.push(scale);
            data.extend((0..16u8).map(|k| k | ((15 - k) << 4)));
        }
        let (_dir, path) = mxfp4_file(vec![32, 2], data);
        let file = GgufFile::open(&path).unwrap();
        assert_eq!(file.tensor_info("w").unwrap().dtype, GgufDType::Mxfp4);
        let e2m1 = [
            0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0,
            -6.0,
        ];
        let row: Vec<f32> = e2m1.iter().chain(e2m1.iter().rev()).copied().collect();
        let want: Vec<f32> = row
            .iter()
            .chain(&row.iter().map(|x| x * 4.0).collect::<Vec<_>>())
            .copied()
            .collect();
        let whole = file
            .dequantize_mxfp4("w", &TensorPart::Whole, &Device::Cpu)
            .unwrap();
        assert_eq!(whole.dims(), &[2, 32]);
        assert_eq!(whole.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        let second = file
            .dequantize_mxfp4("w", &TensorPart::Index(1), &Device::Cpu)
            .unwrap();
        assert_eq!(second.dims(), &[32]);
        assert_eq!(
            second.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want[32..]
        );
        // candle has no MXFP4 type: asking for a quantized tensor is an error naming it.
        let err = file
            .qtensor("w", &TensorPart::Whole, None, &Device::Cpu)
            .unwrap_err();
        assert!(err.to_string().contains("dequantized"), "{err}");
    }

    #[test]
    fn mxfp4_rows_must_be_whole_blocks() {
        let (_dir, path) = mxfp4_file(vec![16, 2], vec![0; 17]);
        let err = GgufFile::open(&path).unwrap_err();
        assert!(err.to_string().contains('w'), "{err}");
    }

    #[test]
    fn parts_of_quantized_tensors_are_their_slices() {
        // Stacked experts: [experts, rows, cols].
        let (_dir, file, whole) = one_tensor(&[3, 4, 64], GgmlDType::Q8_0);
        assert_same(&load(&file, TensorPart::Whole, None), &whole);
        for e in 0..3 {
            let part = load(&file, TensorPart::Index(e), None);
            assert_same(&part, &whole.get(e).unwrap());
        }
        // A fused projection: rows 2..5 of [6, 32], then reordered.
        let (_dir, file, whole) = one_tensor(&[6, 32], GgmlDType::Q4_0);
        let rows = load(&file, TensorPart::Rows(2..5), None);
        assert_same(&rows, &whole.narrow(0, 2, 3).unwrap());
        let reordered = load(&file, TensorPart::Rows(2..5), Some(&[2, 0, 1]));
        let idx = Tensor::new(&[4u32, 2, 3], &Device::Cpu).unwrap();
        assert_same(&reordered, &whole.index_select(&idx, 0).unwrap());
    }

    #[test]
    fn copies_in_any_chunk_size_equal_the_file_bytes() {
        for dtype in [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let (_dir, file, reference) = one_tensor(&[3, 256], dtype);
            let info = file.tensor_info("w").unwrap();
            let want = file.tensor_bytes(info).to_vec();
            // Chunks smaller than a block, not a multiple of it, and larger than the tensor.
            for chunk in [1, 7, 100, 1 << 20] {
                let storage = file.copy_blocks(info, dtype, 0..info.len, chunk).unwrap();
                let q = QTensor::new(QStorage::Cpu(storage), (3, 256)).unwrap();
                assert_eq!(q.data().unwrap().as_ref(), want.as_slice(), "{dtype:?}");
                assert_same(&q.dequantize(&Device::Cpu).unwrap(), &reference);
            }
            assert_same(&load(&file, TensorPart::Whole, None), &reference);
        }
    }

    #[test]
    fn parts_outside_the_tensor_are_errors() {
        let (_dir, file, _) = one_tensor(&[2, 32], GgmlDType::Q8_0);
        for part in [
            TensorPart::Index(2),
            TensorPart::Rows(1..3),
            TensorPart::Rows(1..1),
        ] {
            let err = file.qtensor("w", &part, None, &Device::Cpu).unwrap_err();
            assert!(
                matches!(err, Error::UnsupportedTensor { .. }),
                "{part:?}: {err}"
            );
        }
        // A quantized vector has no rows to split: its blocks span them.
        let (_dir, file, _) = one_tensor(&[64], GgmlDType::Q8_0);
        let err = file
            .qtensor("w", &TensorPart::Rows(0..32), None, &Device::Cpu)
            .unwrap_err();
        assert!(matches!(err, Error::UnsupportedTensor { .. }), "{err}");
    }
}
