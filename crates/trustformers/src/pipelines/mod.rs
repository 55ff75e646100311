//! Task pipelines, each `preprocess -> forward -> postprocess` with a typed params struct,
//! behaving like transformers' pipelines (and sentence-transformers for sentence embeddings).

pub mod feature_extraction;
pub mod fill_mask;
pub mod image;
pub mod pipeline;
pub mod question_answering;
pub mod sentence_embeddings;
pub mod text2text;
pub mod text_classification;
pub mod token_classification;

pub use feature_extraction::{FeatureExtractionParams, FeatureExtractionPipeline};
pub use fill_mask::{FillMaskParams, FillMaskPipeline, FillMaskPrediction};
pub use image::{
    ImageClassificationParams, ImageClassificationPipeline, ImageFeatureExtractionPipeline,
    ImageFeatureParams, ImageTextEmbedder, ImageTextToTextParams, ImageTextToTextPipeline,
    ZeroShotImageClassificationPipeline, ZeroShotImageParams,
};
pub use pipeline::Pipeline;
pub use question_answering::{Answer, QuestionAnsweringParams, QuestionAnsweringPipeline};
pub use sentence_embeddings::{EmbedParams, Pooling, SentenceTransformer};
pub use text2text::{
    SummarizationPipeline, Text2TextGenerationPipeline, Text2TextParams, TranslationPipeline,
};
pub use text_classification::{
    ClassificationFunction, LabelScore, TextClassificationParams, TextClassificationPipeline,
    ZeroShotClassificationPipeline, ZeroShotParams, ZeroShotResult,
};
pub use token_classification::{
    Aggregation, Entity, TokenClassificationParams, TokenClassificationPipeline,
};

use crate::auto::LoadOptions;
use crate::encoders::load_encoder;
use candle_core::{Device, Tensor};
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_models::{EncoderForTask, EncoderTask, EncoderTaskOutput};
use trustformers_tokenizers::{
    AutoTokenizer, EncodeOptions, Encoding, Padding, TextInput, Tokenizer, Truncation,
};

/// An encoder with the head of `task` and its tokenizer: the model first, so a checkpoint
/// of another kind is named as such before its tokenizer is looked at.
pub(crate) fn load_encoder_and_tokenizer(
    path: &Path,
    task: EncoderTask,
    opts: &LoadOptions,
) -> Result<(EncoderForTask, Tokenizer)> {
    let model = load_encoder(path, Some(task), opts)?;
    Ok((model, AutoTokenizer::from_pretrained(path)?))
}

pub(crate) use trustformers_core::numeric::softmax;

/// The longest input `model` takes, in tokens, which truncation cuts to: the tokenizer's
/// `model_max_length` (as in transformers), capped by the position embeddings (RoBERTa's
/// positions start after its padding index, so 514 of them hold 512 tokens).
pub(crate) fn max_input_tokens(tokenizer: &Tokenizer, model: &EncoderForTask) -> usize {
    let spec = model.model().spec();
    let positions = spec
        .max_position_embeddings
        .saturating_sub(spec.position_padding_idx.map_or(0, |p| p as usize + 1));
    tokenizer
        .config()
        .model_max_length
        .map_or(positions, |m| m.min(positions))
}

/// Padding to the longest input of a batch and, with `truncation`, truncating to the
/// model's length ([`max_input_tokens`]).
pub(crate) fn padded(
    tokenizer: &Tokenizer,
    model: &EncoderForTask,
    truncation: Option<Truncation>,
) -> EncodeOptions {
    EncodeOptions {
        padding: Padding::Longest,
        truncation,
        max_length: truncation.map(|_| max_input_tokens(tokenizer, model)),
        ..Default::default()
    }
}

/// Single texts as tokenizer inputs.
pub(crate) fn singles<'a>(texts: &[&'a str]) -> Vec<TextInput<'a>> {
    texts.iter().map(|t| TextInput::Single(t)).collect()
}

/// A padded batch of tokenized inputs, as the encoder pipelines give it to the model.
pub struct Batch {
    /// `[batch, seq]` u32.
    pub input_ids: Tensor,
    /// `[batch, seq]` u32.
    pub token_type_ids: Tensor,
    /// `[batch, seq]` u32.
    pub attention_mask: Tensor,
    pub encodings: Vec<Encoding>,
}

impl Batch {
    /// Runs `model` on the batch.
    pub fn run(&self, model: &EncoderForTask) -> Result<EncoderTaskOutput> {
        model.forward(
            &self.input_ids,
            Some(&self.token_type_ids),
            Some(&self.attention_mask),
            false,
        )
    }
}

/// Tokenizes `inputs` together (padding to the longest) and stacks them.
pub(crate) fn tokenize(
    tokenizer: &Tokenizer,
    inputs: &[TextInput<'_>],
    opts: &EncodeOptions,
    device: &Device,
) -> Result<Batch> {
    if inputs.is_empty() {
        return Err(Error::InvalidInput("the batch holds no inputs".into()));
    }
    let encodings = tokenizer.encode_batch(inputs, opts)?;
    let seq = encodings.first().map_or(0, Encoding::len);
    if seq == 0 {
        return Err(Error::InvalidInput("the inputs encode to no tokens".into()));
    }
    let rows = encodings.len();
    let stack = |f: fn(&Encoding) -> &[u32]| -> Result<Tensor> {
        let mut data = Vec::with_capacity(rows * seq);
        for e in &encodings {
            let row = f(e);
            if row.len() != seq {
                return Err(Error::InvalidInput(
                    "the tokenizer returned rows of different lengths".into(),
                ));
            }
            data.extend_from_slice(row);
        }
        Ok(Tensor::from_vec(data, (rows, seq), device)?)
    };
    Ok(Batch {
        input_ids: stack(Encoding::input_ids)?,
        token_type_ids: stack(Encoding::token_type_ids)?,
        attention_mask: stack(Encoding::attention_mask)?,
        encodings,
    })
}
