//! The tokenizer: transformers' `PreTrainedTokenizerFast` surface over the Rust tokenizer.
//! `trustformers/tokenization.py` builds `AutoTokenizer` and `BatchEncoding` on it.

use crate::errors::{detach, invalid, Failure};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use std::sync::{Arc, RwLock};
use trustformers::tokenizers::chat::{ChatOptions, Message};
use trustformers::tokenizers::{
    EncodeOptions, Encoding, Padding, Side, TextInput, Tokenizer, Truncation,
};
use trustformers::{resolve_model, AutoTokenizer};

/// A loaded tokenizer. Immutable but for the padding and truncation sides, which replace the
/// shared tokenizer as a whole, so calls running on other threads keep the one they started
/// with.
#[pyclass(name = "Tokenizer", module = "trustformers._trustformers", frozen)]
pub struct PyTokenizer {
    inner: RwLock<Arc<Tokenizer>>,
}

impl PyTokenizer {
    pub fn new(tokenizer: Tokenizer) -> Self {
        Self {
            inner: RwLock::new(Arc::new(tokenizer)),
        }
    }

    /// The current tokenizer (shared).
    pub fn get(&self) -> Arc<Tokenizer> {
        match self.inner.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_side(&self, py: Python<'_>, side: &str, padding: bool) -> PyResult<()> {
        let side = match side {
            "left" => Side::Left,
            "right" => Side::Right,
            other => {
                return Err(invalid(
                    py,
                    format!("a side is \"left\" or \"right\", got {other:?}"),
                ))
            }
        };
        let current = self.get();
        let mut config = current.config().clone();
        match padding {
            true => config.padding_side = side,
            false => config.truncation_side = side,
        }
        let tokenizer = detach(py, || Ok(current.with_config(config)?))?;
        self.replace(tokenizer);
        Ok(())
    }

    fn replace(&self, tokenizer: Tokenizer) {
        match self.inner.write() {
            Ok(mut t) => *t = Arc::new(tokenizer),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(tokenizer),
        }
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Left => "left",
        Side::Right => "right",
    }
}

/// transformers' `padding=` argument, as normalised by the Python side.
fn padding(py: Python<'_>, name: &str) -> PyResult<Padding> {
    match name {
        "do_not_pad" => Ok(Padding::None),
        "longest" => Ok(Padding::Longest),
        "max_length" => Ok(Padding::MaxLength),
        other => Err(invalid(
            py,
            format!("padding is True, False, \"longest\", \"max_length\" or \"do_not_pad\", got {other:?}"),
        )),
    }
}

/// transformers' `truncation=` argument, as normalised by the Python side.
fn truncation(py: Python<'_>, name: Option<&str>) -> PyResult<Option<Truncation>> {
    match name {
        None | Some("do_not_truncate") => Ok(None),
        Some("longest_first") => Ok(Some(Truncation::LongestFirst)),
        Some("only_first") => Ok(Some(Truncation::OnlyFirst)),
        Some("only_second") => Ok(Some(Truncation::OnlySecond)),
        Some(other) => Err(invalid(
            py,
            format!("truncation is True, False, \"longest_first\", \"only_first\", \"only_second\" or \"do_not_truncate\", got {other:?}"),
        )),
    }
}

fn parse_json(py: Python<'_>, what: &str, text: &str) -> PyResult<Value> {
    serde_json::from_str(text).map_err(|e| invalid(py, format!("{what}: {e}")))
}

#[pymethods]
impl PyTokenizer {
    /// Loads the tokenizer of a checkpoint directory, a `.gguf` file, a Hub repo id or a
    /// known model name (the CLI's resolution).
    #[staticmethod]
    fn from_pretrained(py: Python<'_>, name: String) -> PyResult<Self> {
        let tokenizer = detach(py, move || {
            let path = resolve_model(Some(&name))?;
            Ok(AutoTokenizer::from_pretrained(path)?)
        })?;
        Ok(Self::new(tokenizer))
    }

    /// A tokenizer sharing this one's state, whose settings change independently.
    fn copy(&self) -> Self {
        Self {
            inner: RwLock::new(self.get()),
        }
    }

