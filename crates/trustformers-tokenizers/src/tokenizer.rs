//! The tokenizer users hold: an HF `tokenizers` pipeline plus what transformers keeps beside
//! it in tokenizer_config.json (special tokens, limits, padding side, chat template), with
//! transformers' encode/decode semantics.

use crate::config::{Side, TokenizerConfig};
use crate::models::{pipeline_from_hf, pipeline_to_hf, Pipeline, TokenizerModel};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::utils::padding::{pad_encodings, PaddingDirection, PaddingParams, PaddingStrategy};
use tokenizers::utils::truncation::{
    truncate_encodings, TruncationDirection, TruncationParams, TruncationStrategy,
};
use tokenizers::PostProcessor;
use trustformers_core::{Error, Result};

pub(crate) fn tk_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// How to pad a batch (transformers' `padding=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding (`False`, `"do_not_pad"`).
    #[default]
    None,
    /// To the longest sequence of the batch (`True`, `"longest"`).
    Longest,
    /// To `max_length` (or the model's maximum length) (`"max_length"`).
    MaxLength,
}

/// Which sequence of a pair loses tokens first (transformers' `truncation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

/// Options of one encode call, named after transformers' `__call__` arguments.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub add_special_tokens: bool,
    pub padding: Padding,
    pub truncation: Option<Truncation>,
    /// Limit for truncation and `Padding::MaxLength`; defaults to `model_max_length`.
    pub max_length: Option<usize>,
    /// Overlap between overflowing windows.
    pub stride: usize,
    pub pad_to_multiple_of: Option<usize>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            add_special_tokens: true,
            padding: Padding::None,
            truncation: None,
            max_length: None,
            stride: 0,
            pad_to_multiple_of: None,
        }
    }
}

/// One encoded sequence (or pair), as a row of transformers' `BatchEncoding`. A thin view
/// over `tokenizers`' encoding, so batches are not copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding(tokenizers::Encoding);

impl Encoding {
    /// Token ids.
    pub fn input_ids(&self) -> &[u32] {
        self.0.get_ids()
    }

    /// Token strings.
    pub fn tokens(&self) -> &[String] {
        self.0.get_tokens()
    }

    /// 1 for real tokens, 0 for padding.
    pub fn attention_mask(&self) -> &[u32] {
        self.0.get_attention_mask()
    }

    /// Segment ids (0 for the first text, 1 for the second of a pair, as the template says).
    pub fn token_type_ids(&self) -> &[u32] {
        self.0.get_type_ids()
    }

    /// 1 for tokens added by the post-processor (special tokens), 0 otherwise.
    pub fn special_tokens_mask(&self) -> &[u32] {
        self.0.get_special_tokens_mask()
    }

    /// Character offsets into the input text (transformers' `offset_mapping`).
    pub fn offsets(&self) -> &[(usize, usize)] {
        self.0.get_offsets()
    }

    /// Windows cut off by truncation (`return_overflowing_tokens=True`).
    pub fn overflowing(&self) -> Vec<Encoding> {
        self.0
            .get_overflowing()
            .iter()
            .cloned()
            .map(Encoding)
            .collect()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying `tokenizers` encoding.
    pub fn into_inner(self) -> tokenizers::Encoding {
        self.0
    }

    /// The underlying `tokenizers` encoding (word and sequence ids, char spans).
    pub fn as_inner(&self) -> &tokenizers::Encoding {
        &self.0
    }
}

/// A text input: one sequence or a pair.
#[derive(Debug, Clone, Copy)]
pub enum TextInput<'a> {
    Single(&'a str),
    Pair(&'a str, &'a str),
}

impl<'a> From<&'a str> for TextInput<'a> {
    fn from(s: &'a str) -> Self {
        Self::Single(s)
    }
}

impl<'a> From<(&'a str, &'a str)> for TextInput<'a> {
    fn from((a, b): (&'a str, &'a str)) -> Self {
        Self::Pair(a, b)
    }
}

