//! PyTorch `pytorch_model.bin` checkpoints (the zip format `torch.save` writes), read without
//! executing anything: the pickle is interpreted by [`crate::pickle`], and tensors are views
//! into the memory-mapped archive, whose storages must be stored uncompressed (as torch writes
//! them).

use super::{StoredTensor, TensorSource};
use crate::error::PthError;
use crate::pickle::{self, Value};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

/// Largest `data.pkl` read (state-dict pickles are kilobytes to a few megabytes).
const MAX_PICKLE_BYTES: u64 = 256 << 20;

struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: usize,
    end: usize,
}

/// A memory-mapped `pytorch_model.bin` with every tensor located and bounds-checked.
pub struct PthSource {
    path: PathBuf,
    mmap: memmap2::Mmap,
    entries: BTreeMap<String, Entry>,
}

fn storage_dtype(class: &str) -> Option<DType> {
    Some(match class {
        "torch.FloatStorage" => DType::F32,
        "torch.HalfStorage" => DType::F16,
        "torch.BFloat16Storage" => DType::BF16,
        "torch.DoubleStorage" => DType::F64,
        "torch.LongStorage" => DType::I64,
        "torch.IntStorage" => DType::I32,
        "torch.ShortStorage" => DType::I16,
        "torch.ByteStorage" | "torch.BoolStorage" => DType::U8,
        _ => return None,
    })
}

impl PthSource {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map; the file must not be truncated while mapped.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let entries = index(&mmap).map_err(|source| Error::Pth {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            entries,
        })
    }
}

/// Locates every tensor of the archive in `buf`.
fn index(buf: &[u8]) -> std::result::Result<BTreeMap<String, Entry>, PthError> {
    if !buf.starts_with(b"PK\x03\x04") {
        return Err(PthError::NotZip(
            "not a zip archive (legacy, pre-1.6 torch.save files are not supported)".into(),
        ));
    }
    let mut zip =
        zip::ZipArchive::new(Cursor::new(buf)).map_err(|e| PthError::NotZip(e.to_string()))?;
    let pkl = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(|n| n.into_owned())
        .ok_or(PthError::NoPickle)?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut pickle_bytes = Vec::new();
    {
        let entry = zip
            .by_name(&pkl)
            .map_err(|e| PthError::NotZip(e.to_string()))?;
        if entry.size() > MAX_PICKLE_BYTES || entry.size() > buf.len() as u64 * 1024 {
            return Err(PthError::NotZip(format!("{pkl} is too large")));
        }
        entry
            .take(MAX_PICKLE_BYTES)
            .read_to_end(&mut pickle_bytes)
            .map_err(|e| PthError::NotZip(e.to_string()))?;
    }
    let Value::Dict(items) = pickle::load(&pickle_bytes)? else {
        return Err(PthError::NotAStateDict(
            "the pickle is not a dict of tensors".into(),
        ));
    };
    let mut entries = BTreeMap::new();
    for (key, value) in items.iter() {
        let Value::Str(name) = key else {
            return Err(PthError::NotAStateDict("a key is not a string".into()));
        };
        let entry = tensor_entry(name, value, &prefix, &mut zip, buf.len())?;
        if entries.insert(name.clone(), entry).is_some() {
            return Err(PthError::BadTensor {
                tensor: name.clone(),
                reason: "appears twice".into(),
            });
        }
    }
    Ok(entries)
}

fn tensor_entry(
    name: &str,
    value: &Value,
    prefix: &str,
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    file_len: usize,
) -> std::result::Result<Entry, PthError> {
    let bad = |reason: String| PthError::BadTensor {
        tensor: name.to_string(),
        reason,
    };
    // A Parameter wraps the tensor: _rebuild_parameter(tensor, requires_grad, hooks).
    let value = match value {
        Value::Call("torch._utils._rebuild_parameter", args) => {
            args.first().ok_or_else(|| bad("empty parameter".into()))?
        }
        v => v,
    };
    let Value::Call("torch._utils._rebuild_tensor_v2", args) = value else {
        return Err(bad("is not a tensor".into()));
    };
    let [Value::Storage { class, key }, Value::Int(offset), Value::Tuple(size), Value::Tuple(stride), ..] =
        args.as_slice()
    else {
        return Err(bad(
            "tensor arguments are not (storage, offset, size, stride)".into(),
        ));
    };
    let dtype = storage_dtype(class).ok_or_else(|| bad(format!("unsupported storage {class}")))?;
    let dims = |t: &[Value]| -> Option<Vec<usize>> {
        t.iter()
            .map(|v| match v {
                Value::Int(i) => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect()
    };
    let shape = dims(size).ok_or_else(|| bad("size is not a tuple of integers".into()))?;
    let strides = dims(stride).ok_or_else(|| bad("stride is not a tuple of integers".into()))?;
    if shape.len() != strides.len() || shape.len() > 8 {
        return Err(bad(format!(
            "size {shape:?} and stride {strides:?} disagree"
        )));
    }
    let mut expected = 1usize;
    for (d, s) in shape.iter().zip(&strides).rev() {
        if *d > 1 && *s != expected {
            return Err(bad(format!(
                "stride {strides:?} is not contiguous for size {shape:?}"
            )));
        }
        expected = expected
            .checked_mul(*d)
            .ok_or_else(|| bad("size overflows".into()))?;
    }
    let offset = usize::try_from(*offset).map_err(|_| bad("negative offset".into()))?;
    let elem = dtype.size_in_bytes();
    let byte_range = offset
        .checked_add(expected)
        .and_then(|end| Some((offset.checked_mul(elem)?, end.checked_mul(elem)?)))
        .ok_or_else(|| bad("offset overflows".into()))?;
    let storage_name = format!("{prefix}data/{key}");
    let storage = zip
        .by_name(&storage_name)
        .map_err(|_| PthError::MissingStorage {
            tensor: name.to_string(),
            key: key.clone(),
        })?;
    if storage.compression() != zip::CompressionMethod::Stored {
        return Err(bad(format!("storage {key} is compressed")));
    }
    let data_start = storage
        .data_start()
        .and_then(|s| usize::try_from(s).ok())
        .ok_or_else(|| bad(format!("storage {key} has no data offset")))?;
    let storage_len = usize::try_from(storage.size()).unwrap_or(usize::MAX);
    let storage_end = data_start
        .checked_add(storage_len)
        .filter(|&e| e <= file_len)
        .ok_or_else(|| bad(format!("storage {key} runs past the end of the file")))?;
    if byte_range.1 > storage_len {
        return Err(bad(format!(
            "elements {offset}..{} are beyond storage {key} ({storage_len} bytes)",
            offset + expected
        )));
    }
    debug_assert!(data_start + byte_range.1 <= storage_end);
    Ok(Entry {
        dtype,
        shape,
        start: data_start + byte_range.0,
        end: data_start + byte_range.1,
    })
}

impl TensorSource for PthSource {
    fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.entries.get(name).map(|e| e.shape.clone())
    }

    fn load(&self, name: &str, device: &Device) -> Result<StoredTensor> {
        let e = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })?;
        let tensor =
            Tensor::from_raw_buffer(&self.mmap[e.start..e.end], e.dtype, &e.shape, device)?;
        Ok(StoredTensor::Dense(tensor))
    }

    fn is_quantized(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
