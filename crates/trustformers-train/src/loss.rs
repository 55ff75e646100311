//! The losses transformers computes in its heads (`transformers/loss/loss_utils.py`, 4.46+),
//! as differentiable candle operations: the same values and the same gradients.
//!
//! Labels equal to [`IGNORE_INDEX`] (-100) do not count. With `num_items_in_batch` (the
//! number of counted labels over all the micro-batches of one optimizer step, as the
//! Trainer passes it under gradient accumulation) a loss is summed and divided by it
//! instead of averaged, so that accumulated gradients equal one large batch's.

use candle_core::{DType, Tensor, D};
use trustformers_core::{Error, Result};

/// Labels with this value are left out of the loss (torch's default `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// transformers' `problem_type` for sequence classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// Mean squared error against float labels.
    Regression,
    /// Cross-entropy against one class index per example.
    SingleLabel,
    /// Binary cross-entropy with logits against a 0/1 float per class.
    MultiLabel,
}

impl ProblemType {
    /// config.json's `problem_type`, or, without one, what transformers infers: regression
    /// for one label, single-label for integer labels, multi-label otherwise.
    pub fn resolve(
        problem_type: Option<&str>,
        num_labels: usize,
        integer_labels: bool,
    ) -> Result<Self> {
        match problem_type {
            Some("regression") => Ok(Self::Regression),
            Some("single_label_classification") => Ok(Self::SingleLabel),
            Some("multi_label_classification") => Ok(Self::MultiLabel),
            Some(other) => Err(Error::config(
                "problem_type",
                format!(
                    "`{other}` is not regression, single_label_classification or \
                     multi_label_classification"
                ),
            )),
            None if num_labels == 1 => Ok(Self::Regression),
            None if integer_labels => Ok(Self::SingleLabel),
            None => Ok(Self::MultiLabel),
        }
    }
}

/// `cross_entropy(logits, labels, ignore_index=-100)` over rows: the mean over counted
/// labels, or their sum divided by `num_items_in_batch` (transformers'
/// `fixed_cross_entropy`). All labels ignored gives NaN without `num_items_in_batch`, as
/// torch's mean of nothing does.
///
/// # Shapes
/// `logits` `[n, classes]`, `labels` `n` class indices or [`IGNORE_INDEX`] -> a scalar.
pub fn cross_entropy(
    logits: &Tensor,
    labels: &[i64],
    ignore_index: i64,
    num_items_in_batch: Option<f64>,
) -> Result<Tensor> {
    let (n, classes) = logits.dims2()?;
    if labels.len() != n {
        return Err(Error::InvalidInput(format!(
            "{} labels for {n} rows of logits",
            labels.len()
        )));
    }
    if let Some(&bad) = labels
        .iter()
        .find(|&&l| l != ignore_index && !(0..classes as i64).contains(&l))
    {
        return Err(Error::InvalidInput(format!(
            "label {bad} is outside the {classes} classes (and is not the ignore index {ignore_index})"
        )));
    }
    let device = logits.device();
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let targets: Vec<u32> = labels
        .iter()
        .map(|&l| if l == ignore_index { 0 } else { l as u32 })
        .collect();
    let mask: Vec<f32> = labels
        .iter()
        .map(|&l| f32::from(u8::from(l != ignore_index)))
        .collect();
    let counted: f32 = mask.iter().sum();
    let targets = Tensor::from_vec(targets, (n, 1), device)?;
    let mask = Tensor::from_vec(mask, n, device)?;
    let picked = log_probs.gather(&targets, 1)?.squeeze(1)?;
    let total = (picked * mask)?.sum_all()?.neg()?;
    let divisor = num_items_in_batch.unwrap_or(f64::from(counted));
    Ok((total / divisor)?)
}

