//! From a dataset file to tokenized examples, per task, as transformers' example scripts
//! prepare them (`run_clm.py`: tokenize, concatenate, cut into blocks; `run_mlm.py`;
//! `run_glue.py`: one text and one class label per example, truncated; `run_ner.py`: words
//! and one label per word, on the first token of each word; `run_qa.py`: question and
//! context cut into overlapping windows, the answer span in token positions).

use crate::collate::{group_texts, Example};
use crate::dataset::Dataset;
use crate::loss::IGNORE_INDEX;
use trustformers_core::{Error, Result};
use trustformers_tokenizers::{EncodeOptions, Encoding, Tokenizer, Truncation};

/// What the model learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Next-token prediction over blocks of the concatenated texts.
    CausalLm,
    /// Masked-token prediction over blocks of the concatenated texts.
    MaskedLm,
    /// One class label per text.
    TextClassification,
    /// One class label per word.
    TokenClassification,
    /// The answer's span in the context (extractive question answering).
    QuestionAnswering,
}

impl Task {
    /// The CLI's name (`causal-lm`, `masked-lm`, `text-classification`,
    /// `token-classification`, `question-answering`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "causal-lm" => Self::CausalLm,
            "masked-lm" => Self::MaskedLm,
            "text-classification" => Self::TextClassification,
            "token-classification" => Self::TokenClassification,
            "question-answering" => Self::QuestionAnswering,
            other => {
                return Err(Error::config(
                    "task",
                    format!(
                        "`{other}` is not supported; known: causal-lm, masked-lm, \
                         text-classification, token-classification, question-answering"
                    ),
                ))
            }
        })
    }

    /// The columns `run_*.py` reads by default: (text, label) — `text`/`label`, `tokens`/
    /// `ner_tags` for token classification; question answering reads `question`,
    /// `context` and `answers`.
    pub fn default_columns(self) -> (&'static str, &'static str) {
        match self {
            Self::TokenClassification => ("tokens", "ner_tags"),
            _ => ("text", "label"),
        }
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
    /// Question answering: the windows over a long context overlap by this many tokens
    /// (`doc_stride`).
    pub doc_stride: usize,
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
    let texts = || dataset.texts(columns.text);
    match task {
        Task::CausalLm | Task::MaskedLm => {
            let texts = texts()?;
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
            let texts = texts()?;
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
        Task::TokenClassification => token_classification(dataset, tokenizer, columns),
        Task::QuestionAnswering => question_answering(dataset, tokenizer, columns),
    }
}

/// `run_ner.py`'s `tokenize_and_align_labels`: the words tokenized as pre-split input,
/// truncated; each word's label on its first token, -100 on its other tokens and on the
/// special tokens.
fn token_classification(
    dataset: &Dataset,
    tokenizer: &Tokenizer,
    columns: &Columns<'_>,
) -> Result<Vec<Example>> {
    let words = dataset.word_lists(columns.text)?;
    let tags = dataset.word_labels(columns.label, columns.num_labels, columns.label_names)?;
    let opts = EncodeOptions {
        truncation: Some(Truncation::LongestFirst),
        max_length: Some(columns.max_length),
        ..Default::default()
    };
    words
        .iter()
        .zip(&tags)
        .enumerate()
        .map(|(i, (words, tags))| {
            if words.len() != tags.len() {
                return Err(Error::Json {
                    path: dataset.path.clone(),
                    reason: format!(
                        "example {}: {} words but {} labels in `{}`",
                        i + 1,
                        words.len(),
                        tags.len(),
                        columns.label
                    ),
                });
            }
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let enc = tokenizer.encode_words(&words, &opts)?;
            let mut previous = None;
            let labels = enc
                .as_inner()
                .get_word_ids()
                .iter()
                .map(|&word| {
                    let label = match word {
                        Some(w) if Some(w) != previous => {
                            tags.get(w as usize).copied().unwrap_or(IGNORE_INDEX)
                        }
                        _ => IGNORE_INDEX,
                    };
                    previous = word;
                    label
                })
                .collect();
            Ok(Example {
                input_ids: enc.input_ids().to_vec(),
                attention_mask: None,
                token_type_ids: Some(enc.token_type_ids().to_vec()),
                labels: Some(labels),
            })
        })
        .collect()
}

/// `run_qa.py`'s `prepare_train_features`: the question (left-stripped) and the context as
/// a pair, only the context truncated, in windows of `max_length` tokens overlapping by
/// `doc_stride`; each window labelled with the first answer's start and end tokens, or
/// with the CLS token's position when the answer is not wholly inside it (or there is
/// none). Labels are `[start, end]`.
fn question_answering(
    dataset: &Dataset,
    tokenizer: &Tokenizer,
    columns: &Columns<'_>,
) -> Result<Vec<Example>> {
    if columns.doc_stride >= columns.max_length {
        return Err(Error::config(
            "doc_stride",
            format!(
                "{} must be below max_length {} (windows would not advance)",
                columns.doc_stride, columns.max_length
            ),
        ));
    }
    let questions = dataset.texts("question")?;
    let contexts = dataset.texts("context")?;
    let answers = dataset.answers("answers")?;
    let opts = EncodeOptions {
        truncation: Some(Truncation::OnlySecond),
        max_length: Some(columns.max_length),
        stride: columns.doc_stride,
        ..Default::default()
    };
    let cls = tokenizer.cls_token_id();
    let mut out = Vec::new();
    for ((question, context), answers) in questions.iter().zip(&contexts).zip(&answers) {
        let enc = tokenizer.encode((question.trim_start(), context.as_str()), &opts)?;
        let mut windows = vec![enc.clone()];
        windows.extend(enc.overflowing());
        for w in windows {
            let ids = w.input_ids();
            let cls_index = cls
                .and_then(|c| ids.iter().position(|&t| t == c))
                .unwrap_or(0) as i64;
            let (start, end) = match answers.first() {
                None => (cls_index, cls_index),
                Some((start_char, text)) => {
                    let end_char = start_char + text.chars().count();
                    answer_tokens(&w, *start_char, end_char).unwrap_or((cls_index, cls_index))
                }
            };
            out.push(Example {
                input_ids: ids.to_vec(),
                attention_mask: None,
                token_type_ids: Some(w.token_type_ids().to_vec()),
                labels: Some(vec![start, end]),
            });
        }
    }
    Ok(out)
}

/// The first and last tokens of the context covering characters `start..end`, when the
/// window holds all of them.
fn answer_tokens(w: &Encoding, start: usize, end: usize) -> Option<(i64, i64)> {
    let offsets = w.offsets();
    let in_context: Vec<usize> = w
        .as_inner()
        .get_sequence_ids()
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == Some(1))
        .map(|(i, _)| i)
        .collect();
    let (&first, &last) = (in_context.first()?, in_context.last()?);
    if !(offsets[first].0 <= start && offsets[last].1 >= end) {
        return None;
    }
    // run_qa.py walks on past the context into [SEP] and padding (offsets (0, 0)) when the
    // answer starts in the context's last token, labelling a special token; the walk stops
    // at the context's end here.
    let mut s = first;
    while s <= last && offsets[s].0 <= start {
        s += 1;
    }
    let mut e = last;
    while offsets[e].1 >= end {
        e = e.checked_sub(1)?;
    }
    Some((s as i64 - 1, e as i64 + 1))
}
