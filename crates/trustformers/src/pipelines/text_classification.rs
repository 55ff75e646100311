//! transformers' `text-classification` pipeline (texts or text pairs -> labels with scores)
//! and `zero-shot-classification` (an NLI model scoring "This example is {label}.").

use super::pipeline::Pipeline;
use super::{padded, softmax, tokenize, Batch};
use crate::auto::AutoConfig;
use crate::auto::LoadOptions;
use crate::encoders::load_encoder;
use candle_core::{DType, Device};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_models::seq2seq::BartForSequenceClassification;
use trustformers_models::{EncoderForTask, EncoderTask, EncoderTaskOutput, ModelKind};
use trustformers_tokenizers::{
    AutoTokenizer, EncodeOptions, Padding, TextInput, Tokenizer, Truncation,
};

/// How scores are computed from logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassificationFunction {
    Softmax,
    Sigmoid,
    None,
}

impl ClassificationFunction {
    /// transformers' name (`softmax`, `sigmoid`, `none`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "softmax" => Ok(Self::Softmax),
            "sigmoid" => Ok(Self::Sigmoid),
            "none" => Ok(Self::None),
            other => Err(Error::InvalidInput(format!(
                "function_to_apply `{other}` is not one of softmax, sigmoid, none"
            ))),
        }
    }

    /// transformers' default for a config: by `problem_type`, else sigmoid for one label and
    /// softmax for several.
    pub(crate) fn default_for(config: &Value, labels: usize) -> Self {
        match config.get("problem_type").and_then(Value::as_str) {
            Some("regression") => Self::None,
            Some("multi_label_classification") => Self::Sigmoid,
            Some("single_label_classification") => Self::Softmax,
            _ if labels == 1 => Self::Sigmoid,
            _ => Self::Softmax,
        }
    }

    pub(crate) fn apply(self, logits: &[f32]) -> Vec<f32> {
        match self {
            Self::None => logits.to_vec(),
            Self::Sigmoid => logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect(),
            Self::Softmax => softmax(logits),
        }
    }
}

/// One label and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// Options of [`TextClassificationPipeline::run`].
#[derive(Debug, Clone)]
pub struct TextClassificationParams {
    /// Labels returned per input, best first; `None` for all.
    pub top_k: Option<usize>,
    /// Overrides the config's default (softmax, or sigmoid for one label / multi-label).
    pub function_to_apply: Option<ClassificationFunction>,
    /// Truncate inputs to the model's maximum length; otherwise a longer input is an error.
    pub truncation: bool,
    /// Inputs per forward pass.
    pub batch_size: usize,
}

impl Default for TextClassificationParams {
    fn default() -> Self {
        Self {
            top_k: Some(1),
            function_to_apply: None,
            truncation: false,
            batch_size: 8,
        }
    }
}

/// A sequence-classification model and its tokenizer.
pub struct TextClassificationPipeline {
    tokenizer: Tokenizer,
    model: EncoderForTask,
    config: Value,
}

impl TextClassificationPipeline {
    /// Loads a sequence-classification checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let config = AutoConfig::from_pretrained(dir)?;
        Ok(Self {
            model: config.load_encoder(Some(EncoderTask::SequenceClassification), opts)?,
            tokenizer: AutoTokenizer::from_pretrained(dir)?,
            config: config.json,
        })
    }

    /// The class names, by label id.
    pub fn labels(&self) -> &[String] {
        self.model.labels()
    }

    /// Labels with scores per input (a text or a text pair), best first.
    pub fn run(
        &self,
        inputs: &[TextInput<'_>],
        params: &TextClassificationParams,
    ) -> Result<Vec<Vec<LabelScore>>> {
        self.call(inputs, params)
    }
}

impl Pipeline for TextClassificationPipeline {
    const TASK: &'static str = "text-classification";
    type Input<'a> = TextInput<'a>;
    type Params = TextClassificationParams;
    /// Labels with scores, best first.
    type Output = Vec<LabelScore>;
    type ModelInputs = Batch;
    type ModelOutputs = EncoderTaskOutput;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn preprocess(
        &self,
        inputs: &[TextInput<'_>],
        _: usize,
        params: &Self::Params,
    ) -> Result<Batch> {
        let truncation = params.truncation.then_some(Truncation::LongestFirst);
        let opts = padded(&self.tokenizer, &self.model, truncation);
        tokenize(&self.tokenizer, inputs, &opts, self.model.model().device())
    }

    fn forward(&self, batch: &Batch) -> Result<EncoderTaskOutput> {
        batch.run(&self.model)
    }

    fn postprocess(
        &self,
        _: &Batch,
        out: EncoderTaskOutput,
        params: &Self::Params,
    ) -> Result<Vec<Self::Output>> {
        let labels = self.labels();
        let function = params
            .function_to_apply
            .unwrap_or_else(|| ClassificationFunction::default_for(&self.config, labels.len()));
        Ok(class_logits(out)?
            .into_iter()
            .map(|logits| {
                let scores = function.apply(&logits);
                let mut out: Vec<LabelScore> = scores
                    .into_iter()
                    .enumerate()
                    .map(|(i, score)| LabelScore {
                        label: labels
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("LABEL_{i}")),
                        score,
                    })
                    .collect();
                // Stable: equal scores keep label order, as Python's sort.
                out.sort_by(|a, b| b.score.total_cmp(&a.score));
                if let Some(k) = params.top_k {
                    out.truncate(k);
                }
                out
            })
            .collect())
    }
}

