//! Vocabulary analysis of a tokenizer on a corpus: how many tokens a word and a character
//! cost, how often the unknown token appears, how much of the vocabulary the corpus uses,
//! and which words are cut into the most pieces. For comparing tokenizers on one's own text.

use crate::{EncodeOptions, TextInput, Tokenizer};
use std::collections::{HashMap, HashSet};
use trustformers_core::Result;

/// Counts over a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusStats {
    pub lines: usize,
    pub words: usize,
    pub chars: usize,
    pub tokens: usize,
    pub unknown_tokens: usize,
    pub distinct_tokens: usize,
    pub vocab_size: usize,
    /// Words cut into the most tokens, with their token count (most first).
    pub most_split_words: Vec<(String, usize)>,
}

impl CorpusStats {
    /// Tokens per whitespace-separated word.
    pub fn tokens_per_word(&self) -> f64 {
        self.tokens as f64 / self.words.max(1) as f64
    }

    /// Tokens per character.
    pub fn tokens_per_char(&self) -> f64 {
        self.tokens as f64 / self.chars.max(1) as f64
    }

    /// Share of tokens that are the unknown token.
    pub fn unknown_rate(&self) -> f64 {
        self.unknown_tokens as f64 / self.tokens.max(1) as f64
    }

    /// Share of the vocabulary that appears at least once.
    pub fn vocab_used(&self) -> f64 {
        self.distinct_tokens as f64 / self.vocab_size.max(1) as f64
    }
}

/// Tokenizes every line of `text` (without special tokens) and every distinct word.
pub fn corpus_stats(tokenizer: &Tokenizer, text: &str, top: usize) -> Result<CorpusStats> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let opts = EncodeOptions {
        add_special_tokens: false,
        ..Default::default()
    };
    let unk = tokenizer
        .config()
        .special
        .unk
        .as_deref()
        .and_then(|u| tokenizer.token_to_id(u));
    let mut stats = CorpusStats {
        lines: lines.len(),
        words: 0,
        chars: 0,
        tokens: 0,
        unknown_tokens: 0,
        distinct_tokens: 0,
        vocab_size: tokenizer.len(),
        most_split_words: Vec::new(),
    };
    let mut seen: HashSet<u32> = HashSet::new();
    let mut words: HashMap<&str, ()> = HashMap::new();
    for chunk in lines.chunks(1024) {
        let inputs: Vec<TextInput> = chunk.iter().map(|l| TextInput::Single(l)).collect();
        for (line, enc) in chunk.iter().zip(tokenizer.encode_batch(&inputs, &opts)?) {
            stats.chars += line.chars().count();
            for w in line.split_whitespace() {
                stats.words += 1;
                words.insert(w, ());
            }
            stats.tokens += enc.input_ids().len();
            stats.unknown_tokens += enc
                .input_ids()
                .iter()
                .filter(|&&id| Some(id) == unk)
                .count();
            seen.extend(enc.input_ids().iter().copied());
        }
    }
    stats.distinct_tokens = seen.len();
    let mut distinct: Vec<&str> = words.into_keys().collect();
    distinct.sort_unstable();
    let mut split = Vec::with_capacity(distinct.len());
    for chunk in distinct.chunks(4096) {
        let inputs: Vec<TextInput> = chunk.iter().map(|w| TextInput::Single(w)).collect();
        for (w, enc) in chunk.iter().zip(tokenizer.encode_batch(&inputs, &opts)?) {
            split.push((w.to_string(), enc.input_ids().len()));
        }
    }
    split.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    split.truncate(top);
    stats.most_split_words = split;
    Ok(stats)
}