/// transformers' `ForCausalLMLoss`: the logits at position `t` predict the label at
/// `t + 1` (the last position predicts nothing).
///
/// # Shapes
/// `logits` `[batch, seq, vocab]`, `labels` `[batch, seq]` (row-major) -> a scalar.
pub fn causal_lm_loss(
    logits: &Tensor,
    labels: &[i64],
    num_items_in_batch: Option<f64>,
) -> Result<Tensor> {
    let (b, s, v) = logits.dims3()?;
    if labels.len() != b * s {
        return Err(Error::InvalidInput(format!(
            "{} labels for logits of shape [{b}, {s}, {v}]",
            labels.len()
        )));
    }
    let shifted: Vec<i64> = labels
        .chunks_exact(s.max(1))
        .flat_map(|row| row[1..].iter().copied().chain([IGNORE_INDEX]))
        .collect();
    cross_entropy(
        &logits.reshape((b * s, v))?,
        &shifted,
        IGNORE_INDEX,
        num_items_in_batch,
    )
}

/// transformers' `ForMaskedLMLoss` (and `ForTokenClassification`): one label per position,
/// no shift.
///
/// # Shapes
/// `logits` `[batch, seq, classes]`, `labels` `[batch, seq]` -> a scalar.
pub fn per_token_loss(
    logits: &Tensor,
    labels: &[i64],
    num_items_in_batch: Option<f64>,
) -> Result<Tensor> {
    let (b, s, v) = logits.dims3()?;
    cross_entropy(
        &logits.reshape((b * s, v))?,
        labels,
        IGNORE_INDEX,
        num_items_in_batch,
    )
}

/// Labels of a sequence classification batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassLabels {
    /// One class index per example (single-label).
    Indices(Vec<i64>),
    /// `[batch, num_labels]` floats, row-major (regression, multi-label), or one float
    /// per example for regression with one label.
    Values(Vec<f32>),
}

/// transformers' `ForSequenceClassificationLoss`.
///
/// # Shapes
/// `logits` `[batch, num_labels]` -> a scalar.
pub fn sequence_classification_loss(
    logits: &Tensor,
    labels: &ClassLabels,
    problem: ProblemType,
    num_items_in_batch: Option<f64>,
) -> Result<Tensor> {
    let (b, num_labels) = logits.dims2()?;
    let logits = logits.to_dtype(DType::F32)?;
    let values = |expected: usize| -> Result<Tensor> {
        match labels {
            ClassLabels::Values(v) if v.len() == expected => {
                Ok(Tensor::from_slice(v, v.len(), logits.device())?)
            }
            ClassLabels::Values(v) => Err(Error::InvalidInput(format!(
                "{} label values for {b} examples of {num_labels} labels",
                v.len()
            ))),
            ClassLabels::Indices(_) => Err(Error::InvalidInput(format!(
                "{problem:?} needs float labels, not class indices"
            ))),
        }
    };
    match problem {
        ProblemType::Regression => {
            let target = values(b * num_labels)?.reshape((b, num_labels))?;
            Ok((logits - target)?.sqr()?.mean_all()?)
        }
        ProblemType::MultiLabel => {
            let target = values(b * num_labels)?.reshape((b, num_labels))?;
            bce_with_logits(&logits, &target)
        }
        ProblemType::SingleLabel => match labels {
            ClassLabels::Indices(l) => cross_entropy(&logits, l, IGNORE_INDEX, num_items_in_batch),
            ClassLabels::Values(_) => Err(Error::InvalidInput(
                "single-label classification needs class indices, not float labels".into(),
            )),
        },
    }
}

/// torch's `BCEWithLogitsLoss` (mean): `max(x, 0) - x y + log(1 + exp(-|x|))`.
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let relu = logits.relu()?;
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok(((relu - (logits * targets)?)? + softplus)?.mean_all()?)
}

/// transformers' `ForQuestionAnsweringLoss`: the mean of the start and end cross-entropies;
/// positions outside the sequence are clamped to its length and then ignored.
///
/// # Shapes
/// `start_logits`, `end_logits` `[batch, seq]`, positions `batch` each -> a scalar.
pub fn question_answering_loss(
    start_logits: &Tensor,
    end_logits: &Tensor,
    start_positions: &[i64],
    end_positions: &[i64],
) -> Result<Tensor> {
    let seq = start_logits.dim(1)? as i64;
    let clamp = |p: &[i64]| p.iter().map(|&x| x.clamp(0, seq)).collect::<Vec<_>>();
    let start = cross_entropy(start_logits, &clamp(start_positions), seq, None)?;
    let end = cross_entropy(end_logits, &clamp(end_positions), seq, None)?;
    Ok(((start + end)? / 2.0)?)
}