/// The `[labels]` logits of each row of a sequence-classification model's output.
fn class_logits(out: EncoderTaskOutput) -> Result<Vec<Vec<f32>>> {
    let logits = out
        .logits
        .ok_or_else(|| Error::InvalidInput("the model has no classification head".into()))?;
    Ok(logits.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// Options of [`ZeroShotClassificationPipeline::run`].
#[derive(Debug, Clone)]
pub struct ZeroShotParams {
    pub candidate_labels: Vec<String>,
    /// `{}` is replaced by each label.
    pub hypothesis_template: String,
    /// Score each label independently (entailment vs contradiction) instead of a softmax
    /// over the labels.
    pub multi_label: bool,
    /// (sequence, hypothesis) pairs per forward pass.
    pub batch_size: usize,
}

impl Default for ZeroShotParams {
    fn default() -> Self {
        Self {
            candidate_labels: Vec::new(),
            hypothesis_template: "This example is {}.".into(),
            multi_label: false,
            batch_size: 8,
        }
    }
}

/// The labels of one sequence, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZeroShotResult {
    pub sequence: String,
    pub labels: Vec<String>,
    pub scores: Vec<f32>,
}

/// The NLI model behind zero-shot classification: an encoder with a sequence
/// classification head (BERT, RoBERTa, DeBERTa MNLI models), or BART's
/// (`facebook/bart-large-mnli`, transformers' default for the task).
enum NliModel {
    Encoder(Box<EncoderForTask>),
    Bart {
        model: Box<BartForSequenceClassification>,
        max_positions: usize,
        device: Device,
    },
}

impl NliModel {
    fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let config = AutoConfig::from_pretrained(dir)?;
        if config.kind() != ModelKind::EncoderDecoder {
            return Ok(Self::Encoder(Box::new(load_encoder(
                dir,
                Some(EncoderTask::SequenceClassification),
                opts,
            )?)));
        }
        let max_positions = config
            .json
            .get("max_position_embeddings")
            .and_then(Value::as_u64)
            .unwrap_or(1024) as usize;
        Ok(Self::Bart {
            model: Box::new(config.load_bart_for_sequence_classification(opts)?),
            max_positions,
            device: opts.device.clone(),
        })
    }

    fn labels(&self) -> &[String] {
        match self {
            Self::Encoder(m) => m.labels(),
            Self::Bart { model, .. } => model.labels(),
        }
    }

    /// Pairs padded to the longest, the premise truncated to the model's length.
    fn encode_options(&self, tokenizer: &Tokenizer) -> EncodeOptions {
        match self {
            Self::Encoder(m) => padded(tokenizer, m, Some(Truncation::OnlyFirst)),
            Self::Bart { max_positions, .. } => EncodeOptions {
                padding: Padding::Longest,
                truncation: Some(Truncation::OnlyFirst),
                max_length: Some(
                    tokenizer
                        .config()
                        .model_max_length
                        .map_or(*max_positions, |m| m.min(*max_positions)),
                ),
                ..Default::default()
            },
        }
    }

    fn device(&self) -> &Device {
        match self {
            Self::Encoder(m) => m.model().device(),
            Self::Bart { device, .. } => device,
        }
    }

    /// `[labels]` logits per row of `batch`.
    fn logits(&self, batch: &Batch) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Encoder(m) => class_logits(batch.run(m)?),
            Self::Bart { model, .. } => Ok(model
                .forward(&batch.input_ids, Some(&batch.attention_mask))?
                .to_vec2::<f32>()?),
        }
    }
}

/// An NLI model used as a zero-shot classifier.
pub struct ZeroShotClassificationPipeline {
    tokenizer: Tokenizer,
    model: NliModel,
    entailment: usize,
    contradiction: usize,
}