    /// Encodes texts (or pairs) as one batch; returns a dict of lists per row:
    /// `input_ids`, `token_type_ids`, `attention_mask`, `special_tokens_mask`,
    /// `offset_mapping`, `word_ids` (each token's word), and with overflow
    /// `overflow_to_sample_mapping`. `words`: rows of pre-split words instead of `texts`
    /// (transformers' `is_split_into_words=True`).
    #[pyo3(signature = (texts, pairs=None, add_special_tokens=true, padding="do_not_pad", truncation=None, max_length=None, stride=0, pad_to_multiple_of=None, return_overflowing_tokens=false, words=None))]
    #[allow(clippy::too_many_arguments)]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        pairs: Option<Vec<String>>,
        add_special_tokens: bool,
        padding: &str,
        truncation: Option<&str>,
        max_length: Option<usize>,
        stride: usize,
        pad_to_multiple_of: Option<usize>,
        return_overflowing_tokens: bool,
        words: Option<Vec<Vec<String>>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if words.is_some() && (pairs.is_some() || !texts.is_empty()) {
            return Err(invalid(py, "pass texts or pre-split words, not both"));
        }
        if let Some(p) = &pairs {
            if p.len() != texts.len() {
                return Err(invalid(
                    py,
                    format!("{} texts with {} text pairs", texts.len(), p.len()),
                ));
            }
        }
        let opts = EncodeOptions {
            add_special_tokens,
            padding: self::padding(py, padding)?,
            truncation: self::truncation(py, truncation)?,
            max_length,
            stride,
            pad_to_multiple_of,
        };
        let tokenizer = self.get();
        let rows = detach(py, || {
            let inputs: Vec<TextInput<'_>> = match &pairs {
                Some(p) => texts
                    .iter()
                    .zip(p)
                    .map(|(a, b)| match b.as_str() {
                        "" => TextInput::Single(a),
                        b => TextInput::Pair(a, b),
                    })
                    .collect(),
                None => texts.iter().map(|t| TextInput::Single(t)).collect(),
            };
            let encodings = match &words {
                Some(rows) => {
                    let rows: Vec<Vec<&str>> = rows
                        .iter()
                        .map(|r| r.iter().map(String::as_str).collect())
                        .collect();
                    let refs: Vec<&[&str]> = rows.iter().map(Vec::as_slice).collect();
                    tokenizer.encode_words_batch(&refs, &opts)?
                }
                None => tokenizer.encode_batch(&inputs, &opts)?,
            };
            // Overflowing windows follow their sample, as transformers lists them.
            let mut rows: Vec<(usize, Encoding)> = Vec::new();
            for (i, e) in encodings.into_iter().enumerate() {
                let extra = match return_overflowing_tokens {
                    true => e.overflowing(),
                    false => Vec::new(),
                };
                rows.push((i, e));
                rows.extend(extra.into_iter().map(|o| (i, o)));
            }
            Ok::<_, Failure>(rows)
        })?;
        let out = PyDict::new(py);
        let field = |f: fn(&Encoding) -> &[u32]| -> Vec<Vec<u32>> {
            rows.iter().map(|(_, e)| f(e).to_vec()).collect()
        };
        out.set_item("input_ids", field(Encoding::input_ids))?;
        out.set_item("token_type_ids", field(Encoding::token_type_ids))?;
        out.set_item("attention_mask", field(Encoding::attention_mask))?;
        out.set_item("special_tokens_mask", field(Encoding::special_tokens_mask))?;
        let offsets: Vec<Vec<(usize, usize)>> =
            rows.iter().map(|(_, e)| e.offsets().to_vec()).collect();
        out.set_item("offset_mapping", offsets)?;
        let word_ids: Vec<Vec<Option<u32>>> = rows
            .iter()
            .map(|(_, e)| e.as_inner().get_word_ids().to_vec())
            .collect();
        out.set_item("word_ids", word_ids)?;
        if return_overflowing_tokens {
            let samples: Vec<usize> = rows.iter().map(|(i, _)| *i).collect();
            out.set_item("overflow_to_sample_mapping", samples)?;
        }
        Ok(out)
    }

    /// transformers' `tokenize(text)`: the tokens, without special tokens.
    fn tokenize(&self, py: Python<'_>, text: String) -> PyResult<Vec<String>> {
        let tokenizer = self.get();
        detach(py, move || {
            let opts = EncodeOptions {
                add_special_tokens: false,
                ..Default::default()
            };
            Ok(tokenizer.encode(text.as_str(), &opts)?.tokens().to_vec())
        })
    }

    /// Text for one sequence of ids.
    #[pyo3(signature = (ids, skip_special_tokens=false))]
    fn decode(&self, py: Python<'_>, ids: Vec<u32>, skip_special_tokens: bool) -> PyResult<String> {
        let tokenizer = self.get();
        detach(py, move || Ok(tokenizer.decode(&ids, skip_special_tokens)?))
    }

    /// Text for each sequence of ids.
    #[pyo3(signature = (sequences, skip_special_tokens=false))]
    fn batch_decode(
        &self,
        py: Python<'_>,
        sequences: Vec<Vec<u32>>,
        skip_special_tokens: bool,
    ) -> PyResult<Vec<String>> {
        let tokenizer = self.get();
        detach(py, move || {
            Ok(tokenizer.decode_batch(&sequences, skip_special_tokens)?)
        })
    }

    /// The token of each id (`None` outside the vocabulary).
    fn convert_ids_to_tokens(&self, ids: Vec<u32>) -> Vec<Option<String>> {
        let tokenizer = self.get();
        ids.iter().map(|&id| tokenizer.id_to_token(id)).collect()
    }

    /// The id of each token (`None` when it is not in the vocabulary).
    fn convert_tokens_to_ids(&self, tokens: Vec<String>) -> Vec<Option<u32>> {
        let tokenizer = self.get();
        tokens.iter().map(|t| tokenizer.token_to_id(t)).collect()
    }

    /// Tokens back to text through the tokenizer's decoder.
    fn convert_tokens_to_string(&self, py: Python<'_>, tokens: Vec<String>) -> PyResult<String> {
        let tokenizer = self.get();
        detach(py, move || Ok(tokenizer.tokens_to_string(&tokens)?))
    }

    /// Renders the chat template; `messages`, `tools` and `extra` (template variables) as
    /// JSON text.
    #[pyo3(signature = (messages, add_generation_prompt=false, tools=None, extra=None))]
    fn apply_chat_template(
        &self,
        py: Python<'_>,
        messages: &str,
        add_generation_prompt: bool,
        tools: Option<&str>,
        extra: Option<&str>,
    ) -> PyResult<String> {
        let messages: Vec<Message> = serde_json::from_str(messages).map_err(|e| {
            invalid(
                py,
                format!("messages must be a list of {{\"role\", \"content\"}} dicts: {e}"),
            )
        })?;
        let tools = match tools {
            Some(t) => match parse_json(py, "tools", t)? {
                Value::Array(items) => Some(items),
                _ => return Err(invalid(py, "tools must be a list of JSON schemas")),
            },
            None => None,
        };
        let extra = match extra {
            Some(e) => match parse_json(py, "template variables", e)? {
                Value::Object(map) => map,
                _ => return Err(invalid(py, "template variables must be a dict")),
            },
            None => Default::default(),
        };
        let opts = ChatOptions {
            add_generation_prompt,
            tools,
            extra,
        };
        let tokenizer = self.get();
        detach(py, move || {
            Ok(tokenizer.apply_chat_template(&messages, &opts)?)
        })
    }

    /// The vocabulary (added tokens included): token -> id.
    fn get_vocab(&self, py: Python<'_>) -> PyResult<std::collections::HashMap<String, u32>> {
        let tokenizer = self.get();
        detach(py, move || Ok(tokenizer.get_vocab()))
    }

    /// The named special tokens: name (`bos_token`, ...) -> token text.
    fn special_tokens(&self) -> Vec<(&'static str, String)> {
        let tokenizer = self.get();
        let s = &tokenizer.config().special;
        [
            ("bos_token", &s.bos),
            ("eos_token", &s.eos),
            ("unk_token", &s.unk),
            ("pad_token", &s.pad),
            ("sep_token", &s.sep),
            ("cls_token", &s.cls),
            ("mask_token", &s.mask),
        ]
        .into_iter()
        .filter_map(|(name, t)| t.clone().map(|t| (name, t)))
        .collect()
    }

    /// `additional_special_tokens`.
    #[getter]
    fn additional_special_tokens(&self) -> Vec<String> {
        self.get().config().special.additional.clone()
    }

    /// Every special token's id.
    #[getter]
    fn all_special_ids(&self) -> Vec<u32> {
        self.get().special_token_ids()
    }

    #[getter]
    fn chat_template(&self) -> Option<String> {
        self.get().config().chat_template.clone()
    }

    #[getter]
    fn model_max_length(&self) -> Option<usize> {
        self.get().config().model_max_length
    }

    /// Sets (or with `None` removes) the named special token (`pad_token`, ...), which must
    /// be in the vocabulary: `tokenizer.pad_token = tokenizer.eos_token`.
    #[pyo3(signature = (name, token))]
    fn set_special_token(&self, py: Python<'_>, name: &str, token: Option<String>) -> PyResult<()> {
        let current = self.get();
        if let Some(t) = &token {
            if current.token_to_id(t).is_none() {
                return Err(invalid(
                    py,
                    format!(
                        "{name}: {t:?} is not in the vocabulary; add it first \
                         (tokenizer.add_special_tokens({{\"{name}\": {t:?}}}))"
                    ),
                ));
            }
        }
        let mut config = current.config().clone();
        let s = &mut config.special;
        let slot = match name {
            "bos_token" => &mut s.bos,
            "eos_token" => &mut s.eos,
            "unk_token" => &mut s.unk,
            "pad_token" => &mut s.pad,
            "sep_token" => &mut s.sep,
            "cls_token" => &mut s.cls,
            "mask_token" => &mut s.mask,
            other => return Err(invalid(py, format!("unknown special token {other:?}"))),
        };
        *slot = token;
        let tokenizer = detach(py, || Ok(current.with_config(config)?))?;
        self.replace(tokenizer);
        Ok(())
    }

    /// The tokenizer class tokenizer_config.json names (`BertTokenizer`, ...).
    #[getter]
    fn tokenizer_class(&self) -> Option<String> {
        self.get().config().tokenizer_class.clone()
    }

    #[getter]
    fn padding_side(&self) -> &'static str {
        side_name(self.get().config().padding_side)
    }

    #[setter]
    fn set_padding_side(&self, py: Python<'_>, side: &str) -> PyResult<()> {
        self.set_side(py, side, true)
    }

    #[getter]
    fn truncation_side(&self) -> &'static str {
        side_name(self.get().config().truncation_side)
    }

    #[setter]
    fn set_truncation_side(&self, py: Python<'_>, side: &str) -> PyResult<()> {
        self.set_side(py, side, false)
    }

    /// Vocabulary size including added tokens (`len(tokenizer)`).
    fn __len__(&self) -> usize {
        self.get().len()
    }

    /// Adds `tokens` after the last id (`special`: never split, skipped by
    /// `skip_special_tokens`); `additional` (special tokens only): `False` lists them after
    /// the additional special tokens, `True` makes them the whole list. Returns how many
    /// were new.
    #[pyo3(signature = (tokens, special, additional=None))]
    fn add_tokens(
        &self,
        py: Python<'_>,
        tokens: Vec<String>,
        special: bool,
        additional: Option<bool>,
    ) -> PyResult<usize> {
        let current = self.get();
        let (tokenizer, added) = detach(py, || {
            let (mut tokenizer, added) = current.with_added_tokens(&tokens, special)?;
            if let Some(replace) = additional {
                let mut config = tokenizer.config().clone();
                if replace {
                    config.special.additional.clear();
                }
                for t in &tokens {
                    if !config.special.additional.contains(t) {
                        config.special.additional.push(t.clone());
                    }
                }
                tokenizer = tokenizer.with_config(config)?;
            }
            Ok((tokenizer, added))
        })?;
        self.replace(tokenizer);
        Ok(added)
    }
}