/// A loaded tokenizer. Immutable and shareable across threads.
#[derive(Clone)]
pub struct Tokenizer {
    /// The pipeline without its post-processor: the post-processor runs after truncation,
    /// with per-call options, exactly where `tokenizers` itself runs it.
    inner: Pipeline,
    post_processor: Option<PostProcessorWrapper>,
    config: TokenizerConfig,
    special_ids: HashSet<u32>,
}

/// Largest token id accepted: far above any real vocabulary (the largest are ~10^6), and low
/// enough that nothing indexed by token id can be made huge.
pub const MAX_TOKEN_ID: u32 = 1 << 24;

/// Refuses vocabularies that map two tokens to one id or use absurd ids, which `tokenizers`
/// accepts and which would make decoding ambiguous or embedding lookups fail later.
fn check_vocabulary(inner: &Pipeline) -> Result<()> {
    let vocab = match inner.get_model() {
        TokenizerModel::Hf(_) => inner.get_vocab(true),
        // A compact vocabulary's ids are its positions (checked against `MAX_TOKEN_ID` when
        // it was built): only the added tokens can clash.
        TokenizerModel::Compact(model) => {
            for (&id, added) in inner.get_added_vocabulary().get_added_tokens_decoder() {
                if id >= MAX_TOKEN_ID {
                    return Err(Error::Tokenizer(format!(
                        "token `{}` has id {id}, beyond the largest allowed ({MAX_TOKEN_ID})",
                        added.content
                    )));
                }
                if let Some(other) = model.id_to_token(id).filter(|t| *t != added.content) {
                    return Err(Error::Tokenizer(format!(
                        "tokens `{other}` and `{}` both have id {id}",
                        added.content
                    )));
                }
            }
            return Ok(());
        }
    };
    let mut owner: HashMap<u32, &str> = HashMap::with_capacity(vocab.len());
    for (token, &id) in &vocab {
        if id >= MAX_TOKEN_ID {
            return Err(Error::Tokenizer(format!(
                "token `{token}` has id {id}, beyond the largest allowed ({MAX_TOKEN_ID})"
            )));
        }
        if let Some(other) = owner.insert(id, token) {
            // An added token may re-declare a vocabulary entry with the same id.
            if other != token {
                return Err(Error::Tokenizer(format!(
                    "tokens `{other}` and `{token}` both have id {id}"
                )));
            }
        }
    }
    Ok(())
}

/// `tokenizers` panics at encode time on a TemplateProcessing that names a special token its
/// own `special_tokens` table lacks; refuse such a file at load time instead.
fn check_post_processor(inner: &Pipeline) -> Result<()> {
    let Some(post) = inner.get_post_processor() else {
        return Ok(());
    };
    let json = serde_json::to_value(post).map_err(|e| Error::Tokenizer(e.to_string()))?;
    check_template_json(&json)
}

