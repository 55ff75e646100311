//! A model in training: the model the project runs (its weights trainable, see
//! `Weights::trainable`), the head's loss as transformers computes it, and the parameters
//! the optimizer updates.

use crate::loss::{
    causal_lm_loss, per_token_loss, question_answering_loss, sequence_classification_loss,
    ClassLabels, ProblemType,
};
use candle_core::{DType, Tensor};
use trustformers_core::{Error, Parameters, Result};
use trustformers_models::{CausalLM, EncoderForTask, EncoderTask, ForwardOptions};

/// The model and the loss its head trains with.
pub enum TaskModel {
    /// `ForCausalLM`: the shifted next-token loss.
    CausalLm(Box<dyn CausalLM>),
    /// An encoder with a task head.
    Encoder {
        model: Box<EncoderForTask>,
        /// config.json's `problem_type` (sequence classification).
        problem_type: Option<String>,
    },
}

/// What a batch is labelled with.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// One label per position, `[batch, seq]` row-major, -100 where nothing is predicted
    /// (causal LM before the shift, masked LM, token classification).
    Tokens(Vec<i64>),
    /// One label (or row of values) per sequence.
    Classes(ClassLabels),
    /// Answer spans: one start and one end position per sequence.
    Spans { start: Vec<i64>, end: Vec<i64> },
}

/// One batch of inputs, under transformers' names.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    /// `[batch, seq]` token ids.
    pub input_ids: Tensor,
    /// `[batch, seq]` 1 for tokens, 0 for padding.
    pub attention_mask: Option<Tensor>,
    /// `[batch, seq]` segment ids (encoders).
    pub token_type_ids: Option<Tensor>,
    /// `[batch, seq]` positions (decoders); `None`: `0..seq` in every row, as transformers
    /// does without `position_ids`.
    pub position_ids: Option<Tensor>,
    pub labels: Labels,
}

impl TaskModel {
    /// The loss of `batch`, as a scalar in the autograd graph; see [`crate::loss`] for
    /// `num_items_in_batch`.
    pub fn loss(&self, batch: &TrainBatch, num_items_in_batch: Option<f64>) -> Result<Tensor> {
        Ok(self.forward_loss(batch, num_items_in_batch)?.0)
    }

    /// The loss of `batch` and the head's logits (`None` for question answering).
    fn forward_loss(
        &self,
        batch: &TrainBatch,
        num_items_in_batch: Option<f64>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        match self {
            Self::CausalLm(model) => {
                let Labels::Tokens(labels) = &batch.labels else {
                    return Err(Error::InvalidInput(
                        "a causal LM trains on one label per token".into(),
                    ));
                };
                let (rows, seq) = batch.input_ids.dims2()?;
                let positions = match &batch.position_ids {
                    Some(p) => p.clone(),
                    None => Tensor::arange(0u32, seq as u32, batch.input_ids.device())?
                        .unsqueeze(0)?
                        .repeat((rows, 1))?,
                };
                let opts = ForwardOptions {
                    attention_mask: batch.attention_mask.clone(),
                    ..Default::default()
                };
                let mut cache = model.new_cache();
                let out = model.forward_with(&batch.input_ids, &positions, &opts, &mut cache)?;
                let loss = causal_lm_loss(&out.logits, labels, num_items_in_batch)?;
                Ok((loss, None))
            }
            Self::Encoder {
                model,
                problem_type,
            } => {
                let out = model.forward(
                    &batch.input_ids,
                    batch.token_type_ids.as_ref(),
                    batch.attention_mask.as_ref(),
                    false,
                )?;
                let logits = |name: &str, t: Option<Tensor>| {
                    t.ok_or_else(|| {
                        Error::InvalidInput(format!("the {:?} head gave no {name}", model.task()))
                    })
                };
                match (model.task(), &batch.labels) {
                    (
                        EncoderTask::MaskedLm | EncoderTask::TokenClassification,
                        Labels::Tokens(labels),
                    ) => {
                        let logits = logits("logits", out.logits)?;
                        let loss = per_token_loss(&logits, labels, num_items_in_batch)?;
                        Ok((loss, Some(logits)))
                    }
                    (
                        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice,
                        Labels::Classes(labels),
                    ) => {
                        let logits = logits("logits", out.logits)?;
                        let problem = if model.task() == EncoderTask::MultipleChoice {
                            ProblemType::SingleLabel
                        } else {
                            ProblemType::resolve(
                                problem_type.as_deref(),
                                logits.dim(1)?,
                                matches!(labels, ClassLabels::Indices(_)),
                            )?
                        };
                        let loss = sequence_classification_loss(
                            &logits,
                            labels,
                            problem,
                            num_items_in_batch,
                        )?;
                        Ok((loss, Some(logits)))
                    }
                    (EncoderTask::QuestionAnswering, Labels::Spans { start, end }) => {
                        let loss = question_answering_loss(
                            &logits("start_logits", out.start_logits)?,
                            &logits("end_logits", out.end_logits)?,
                            start,
                            end,
                        )?;
                        Ok((loss, None))
                    }
                    (task, labels) => Err(Error::InvalidInput(format!(
                        "a {task:?} head does not train on {}",
                        labels.describe()
                    ))),
                }
            }
        }
    }

