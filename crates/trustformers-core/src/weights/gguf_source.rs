//! GGUF weights exposed under Hugging Face tensor names.

use super::{StoredTensor, TensorSource};
use crate::gguf::{part_shape, GgufDType, GgufFile, TensorPart};
use crate::{Error, Result};
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where an HF-named tensor lives in the GGUF file.
#[derive(Debug, Clone)]
pub struct GgufTensorRef {
    /// The tensor's name in the GGUF file.
    pub gguf_name: String,
    /// The part of that tensor this one is (a fused projection or stacked experts hold
    /// several HF tensors).
    pub part: TensorPart,
    /// Row permutation to apply to that part (outermost dimension), e.g. to undo llama.cpp's
    /// Q/K interleaving. `row_order[i]` is the GGUF row that becomes row `i`.
    pub row_order: Option<Vec<usize>>,
    /// Added to every value of a float tensor, e.g. `-1` to undo llama.cpp's `1 + w` norms.
    pub shift: f32,
}

/// What a rename function says about one HF tensor held by a GGUF tensor.
#[derive(Debug, Clone, Default)]
pub struct Renamed {
    /// The HF name.
    pub name: String,
    /// See [`GgufTensorRef::part`].
    pub part: TensorPart,
    /// See [`GgufTensorRef::row_order`].
    pub row_order: Option<Vec<usize>>,
    /// See [`GgufTensorRef::shift`].
    pub shift: f32,
}

impl Renamed {
    /// The whole tensor under `name`, unchanged.
    pub fn plain(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// A GGUF file whose tensors are renamed to HF names by a mapping built by the caller.
pub struct GgufSource {
    file: Arc<GgufFile>,
    names: BTreeMap<String, GgufTensorRef>,
}

impl GgufSource {
    /// Exposes `file`'s tensors under the names `rename` gives them: `None` for a tensor it
    /// does not know, which keeps its GGUF name so the strict loader reports it as unused;
    /// an empty list for one that is not a weight (e.g. read into the config).
    pub fn new(
        file: Arc<GgufFile>,
        rename: impl Fn(&str, &[usize]) -> Option<Vec<Renamed>>,
    ) -> Result<Self> {
        let mut names = BTreeMap::new();
        for info in &file.tensors {
            let renamed = rename(&info.name, &info.shape)
                .unwrap_or_else(|| vec![Renamed::plain(info.name.clone())]);
            for renamed in renamed {
                let hf = renamed.name;
                if part_shape(&info.shape, &renamed.part).is_none() {
                    return Err(Error::UnsupportedTensor {
                        name: info.name.clone(),
                        reason: format!(
                            "`{hf}` is part {:?} of it, outside its shape {:?}",
                            renamed.part, info.shape
                        ),
                    });
                }
                let r = GgufTensorRef {
                    gguf_name: info.name.clone(),
                    part: renamed.part,
                    row_order: renamed.row_order,
                    shift: renamed.shift,
                };
                if let Some(prev) = names.insert(hf.clone(), r) {
                    return Err(Error::UnsupportedTensor {
                        name: info.name.clone(),
                        reason: format!("maps to `{hf}`, which `{}` also maps to", prev.gguf_name),
                    });
                }
            }
        }
        Ok(Self { file, names })
    }

    /// The underlying file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }
}

impl TensorSource for GgufSource {
    fn names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let r = self.names.get(name)?;
        let info = self.file.tensor_info(&r.gguf_name)?;
        part_shape(&info.shape, &r.part)
    }

    fn load(&self, name: &str, device: &Device) -> Result<StoredTensor> {
        let r = self.names.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
        })?;
        let info = self
            .file
            .tensor_info(&r.gguf_name)
            .ok_or_else(|| Error::MissingTensor {
                name: r.gguf_name.clone(),
            })?;
        if info.dtype == GgufDType::Mxfp4 {
            if r.row_order.is_some() || r.shift != 0.0 {
                return Err(Error::UnsupportedTensor {
                    name: r.gguf_name.clone(),
                    reason: "an MXFP4 tensor cannot have its rows reordered or values shifted"
                        .into(),
                });
            }
            let t = self.file.dequantize_mxfp4(&r.gguf_name, &r.part, device)?;
            return Ok(StoredTensor::Dense(t));
        }
        let q = self
            .file
            .qtensor(&r.gguf_name, &r.part, r.row_order.as_deref(), device)?;
        Ok(match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                let t = q.dequantize(device)?;
                if r.shift == 0.0 {
                    StoredTensor::Dense(t)
                } else {
                    StoredTensor::Dense((t + r.shift as f64)?)
                }
            }
            _ if r.shift != 0.0 => {
                return Err(Error::UnsupportedTensor {
                    name: r.gguf_name.clone(),
                    reason: format!(
                        "a {:?} tensor cannot have its values shifted (expected a float norm)",
                        q.dtype()
                    ),
                })
            }
            _ => StoredTensor::Quantized(q),
        })
    }

    fn is_quantized(&self) -> bool {
        self.file.tensors.iter().any(|t| !t.dtype.is_float())
    }

    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }
}
