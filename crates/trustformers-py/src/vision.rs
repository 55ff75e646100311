//! Images: transformers' image processors, the image models (ViT, DeiT, the vision towers
//! of CLIP and SigLIP, with or without a classifier) and the image-text models (CLIP,
//! SigLIP). `trustformers/vision.py` builds `AutoImageProcessor`,
//! `AutoModelForImageClassification`, `AutoModel` and their output objects on them.

use crate::arrays::{HostArray, IdArray};
use crate::errors::{detach, invalid, Failure};
use crate::models::{load_options, open, PyCheckpoint};
use numpy::{PyArrayDyn, PyReadonlyArray2, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use std::path::PathBuf;
use std::sync::Arc;
use trustformers::image::{ImageProcessor, RgbImage};
use trustformers::models::vision::{ImageModel, ImageTextModel, VisionTask};
use trustformers::vision::{AutoImageProcessor, ImageInput};
use trustformers::{Error, Tensor};

/// An image as the Python side hands it over.
enum Image {
    Path(PathBuf),
    Encoded(Vec<u8>),
    Rgb(RgbImage),
}

impl Image {
    /// A path (`str`), an encoded file (`bytes`), or decoded RGB pixels as
    /// `(height, width, bytes)` (`height * width * 3` bytes, row by row).
    fn read(item: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = item.py();
        if let Ok(s) = item.cast::<PyString>() {
            return Ok(Self::Path(PathBuf::from(s.to_cow()?.as_ref())));
        }
        if let Ok(b) = item.cast::<PyBytes>() {
            return Ok(Self::Encoded(b.as_bytes().to_vec()));
        }
        if let Ok(t) = item.cast::<PyTuple>() {
            if let Ok((height, width, pixels)) = t.extract::<(u32, u32, Vec<u8>)>() {
                let want = height as usize * width as usize * 3;
                if pixels.len() != want || want == 0 {
                    return Err(invalid(
                        py,
                        format!(
                            "an image of {height}x{width} RGB pixels needs {want} bytes, got {}",
                            pixels.len()
                        ),
                    ));
                }
                return RgbImage::from_raw(width, height, pixels)
                    .map(Self::Rgb)
                    .ok_or_else(|| invalid(py, "the pixels do not fill the image"));
            }
        }
        Err(invalid(
            py,
            "an image is a path, the bytes of a PNG, JPEG or WebP file, or RGB pixels",
        ))
    }

    fn load(&self) -> Result<RgbImage, Error> {
        match self {
            Self::Path(p) => ImageInput::Path(p).load(),
            Self::Encoded(b) => ImageInput::Bytes(b).load(),
            Self::Rgb(img) => Ok(img.clone()),
        }
    }
}

/// A checkpoint's image processor (`preprocessor_config.json`).
#[pyclass(name = "ImageProcessor", module = "trustformers._trustformers", frozen)]
pub struct PyImageProcessor {
    inner: Arc<ImageProcessor>,
}

#[pymethods]
impl PyImageProcessor {
    /// Reads the image processor of the checkpoint at `name` (directory, Hub id or known
    /// model).
    #[staticmethod]
    fn from_pretrained(py: Python<'_>, name: String) -> PyResult<Self> {
        let inner = detach(py, move || {
            let path = trustformers::resolve_model(Some(&name))?;
            Ok(AutoImageProcessor::from_pretrained(path)?)
        })?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// `pixel_values` `[images, 3, height, width]` for `images` (see [`Image::read`]):
    /// decoded, converted to RGB, resized, cropped, rescaled and normalized as
    /// transformers' processor does.
    fn preprocess<'py>(
        &self,
        py: Python<'py>,
        images: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        if images.is_empty() {
            return Err(invalid(py, "no images to process"));
        }
        let images = images
            .iter()
            .map(Image::read)
            .collect::<PyResult<Vec<_>>>()?;
        let processor = self.inner.clone();
        let pixels = detach(py, move || {
            let rgb = images
                .iter()
                .map(Image::load)
                .collect::<Result<Vec<_>, _>>()?;
            let t = processor.preprocess(&rgb, &trustformers::Device::Cpu)?;
            HostArray::from_tensor(&t)
        })?;
        pixels.into_py(py)
    }
}

/// `pixel_values` from numpy as a tensor: `[batch, 3, height, width]` f32, finite.
fn pixel_tensor(
    py: Python<'_>,
    pixels: &PyReadonlyArray4<'_, f32>,
) -> PyResult<(Vec<usize>, Vec<f32>)> {
    let shape = pixels.shape().to_vec();
    if shape[0] == 0 || shape[1] != 3 {
        return Err(invalid(
            py,
            format!("pixel_values must have shape [batch, 3, height, width], got {shape:?}"),
        ));
    }
    let data: Vec<f32> = pixels.as_array().iter().copied().collect();
    if data.iter().any(|x| !x.is_finite()) {
        return Err(invalid(py, "pixel_values holds NaN or infinite values"));
    }
    Ok((shape, data))
}

fn tensor(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, Failure> {
    Ok(Tensor::from_vec(data, shape, &trustformers::Device::Cpu)?)
}

/// An image model: ViT, DeiT, or a CLIP / SigLIP vision tower, with its classifier when
/// loaded for image classification.
#[pyclass(name = "ImageModel", module = "trustformers._trustformers", frozen)]
pub struct PyImageModel {
    model: Arc<dyn ImageModel>,
    checkpoint: PyCheckpoint,
}

#[pymethods]
impl PyImageModel {
    /// Loads the image model at `name` for `task` (`base` or `image-classification`).
    #[staticmethod]
    #[pyo3(signature = (name, task, dtype=None))]
    fn from_pretrained(
        py: Python<'_>,
        name: String,
        task: &str,
        dtype: Option<String>,
    ) -> PyResult<Self> {
        let task = match task {
            "base" => VisionTask::Base,
            "image-classification" => VisionTask::ImageClassification,
            other => return Err(invalid(py, format!("unknown image model head {other:?}"))),
        };
        detach(py, move || {
            let opts = load_options(dtype.as_deref())?;
            let (path, config) = open(&name)?;
            let model = config.load_image_model(task, &opts)?;
            Ok(Self {
                model: Arc::from(model),
                checkpoint: PyCheckpoint::new(&path, &config)?,
            })
        })
    }

    #[getter]
    fn checkpoint(&self) -> PyCheckpoint {
        self.checkpoint.clone()
    }

    /// `(height, width)` of the images the model takes.
    #[getter]
    fn image_size(&self) -> (usize, usize) {
        self.model.image_size()
    }

    /// One forward pass: `last_hidden_state`, `pooler_output` and `logits` where the model
    /// has them, `hidden_states` when asked.
    #[pyo3(signature = (pixel_values, output_hidden_states=false))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        pixel_values: PyReadonlyArray4<'py, f32>,
        output_hidden_states: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (shape, data) = pixel_tensor(py, &pixel_values)?;
        let model = self.model.clone();
        let (fields, hidden) = detach(py, move || {
            let out = model.forward(&tensor(shape, data)?, output_hidden_states)?;
            let mut fields = vec![(
                "last_hidden_state",
                HostArray::from_tensor(&out.last_hidden_state)?,
            )];
            if let Some(p) = &out.pooler_output {
                fields.push(("pooler_output", HostArray::from_tensor(p)?));
            }
            if let Some(l) = &out.logits {
                fields.push(("logits", HostArray::from_tensor(l)?));
            }
            let hidden = out
                .hidden_states
                .iter()
                .map(HostArray::from_tensor)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((fields, hidden))
        })?;
        let out = PyDict::new(py);
        for (name, a) in fields {
            out.set_item(name, a.into_py(py)?)?;
        }
        if output_hidden_states {
            let arrays = hidden
                .into_iter()
                .map(|a| a.into_py(py))
                .collect::<PyResult<Vec<_>>>()?;
            out.set_item("hidden_states", arrays)?;
        }
        Ok(out)
    }
}

/// An image-text model (CLIP, SigLIP): both towers and their similarity.
#[pyclass(name = "ImageTextModel", module = "trustformers._trustformers", frozen)]
pub struct PyImageTextModel {
    model: Arc<dyn ImageTextModel>,
    checkpoint: PyCheckpoint,
}

#[pymethods]
impl PyImageTextModel {
    /// Loads the image-text model at `name`.
    #[staticmethod]
    #[pyo3(signature = (name, dtype=None))]
    fn from_pretrained(py: Python<'_>, name: String, dtype: Option<String>) -> PyResult<Self> {
        detach(py, move || {
            let opts = load_options(dtype.as_deref())?;
            let (path, config) = open(&name)?;
            let model = config.load_image_text_model(&opts)?;
            Ok(Self {
                model: Arc::from(model),
                checkpoint: PyCheckpoint::new(&path, &config)?,
            })
        })
    }

    #[getter]
    fn checkpoint(&self) -> PyCheckpoint {
        self.checkpoint.clone()
    }

    /// `get_image_features`: `[images, dim]`, not normalized.
    fn image_features<'py>(
        &self,
        py: Python<'py>,
        pixel_values: PyReadonlyArray4<'py, f32>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (shape, data) = pixel_tensor(py, &pixel_values)?;
        let model = self.model.clone();
        detach(py, move || {
            HostArray::from_tensor(&model.image_features(&tensor(shape, data)?)?)
        })?
        .into_py(py)
    }

    /// `get_text_features`: `[texts, dim]`, not normalized.
    #[pyo3(signature = (input_ids, attention_mask=None))]
    fn text_features<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (ids, mask) = text_inputs(py, &input_ids, attention_mask.as_ref())?;
        let model = self.model.clone();
        detach(py, move || {
            let device = trustformers::Device::Cpu;
            let mask = mask.map(|m| m.tensor(&device)).transpose()?;
            HostArray::from_tensor(&model.text_features(&ids.tensor(&device)?, mask.as_ref())?)
        })?
        .into_py(py)
    }

    /// Both towers: `logits_per_image`, `logits_per_text`, `text_embeds`, `image_embeds`
    /// and each tower's last hidden state.
    #[pyo3(signature = (input_ids, pixel_values, attention_mask=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        pixel_values: PyReadonlyArray4<'py, f32>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (ids, mask) = text_inputs(py, &input_ids, attention_mask.as_ref())?;
        let (shape, data) = pixel_tensor(py, &pixel_values)?;
        let model = self.model.clone();
        let fields = detach(py, move || {
            let device = trustformers::Device::Cpu;
            let mask = mask.map(|m| m.tensor(&device)).transpose()?;
            let out = model.forward(&ids.tensor(&device)?, mask.as_ref(), &tensor(shape, data)?)?;
            Ok(vec![
                (
                    "logits_per_image",
                    HostArray::from_tensor(&out.logits_per_image)?,
                ),
                (
                    "logits_per_text",
                    HostArray::from_tensor(&out.logits_per_text)?,
                ),
                ("text_embeds", HostArray::from_tensor(&out.text_embeds)?),
                ("image_embeds", HostArray::from_tensor(&out.image_embeds)?),
                (
                    "text_last_hidden_state",
                    HostArray::from_tensor(&out.text_last_hidden_state)?,
                ),
                (
                    "vision_last_hidden_state",
                    HostArray::from_tensor(&out.vision_last_hidden_state)?,
                ),
            ])
        })?;
        let out = PyDict::new(py);
        for (name, a) in fields {
            out.set_item(name, a.into_py(py)?)?;
        }
        Ok(out)
    }
}

/// Largest token id accepted before the text tower checks its own vocabulary (the
/// tokenizers' limit).
const MAX_ID: u64 = 1 << 24;

/// Text ids and mask for the text tower, checked against its vocabulary and each other.
fn text_inputs(
    py: Python<'_>,
    input_ids: &PyReadonlyArray2<'_, i64>,
    attention_mask: Option<&PyReadonlyArray2<'_, i64>>,
) -> PyResult<(IdArray, Option<IdArray>)> {
    let to_py = |e: Error| crate::errors::to_py(py, e);
    // The towers check ids against their own vocabulary; here only the sign and size.
    let ids = IdArray::read(input_ids, "input_ids", MAX_ID).map_err(to_py)?;
    let mask = attention_mask
        .map(|m| IdArray::read(m, "attention_mask", 2))
        .transpose()
        .map_err(to_py)?;
    if let Some(m) = &mask {
        if (m.rows, m.cols) != (ids.rows, ids.cols) {
            return Err(invalid(
                py,
                format!(
                    "`attention_mask` has shape [{}, {}], input_ids [{}, {}]",
                    m.rows, m.cols, ids.rows, ids.cols
                ),
            ));
        }
    }
    Ok((ids, mask))
}