    /// The loss of `batch` as a number, and for classification heads trained on class
    /// indices, how many predictions (argmax of the logits) match their label and how many
    /// labels there are (-100 left out).
    pub fn eval_batch(&self, batch: &TrainBatch) -> Result<(f64, Option<(usize, usize)>)> {
        let (loss, logits) = self.forward_loss(batch, None)?;
        let loss = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        let labels = match &batch.labels {
            Labels::Classes(ClassLabels::Indices(l)) | Labels::Tokens(l) => l,
            _ => return Ok((loss, None)),
        };
        let classifies = matches!(
            self.encoder_task(),
            Some(
                EncoderTask::SequenceClassification
                    | EncoderTask::TokenClassification
                    | EncoderTask::MultipleChoice
            )
        );
        let Some(logits) = logits.filter(|_| classifies) else {
            return Ok((loss, None));
        };
        let predicted: Vec<u32> = logits
            .argmax(candle_core::D::Minus1)?
            .flatten_all()?
            .to_vec1()?;
        let (mut hits, mut total) = (0, 0);
        for (&p, &l) in predicted.iter().zip(labels) {
            if l != crate::IGNORE_INDEX {
                total += 1;
                hits += usize::from(i64::from(p) == l);
            }
        }
        Ok((loss, Some((hits, total))))
    }

    /// Whether the loss takes `num_items_in_batch` (transformers' causal LM loss does; its
    /// encoder heads average over each batch, so the Trainer divides by the number of
    /// accumulated micro-batches instead).
    pub fn counts_items(&self) -> bool {
        matches!(self, Self::CausalLm(_))
    }

    /// The longest sequence the model takes.
    pub fn max_positions(&self) -> usize {
        match self {
            Self::CausalLm(m) => m.max_position_embeddings(),
            Self::Encoder { model, .. } => model.model().spec().max_position_embeddings,
        }
    }

    /// The task of the head (`None` for a causal LM).
    fn encoder_task(&self) -> Option<EncoderTask> {
        match self {
            Self::CausalLm(_) => None,
            Self::Encoder { model, .. } => Some(model.task()),
        }
    }
}

