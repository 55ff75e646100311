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

/// `impl Pipeline` for a task type whose inherent `from_pretrained` loads it and whose
/// inherent `$method` runs a batch.
macro_rules! pipeline {
    ($ty:ty, $task:literal, $input:ty, $params:ty, $output:ty, $method:ident) => {
        impl Pipeline for $ty {
            const TASK: &'static str = $task;
            type Input<'a> = $input;
            type Params = $params;
            type Output = $output;

            fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
                <$ty>::from_pretrained(path, opts)
            }

            fn call(
                &self,
                inputs: &[Self::Input<'_>],
                params: &Self::Params,
            ) -> Result<Vec<Self::Output>> {
                self.$method(inputs, params)
            }
        }
    };
}

// Outputs per input: `[tokens][hidden]`; mask candidates, best first; labels with scores,
// best first; a zero-shot ranking; the entities of a text; the best answers; an embedding.
pipeline!(
    FeatureExtractionPipeline,
    "feature-extraction",
    &'a str,
    FeatureExtractionParams,
    Vec<Vec<f32>>,
    run
);
pipeline!(
    FillMaskPipeline,
    "fill-mask",
    &'a str,
    FillMaskParams,
    Vec<FillMaskPrediction>,
    run
);
pipeline!(
    TextClassificationPipeline,
    "text-classification",
    TextInput<'a>,
    TextClassificationParams,
    Vec<LabelScore>,
    run
);
pipeline!(
    ZeroShotClassificationPipeline,
    "zero-shot-classification",
    &'a str,
    ZeroShotParams,
    ZeroShotResult,
    run_batch
);
pipeline!(
    TokenClassificationPipeline,
    "token-classification",
    &'a str,
    TokenClassificationParams,
    Vec<Entity>,
    run_batch
);
// Inputs are `(question, context)`.
pipeline!(
    QuestionAnsweringPipeline,
    "question-answering",
    (&'a str, &'a str),
    QuestionAnsweringParams,
    Vec<Answer>,
    run_batch
);
pipeline!(
    SentenceTransformer,
    "sentence-similarity",
    &'a str,
    EmbedParams,
    Vec<f32>,
    encode
);

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
