//! The one shape every task pipeline has: load from a checkpoint, then turn a batch of
//! inputs into one output per input, with typed parameters (transformers'
//! `pipeline(task, model=...)(inputs, **params)`). The CLI, a server and the bindings drive
//! every task through this trait.

use super::*;
use crate::auto::LoadOptions;
use std::path::Path;
use trustformers_core::Result;
use trustformers_tokenizers::TextInput;

/// A task pipeline: `preprocess -> forward -> postprocess` behind one call.
pub trait Pipeline: Sized {
    /// transformers' task name.
    const TASK: &'static str;
    /// One input: a text, a text pair, a question with its context.
    type Input<'a>;
    /// The task's parameters; `Default` is transformers' default.
    type Params: Default;
    /// The result for one input.
    type Output;

    /// Loads the checkpoint directory (or file) at `path` with this task's head.
    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self>;

    /// One output per input, in order; the inputs go through the model in padded batches
    /// of the parameters' `batch_size`.
    fn call(&self, inputs: &[Self::Input<'_>], params: &Self::Params) -> Result<Vec<Self::Output>>;
}

impl Pipeline for FeatureExtractionPipeline {
    const TASK: &'static str = "feature-extraction";
    type Input<'a> = &'a str;
    type Params = FeatureExtractionParams;
    /// `[tokens][hidden]`.
    type Output = Vec<Vec<f32>>;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        FeatureExtractionPipeline::from_pretrained(path, opts)
    }

    fn call(&self, inputs: &[&str], params: &Self::Params) -> Result<Vec<Self::Output>> {
        self.run(inputs, params)
    }
}

impl Pipeline for FillMaskPipeline {
    const TASK: &'static str = "fill-mask";
    type Input<'a> = &'a str;
    type Params = FillMaskParams;
    /// The candidates for the mask, best first.
    type Output = Vec<FillMaskPrediction>;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        FillMaskPipeline::from_pretrained(path, opts)
    }

    fn call(&self, inputs: &[&str], params: &Self::Params) -> Result<Vec<Self::Output>> {
        self.run(inputs, params)
    }
}

impl Pipeline for TextClassificationPipeline {
    const TASK: &'static str = "text-classification";
    type Input<'a> = TextInput<'a>;
    type Params = TextClassificationParams;
    /// Labels with scores, best first.
    type Output = Vec<LabelScore>;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        TextClassificationPipeline::from_pretrained(path, opts)
    }

    fn call(&self, inputs: &[TextInput<'_>], params: &Self::Params) -> Result<Vec<Self::Output>> {
        self.run(inputs, params)
    }
}

impl Pipeline for ZeroShotClassificationPipeline {
    const TASK: &'static str = "zero-shot-classification";
    type Input<'a> = &'a str;
    type Params = ZeroShotParams;
    type Output = ZeroShotResult;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        ZeroShotClassificationPipeline::from_pretrained(path, opts)
    }

    fn call(&self, inputs: &[&str], params: &Self::Params) -> Result<Vec<Self::Output>> {
        self.run_batch(inputs, params)
    }
}

impl Pipeline for TokenClassificationPipeline {
    const TASK: &'static str = "token-classification";
    type Input<'a> = &'a str;
    type Params = TokenClassificationParams;
    /// The entities of one text.
    type Output = Vec<Entity>;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        TokenClassificationPipeline::from_pretrained(path, opts)
    }

    fn call(&self, inputs: &[&str], params: &Self::Params) -> Result<Vec<Self::Output>> {
        self.run_batch(inputs, params)
    }
}

impl Pipeline for QuestionAnsweringPipeline {
    const TASK: &'static str = "question-answering";
    /// `(question, context)`.
    type Input<'a> = (&'a str, &'a str);
    type Params = QuestionAnsweringParams;
    /// The best answers, best first.
    type Output = Vec<Answer>;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        QuestionAnsweringPipeline::from_pretrained(path, opts)
    }

    fn call(&self, inputs: &[(&str, &str)], params: &Self::Params) -> Result<Vec<Self::Output>> {
        self.run_batch(inputs, params)
    }
}

impl Pipeline for SentenceTransformer {
    const TASK: &'static str = "sentence-similarity";
    type Input<'a> = &'a str;
    type Params = EmbedParams;
    /// One sentence embedding.
    type Output = Vec<f32>;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        SentenceTransformer::from_pretrained(path, opts)
    }

    fn call(&self, inputs: &[&str], params: &Self::Params) -> Result<Vec<Self::Output>> {
        self.encode(inputs, params)
    }
}

/// Loads the pipeline `P` from `path` and runs it on `inputs`: what `pipeline(task,
/// model=path)(inputs)` does in transformers.
pub fn run<P: Pipeline>(
    path: &Path,
    opts: &LoadOptions,
    inputs: &[P::Input<'_>],
    params: &P::Params,
) -> Result<Vec<P::Output>> {
    P::from_pretrained(path, opts)?.call(inputs, params)
}