impl TrainBatch {
    /// A batch for `model` from tensors under transformers' argument names: integer
    /// `input_ids` `[batch, seq]` (`[batch, choices, seq]` for multiple choice), optional
    /// `attention_mask`, `token_type_ids` and `position_ids` of the same shape, and the
    /// labels `forward(..., labels=...)` takes: `labels` (integers per token or per
    /// sequence, floats for regression and multi-label), or `start_positions` and
    /// `end_positions` for question answering.
    pub fn from_named(
        model: &TaskModel,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<Self> {
        let task = model.encoder_task();
        let ids = tensors
            .get("input_ids")
            .ok_or_else(|| Error::InvalidInput("the batch has no `input_ids`".into()))?;
        let rank = if task == Some(EncoderTask::MultipleChoice) {
            3
        } else {
            2
        };
        let integer = |name: &str, t: &Tensor| -> Result<Tensor> {
            if !t.dtype().is_int() {
                return Err(Error::InvalidInput(format!(
                    "`{name}` must hold integers, not {:?}",
                    t.dtype()
                )));
            }
            Ok(t.to_dtype(DType::U32)?)
        };
        if ids.rank() != rank || ids.elem_count() == 0 {
            return Err(Error::InvalidInput(format!(
                "`input_ids` has shape {:?}, expected {rank} non-empty dimensions",
                ids.dims()
            )));
        }
        let like_ids = |name: &str| -> Result<Option<Tensor>> {
            let Some(t) = tensors.get(name) else {
                return Ok(None);
            };
            if t.dims() != ids.dims() {
                return Err(Error::InvalidInput(format!(
                    "`{name}` has shape {:?}, expected {:?} like `input_ids`",
                    t.dims(),
                    ids.dims()
                )));
            }
            integer(name, t).map(Some)
        };
        let ints = |name: &str| -> Result<Option<Vec<i64>>> {
            tensors
                .get(name)
                .map(|t| {
                    if !t.dtype().is_int() {
                        return Err(Error::InvalidInput(format!(
                            "`{name}` must hold integers, not {:?}",
                            t.dtype()
                        )));
                    }
                    Ok(t.flatten_all()?.to_dtype(DType::I64)?.to_vec1()?)
                })
                .transpose()
        };
        let labels =
            match task {
                Some(EncoderTask::QuestionAnswering) => {
                    match (ints("start_positions")?, ints("end_positions")?) {
                        (Some(start), Some(end)) => Labels::Spans { start, end },
                        _ => return Err(Error::InvalidInput(
                            "question answering trains on `start_positions` and `end_positions`"
                                .into(),
                        )),
                    }
                }
                Some(EncoderTask::SequenceClassification | EncoderTask::MultipleChoice) => {
                    match tensors.get("labels") {
                        Some(t) if t.dtype().is_float() => Labels::Classes(ClassLabels::Values(
                            t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?,
                        )),
                        _ => Labels::Classes(ClassLabels::Indices(ints("labels")?.ok_or_else(
                            || Error::InvalidInput("the batch has no `labels`".into()),
                        )?)),
                    }
                }
                _ => Labels::Tokens(
                    ints("labels")?
                        .ok_or_else(|| Error::InvalidInput("the batch has no `labels`".into()))?,
                ),
            };
        Ok(Self {
            input_ids: integer("input_ids", ids)?,
            attention_mask: like_ids("attention_mask")?,
            token_type_ids: like_ids("token_type_ids")?,
            position_ids: like_ids("position_ids")?,
            labels,
        })
    }
}

impl From<ClassLabels> for Labels {
    fn from(labels: ClassLabels) -> Self {
        Self::Classes(labels)
    }
}

impl Labels {
    fn describe(&self) -> &'static str {
        match self {
            Self::Tokens(_) => "labels per token",
            Self::Classes(_) => "labels per sequence",
            Self::Spans { .. } => "answer spans",
        }
    }
}

/// A model loaded for training and its trainable tensors.
pub struct Trainable {
    pub model: TaskModel,
    pub parameters: Parameters,
}

impl Trainable {
    /// The loss of `batch` and every trainable parameter's gradient, by checkpoint name.
    pub fn loss_and_gradients(
        &self,
        batch: &TrainBatch,
    ) -> Result<(Tensor, Vec<(String, Tensor)>)> {
        let loss = self.model.loss(batch, None)?;
        let grads = trustformers_nn::checkpoint::backward(&loss)?;
        Ok((loss, self.gradients(&grads)))
    }

    /// Each parameter's gradient after `loss.backward()`, by checkpoint name; parameters
    /// the loss does not reach have none (torch leaves their `.grad` at `None`).
    pub fn gradients(&self, grads: &candle_core::backprop::GradStore) -> Vec<(String, Tensor)> {
        self.parameters
            .iter()
            .filter_map(|(name, var)| grads.get(var).map(|g| (name.clone(), g.clone())))
            .collect()
    }
}
