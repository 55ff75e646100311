//! transformers' `feature-extraction` pipeline: the last hidden state of every token.

use super::pipeline::Pipeline;
use super::{load_encoder_and_tokenizer, padded, singles, tokenize, Batch};
use crate::auto::LoadOptions;
use candle_core::DType;
use std::path::Path;
use trustformers_core::Result;
use trustformers_models::{EncoderForTask, EncoderTask, EncoderTaskOutput};
use trustformers_tokenizers::{Tokenizer, Truncation};

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
        self.call(texts, params)
    }
}

impl Pipeline for FeatureExtractionPipeline {
    const TASK: &'static str = "feature-extraction";
    type Input<'a> = &'a str;
    type Params = FeatureExtractionParams;
    /// `[tokens][hidden]`, padding removed.
    type Output = Vec<Vec<f32>>;
    type ModelInputs = Batch;
    type ModelOutputs = EncoderTaskOutput;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn preprocess(&self, texts: &[&str], _: usize, params: &Self::Params) -> Result<Batch> {
        let truncation = params.truncation.then_some(Truncation::LongestFirst);
        let opts = padded(&self.tokenizer, &self.model, truncation);
        tokenize(
            &self.tokenizer,
            &singles(texts),
            &opts,
            self.model.model().device(),
        )
    }

    fn forward(&self, batch: &Batch) -> Result<EncoderTaskOutput> {
        batch.run(&self.model)
    }

    fn postprocess(
        &self,
        batch: &Batch,
        out: EncoderTaskOutput,
        _: &Self::Params,
    ) -> Result<Vec<Self::Output>> {
        let hidden = out
            .last_hidden_state
            .to_dtype(DType::F32)?
            .to_vec3::<f32>()?;
        Ok(hidden
            .into_iter()
            .zip(&batch.encodings)
            .map(|(rows, enc)| {
                rows.into_iter()
                    .zip(enc.attention_mask())
                    .filter(|(_, &m)| m != 0)
                    .map(|(r, _)| r)
                    .collect()
            })
            .collect())
    }
}