fn check_template_json(json: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    match json.get("type").and_then(Value::as_str) {
        Some("Sequence") => {
            for p in json
                .get("processors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_template_json(p)?;
            }
            Ok(())
        }
        Some("TemplateProcessing") => {
            let specials = json.get("special_tokens").and_then(Value::as_object);
            for piece in ["single", "pair"]
                .iter()
                .filter_map(|k| json.get(*k).and_then(Value::as_array))
                .flatten()
            {
                if let Some(id) = piece
                    .get("SpecialToken")
                    .and_then(|t| t.get("id"))
                    .and_then(Value::as_str)
                {
                    if !specials.is_some_and(|s| s.contains_key(id)) {
                        return Err(Error::Tokenizer(format!(
                            "post-processor template uses special token `{id}`, which its \
                             `special_tokens` table does not define"
                        )));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl Tokenizer {
    /// Wraps `tokenizers`' own pipeline with its transformers-side configuration.
    pub fn from_hf(inner: &tokenizers::Tokenizer, config: TokenizerConfig) -> Result<Self> {
        Self::new(pipeline_from_hf(inner).map_err(tk_err)?, config)
    }

    /// This tokenizer with other transformers-side settings (special tokens, sides, limits).
    pub fn with_config(&self, config: TokenizerConfig) -> Result<Self> {
        let mut inner = self.inner.clone();
        inner.with_post_processor(self.post_processor.clone());
        Self::new(inner, config)
    }

    /// This tokenizer with `tokens` added to its vocabulary after the last id, as
    /// transformers' `add_tokens` / `add_special_tokens` do: an added token is matched
    /// whole before the model splits the text; a `special` one is also left out by
    /// `skip_special_tokens` and not normalized. Tokens the vocabulary has already are not
    /// added again. Returns the tokenizer and how many tokens were new.
    pub fn with_added_tokens(&self, tokens: &[String], special: bool) -> Result<(Self, usize)> {
        if let Some(empty) = tokens.iter().position(String::is_empty) {
            return Err(Error::InvalidInput(format!(
                "token {empty} to add is empty"
            )));
        }
        let mut inner = self.inner.clone();
        inner.with_post_processor(self.post_processor.clone());
        let added: Vec<tokenizers::AddedToken> = tokens
            .iter()
            .map(|t| tokenizers::AddedToken::from(t.clone(), special))
            .collect();
        let before = inner.get_vocab_size(true);
        match special {
            true => inner.add_special_tokens(added),
            false => inner.add_tokens(added),
        }
        .map_err(tk_err)?;
        let new = inner.get_vocab_size(true) - before;
        Ok((Self::new(inner, self.config.clone())?, new))
    }

    /// Wraps a pipeline with its transformers-side configuration.
    pub fn new(mut inner: Pipeline, config: TokenizerConfig) -> Result<Self> {
        check_vocabulary(&inner)?;
        check_post_processor(&inner)?;
        inner.with_truncation(None).map_err(tk_err)?;
        inner.with_padding(None);
        let post_processor = inner.get_post_processor().cloned();
        inner.with_post_processor(None::<PostProcessorWrapper>);
        let mut special_ids: HashSet<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        for tok in config.special.all() {
            if let Some(id) = inner.token_to_id(tok) {
                special_ids.insert(id);
            }
        }
        Ok(Self {
            inner,
            post_processor,
            config,
            special_ids,
        })
    }

    /// The transformers-side settings (special tokens, limits, chat template).
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// This tokenizer with its inputs marked as in language `code` (transformers'
    /// `src_lang`): mBART's `x </s> code`, mBART-50's `code x </s>`. `None` for a tokenizer
    /// without source languages; an error for a code outside the vocabulary.
    pub fn with_source_language(&self, code: &str) -> Result<Option<Self>> {
        let prefix = match self.config.tokenizer_class.as_deref() {
            Some("MBartTokenizer" | "MBartTokenizerFast") => false,
            Some("MBart50Tokenizer" | "MBart50TokenizerFast") => true,
            _ => return Ok(None),
        };
        let lang = self.inner.token_to_id(code).ok_or_else(|| {
            Error::Tokenizer(format!("`{code}` is not a language code of the vocabulary"))
        })?;
        let eos = self
            .config
            .special
            .eos
            .clone()
            .unwrap_or_else(|| "</s>".into());
        let eos_id = self.inner.token_to_id(&eos).ok_or_else(|| {
            Error::Tokenizer(format!("eos token `{eos}` is not in the vocabulary"))
        })?;
        let (single, pair) = if prefix {
            (format!("{code} $A {eos}"), format!("{code} $A $B {eos}"))
        } else {
            (format!("$A {eos} {code}"), format!("$A $B {eos} {code}"))
        };
        let template = tokenizers::processors::template::TemplateProcessing::builder()
            .try_single(single)
            .map_err(Error::Tokenizer)?
            .try_pair(pair)
            .map_err(Error::Tokenizer)?
            .special_tokens(vec![(code.to_owned(), lang), (eos, eos_id)])
            .build()
            .map_err(tk_err)?;
        let mut out = self.clone();
        out.post_processor = Some(template.into());
        Ok(Some(out))
    }

    /// The pipeline as `tokenizers`' own `Tokenizer`, post-processor restored, e.g. to save
    /// it as tokenizer.json (a compact BPE becomes the `tokenizers` BPE it equals).
    pub fn to_hf(&self) -> Result<tokenizers::Tokenizer> {
        let mut t = pipeline_to_hf(&self.inner).map_err(tk_err)?;
        t.with_post_processor(self.post_processor.clone());
        Ok(t)
    }

    /// The pipeline's model stage.
    pub fn model(&self) -> &TokenizerModel {
        self.inner.get_model()
    }

    /// `{token: id}` including added tokens (transformers' `get_vocab()`).
    pub fn get_vocab(&self) -> HashMap<String, u32> {
        self.inner.get_vocab(true)
    }

    /// Vocabulary size including added tokens (transformers' `len(tokenizer)`).
    pub fn len(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id of a token string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    fn special_id(&self, token: &Option<String>) -> Option<u32> {
        token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// Id of the beginning-of-sequence token.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.special_id(&self.config.special.bos)
    }

    /// Id of the end-of-sequence token.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.special_id(&self.config.special.eos)
    }

    /// Id of the padding token.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.special_id(&self.config.special.pad)
    }

    /// Id of the classifier token (`[CLS]`, `<s>`).
    pub fn cls_token_id(&self) -> Option<u32> {
        self.special_id(&self.config.special.cls)
    }

    /// Id of the mask token (masked language models).
    pub fn mask_token_id(&self) -> Option<u32> {
        self.special_id(&self.config.special.mask)
    }

    /// Every special token's id, sorted.
    pub fn special_token_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.special_ids.iter().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Whether `id` is a special token (skipped by `skip_special_tokens`).
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    fn max_length(&self, opts: &EncodeOptions) -> Option<usize> {
        opts.max_length.or(self.config.model_max_length)
    }

    /// Truncation and special tokens for one input, as `TokenizerImpl::post_process` does.
    fn finish(
        &self,
        first: tokenizers::Encoding,
        second: Option<tokenizers::Encoding>,
        opts: &EncodeOptions,
    ) -> Result<tokenizers::Encoding> {
        let is_pair = second.is_some();
        let (first, second) = match (opts.truncation, self.max_length(opts)) {
            (Some(strategy), Some(max_length)) => {
                let added = match (&self.post_processor, opts.add_special_tokens) {
                    (Some(p), true) => p.added_tokens(is_pair),
                    _ => 0,
                };
                let params = TruncationParams {
                    direction: match self.config.truncation_side {
                        Side::Left => TruncationDirection::Left,
                        Side::Right => TruncationDirection::Right,
                    },
                    max_length: max_length.checked_sub(added).ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "max_length {max_length} leaves no room for {added} special tokens"
                        ))
                    })?,
                    strategy: match strategy {
                        Truncation::LongestFirst => TruncationStrategy::LongestFirst,
                        Truncation::OnlyFirst => TruncationStrategy::OnlyFirst,
                        Truncation::OnlySecond => TruncationStrategy::OnlySecond,
                    },
                    stride: opts.stride,
                };
                truncate_encodings(first, second, &params).map_err(tk_err)?
            }
            _ => (first, second),
        };
        match &self.post_processor {
            Some(p) => p
                .process(first, second, opts.add_special_tokens)
                .map_err(tk_err),
            None => {
                let mut encodings = vec![first];
                encodings.extend(second);
                let mut merged =
                    <dyn PostProcessor>::default_process(encodings, opts.add_special_tokens)
                        .map_err(tk_err)?;
                merged
                    .pop()
                    .ok_or_else(|| Error::Tokenizer("post-processing produced nothing".into()))
            }
        }
    }

    fn pad(&self, encodings: &mut [tokenizers::Encoding], opts: &EncodeOptions) -> Result<()> {
        let strategy = match opts.padding {
            Padding::None => return Ok(()),
            Padding::Longest => PaddingStrategy::BatchLongest,
            Padding::MaxLength => {
                PaddingStrategy::Fixed(self.max_length(opts).ok_or_else(|| {
                    Error::InvalidInput(
                        "padding to max_length needs max_length or model_max_length".into(),
                    )
                })?)
            }
        };
        let pad_token = self.config.special.pad.clone().ok_or_else(|| {
            Error::InvalidInput("this tokenizer has no pad token, so it cannot pad".into())
        })?;
        let pad_id = self.token_to_id(&pad_token).ok_or_else(|| {
            Error::Tokenizer(format!("pad token `{pad_token}` is not in the vocabulary"))
        })?;
        let params = PaddingParams {
            strategy,
            direction: match self.config.padding_side {
                Side::Left => PaddingDirection::Left,
                Side::Right => PaddingDirection::Right,
            },
            pad_to_multiple_of: opts.pad_to_multiple_of,
            pad_id,
            pad_type_id: 0,
            pad_token,
        };
        pad_encodings(encodings, &params).map_err(tk_err)
    }

    /// Encodes one text or pair (transformers' `tokenizer(text)` / `tokenizer(a, b)`).
    /// As in transformers, an empty second text means no pair.
    pub fn encode<'a>(
        &self,
        input: impl Into<TextInput<'a>>,
        opts: &EncodeOptions,
    ) -> Result<Encoding> {
        let input = match input.into() {
            TextInput::Pair(a, "") => TextInput::Single(a),
            other => other,
        };
        let mut out = self.encode_batch(&[input], opts)?;
        out.pop()
            .ok_or_else(|| Error::Tokenizer("encoding produced nothing".into()))
    }

    /// Encodes text already split into words (transformers' `tokenizer(words,
    /// is_split_into_words=True)`): each word is pre-tokenized on its own, and
    /// `as_inner().get_word_ids()` gives each token's word.
    pub fn encode_words(&self, words: &[&str], opts: &EncodeOptions) -> Result<Encoding> {
        let mut out = self.encode_words_batch(&[words], opts)?;
        out.pop()
            .ok_or_else(|| Error::Tokenizer("encoding produced nothing".into()))
    }

    /// Encodes a batch of texts already split into words, padding every row together
    /// (transformers' `tokenizer([[...], ...], is_split_into_words=True)`).
    pub fn encode_words_batch(
        &self,
        batch: &[&[&str]],
        opts: &EncodeOptions,
    ) -> Result<Vec<Encoding>> {
        let mut finished = batch
            .iter()
            .map(|words| {
                let raw = self
                    .inner
                    .encode_char_offsets(tokenizers::InputSequence::from(*words), false)
                    .map_err(tk_err)?;
                self.finish(raw, None, opts)
            })
            .collect::<Result<Vec<_>>>()?;
        self.pad(&mut finished, opts)?;
        Ok(finished.into_iter().map(Encoding).collect())
    }

    /// Encodes a batch, padding every row together (transformers' `tokenizer([...])`).
    pub fn encode_batch(
        &self,
        inputs: &[TextInput<'_>],
        opts: &EncodeOptions,
    ) -> Result<Vec<Encoding>> {
        // Encode each text, then truncate and post-process it; in parallel for batches (a
        // single text stays on the calling thread).
        let one = |input: &TextInput<'_>| {
            let raw = |text: &str| self.inner.encode_char_offsets(text, false).map_err(tk_err);
            match *input {
                TextInput::Single(a) => self.finish(raw(a)?, None, opts),
                TextInput::Pair(a, b) => {
                    // `tokenizers` encodes the second sequence with type id 1 before
                    // truncation: overflowing windows keep it (the template retypes only
                    // the main window).
                    let mut second = raw(b)?;
                    second.set_type_ids(vec![1; second.len()]);
                    self.finish(raw(a)?, Some(second), opts)
                }
            }
        };
        let mut finished = if inputs.len() > 1 {
            inputs.par_iter().map(one).collect::<Result<Vec<_>>>()?
        } else {
            inputs.iter().map(one).collect::<Result<Vec<_>>>()?
        };
        self.pad(&mut finished, opts)?;
        Ok(finished.into_iter().map(Encoding).collect())
    }

    /// Ids only, with the default options (transformers' `tokenizer.encode(text)`).
    pub fn encode_ids(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let opts = EncodeOptions {
            add_special_tokens,
            ..Default::default()
        };
        Ok(self.encode(text, &opts)?.input_ids().to_vec())
    }

    /// Text for `ids` (transformers' `tokenizer.decode`), with transformers' clean-up rule:
    /// `clean_up_tokenization_spaces` from the config, never applied to BPE models; stripped
    /// when the tokenizer strips its text (Marian).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let text = self
            .inner
            .decode(ids, skip_special_tokens)
            .map_err(tk_err)?;
        let is_bpe = matches!(
            self.inner.get_model(),
            TokenizerModel::Hf(tokenizers::ModelWrapper::BPE(_)) | TokenizerModel::Compact(_)
        );
        let text = if self.config.clean_up_tokenization_spaces && !is_bpe {
            clean_up_tokenization(&text)
        } else {
            text
        };
        Ok(match self.config.strip_decoded {
            true => text.trim().to_owned(),
            false => text,
        })
    }

    /// Tokens back to text through the decoder (transformers' `convert_tokens_to_string`);
    /// joined by spaces when the tokenizer has no decoder.
    pub fn tokens_to_string(&self, tokens: &[String]) -> Result<String> {
        match self.inner.get_decoder() {
            Some(d) => tokenizers::Decoder::decode(d, tokens.to_vec()).map_err(tk_err),
            None => Ok(tokens.join(" ")),
        }
    }

    /// The prefix that marks a word-continuing token (WordPiece's `##`), if the model has one.
    pub fn continuing_subword_prefix(&self) -> Option<String> {
        match self.inner.get_model() {
            TokenizerModel::Hf(tokenizers::ModelWrapper::WordPiece(w)) => {
                Some(w.continuing_subword_prefix.clone())
            }
            TokenizerModel::Hf(tokenizers::ModelWrapper::BPE(b)) => {
                b.continuing_subword_prefix.clone()
            }
            _ => None,
        }
    }

    /// Renders the chat template (transformers' `apply_chat_template(..., tokenize=False)`).
    pub fn apply_chat_template(
        &self,
        messages: &[crate::chat::Message],
        opts: &crate::chat::ChatOptions,
    ) -> Result<String> {
        let template = self
            .config
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::ChatTemplate("this tokenizer has no chat template".into()))?;
        let s = &self.config.special;
        let special = [
            ("bos_token", s.bos.as_deref()),
            ("eos_token", s.eos.as_deref()),
            ("unk_token", s.unk.as_deref()),
            ("pad_token", s.pad.as_deref()),
            ("sep_token", s.sep.as_deref()),
            ("cls_token", s.cls.as_deref()),
            ("mask_token", s.mask.as_deref()),
        ];
        crate::chat::render(template, messages, opts, &special)
    }

    /// Decodes several sequences.
    pub fn decode_batch(
        &self,
        batch: &[Vec<u32>],
        skip_special_tokens: bool,
    ) -> Result<Vec<String>> {
        batch
            .iter()
            .map(|ids| self.decode(ids, skip_special_tokens))
            .collect()
    }
}

/// transformers' `clean_up_tokenization`: removes the spaces WordPiece decoding leaves before
/// punctuation and English contractions.
pub fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_up_matches_transformers() {
        assert_eq!(
            clean_up_tokenization("hello , world ! it 's"),
            "hello, world! it's"
        );
    }
}
