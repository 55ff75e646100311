//! From a dataset file to tokenized examples, per task, as transformers' example scripts
//! prepare them (`run_clm.py`: tokenize, concatenate, cut into blocks; `run_mlm.py`;
//! `run_glue.py`: one text and one class label per example, truncated).

use crate::collate::{group_texts, Example};
use crate::dataset::Dataset;
use trustformers_core::{Error, Result};
use trustformers_tokenizers::{EncodeOptions, Tokenizer, Truncation};

/// What the model learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Next-token prediction over blocks of the concatenated texts.
    CausalLm,
    /// Masked-token prediction over blocks of the concatenated texts.
    MaskedLm,
    /// One class label per text.
    TextClassification,
}

impl Task {
    /// The CLI's name (`causal-lm`, `masked-lm`, `text-classification`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "causal-lm" => Self::CausalLm,
            "masked-lm" => Self::MaskedLm,
            "text-classification" => Self::TextClassification,
            other => {
                return Err(Error::config(
                    "task",
                    format!(
                        "`{other}` is not supported; known: causal-lm, masked-lm, \
                         text-classification"
                    ),
                ))
            }
        })
    }
}

/// Which columns hold what, and how long examples may be.
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    pub text: &'a str,
    pub label: &'a str,
    /// Tokens per example: the block size for language modelling, the truncation length
    /// for classification.
    pub max_length: usize,
    /// Classification: how many classes, and their names (a CSV file's labels may be
    /// names).
    pub num_labels: usize,
    pub label_names: &'a [String],
}

/// The examples of `dataset` for `task`.
pub fn examples(
    task: Task,
    dataset: &Dataset,
    tokenizer: &Tokenizer,
    columns: &Columns<'_>,
) -> Result<Vec<Example>> {
    if columns.max_length == 0 {
        return Err(Error::config("max_length", "must be at least 1"));
    }
    let texts = dataset.texts(columns.text)?;
    match task {
        Task::CausalLm | Task::MaskedLm => {
            let ids = texts
                .iter()
                .map(|t| tokenizer.encode_ids(t, true))
                .collect::<Result<Vec<_>>>()?;
            let blocks = group_texts(&ids, columns.max_length)?;
            if blocks.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "{}: the texts hold {} tokens, less than one block of {}",
                    dataset.path.display(),
                    ids.iter().map(Vec::len).sum::<usize>(),
                    columns.max_length
                )));
            }
            Ok(blocks
                .into_iter()
                .map(|input_ids| Example {
                    input_ids,
                    ..Default::default()
                })
                .collect())
        }
        Task::TextClassification => {
            let labels =
                dataset.class_labels(columns.label, columns.num_labels, columns.label_names)?;
            let opts = EncodeOptions {
                truncation: Some(Truncation::LongestFirst),
                max_length: Some(columns.max_length),
                ..Default::default()
            };
            texts
                .iter()
                .zip(labels)
                .map(|(text, label)| {
                    let enc = tokenizer.encode(text.as_str(), &opts)?;
                    Ok(Example {
                        input_ids: enc.input_ids().to_vec(),
                        attention_mask: None,
                        token_type_ids: Some(enc.token_type_ids().to_vec()),
                        labels: Some(vec![label]),
                    })
                })
                .collect()
        }
    }
}
