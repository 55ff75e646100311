//! transformers' `feature-extraction` pipeline: the last hidden state of every token.

use super::load_encoder_and_tokenizer;
use super::{max_input_tokens, tokenize};
use crate::auto::LoadOptions;
use candle_core::DType;
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_models::{EncoderForTask, EncoderTask};
use trustformers_tokenizers::{EncodeOptions, Padding, TextInput, Tokenizer, Truncation};

/// Options of [`FeatureExtractionPipeline::run`].
#[derive(Debug, Clone)]
pub struct FeatureExtractionParams {
    /// Truncate inputs to the model's maximum length; otherwise a longer input is an error.
    pub truncation: bool,
    /// Inputs per forward pass (padded together; padding is removed from the outputs).
    pub batch_size: usize,
}

impl Default for FeatureExtractionParams {
    fn default() -> Self {
        Self {
            truncation: false,
            batch_size: 8,
        }
    }
}

/// An encoder and its tokenizer, giving per-token features.
pub struct FeatureExtractionPipeline {
    tokenizer: Tokenizer,
    model: EncoderForTask,
}

impl FeatureExtractionPipeline {
    /// Loads an encoder checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let (model, tokenizer) = load_encoder_and_tokenizer(dir.as_ref(), EncoderTask::Base, opts)?;
        Ok(Self { tokenizer, model })
    }

    /// Per input, `[tokens][hidden]` (transformers returns `[1][tokens][hidden]` per input).
    pub fn run(
        &self,
        texts: &[&str],
        params: &FeatureExtractionParams,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        if texts.is_empty() {
            return Err(Error::InvalidInput(
                "no texts to extract features from".into(),
            ));
        }
        if params.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be positive".into()));
        }
        let opts = EncodeOptions {
            padding: Padding::Longest,
            truncation: params.truncation.then_some(Truncation::LongestFirst),
            max_length: params
                .truncation
                .then(|| max_input_tokens(&self.tokenizer, &self.model)),
            ..Default::default()
        };
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(params.batch_size) {
            let inputs: Vec<TextInput<'_>> = chunk.iter().map(|t| TextInput::Single(t)).collect();
            let batch = tokenize(&self.tokenizer, &inputs, &opts, self.model.model().device())?;
            let hidden = batch
                .run(&self.model)?
                .last_hidden_state
                .to_dtype(DType::F32)?
                .to_vec3::<f32>()?;
            for (rows, enc) in hidden.into_iter().zip(&batch.encodings) {
                out.push(
                    rows.into_iter()
                        .zip(enc.attention_mask())
                        .filter(|(_, &m)| m != 0)
                        .map(|(r, _)| r)
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}
