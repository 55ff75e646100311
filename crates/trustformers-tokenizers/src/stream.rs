//! Incremental detokenization for streaming: text comes out as tokens arrive, never half a
//! UTF-8 character, and the pieces add up to the text a one-shot decode gives.
//!
//! The window technique of text-generation-inference: decode the tokens from `prefix` to the
//! end and from `prefix` to `read`; the difference is new text, unless it ends in U+FFFD,
//! which means a character is still incomplete (byte fallback or byte-level BPE).

use crate::Tokenizer;
use trustformers_core::Result;

/// Streaming decoder over one sequence.
pub struct DecodeStream<'a> {
    tokenizer: &'a Tokenizer,
    skip_special_tokens: bool,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
    emitted: String,
}

impl<'a> DecodeStream<'a> {
    /// A stream for `tokenizer`.
    pub fn new(tokenizer: &'a Tokenizer, skip_special_tokens: bool) -> Self {
        Self {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
            emitted: String::new(),
        }
    }

    /// Adds one token; returns the text it completes, if any.
    pub fn step(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix_text = self.decode(self.prefix, self.read)?;
        let new_text = self.decode(self.prefix, self.ids.len())?;
        if new_text.len() <= prefix_text.len() || new_text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let piece = match new_text.strip_prefix(prefix_text.as_str()) {
            Some(rest) => rest.to_string(),
            // The decoder rewrote earlier text (rare); emit what the full decode adds.
            None => return self.catch_up(),
        };
        self.prefix = self.read;
        self.read = self.ids.len();
        self.emitted.push_str(&piece);
        Ok(Some(piece))
    }

    /// Text not emitted yet (e.g. an incomplete character at the very end).
    pub fn finish(&mut self) -> Result<Option<String>> {
        self.catch_up()
    }

    fn catch_up(&mut self) -> Result<Option<String>> {
        let full = self.decode(0, self.ids.len())?;
        self.prefix = self.read;
        self.read = self.ids.len();
        match full.strip_prefix(self.emitted.as_str()) {
            Some(rest) if !rest.is_empty() => {
                let piece = rest.to_string();
                self.emitted = full;
                Ok(Some(piece))
            }
            _ => Ok(None),
        }
    }

    fn decode(&self, from: usize, to: usize) -> Result<String> {
        self.tokenizer
            .decode(&self.ids[from..to], self.skip_special_tokens)
    }
}
