//! The image pipelines of transformers: `image-classification` (labels with scores),
//! `zero-shot-image-classification` (an image-text model scoring "This is a photo of
//! {label}."), `image-feature-extraction` (the last hidden state, or the pooled output) and
//! `image-text-to-text` (a vision-language model's reply to chat messages with images).

use super::pipeline::Pipeline;
use super::text_classification::{ClassificationFunction, LabelScore};
use super::{singles, tokenize};
use crate::auto::{AutoConfig, LoadOptions};
use crate::vision::{AutoImageProcessor, ImageInput, VisionLanguageModelSession};
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_generate::GenerationConfig;
use trustformers_models::vision::{
    ImageModel, ImageTextModel, ScoreKind, VisionOutput, VisionTask,
};
use trustformers_tokenizers::chat::Message;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions, Padding, Tokenizer, Truncation};
use trustformers_vision::ImageProcessor;

/// Decodes and preprocesses a batch of images into `pixel_values`.
fn pixel_values(
    processor: &ImageProcessor,
    images: &[ImageInput<'_>],
    device: &Device,
) -> Result<Tensor> {
    let decoded = images
        .iter()
        .map(ImageInput::load)
        .collect::<Result<Vec<_>>>()?;
    processor.preprocess(&decoded, device)
}

/// Labels sorted by score, best first (ties keep label order, as Python's stable sort does),
/// the first `top_k`.
fn ranked(labels: &[String], scores: Vec<f32>, top_k: usize) -> Vec<LabelScore> {
    let mut out: Vec<LabelScore> = labels
        .iter()
        .zip(scores)
        .map(|(label, score)| LabelScore {
            label: label.clone(),
            score,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(top_k);
    out
}

/// Options of [`ImageClassificationPipeline`].
#[derive(Debug, Clone)]
pub struct ImageClassificationParams {
    /// Labels returned per image, best first (transformers' default 5, capped at the number
    /// of labels).
    pub top_k: usize,
    /// How logits become scores; `None`: the config's `problem_type` decides (softmax for
    /// single-label models).
    pub function_to_apply: Option<ClassificationFunction>,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl Default for ImageClassificationParams {
    fn default() -> Self {
        Self {
            top_k: 5,
            function_to_apply: None,
            batch_size: 8,
        }
    }
}

/// An image classifier and its image processor.
pub struct ImageClassificationPipeline {
    model: Box<dyn ImageModel>,
    device: Device,
    processor: ImageProcessor,
    labels: Vec<String>,
    default_function: ClassificationFunction,
}

impl ImageClassificationPipeline {
    /// Loads an image classification checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let config = AutoConfig::from_pretrained(dir.as_ref())?;
        let model = config.load_image_model(VisionTask::ImageClassification, opts)?;
        let labels = config.labels()?;
        Ok(Self {
            model,
            device: opts.device.clone(),
            processor: AutoImageProcessor::from_pretrained(dir)?,
            default_function: ClassificationFunction::default_for(&config.json, labels.len()),
            labels,
        })
    }

    /// The best `top_k` labels of each image.
    pub fn run(
        &self,
        images: &[ImageInput<'_>],
        params: &ImageClassificationParams,
    ) -> Result<Vec<Vec<LabelScore>>> {
        self.call(images, params)
    }
}

impl Pipeline for ImageClassificationPipeline {
    const TASK: &'static str = "image-classification";
    type Input<'a> = ImageInput<'a>;
    type Params = ImageClassificationParams;
    type Output = Vec<LabelScore>;
    type ModelInputs = Tensor;
    type ModelOutputs = VisionOutput;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn check(&self, params: &Self::Params) -> Result<()> {
        if params.top_k == 0 {
            return Err(Error::InvalidInput(
                "image-classification: top_k must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn preprocess(&self, images: &[ImageInput<'_>], _: usize, _: &Self::Params) -> Result<Tensor> {
        pixel_values(&self.processor, images, &self.device)
    }

    fn forward(&self, pixels: &Tensor) -> Result<VisionOutput> {
        self.model.forward(pixels, false)
    }

    fn postprocess(
        &self,
        _: &Tensor,
        out: VisionOutput,
        params: &Self::Params,
    ) -> Result<Vec<Self::Output>> {
        let logits = out
            .logits
            .ok_or_else(|| Error::InvalidInput("the model gave no logits".into()))?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let function = params.function_to_apply.unwrap_or(self.default_function);
        Ok(logits
            .iter()
            .map(|row| ranked(&self.labels, function.apply(row), params.top_k))
            .collect())
    }
}

/// Options of [`ZeroShotImageClassificationPipeline`].
#[derive(Debug, Clone)]
pub struct ZeroShotImageParams {
    /// The labels to score each image against.
    pub candidate_labels: Vec<String>,
    /// The text each label is put in; `{}` marks where.
    pub hypothesis_template: String,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl Default for ZeroShotImageParams {
    fn default() -> Self {
        Self {
            candidate_labels: Vec::new(),
            hypothesis_template: "This is a photo of {}.".into(),
            batch_size: 8,
        }
    }
}

/// An image-text model (CLIP, SigLIP) with its tokenizer and image processor: texts and
/// images into one embedding space (`get_text_features`, `get_image_features`).
pub struct ImageTextEmbedder {
    model: Box<dyn ImageTextModel>,
    device: Device,
    tokenizer: Tokenizer,
    /// `None` for a text tower alone (`CLIPTextModelWithProjection` checkpoints).
    processor: Option<ImageProcessor>,
}

/// Texts as an image-text model takes them.
pub struct TextBatch {
    /// `[texts, seq]`.
    pub input_ids: Tensor,
    /// `None` for models whose tokenizer gives no mask (SigLIP, padded to 64 tokens).
    pub attention_mask: Option<Tensor>,
}

impl ImageTextEmbedder {
    /// Loads an image-text checkpoint directory: the model first (a checkpoint of another
    /// kind is named as such), then its tokenizer and image processor (which a text tower
    /// alone may lack).
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let model = AutoConfig::from_pretrained(dir)?.load_image_text_model(opts)?;
        let has_processor = ["preprocessor_config.json", "processor_config.json"]
            .iter()
            .any(|f| dir.join(f).is_file());
        Ok(Self {
            model,
            device: opts.device.clone(),
            tokenizer: AutoTokenizer::from_pretrained(dir)?,
            processor: has_processor
                .then(|| AutoImageProcessor::from_pretrained(dir))
                .transpose()?,
        })
    }

    /// The model.
    pub fn model(&self) -> &dyn ImageTextModel {
        self.model.as_ref()
    }

    /// Tokenizes `texts` as transformers' zero-shot image pipeline does: padded to the
    /// longest with a mask, or for SigLIP to 64 tokens without one; truncated to the model.
    pub fn tokenize(&self, texts: &[&str]) -> Result<TextBatch> {
        let max = self.model.max_text_length();
        let siglip = self.model.pads_to_max_length();
        let opts = EncodeOptions {
            padding: if siglip {
                Padding::MaxLength
            } else {
                Padding::Longest
            },
            truncation: Some(Truncation::LongestFirst),
            max_length: Some(if siglip { 64.min(max) } else { max }),
            ..Default::default()
        };
        let batch = tokenize(&self.tokenizer, &singles(texts), &opts, &self.device)?;
        Ok(TextBatch {
            input_ids: batch.input_ids,
            attention_mask: (!siglip).then_some(batch.attention_mask),
        })
    }

    /// `pixel_values` for `images`.
    pub fn pixel_values(&self, images: &[ImageInput<'_>]) -> Result<Tensor> {
        let processor = self.processor.as_ref().ok_or_else(|| {
            Error::InvalidInput(
                "this checkpoint has no image processor (preprocessor_config.json)".into(),
            )
        })?;
        pixel_values(processor, images, &self.device)
    }

    /// Text embeddings, `[texts][dim]`; L2-normalized with `normalize`.
    pub fn embed_texts(&self, texts: &[&str], normalize: bool) -> Result<Vec<Vec<f32>>> {
        let batch = self.tokenize(texts)?;
        let features = self
            .model
            .text_features(&batch.input_ids, batch.attention_mask.as_ref())?;
        rows(features, normalize)
    }

    /// Image embeddings, `[images][dim]`; L2-normalized with `normalize`.
    pub fn embed_images(
        &self,
        images: &[ImageInput<'_>],
        normalize: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let features = self.model.image_features(&self.pixel_values(images)?)?;
        rows(features, normalize)
    }
}

fn rows(features: Tensor, normalize: bool) -> Result<Vec<Vec<f32>>> {
    let features = if normalize {
        trustformers_models::vision::l2_normalize(&features)?
    } else {
        features
    };
    Ok(features.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// An image-text model (CLIP, SigLIP) scoring images against labels put in a sentence.
pub struct ZeroShotImageClassificationPipeline {
    embedder: ImageTextEmbedder,
}

/// The candidate texts, tokenized once per batch.
pub struct ZeroShotImageInputs {
    pixel_values: Tensor,
    input_ids: Tensor,
    attention_mask: Option<Tensor>,
}

impl ZeroShotImageClassificationPipeline {
    /// Loads an image-text checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        Ok(Self {
            embedder: ImageTextEmbedder::from_pretrained(dir, opts)?,
        })
    }

    /// Each image's candidate labels with scores, best first.
    pub fn run(
        &self,
        images: &[ImageInput<'_>],
        params: &ZeroShotImageParams,
    ) -> Result<Vec<Vec<LabelScore>>> {
        self.call(images, params)
    }

    /// The hypotheses for the candidate labels.
    fn texts(params: &ZeroShotImageParams) -> Vec<String> {
        params
            .candidate_labels
            .iter()
            .map(|l| params.hypothesis_template.replacen("{}", l, 1))
            .collect()
    }
}

impl Pipeline for ZeroShotImageClassificationPipeline {
    const TASK: &'static str = "zero-shot-image-classification";
    type Input<'a> = ImageInput<'a>;
    type Params = ZeroShotImageParams;
    type Output = Vec<LabelScore>;
    type ModelInputs = ZeroShotImageInputs;
    type ModelOutputs = Tensor;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn check(&self, params: &Self::Params) -> Result<()> {
        if params.candidate_labels.is_empty() {
            return Err(Error::InvalidInput(
                "zero-shot-image-classification: give at least one candidate label".into(),
            ));
        }
        if !params.hypothesis_template.contains("{}") {
            return Err(Error::InvalidInput(format!(
                "zero-shot-image-classification: the hypothesis template `{}` has no `{{}}` for \
                 the label",
                params.hypothesis_template
            )));
        }
        Ok(())
    }

    fn preprocess(
        &self,
        images: &[ImageInput<'_>],
        _: usize,
        params: &Self::Params,
    ) -> Result<ZeroShotImageInputs> {
        let texts = Self::texts(params);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = self.embedder.tokenize(&texts)?;
        Ok(ZeroShotImageInputs {
            pixel_values: self.embedder.pixel_values(images)?,
            input_ids: batch.input_ids,
            attention_mask: batch.attention_mask,
        })
    }

    fn forward(&self, inputs: &ZeroShotImageInputs) -> Result<Tensor> {
        Ok(self
            .embedder
            .model
            .forward(
                &inputs.input_ids,
                inputs.attention_mask.as_ref(),
                &inputs.pixel_values,
            )?
            .logits_per_image)
    }

    fn postprocess(
        &self,
        _: &ZeroShotImageInputs,
        logits: Tensor,
        params: &Self::Params,
    ) -> Result<Vec<Self::Output>> {
        let function = match self.embedder.model.score_kind() {
            ScoreKind::Softmax => ClassificationFunction::Softmax,
            ScoreKind::Sigmoid => ClassificationFunction::Sigmoid,
        };
        let n = params.candidate_labels.len();
        Ok(logits
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?
            .iter()
            .map(|row| ranked(&params.candidate_labels, function.apply(row), n))
            .collect())
    }
}

/// Options of [`ImageFeatureExtractionPipeline`].
#[derive(Debug, Clone)]
pub struct ImageFeatureParams {
    /// Return the pooled output (`pooler_output`) instead of every token's state.
    pub pool: bool,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl Default for ImageFeatureParams {
    fn default() -> Self {
        Self {
            pool: false,
            batch_size: 8,
        }
    }
}

/// An image model and its image processor, giving per-token features.
pub struct ImageFeatureExtractionPipeline {
    model: Box<dyn ImageModel>,
    device: Device,
    processor: ImageProcessor,
}

impl ImageFeatureExtractionPipeline {
    /// Loads an image (or image-text) checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let model =
            AutoConfig::from_pretrained(dir.as_ref())?.load_image_model(VisionTask::Base, opts)?;
        Ok(Self {
            model,
            device: opts.device.clone(),
            processor: AutoImageProcessor::from_pretrained(dir)?,
        })
    }

    /// Per image, `[tokens][hidden]`, or `[1][hidden]` pooled.
    pub fn run(
        &self,
        images: &[ImageInput<'_>],
        params: &ImageFeatureParams,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        self.call(images, params)
    }
}

impl Pipeline for ImageFeatureExtractionPipeline {
    const TASK: &'static str = "image-feature-extraction";
    type Input<'a> = ImageInput<'a>;
    type Params = ImageFeatureParams;
    /// `[tokens][hidden]`, or `[1][hidden]` pooled.
    type Output = Vec<Vec<f32>>;
    type ModelInputs = Tensor;
    type ModelOutputs = VisionOutput;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn preprocess(&self, images: &[ImageInput<'_>], _: usize, _: &Self::Params) -> Result<Tensor> {
        pixel_values(&self.processor, images, &self.device)
    }

    fn forward(&self, pixels: &Tensor) -> Result<VisionOutput> {
        self.model.forward(pixels, false)
    }

    fn postprocess(
        &self,
        _: &Tensor,
        out: VisionOutput,
        params: &Self::Params,
    ) -> Result<Vec<Self::Output>> {
        if params.pool {
            let pooled = out.pooler_output.ok_or_else(|| {
                Error::InvalidInput(
                    "image-feature-extraction: this model has no pooler (pool=false gives every \
                     token's state)"
                        .into(),
                )
            })?;
            return Ok(pooled
                .to_dtype(DType::F32)?
                .to_vec2::<f32>()?
                .into_iter()
                .map(|row| vec![row])
                .collect());
        }
        Ok(out
            .last_hidden_state
            .to_dtype(DType::F32)?
            .to_vec3::<f32>()?)
    }
}

macro_rules! batch_size {
    ($($ty:ty),+) => {$(
        impl super::pipeline::PipelineParams for $ty {
            fn batch_size(&self) -> usize {
                self.batch_size
            }
        }
    )+};
}

batch_size!(
    ImageClassificationParams,
    ZeroShotImageParams,
    ImageFeatureParams
);

/// Options of [`ImageTextToTextPipeline`].
#[derive(Debug, Clone, Default)]
pub struct ImageTextToTextParams {
    /// Most tokens to generate (`None`: the generation config's).
    pub max_new_tokens: Option<usize>,
    /// The generation config to use instead of the checkpoint's.
    pub generation: Option<GenerationConfig>,
    /// Return the prompt's text before the reply.
    pub return_full_text: bool,
}

/// transformers' `image-text-to-text` pipeline: chat messages with images through a
/// vision-language model (LLaVA) and its processor, giving the reply's text.
pub struct ImageTextToTextPipeline {
    session: VisionLanguageModelSession,
}

impl ImageTextToTextPipeline {
    /// Loads a vision-language checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        Ok(Self {
            session: VisionLanguageModelSession::from_pretrained(dir, opts)?,
        })
    }

    /// The model, tokenizer and processor.
    pub fn session(&self) -> &VisionLanguageModelSession {
        &self.session
    }

    /// The reply to `messages`, whose `{"type": "image"}` parts take `images` in order: the
    /// text transformers' pipeline returns (the decoded sequence after the decoded prompt).
    pub fn run(
        &self,
        messages: &[Message],
        images: &[ImageInput<'_>],
        params: &ImageTextToTextParams,
    ) -> Result<String> {
        let ids = self.session.prompt_ids(messages, images.len())?;
        self.reply(ids, images, params)
    }

    /// The reply to a prompt written out (BLIP-2's "Question: ... Answer:"), as transformers'
    /// pipeline gives it for a text input: with `return_full_text`, the prompt's text first.
    pub fn run_text(
        &self,
        prompt: &str,
        images: &[ImageInput<'_>],
        params: &ImageTextToTextParams,
    ) -> Result<String> {
        let ids = self.session.encode_prompt(prompt, images.len())?;
        self.reply(ids, images, params)
    }

    fn reply(
        &self,
        ids: Vec<u32>,
        images: &[ImageInput<'_>],
        params: &ImageTextToTextParams,
    ) -> Result<String> {
        let s = &self.session;
        let mut config = params
            .generation
            .clone()
            .unwrap_or_else(|| s.generation.clone());
        if let Some(n) = params.max_new_tokens {
            config.max_new_tokens = n;
        }
        let out = s.generate(&ids, images, &config, |_| true)?;
        let prompt = s.tokenizer.decode(&ids, true)?;
        let mut all = ids.clone();
        all.extend(&out.tokens.ids);
        let full = s.tokenizer.decode(&all, true)?;
        Ok(if params.return_full_text {
            full
        } else {
            full.get(prompt.len()..).unwrap_or_default().to_string()
        })
    }
}
