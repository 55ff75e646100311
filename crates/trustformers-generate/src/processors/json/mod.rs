//! Constrained decoding to JSON: only tokens that keep the generated text a prefix of a
//! valid JSON object (OpenAI's `response_format: {"type": "json_object"}`), or of a value
//! valid for a JSON schema (`json_schema`), keep their scores; the end-of-sequence token is
//! allowed once the object is complete, and then only it.
//!
//! The text is the concatenation of each generated token's own text. The check runs a
//! small pushdown automaton over it (containers nest at most [`MAX_DEPTH`] deep), then,
//! for every vocabulary entry, over that entry's text from a copy of the state.
//!
//! Schemas: `type` object (`properties`, `required`, `additionalProperties`), array
//! (`items`), string, number, integer, boolean, null; `enum` and `const`. Other keywords
//! that constrain values (`anyOf`, `oneOf`, `pattern`, a list of types, ...) are refused
//! with an error naming them, not ignored.

mod automaton;
mod schema;
#[cfg(test)]
mod tests;

use super::{Context, LogitsProcessor};
use automaton::{Lex, State};
use schema::{Node, Schema};
use serde_json::Value;
use std::sync::Arc;
use trustformers_core::{Error, Result};

/// Deepest nesting of objects and arrays.
pub const MAX_DEPTH: usize = 16;

/// The JSON constraint as a logits processor (put it first, before temperature and top-k).
#[derive(Clone)]
pub struct JsonConstraint {
    schema: Arc<Schema>,
    /// What each vocabulary id adds to the text; `None` for ids never allowed (special
    /// tokens, ids past the tokenizer's vocabulary).
    vocab: Arc<Vec<Option<String>>>,
    /// The allowed ids grouped by their text's first character: a group whose first
    /// character cannot come next is dropped whole.
    by_first: Arc<Vec<(char, Vec<u32>)>>,
    eos: Vec<u32>,
}

/// `vocab`'s non-empty entries grouped by first character.
fn group_by_first(vocab: &[Option<String>]) -> Vec<(char, Vec<u32>)> {
    let mut groups: std::collections::BTreeMap<char, Vec<u32>> = Default::default();
    for (id, text) in vocab.iter().enumerate() {
        if let Some(c) = text.as_deref().and_then(|t| t.chars().next()) {
            groups.entry(c).or_default().push(id as u32);
        }
    }
    groups.into_iter().collect()
}

impl JsonConstraint {
    /// Any JSON object (`json_object`).
    pub fn object(vocab: Arc<Vec<Option<String>>>, eos: Vec<u32>) -> Self {
        Self {
            schema: Arc::new(Schema::any_object()),
            by_first: Arc::new(group_by_first(&vocab)),
            vocab,
            eos,
        }
    }

    /// A value valid for `schema`, whose root must be an object (as OpenAI's structured
    /// outputs require). Unsupported keywords are an error naming them.
    pub fn schema(vocab: Arc<Vec<Option<String>>>, eos: Vec<u32>, schema: &Value) -> Result<Self> {
        let schema = Schema::compile(schema)?;
        if !matches!(schema.nodes[schema.root as usize], Node::Object { .. }) {
            return Err(Error::config(
                "response_format",
                "the schema's root must be an object (`\"type\": \"object\"`)",
            ));
        }
        Ok(Self {
            schema: Arc::new(schema),
            by_first: Arc::new(group_by_first(&vocab)),
            vocab,
            eos,
        })
    }

    /// The state after `ids`' texts; `None` if they are not valid (they are, when every
    /// step went through this processor).
    fn state_after(&self, ids: &[u32]) -> Option<State> {
        let mut state = State::new(&self.schema);
        for &id in ids {
            let text = self.vocab.get(id as usize)?.as_deref()?;
            if !text.chars().all(|c| state.feed(c, &self.schema)) {
                return None;
            }
        }
        Some(state)
    }

    /// Whether `text` parses whole under this constraint (for tests and checks).
    pub fn accepts(&self, text: &str) -> bool {
        let mut state = State::new(&self.schema);
        text.chars().all(|c| state.feed(c, &self.schema)) && state.lex == Lex::End
    }
}

impl LogitsProcessor for JsonConstraint {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let state = self
            .state_after(ctx.generated())
            .filter(|s| s.lex != Lex::End);
        let mut allowed = vec![false; scores.len()];
        match &state {
            // Complete (or, defensively, invalid): only the end.
            None => {
                for &id in &self.eos {
                    if let Some(a) = allowed.get_mut(id as usize) {
                        *a = true;
                    }
                }
            }
            Some(state) => {
                for (first, ids) in self.by_first.iter() {
                    let mut after_first = *state;
                    if !after_first.feed(*first, &self.schema) {
                        continue;
                    }
                    for &id in ids {
                        let Some(Some(text)) = self.vocab.get(id as usize) else {
                            continue;
                        };
                        let mut s = after_first;
                        let rest = &text[first.len_utf8()..];
                        if rest.chars().all(|c| s.feed(c, &self.schema)) {
                            if let Some(a) = allowed.get_mut(id as usize) {
                                *a = true;
                            }
                        }
                    }
                }
            }
        }
        if state.is_some() && !allowed.iter().any(|&a| a) {
            // No token continues the JSON (a vocabulary without its characters): the
            // sequence ends rather than run on with masked scores.
            for &id in &self.eos {
                if let Some(a) = allowed.get_mut(id as usize) {
                    *a = true;
                }
            }
        }
        for (score, allowed) in scores.iter_mut().zip(allowed) {
            if !allowed {
                *score = f32::NEG_INFINITY;
            }
        }
    }
}
