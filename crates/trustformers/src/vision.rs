//! Images in: transformers' `AutoImageProcessor`, `AutoModelForImageClassification`,
//! `AutoModel` on image and image-text checkpoints, and the inputs the image pipelines take.

use crate::auto::{AutoConfig, LoadOptions, ModelConfig};
use std::path::Path;
use trustformers_core::config::read_json;
use trustformers_core::{Error, Result, Tensor};
use trustformers_generate::{generate_text, GenerationConfig, TextOutput};
use trustformers_models::encoder::heads::id2label;
use trustformers_models::multimodal::{
    image_prompt, ImagePlacement, ImagePrompt, VisionLanguageModel, WithImages,
};
use trustformers_models::registry::ModelKind;
use trustformers_models::vision::{ImageModel, ImageTextModel, VisionTask};
use trustformers_tokenizers::chat::{ChatOptions, Message};
use trustformers_tokenizers::{AutoTokenizer, Tokenizer};
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
    /// The image processor's config is `preprocessor_config.json`, or the `image_processor`
    /// entry of a processor's `processor_config.json` (as transformers 5 saves processors).
    pub fn with_backend(dir: impl AsRef<Path>, backend: Backend) -> Result<ImageProcessor> {
        let dir = dir.as_ref();
        let (path, json) = match dir.join("preprocessor_config.json") {
            p if p.is_file() => {
                let json = read_json(&p)?;
                (p, json)
            }
            _ => {
                let path = dir.join("processor_config.json");
                if !path.is_file() {
                    return Err(Error::InvalidInput(format!(
                        "{} has no preprocessor_config.json or processor_config.json: the \
                         checkpoint has no image processor",
                        dir.display()
                    )));
                }
                let json = read_json(&path)?
                    .get("image_processor")
                    .cloned()
                    .ok_or_else(|| Error::Json {
                        path: path.clone(),
                        reason: "no `image_processor` entry".into(),
                    })?;
                (path, json)
            }
        };
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

impl ModelConfig {
    /// Builds a vision-language model (LLaVA: transformers' `AutoModelForImageTextToText`)
    /// and loads its weights, every tensor used.
    pub fn load_vision_language_model(
        &self,
        opts: &LoadOptions,
    ) -> Result<Box<dyn VisionLanguageModel>> {
        if self.kind() != ModelKind::Multimodal {
            return Err(self
                .architecture
                .wrong_kind("a vision-language model (LLaVA)"));
        }
        opts.validate()?;
        let vb = self.weights(opts, false)?;
        let model = self
            .architecture
            .vision_language_model(&self.json, &vb, &opts.runtime())?;
        vb.finish(self.architecture.ignored_tensors())?;
        Ok(model)
    }
}

/// A vision-language model with its tokenizer, image processor and generation defaults:
/// what `chat --image` and the `image-text-to-text` pipeline run (transformers'
/// `AutoModelForImageTextToText` with its `AutoProcessor`).
pub struct VisionLanguageModelSession {
    pub model: Box<dyn VisionLanguageModel>,
    pub tokenizer: Tokenizer,
    pub processor: ImageProcessor,
    pub generation: GenerationConfig,
    /// The text that stands for an image in a prompt (`<image>`).
    pub image_token: String,
    device: trustformers_core::Device,
}

impl VisionLanguageModelSession {
    /// Loads a checkpoint directory: the model first (a checkpoint of another kind is named as
    /// such), then its tokenizer, image processor and generation config.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let model = AutoConfig::from_pretrained(dir)?.load_vision_language_model(opts)?;
        let tokenizer = AutoTokenizer::from_pretrained(dir)?;
        let image_token = image_token_text(&tokenizer, model.image_token_id())?;
        Ok(Self {
            generation: crate::session::generation_defaults(dir, &tokenizer)?,
            processor: AutoImageProcessor::from_pretrained(dir)?,
            model,
            tokenizer,
            image_token,
            device: opts.device.clone(),
        })
    }

    /// The prompt ids of `messages` (whose contents may hold `{"type": "image"}` parts) for
    /// `images` images, as the model's processor makes them
    /// ([`VisionLanguageProcessor::prompt_ids`]).
    pub fn prompt_ids(&self, messages: &[Message], images: usize) -> Result<Vec<u32>> {
        let prompt = chat_prompt(&self.tokenizer, messages)?;
        self.encode_prompt(&prompt, images)
    }

    /// Tokenizes a prompt already written, as the processor does
    /// ([`VisionLanguageProcessor::encode_prompt`]).
    pub fn encode_prompt(&self, prompt: &str, images: usize) -> Result<Vec<u32>> {
        let layout = ImagePrompt {
            image_token_id: self.model.image_token_id(),
            per_image: self.model.image_seq_length(),
            placement: self.model.image_placement(),
        };
        encode_image_prompt(&self.tokenizer, &self.image_token, layout, prompt, images)
    }

    /// The features of `images` (decoded and preprocessed as the processor does), for
    /// [`Self::generate_with_features`]: computed once, they serve every turn of a chat.
    pub fn image_features(&self, images: &[ImageInput<'_>]) -> Result<ImageFeatures> {
        if images.is_empty() {
            return Ok(ImageFeatures {
                images: 0,
                features: None,
            });
        }
        let decoded = images
            .iter()
            .map(ImageInput::load)
            .collect::<Result<Vec<_>>>()?;
        let pixels = self.processor.preprocess(&decoded, &self.device)?;
        Ok(ImageFeatures {
            images: images.len(),
            features: Some(self.model.image_features(&pixels)?),
        })
    }

    /// Generates text after `ids` (a prompt with one image token block per image, in order),
    /// streaming it to `on_text` (which returns `false` to stop).
    pub fn generate(
        &self,
        ids: &[u32],
        images: &[ImageInput<'_>],
        config: &GenerationConfig,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<TextOutput> {
        self.check_image_tokens(ids, images.len())?;
        let features = self.image_features(images)?;
        self.generate_with_features(ids, &features, config, on_text)
    }

    /// [`Self::generate`] with the images' features already computed.
    pub fn generate_with_features(
        &self,
        ids: &[u32],
        images: &ImageFeatures,
        config: &GenerationConfig,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<TextOutput> {
        self.check_image_tokens(ids, images.images)?;
        match &images.features {
            None => generate_text(&*self.model, &self.tokenizer, ids, config, on_text),
            Some(features) => {
                let model = WithImages::new(self.model.as_ref(), features)?;
                generate_text(&model, &self.tokenizer, ids, config, on_text)
            }
        }
    }

    /// Refuses a prompt whose image tokens are not those of `images` images.
    fn check_image_tokens(&self, ids: &[u32], images: usize) -> Result<()> {
        check_image_tokens(self.model.as_ref(), &self.image_token, ids, images)
    }
}

/// Refuses a prompt for `model` whose image tokens are not those of `images` images, naming
/// the image token's text.
pub fn check_image_tokens(
    model: &dyn VisionLanguageModel,
    image_token: &str,
    ids: &[u32],
    images: usize,
) -> Result<()> {
    let image_id = model.image_token_id();
    let blocks = ids.iter().filter(|&&t| t == image_id).count();
    if blocks != images * model.image_seq_length() {
        return Err(Error::InvalidInput(format!(
            "the prompt has {blocks} image tokens for {images} images ({} tokens each): \
             give the images the prompt was made for (one `{image_token}` per image)",
            model.image_seq_length(),
        )));
    }
    Ok(())
}

/// A chat's prompt text: through the tokenizer's chat template with the generation prompt,
/// or the texts of the messages joined by spaces for a tokenizer without one.
fn chat_prompt(tokenizer: &Tokenizer, messages: &[Message]) -> Result<String> {
    if tokenizer.config().chat_template.is_some() {
        let opts = ChatOptions {
            add_generation_prompt: true,
            ..Default::default()
        };
        return tokenizer.apply_chat_template(messages, &opts);
    }
    let text = |m: &Message| -> String {
        match &m.content {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    };
    Ok(messages.iter().map(text).collect::<Vec<_>>().join(" "))
}

/// Tokenizes a written prompt as a vision-language processor does: LLaVA's each image token
/// (one per image, where the prompt puts it) repeated as many times as an image has
/// features, with the tokenizer's special tokens unless the prompt starts with the BOS;
/// BLIP-2's image tokens for `images` images before the tokenized prompt.
fn encode_image_prompt(
    tokenizer: &Tokenizer,
    image_token: &str,
    layout: ImagePrompt,
    prompt: &str,
    images: usize,
) -> Result<Vec<u32>> {
    match layout.placement {
        ImagePlacement::Inline => {
            let expanded = prompt.replace(image_token, &image_token.repeat(layout.per_image));
            let bos = tokenizer.config().special.bos.as_deref();
            let special = !bos.is_some_and(|b| expanded.starts_with(b));
            tokenizer.encode_ids(&expanded, special)
        }
        ImagePlacement::Prefix => {
            let mut ids = vec![layout.image_token_id; images * layout.per_image];
            ids.extend(tokenizer.encode_ids(prompt, true)?);
            Ok(ids)
        }
    }
}

/// The text of the image token `id` in `tokenizer`'s vocabulary.
fn image_token_text(tokenizer: &Tokenizer, id: u32) -> Result<String> {
    tokenizer.id_to_token(id).ok_or_else(|| {
        Error::Tokenizer(format!("the image token id {id} is not in the vocabulary"))
    })
}

/// transformers' `AutoProcessor` of a vision-language checkpoint (`LlavaProcessor`,
/// `Blip2Processor`): the tokenizer, the image processor and where images go in a prompt,
/// read without loading the weights.
pub struct VisionLanguageProcessor {
    pub tokenizer: Tokenizer,
    pub images: ImageProcessor,
    /// The text that stands for an image in a prompt (`<image>`).
    pub image_token: String,
    pub layout: ImagePrompt,
}

impl VisionLanguageProcessor {
    /// Reads a vision-language checkpoint directory's config.json, tokenizer and image
    /// processor.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config = AutoConfig::from_pretrained(dir)?;
        if config.kind() != ModelKind::Multimodal {
            return Err(config
                .architecture
                .wrong_kind("a vision-language model (LLaVA, BLIP-2)"));
        }
        let layout = image_prompt(config.architecture.model_type, &config.json)?;
        let tokenizer = AutoTokenizer::from_pretrained(dir)?;
        Ok(Self {
            image_token: image_token_text(&tokenizer, layout.image_token_id)?,
            images: AutoImageProcessor::from_pretrained(dir)?,
            tokenizer,
            layout,
        })
    }

    /// The prompt ids of `messages` (whose contents may hold `{"type": "image"}` parts) for
    /// `images` images: through the chat template (the texts of the messages, joined by
    /// spaces, for a tokenizer without one), then the image tokens placed as
    /// [`Self::encode_prompt`] places them.
    pub fn prompt_ids(&self, messages: &[Message], images: usize) -> Result<Vec<u32>> {
        self.encode_prompt(&chat_prompt(&self.tokenizer, messages)?, images)
    }

    /// Tokenizes a prompt already written, as the processor does: LLaVA's each image token
    /// (one per image, where the prompt puts it) repeated as many times as an image has
    /// features, with the tokenizer's special tokens unless the prompt starts with the BOS;
    /// BLIP-2's image tokens for `images` images before the tokenized prompt.
    pub fn encode_prompt(&self, prompt: &str, images: usize) -> Result<Vec<u32>> {
        encode_image_prompt(
            &self.tokenizer,
            &self.image_token,
            self.layout,
            prompt,
            images,
        )
    }
}

/// The features of a prompt's images ([`VisionLanguageModelSession::image_features`]).
pub struct ImageFeatures {
    images: usize,
    /// `[images, image tokens, hidden]`; `None` without images.
    features: Option<Tensor>,
}

/// A user message of images and text, as chat templates of vision-language models take it.
pub fn image_message(images: usize, text: &str) -> Message {
    let mut parts: Vec<serde_json::Value> = (0..images)
        .map(|_| serde_json::json!({"type": "image"}))
        .collect();
    parts.push(serde_json::json!({"type": "text", "text": text}));
    Message {
        role: "user".into(),
        content: serde_json::Value::Array(parts),
        extra: Default::default(),
    }
}
