//! Images: transformers' image processors, the image models (ViT, DeiT, the vision towers
//! of CLIP and SigLIP, with or without a classifier) and the image-text models (CLIP,
//! SigLIP). `trustformers/vision.py` builds `AutoImageProcessor`,
//! `AutoModelForImageClassification`, `AutoModel` and their output objects on them.

use crate::arrays::{output_dict, HostArray, IdArray};
use crate::errors::{detach, invalid, Failure};
use crate::models::{load_options, open, PyCheckpoint};
use numpy::{PyArrayDyn, PyReadonlyArray2, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use std::path::PathBuf;
use std::sync::Arc;
use trustformers::generation::{beam_search_batch, generate_batch_with};
use trustformers::image::{ImageProcessor, RgbImage};
use trustformers::models::decoder::default_positions;
use trustformers::models::multimodal::{VisionLanguageModel, WithImages};
use trustformers::models::vision::{ImageModel, ImageTextModel, VisionTask};
use trustformers::models::ForwardOptions;
use trustformers::tokenizers::chat::Message;
use trustformers::vision::{AutoImageProcessor, ImageInput};
use trustformers::{
    check_image_tokens, CausalLM, Error, LoadOptions, ModelConfig, Tensor, VisionLanguageProcessor,
};

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

/// Resolves `name`, loads it with `build` (the GIL released) and describes its checkpoint.
fn load<T: ?Sized + Send + Sync>(
    py: Python<'_>,
    name: String,
    dtype: Option<String>,
    build: impl FnOnce(&ModelConfig, &LoadOptions) -> Result<Arc<T>, Error> + Send,
) -> PyResult<(Arc<T>, PyCheckpoint)> {
    detach(py, move || {
        let opts = load_options(dtype.as_deref())?;
        let (path, config) = open(&name)?;
        let model = build(&config, &opts)?;
        Ok((model, PyCheckpoint::new(&path, &config)?))
    })
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
        let (model, checkpoint) = load(py, name, dtype, |config, opts| {
            Ok(Arc::from(config.load_image_model(task, opts)?))
        })?;
        Ok(Self { model, checkpoint })
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
        output_dict(py, fields, output_hidden_states.then_some(hidden))
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
        let (model, checkpoint) = load(py, name, dtype, |config, opts| {
            Ok(Arc::from(config.load_image_text_model(opts)?))
        })?;
        Ok(Self { model, checkpoint })
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
        output_dict(py, fields, None)
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

/// A vision-language checkpoint's processor (LLaVA's, BLIP-2's): where images go in a
/// prompt, and the image processor; read without the weights.
#[pyclass(
    name = "VisionLanguageProcessor",
    module = "trustformers._trustformers",
    frozen
)]
pub struct PyVisionLanguageProcessor {
    inner: Arc<VisionLanguageProcessor>,
}

#[pymethods]
impl PyVisionLanguageProcessor {
    /// Reads the processor of the vision-language checkpoint at `name`.
    #[staticmethod]
    fn from_pretrained(py: Python<'_>, name: String) -> PyResult<Self> {
        let inner = detach(py, move || {
            let path = trustformers::resolve_model(Some(&name))?;
            Ok(VisionLanguageProcessor::from_pretrained(path)?)
        })?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The text that stands for an image in a prompt (`<image>`).
    #[getter]
    fn image_token(&self) -> String {
        self.inner.image_token.clone()
    }

    /// Its id.
    #[getter]
    fn image_token_id(&self) -> u32 {
        self.inner.layout.image_token_id
    }

    /// Image tokens per image.
    #[getter]
    fn image_seq_length(&self) -> usize {
        self.inner.layout.per_image
    }

    /// The ids of a written prompt for `images` images (image tokens expanded or put first).
    fn encode_prompt(&self, py: Python<'_>, prompt: String, images: usize) -> PyResult<Vec<u32>> {
        let inner = self.inner.clone();
        detach(py, move || Ok(inner.encode_prompt(&prompt, images)?))
    }

    /// The prompt ids of chat `messages` (JSON text) for `images` images.
    fn prompt_ids(&self, py: Python<'_>, messages: String, images: usize) -> PyResult<Vec<u32>> {
        let messages: Vec<Message> = serde_json::from_str(&messages).map_err(|e| {
            invalid(
                py,
                format!("messages are {{\"role\", \"content\"}} objects: {e}"),
            )
        })?;
        let inner = self.inner.clone();
        detach(py, move || Ok(inner.prompt_ids(&messages, images)?))
    }

    /// `pixel_values` of `images`, as [`PyImageProcessor::preprocess`].
    fn preprocess<'py>(
        &self,
        py: Python<'py>,
        images: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let images = images
            .iter()
            .map(Image::read)
            .collect::<PyResult<Vec<_>>>()?;
        let inner = self.inner.clone();
        detach(py, move || {
            let rgb = images
                .iter()
                .map(Image::load)
                .collect::<Result<Vec<_>, _>>()?;
            HostArray::from_tensor(&inner.images.preprocess(&rgb, &trustformers::Device::Cpu)?)
        })?
        .into_py(py)
    }
}

