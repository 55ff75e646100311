//! The one shape every task pipeline has, as transformers' `Pipeline`: load from a
//! checkpoint; then, batch by batch, `preprocess` (tokenize the inputs into padded model
//! inputs), `forward` (run the model) and `postprocess` (turn the model's outputs into one
//! result per input), with typed parameters. [`Pipeline::call`] runs the stages over all
//! inputs, `batch_size` at a time; the CLI, a server and the bindings drive every task
//! through this trait.

use crate::auto::LoadOptions;
use std::path::Path;
use trustformers_core::{Error, Result};

/// What every task's parameters have.
pub trait PipelineParams {
    /// Inputs per forward pass.
    fn batch_size(&self) -> usize;
}

/// A task pipeline: `preprocess -> forward -> postprocess`, batch by batch.
pub trait Pipeline: Sized {
    /// transformers' task name.
    const TASK: &'static str;
    /// One input: a text, a text pair, a question with its context.
    type Input<'a>: Copy;
    /// The task's parameters; `Default` is transformers' default.
    type Params: Default + PipelineParams;
    /// The result for one input.
    type Output;
    /// One batch as the model takes it, with what postprocess needs to read the outputs
    /// (the encodings, the mask positions, the windows of a context).
    type ModelInputs;
    /// What the model gives for one batch.
    type ModelOutputs;

    /// Loads the checkpoint directory (or file) at `path` with this task's head.
    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self>;

    /// Checks `params` before any input is read (default: nothing to check beyond the batch
    /// size).
    fn check(&self, _params: &Self::Params) -> Result<()> {
        Ok(())
    }

    /// One batch of inputs as model inputs; `first` is the position of `inputs[0]` among
    /// all inputs, for messages.
    fn preprocess(
        &self,
        inputs: &[Self::Input<'_>],
        first: usize,
        params: &Self::Params,
    ) -> Result<Self::ModelInputs>;

    /// Runs the model on one batch.
    fn forward(&self, inputs: &Self::ModelInputs) -> Result<Self::ModelOutputs>;

    /// One result per input of the batch, in order.
    fn postprocess(
        &self,
        inputs: &Self::ModelInputs,
        outputs: Self::ModelOutputs,
        params: &Self::Params,
    ) -> Result<Vec<Self::Output>>;

    /// The order in which inputs go through the model, when it is not the given one
    /// (sentence-transformers sorts texts by length so that batches pad little). Results
    /// come back in input order either way.
    fn batch_order(&self, _inputs: &[Self::Input<'_>]) -> Option<Vec<usize>> {
        None
    }

    /// One output per input, in order: the stages over padded batches of the parameters'
    /// `batch_size` inputs.
    fn call(&self, inputs: &[Self::Input<'_>], params: &Self::Params) -> Result<Vec<Self::Output>> {
        if inputs.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: no inputs to run",
                Self::TASK
            )));
        }
        let size = params.batch_size();
        if size == 0 {
            return Err(Error::InvalidInput(format!(
                "{}: batch_size must be positive",
                Self::TASK
            )));
        }
        self.check(params)?;
        let order = self.batch_order(inputs);
        let mut results: Vec<Option<Self::Output>> = Vec::new();
        results.resize_with(inputs.len(), || None);
        let positions: Vec<usize> = order.unwrap_or_else(|| (0..inputs.len()).collect());
        for chunk in positions.chunks(size) {
            let batch: Vec<Self::Input<'_>> = chunk.iter().map(|&i| inputs[i]).collect();
            let first = chunk.first().copied().unwrap_or(0);
            let model_inputs = self.preprocess(&batch, first, params)?;
            let outputs = self.forward(&model_inputs)?;
            let outs = self.postprocess(&model_inputs, outputs, params)?;
            if outs.len() != chunk.len() {
                return Err(Error::InvalidInput(format!(
                    "{}: {} results for a batch of {} inputs",
                    Self::TASK,
                    outs.len(),
                    chunk.len()
                )));
            }
            for (&i, out) in chunk.iter().zip(outs) {
                results[i] = Some(out);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.ok_or_else(|| {
                    Error::InvalidInput(format!("{}: an input got no result", Self::TASK))
                })
            })
            .collect()
    }
}

/// `impl PipelineParams` for params structs with a `batch_size` field.
macro_rules! batch_size {
    ($($ty:ty),+) => {$(
        impl PipelineParams for $ty {
            fn batch_size(&self) -> usize {
                self.batch_size
            }
        }
    )+};
}

batch_size!(
    super::FeatureExtractionParams,
    super::FillMaskParams,
    super::TextClassificationParams,
    super::ZeroShotParams,
    super::TokenClassificationParams,
    super::QuestionAnsweringParams,
    super::EmbedParams
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