impl ZeroShotClassificationPipeline {
    /// Loads an NLI sequence-classification checkpoint (an encoder's, or BART's): a label
    /// starting with `entail` must be in `label2id` (else the last label is taken, as
    /// transformers does).
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let model = NliModel::load(dir, opts)?;
        let n = model.labels().len();
        if n < 2 {
            return Err(Error::config(
                "id2label",
                "a zero-shot model needs entailment and contradiction labels",
            ));
        }
        let entailment = model
            .labels()
            .iter()
            .position(|l| l.to_lowercase().starts_with("entail"))
            .unwrap_or(n - 1);
        Ok(Self {
            tokenizer: AutoTokenizer::from_pretrained(dir)?,
            entailment,
            contradiction: if entailment == 0 { n - 1 } else { 0 },
            model,
        })
    }

    /// Scores `params.candidate_labels` for `sequence`.
    pub fn run(&self, sequence: &str, params: &ZeroShotParams) -> Result<ZeroShotResult> {
        self.run_batch(&[sequence], params)?
            .pop()
            .ok_or_else(|| Error::InvalidInput("no scores were computed".into()))
    }

    /// Scores `params.candidate_labels` for each sequence, in order: the (sequence,
    /// hypothesis) pairs go through the model `params.batch_size` at a time.
    pub fn run_batch(
        &self,
        sequences: &[&str],
        params: &ZeroShotParams,
    ) -> Result<Vec<ZeroShotResult>> {
        self.call(sequences, params)
    }

    /// One sequence's labels, best first, from its hypotheses' logits.
    fn ranked(
        &self,
        sequence: &str,
        logits: &[Vec<f32>],
        params: &ZeroShotParams,
    ) -> ZeroShotResult {
        let labels = &params.candidate_labels;
        let scores: Vec<f32> = if params.multi_label || labels.len() == 1 {
            logits
                .iter()
                .map(|l| softmax(&[l[self.contradiction], l[self.entailment]])[1])
                .collect()
        } else {
            softmax(
                &logits
                    .iter()
                    .map(|l| l[self.entailment])
                    .collect::<Vec<_>>(),
            )
        };
        // numpy's argsort reversed: best first, equal scores latest label first.
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(b.cmp(&a)));
        ZeroShotResult {
            sequence: sequence.to_string(),
            labels: order.iter().map(|&i| labels[i].clone()).collect(),
            scores: order.iter().map(|&i| scores[i]).collect(),
        }
    }
}

/// A zero-shot batch: its sequences, and their (sequence, hypothesis) pairs in padded
/// batches of at most `batch_size` pairs.
pub struct HypothesisBatches {
    sequences: Vec<String>,
    batches: Vec<Batch>,
}

impl Pipeline for ZeroShotClassificationPipeline {
    const TASK: &'static str = "zero-shot-classification";
    type Input<'a> = &'a str;
    type Params = ZeroShotParams;
    type Output = ZeroShotResult;
    type ModelInputs = HypothesisBatches;
    /// `[labels]` logits per pair, in pair order.
    type ModelOutputs = Vec<Vec<f32>>;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn check(&self, params: &ZeroShotParams) -> Result<()> {
        if params.candidate_labels.is_empty() {
            return Err(Error::InvalidInput(
                "zero-shot classification needs at least one candidate label".into(),
            ));
        }
        if !params.hypothesis_template.contains("{}") {
            return Err(Error::InvalidInput(format!(
                "hypothesis_template `{}` has no `{{}}` for the label",
                params.hypothesis_template
            )));
        }
        Ok(())
    }

    fn preprocess(
        &self,
        sequences: &[&str],
        _: usize,
        params: &ZeroShotParams,
    ) -> Result<HypothesisBatches> {
        let hypotheses: Vec<String> = params
            .candidate_labels
            .iter()
            .map(|l| params.hypothesis_template.replacen("{}", l, 1))
            .collect();
        let pairs: Vec<TextInput<'_>> = sequences
            .iter()
            .flat_map(|&s| hypotheses.iter().map(move |h| TextInput::Pair(s, h)))
            .collect();
        // transformers truncates the premise only.
        let opts = self.model.encode_options(&self.tokenizer);
        let device = self.model.device();
        Ok(HypothesisBatches {
            sequences: sequences.iter().map(|s| s.to_string()).collect(),
            batches: pairs
                .chunks(params.batch_size.max(1))
                .map(|chunk| tokenize(&self.tokenizer, chunk, &opts, device))
                .collect::<Result<_>>()?,
        })
    }

    fn forward(&self, inputs: &HypothesisBatches) -> Result<Vec<Vec<f32>>> {
        let mut logits = Vec::new();
        for batch in &inputs.batches {
            logits.extend(self.model.logits(batch)?);
        }
        Ok(logits)
    }

    fn postprocess(
        &self,
        inputs: &HypothesisBatches,
        logits: Vec<Vec<f32>>,
        params: &ZeroShotParams,
    ) -> Result<Vec<ZeroShotResult>> {
        let labels = params.candidate_labels.len();
        if logits.len() != inputs.sequences.len() * labels {
            return Err(Error::InvalidInput(format!(
                "{} logits for {} sequences of {labels} labels",
                logits.len(),
                inputs.sequences.len()
            )));
        }
        Ok(inputs
            .sequences
            .iter()
            .zip(logits.chunks(labels))
            .map(|(sequence, logits)| self.ranked(sequence, logits, params))
            .collect())
    }
}
