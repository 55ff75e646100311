//! Images in: transformers' `AutoImageProcessor`, `AutoModelForImageClassification`,
//! `AutoModel` on image and image-text checkpoints, and the inputs the image pipelines take.

use crate::auto::{AutoConfig, LoadOptions, ModelConfig};
use std::path::Path;
use trustformers_core::config::read_json;
use trustformers_core::{Error, Result};
use trustformers_models::encoder::heads::id2label;
use trustformers_models::registry::ModelKind;
use trustformers_models::vision::{ImageModel, ImageTextModel, VisionTask};
use trustformers_vision::{decode_image, open_image, Backend, ImageProcessor, RgbImage};

/// An image for a pipeline: a file, encoded bytes, or decoded pixels.
#[derive(Debug, Clone, Copy)]
pub enum ImageInput<'a> {
    /// A PNG, JPEG or WebP file.
    Path(&'a Path),
    /// A PNG, JPEG or WebP file's bytes.
    Bytes(&'a [u8]),
    /// Pixels already decoded.
    Rgb(&'a RgbImage),
}

impl ImageInput<'_> {
    /// The RGB pixels, as transformers' `load_image` gives them (EXIF orientation applied).
    pub fn load(&self) -> Result<RgbImage> {
        match self {
            Self::Path(p) => open_image(p),
            Self::Bytes(b) => decode_image(b, "image bytes"),
            Self::Rgb(img) => Ok((*img).clone()),
        }
    }
}

impl<'a> From<&'a Path> for ImageInput<'a> {
    fn from(p: &'a Path) -> Self {
        Self::Path(p)
    }
}

/// transformers' `AutoImageProcessor`: the checkpoint's `preprocessor_config.json`.
pub struct AutoImageProcessor;

impl AutoImageProcessor {
    /// Reads `preprocessor_config.json` in the checkpoint directory `dir`, reproducing
    /// transformers' default (torchvision) backend.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<ImageProcessor> {
        Self::with_backend(dir, Backend::default())
    }

    /// [`Self::from_pretrained`] reproducing `backend` (transformers' `backend=` argument).
    pub fn with_backend(dir: impl AsRef<Path>, backend: Backend) -> Result<ImageProcessor> {
        let path = dir.as_ref().join("preprocessor_config.json");
        if !path.is_file() {
            return Err(Error::InvalidInput(format!(
                "{} is missing: the checkpoint has no image processor",
                path.display()
            )));
        }
        let json = read_json(&path)?;
        ImageProcessor::from_config(&json)
            .map(|p| p.with_backend(backend))
            .map_err(|e| Error::Json {
                path,
                reason: e.to_string(),
            })
    }
}

impl ModelConfig {
    /// The checkpoint's labels (`id2label`, else `num_labels` numbered ones).
    pub fn labels(&self) -> Result<Vec<String>> {
        id2label(&self.json)
    }

    /// Builds an image model for `task` (transformers' `AutoModel` or
    /// `AutoModelForImageClassification`) and loads its weights; tensors of other heads or of
    /// an image-text checkpoint's text tower are skipped, any other unused tensor is an error.
    pub fn load_image_model(
        &self,
        task: VisionTask,
        opts: &LoadOptions,
    ) -> Result<Box<dyn ImageModel>> {
        if self.kind() != ModelKind::Vision {
            return Err(self.architecture.wrong_kind("an image model"));
        }
        opts.validate()?;
        let labels = match task {
            VisionTask::ImageClassification => self.labels()?.len(),
            VisionTask::Base => 0,
        };
        let vb = self.weights(opts, false)?;
        let model = self
            .architecture
            .image_model(&self.json, task, labels, &vb)?;
        let ignored = self.architecture.ignored_tensors();
        vb.finish_unless(|name| {
            model.may_skip_tensor(name) || ignored.iter().any(|s| name.ends_with(s))
        })?;
        Ok(model)
    }

    /// Builds an image-text model (CLIP, SigLIP: transformers' `AutoModel` on them) and
    /// loads its weights, every tensor used.
    pub fn load_image_text_model(&self, opts: &LoadOptions) -> Result<Box<dyn ImageTextModel>> {
        if !self.architecture.is_image_text() {
            return Err(self
                .architecture
                .wrong_kind("an image-text model (CLIP, SigLIP)"));
        }
        opts.validate()?;
        let vb = self.weights(opts, false)?;
        let model = self.architecture.image_text_model(&self.json, &vb)?;
        vb.finish(self.architecture.ignored_tensors())?;
        Ok(model)
    }
}

/// transformers' `AutoModelForImageClassification`.
pub struct AutoModelForImageClassification;

impl AutoModelForImageClassification {
    /// Loads the checkpoint at `path` with its image classifier.
    pub fn from_pretrained(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<Box<dyn ImageModel>> {
        AutoConfig::from_pretrained(path)?.load_image_model(VisionTask::ImageClassification, opts)
    }
}

/// transformers' `AutoModel` on image checkpoints (ViT, DeiT, a CLIP or SigLIP vision tower).
pub struct AutoImageModel;

impl AutoImageModel {
    /// Loads the checkpoint at `path` without a head.
    pub fn from_pretrained(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<Box<dyn ImageModel>> {
        AutoConfig::from_pretrained(path)?.load_image_model(VisionTask::Base, opts)
    }
}

/// transformers' `AutoModel` on image-text checkpoints (CLIP, SigLIP).
pub struct AutoImageTextModel;

impl AutoImageTextModel {
    /// Loads the checkpoint at `path`.
    pub fn from_pretrained(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<Box<dyn ImageTextModel>> {
        AutoConfig::from_pretrained(path)?.load_image_text_model(opts)
    }
}
