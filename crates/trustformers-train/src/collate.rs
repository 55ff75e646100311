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
    /// Per token (`[batch, length]`), or the same few per example (`[batch, width]`: one
    /// class, or an answer's start and end).
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
/// `multiple_of`); labels, the same number per example (one class, or an answer's start and
/// end), as they are.
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
    // One label per example (classification), or a fixed few (question answering's start
    // and end).
    let label_width = examples
        .iter()
        .find_map(|e| e.labels.as_ref().map(Vec::len))
        .filter(|&w| w > 0);
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
            } else if Some(l.len()) == label_width {
                labels.extend_from_slice(l);
            } else {
                return Err(Error::InvalidInput(format!(
                    "example {i}: {} labels where the first example has {}",
                    l.len(),
                    label_width.unwrap_or(0)
                )));
            }
        }
    }
    Ok(batch)
}

/// `examples` padded without their labels (the language-modelling collators make their own).
fn pad_inputs(examples: &[Example], padding: &Padding) -> Result<Batch> {
    let plain: Vec<Example> = examples
        .iter()
        .map(|e| Example {
            labels: None,
            ..e.clone()
        })
        .collect();
    with_padding(&plain, padding)
}

/// `DataCollatorForLanguageModeling(mlm=False)`: padded like [`with_padding`], with labels
/// equal to the input ids (the model shifts them) and -100 wherever the id is the pad token,
/// as transformers does: with a tokenizer whose pad token is its EOS token, the EOS tokens
/// are not learned either.
pub fn causal_lm(examples: &[Example], padding: &Padding) -> Result<Batch> {
    let mut batch = pad_inputs(examples, padding)?;
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

/// `DataCollatorForLanguageModeling(mlm=True)`'s masking options.
#[derive(Debug, Clone, PartialEq)]
pub struct Masking {
    /// Share of the (non-special) tokens chosen for prediction (`mlm_probability`, 0.15).
    pub probability: f64,
    /// Of the chosen, the share replaced by the mask token (`mask_replace_prob`, 0.8) and
    /// the share replaced by a random token (`random_replace_prob`, 0.1); the rest stay.
    pub mask_share: f64,
    pub random_share: f64,
    pub mask_token_id: u32,
    /// Random replacements are drawn from `0..vocab_size`.
    pub vocab_size: u32,
    /// Ids never chosen (the tokenizer's special tokens, the pad token among them).
    pub special_ids: Vec<u32>,
}

impl Masking {
    /// transformers' defaults around a tokenizer's mask token and special ids.
    pub fn new(mask_token_id: u32, vocab_size: u32, special_ids: Vec<u32>) -> Self {
        Self {
            probability: 0.15,
            mask_share: 0.8,
            random_share: 0.1,
            mask_token_id,
            vocab_size,
            special_ids,
        }
    }
}

/// `DataCollatorForLanguageModeling(mlm=True)`: padded like [`with_padding`]; each
/// non-special token is chosen with `probability`, its label is its id (all others -100),
/// and it becomes the mask token (80%), a random token (10%) or stays (10%): the 80/10/10
/// rule, drawn from `rng` (transformers draws from torch's generator, so the choices are
/// the rule's, not torch's bits).
pub fn masked_lm(
    examples: &[Example],
    padding: &Padding,
    masking: &Masking,
    rng: &mut impl rand::Rng,
) -> Result<Batch> {
    let valid = |p: f64| (0.0..=1.0).contains(&p);
    if !valid(masking.probability) {
        return Err(Error::config("mlm_probability", "must be in [0, 1]"));
    }
    if !valid(masking.mask_share)
        || !valid(masking.random_share)
        || masking.mask_share + masking.random_share > 1.0
    {
        return Err(Error::config(
            "mask_replace_prob",
            "mask_replace_prob and random_replace_prob must be in [0, 1] and add up to at most 1",
        ));
    }
    if masking.vocab_size == 0 {
        return Err(Error::config("vocab_size", "must be at least 1"));
    }
    let mut batch = pad_inputs(examples, padding)?;
    let mut labels = vec![IGNORE_INDEX; batch.input_ids.len()];
    // Of the chosen: below `mask_share` masked, then `random_share` random, the rest kept.
    let random_from = masking.mask_share;
    let random_to = masking.mask_share + masking.random_share;
    for (id, label) in batch.input_ids.iter_mut().zip(&mut labels) {
        if masking.special_ids.contains(id) || !rng.random_bool(masking.probability) {
            continue;
        }
        *label = i64::from(*id);
        let u: f64 = rng.random();
        if u < random_from {
            *id = masking.mask_token_id;
        } else if u < random_to {
            *id = rng.random_range(0..masking.vocab_size);
        }
    }
    batch.labels = Some(labels);
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
