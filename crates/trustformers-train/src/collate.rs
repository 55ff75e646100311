//! transformers' data collators: tokenized examples of different lengths into one padded
//! batch, with the labels each task needs. [`group_texts`] packs a causal-LM corpus into
//! blocks.

use crate::loss::IGNORE_INDEX;
use trustformers_core::{Error, Result};

/// One tokenized example.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    /// 1 for real tokens (all ones when absent).
    pub attention_mask: Option<Vec<u32>>,
    pub token_type_ids: Option<Vec<u32>>,
    /// Per-token labels (token classification, language modelling) or one label per
    /// example (sequence classification: one entry).
    pub labels: Option<Vec<i64>>,
}

/// A padded batch, `[batch, length]` row-major each.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub batch: usize,
    pub length: usize,
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub token_type_ids: Option<Vec<u32>>,
    /// Per token (`[batch, length]`), or one per example (`batch`).
    pub labels: Option<Vec<i64>>,
}

/// Which end padding goes on (the tokenizer's `padding_side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    #[default]
    Right,
    Left,
}

/// How to pad: transformers' `DataCollatorWithPadding` / `...ForTokenClassification`
/// arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Padding {
    pub pad_token_id: u32,
    pub side: Side,
    /// Pad the length up to a multiple of this (`pad_to_multiple_of`).
    pub multiple_of: Option<usize>,
    /// What per-token labels are padded with (`label_pad_token_id`, -100).
    pub label_pad: i64,
}

impl Default for Padding {
    fn default() -> Self {
        Self {
            pad_token_id: 0,
            side: Side::Right,
            multiple_of: None,
            label_pad: IGNORE_INDEX,
        }
    }
}

fn pad_to<T: Copy>(row: &[T], length: usize, value: T, side: Side, out: &mut Vec<T>) {
    let fill = std::iter::repeat_n(value, length - row.len());
    match side {
        Side::Right => out.extend(row.iter().copied().chain(fill)),
        Side::Left => out.extend(fill.chain(row.iter().copied())),
    }
}

/// `DataCollatorWithPadding`: `examples` padded to the longest (rounded up to
/// `multiple_of`); labels, one per example, as they are.
pub fn with_padding(examples: &[Example], padding: &Padding) -> Result<Batch> {
    collate(examples, padding, false)
}

/// `DataCollatorForTokenClassification`: as [`with_padding`], with per-token labels padded
/// with `label_pad` (-100).
pub fn for_token_classification(examples: &[Example], padding: &Padding) -> Result<Batch> {
    collate(examples, padding, true)
}

fn collate(examples: &[Example], padding: &Padding, per_token_labels: bool) -> Result<Batch> {
    if examples.is_empty() {
        return Err(Error::InvalidInput("no examples to collate".into()));
    }
    let longest = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0);
    let length = match padding.multiple_of {
        Some(0) => return Err(Error::config("pad_to_multiple_of", "must be at least 1")),
        Some(m) => longest.div_ceil(m) * m,
        None => longest,
    };
    let with_types = examples.iter().any(|e| e.token_type_ids.is_some());
    let with_labels = examples.iter().any(|e| e.labels.is_some());
    let mut batch = Batch {
        batch: examples.len(),
        length,
        input_ids: Vec::with_capacity(examples.len() * length),
        attention_mask: Vec::with_capacity(examples.len() * length),
        token_type_ids: with_types.then(Vec::new),
        labels: with_labels.then(Vec::new),
    };
    for (i, e) in examples.iter().enumerate() {
        let n = e.input_ids.len();
        let check = |field: &str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(Error::InvalidInput(format!(
                    "example {i}: {len} {field} for {n} input_ids"
                )))
            }
        };
        pad_to(
            &e.input_ids,
            length,
            padding.pad_token_id,
            padding.side,
            &mut batch.input_ids,
        );
        let ones = vec![1u32; n];
        let mask = e.attention_mask.as_deref().unwrap_or(&ones);
        check("attention_mask values", mask.len())?;
        pad_to(mask, length, 0, padding.side, &mut batch.attention_mask);
        if let Some(types) = &mut batch.token_type_ids {
            let zeros = vec![0u32; n];
            let t = e.token_type_ids.as_deref().unwrap_or(&zeros);
            check("token_type_ids", t.len())?;
            pad_to(t, length, 0, padding.side, types);
        }
        if let Some(labels) = &mut batch.labels {
            let Some(l) = &e.labels else {
                return Err(Error::InvalidInput(format!(
                    "example {i} has no labels while others do"
                )));
            };
            if per_token_labels {
                check("labels", l.len())?;
                pad_to(l, length, padding.label_pad, padding.side, labels);
            } else if l.len() == 1 {
                labels.extend_from_slice(l);
            } else {
                return Err(Error::InvalidInput(format!(
                    "example {i}: {} labels where one per example is expected",
                    l.len()
                )));
            }
        }
    }
    Ok(batch)
}

/// `DataCollatorForLanguageModeling(mlm=False)`: padded like [`with_padding`], with labels
/// equal to the input ids (the model shifts them) and -100 wherever the id is the pad token,
/// as transformers does: with a tokenizer whose pad token is its EOS token, the EOS tokens
/// are not learned either.
pub fn causal_lm(examples: &[Example], padding: &Padding) -> Result<Batch> {
    let plain: Vec<Example> = examples
        .iter()
        .map(|e| Example {
            labels: None,
            ..e.clone()
        })
        .collect();
    let mut batch = with_padding(&plain, padding)?;
    batch.labels = Some(
        batch
            .input_ids
            .iter()
            .map(|&id| {
                if id == padding.pad_token_id {
                    IGNORE_INDEX
                } else {
                    i64::from(id)
                }
            })
            .collect(),
    );
    Ok(batch)
}

/// transformers' `group_texts` (the causal-LM examples' packing): every example's ids
/// concatenated, then cut into blocks of `block_size`; the remainder that fills no block
/// is dropped.
pub fn group_texts(examples: &[Vec<u32>], block_size: usize) -> Result<Vec<Vec<u32>>> {
    if block_size == 0 {
        return Err(Error::config("block_size", "must be at least 1"));
    }
    let all: Vec<u32> = examples.iter().flatten().copied().collect();
    Ok(all.chunks_exact(block_size).map(<[u32]>::to_vec).collect())
}
