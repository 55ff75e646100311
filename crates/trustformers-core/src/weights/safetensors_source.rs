//! safetensors checkpoints: one file, or shards listed by `model.safetensors.index.json`.

use super::{FileBytes, StoredTensor, TensorSource};
use crate::safetensors_header::{self, Dtype};
use crate::{Error, Result, SafetensorsError};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: usize,
    end: usize,
}

struct MappedFile {
    path: PathBuf,
    bytes: FileBytes,
}

/// Memory-mapped (or in-memory) safetensors files with every header validated up front.
pub struct SafetensorsSource {
    files: Vec<MappedFile>,
    entries: BTreeMap<String, Entry>,
}

impl SafetensorsSource {
    /// Opens the checkpoint in `dir`: `model.safetensors.index.json` and its shards when
    /// present, `model.safetensors` otherwise.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            return Self::from_index(&index);
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Self::open(&[single]);
        }
        Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no model.safetensors or model.safetensors.index.json in this directory",
            ),
        ))
    }

    /// Opens the shards listed in a `model.safetensors.index.json` and checks that every
    /// tensor of its `weight_map` is in the shard it names.
    pub fn from_index(index: &Path) -> Result<Self> {
        let json = crate::config::read_json(index)?;
        let bad = |reason: String| Error::ShardIndex {
            path: index.to_path_buf(),
            reason,
        };
        let weight_map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("missing `weight_map` object".into()))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shard_names: Vec<&str> = Vec::new();
        let mut expected: Vec<(&str, &str)> = Vec::new();
        for (tensor, shard) in weight_map {
            let shard = shard
                .as_str()
                .ok_or_else(|| bad(format!("shard of `{tensor}` is not a string")))?;
            if shard.is_empty() || shard.contains(['/', '\\']) || shard.starts_with('.') {
                return Err(bad(format!(
                    "shard `{shard}` of `{tensor}` must be a plain file name in the same directory"
                )));
            }
            if !shard_names.contains(&shard) {
                shard_names.push(shard);
            }
            expected.push((tensor, shard));
        }
        shard_names.sort_unstable();
        let paths: Vec<PathBuf> = shard_names.iter().map(|s| dir.join(s)).collect();
        let source = Self::open(&paths)?;
        for (tensor, shard) in expected {
            let in_shard = source
                .entries
                .get(tensor)
                .is_some_and(|e| source.files[e.file].path.file_name() == Some(shard.as_ref()));
            if !in_shard {
                return Err(bad(format!("tensor `{tensor}` is not in shard `{shard}`")));
            }
        }
        Ok(source)
    }

    /// Opens and validates the given files. A tensor name may appear in only one of them.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let files = paths
            .iter()
            .map(|path| Ok((path.clone(), FileBytes::map(path)?)))
            .collect::<Result<Vec<_>>>()?;
        Self::from_files(files)
    }

    /// Validates safetensors files already in memory, each with the name that stands for its
    /// path in messages. A tensor name may appear in only one of them.
    pub fn from_bytes(files: Vec<(PathBuf, Vec<u8>)>) -> Result<Self> {
        let files = files
            .into_iter()
            .map(|(path, bytes)| (path, FileBytes::Owned(bytes)))
            .collect();
        Self::from_files(files)
    }

    fn from_files(opened: Vec<(PathBuf, FileBytes)>) -> Result<Self> {
        let mut files = Vec::with_capacity(opened.len());
        let mut entries = BTreeMap::new();
        for (file_idx, (path, bytes)) in opened.into_iter().enumerate() {
            let invalid = |source: SafetensorsError| Error::Safetensors {
                path: path.clone(),
                source,
            };
            let header = safetensors_header::parse(&bytes).map_err(invalid)?;
            for t in header.tensors {
                let entry = Entry {
                    file: file_idx,
                    dtype: t.dtype,
                    shape: t.shape,
                    start: t.start,
                    end: t.end,
                };
                if entries.insert(t.name.clone(), entry).is_some() {
                    return Err(invalid(SafetensorsError::DuplicateAcrossFiles {
                        tensor: t.name,
                    }));
                }
            }
            files.push(MappedFile { path, bytes });
        }
        Ok(Self { files, entries })
    }
}

fn candle_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::U32 => DType::U32,
        Dtype::U8 => DType::U8,
        _ => return None,
    })
}

impl TensorSource for SafetensorsSource {
    fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.entries.get(name).map(|e| e.shape.clone())
    }

    fn load(&self, name: &str, device: &Device) -> Result<StoredTensor> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })?;
        let dtype = candle_dtype(entry.dtype).ok_or_else(|| Error::UnsupportedTensor {
            name: name.to_string(),
            reason: format!("safetensors dtype {:?} is not supported", entry.dtype),
        })?;
        let bytes = &self.files[entry.file].bytes[entry.start..entry.end];
        let tensor = Tensor::from_raw_buffer(bytes, dtype, &entry.shape, device)?;
        Ok(StoredTensor::Dense(tensor))
    }

    fn is_quantized(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        names.join(", ")
    }
}