/// A vision-language model (LLaVA, BLIP-2): a language model that reads images through
/// image tokens.
#[pyclass(
    name = "VisionLanguageModel",
    module = "trustformers._trustformers",
    frozen
)]
pub struct PyVisionLanguageModel {
    model: Arc<dyn VisionLanguageModel>,
    checkpoint: PyCheckpoint,
}

impl PyVisionLanguageModel {
    /// The model with `images`' features put in a prompt's image tokens (or the model alone
    /// without images), as a causal LM for `run`. `ids` are the prompt's.
    fn with_images<T>(
        model: &dyn VisionLanguageModel,
        pixels: Option<(Vec<usize>, Vec<f32>)>,
        ids: &[u32],
        run: impl FnOnce(&dyn CausalLM) -> Result<T, Error>,
    ) -> Result<T, Failure> {
        let images = pixels.as_ref().map_or(0, |(shape, _)| shape[0]);
        let token = model.image_token_id().to_string();
        check_image_tokens(model, &token, ids, images)?;
        match pixels {
            None => Ok(run(model)?),
            Some((shape, data)) => {
                let features = model.image_features(&tensor(shape, data)?)?;
                Ok(run(&WithImages::new(model, &features)?)?)
            }
        }
    }
}

#[pymethods]
impl PyVisionLanguageModel {
    /// Loads the vision-language model at `name`.
    #[staticmethod]
    #[pyo3(signature = (name, dtype=None))]
    fn from_pretrained(py: Python<'_>, name: String, dtype: Option<String>) -> PyResult<Self> {
        let (model, checkpoint) = load(py, name, dtype, |config, opts| {
            Ok(Arc::from(config.load_vision_language_model(opts)?))
        })?;
        Ok(Self { model, checkpoint })
    }

    #[getter]
    fn checkpoint(&self) -> PyCheckpoint {
        self.checkpoint.clone()
    }

    /// The logits `[1, seq, vocab]` of one prompt (`input_ids` `[1, seq]`) whose image
    /// tokens take the features of `pixel_values` (`[images, 3, height, width]`).
    #[pyo3(signature = (input_ids, pixel_values=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        pixel_values: Option<PyReadonlyArray4<'py, f32>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let vocab = self.model.vocab_size() as u64;
        let ids = IdArray::read(&input_ids, "input_ids", vocab)
            .map_err(|e| crate::errors::to_py(py, e))?;
        if ids.rows != 1 {
            return Err(invalid(
                py,
                "a prompt with images runs one at a time: input_ids must be [1, seq]",
            ));
        }
        let pixels = pixel_values.map(|p| pixel_tensor(py, &p)).transpose()?;
        let model = self.model.clone();
        detach(py, move || {
            let prompt = ids.data.clone();
            let logits = Self::with_images(&*model, pixels, &prompt, |m| {
                let device = trustformers::Device::Cpu;
                let input = ids.tensor(&device)?;
                let positions = default_positions(1, 0, ids.cols, &device)?;
                Ok(m.forward_with(
                    &input,
                    &positions,
                    &ForwardOptions::default(),
                    &mut m.new_cache(),
                )?
                .logits)
            })?;
            HostArray::from_tensor(&logits)
        })?
        .into_py(py)
    }

    /// Generates after one prompt (its ids, with the image tokens of `pixel_values`' images)
    /// with the resolved settings `config` (JSON text), as `CausalLM.generate` does.
    #[pyo3(signature = (prompts, pixel_values, config, on_token=None, stops=None))]
    fn generate(
        &self,
        py: Python<'_>,
        prompts: Vec<Vec<u32>>,
        pixel_values: Option<PyReadonlyArray4<'_, f32>>,
        config: &str,
        on_token: Option<Py<PyAny>>,
        stops: Option<Py<PyAny>>,
    ) -> PyResult<Vec<crate::models::Generated>> {
        let config = crate::models::generation_config(py, config)?;
        let [prompt] = prompts.as_slice() else {
            return Err(invalid(
                py,
                "a prompt with images runs one at a time: input_ids must be [1, seq]",
            ));
        };
        let vocab = self.model.vocab_size() as u32;
        if let Some(bad) = prompt.iter().find(|&&id| id >= vocab) {
            return Err(invalid(
                py,
                format!("input_ids holds {bad}, outside the vocabulary of {vocab} tokens"),
            ));
        }
        let pixels = pixel_values.map(|p| pixel_tensor(py, &p)).transpose()?;
        let model = self.model.clone();
        let prompts = prompts.clone();
        let outputs = detach(py, move || {
            let mut hook = crate::models::PyHook::default();
            let result = Self::with_images(&*model, pixels, &prompts[0], |m| {
                if config.num_beams > 1 {
                    beam_search_batch(m, &prompts, &config, |tokens| match &stops {
                        Some(s) => hook.call(Some(s), (tokens.to_vec(),)),
                        None => hook.call(None, ()).map(|_| false),
                    })
                } else {
                    generate_batch_with(m, &prompts, &config, |row, id| {
                        hook.call(on_token.as_ref(), (row, id))
                    })
                }
            });
            match result {
                Err(Failure::Python(e)) => Err(Failure::Python(e)),
                Err(Failure::Rust(e)) => hook.finish(Err(e)),
                Ok(out) => hook.finish(Ok(out)),
            }
        })?;
        crate::models::generated(py, outputs)
    }
}
