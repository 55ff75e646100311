//! transformers' `token-classification` (NER) pipeline: labels per token, optionally merged
//! into words (`first`, `average`, `max`) and entity groups (`simple` and those three), with
//! character offsets into the original text.

use super::pipeline::Pipeline;
use super::{load_encoder_and_tokenizer, singles, softmax, tokenize, Batch};
use crate::auto::LoadOptions;
use candle_core::DType;
use serde_json::{json, Value};
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_models::{EncoderForTask, EncoderTask, EncoderTaskOutput};
use trustformers_tokenizers::{EncodeOptions, Encoding, Padding, Tokenizer, Truncation};

/// How token predictions are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// One entity per token.
    None,
    /// Adjacent tokens with the same entity (B-/I- aware) are grouped.
    Simple,
    /// Words take their first token's label, then are grouped.
    First,
    /// Words take the label of their averaged token scores, then are grouped.
    Average,
    /// Words take the label of their most confident token, then are grouped.
    Max,
}

impl Aggregation {
    /// transformers' name (`none`, `simple`, `first`, `average`, `max`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "none" => Self::None,
            "simple" => Self::Simple,
            "first" => Self::First,
            "average" => Self::Average,
            "max" => Self::Max,
            other => {
                return Err(Error::InvalidInput(format!(
                    "aggregation_strategy `{other}` is not one of none, simple, first, average, max"
                )))
            }
        })
    }
}

/// One entity: a token (aggregation `none`) or a group of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The label (`entity`), or for groups the label without its B-/I- prefix
    /// (`entity_group`).
    pub label: String,
    pub score: f32,
    /// The token's index in the encoded sequence (aggregation `none` only).
    pub index: Option<usize>,
    pub word: String,
    /// Character offsets into the input.
    pub start: usize,
    pub end: usize,
}

impl Entity {
    /// transformers' dict for this entity.
    pub fn to_json(&self) -> Value {
        match self.index {
            Some(i) => json!({"entity": self.label, "score": self.score, "index": i,
                "word": self.word, "start": self.start, "end": self.end}),
            None => json!({"entity_group": self.label, "score": self.score,
                "word": self.word, "start": self.start, "end": self.end}),
        }
    }
}

/// Options of [`TokenClassificationPipeline::run`].
#[derive(Debug, Clone)]
pub struct TokenClassificationParams {
    pub aggregation: Aggregation,
    /// Labels left out of the result.
    pub ignore_labels: Vec<String>,
    /// Texts per forward pass in [`TokenClassificationPipeline::run_batch`].
    pub batch_size: usize,
}

impl Default for TokenClassificationParams {
    fn default() -> Self {
        Self {
            aggregation: Aggregation::None,
            ignore_labels: vec!["O".into()],
            batch_size: 8,
        }
    }
}

/// A token-classification model and its tokenizer.
pub struct TokenClassificationPipeline {
    tokenizer: Tokenizer,
    model: EncoderForTask,
}

struct PreEntity {
    word: String,
    scores: Vec<f32>,
    start: usize,
    end: usize,
    index: usize,
    is_subword: bool,
}

fn argmax(xs: &[f32]) -> usize {
    // numpy's argmax: the first of equal maxima.
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// `B-PER` -> (`B`, `PER`); a label without a prefix counts as inside.
fn tag(label: &str) -> (&str, &str) {
    match label.split_at_checked(2) {
        Some(("B-", t)) => ("B", t),
        Some(("I-", t)) => ("I", t),
        _ => ("I", label),
    }
}

impl TokenClassificationPipeline {
    /// Loads a token-classification checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let (model, tokenizer) =
            load_encoder_and_tokenizer(dir.as_ref(), EncoderTask::TokenClassification, opts)?;
        Ok(Self { tokenizer, model })
    }

    fn label(&self, i: usize) -> String {
        self.model
            .labels()
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("LABEL_{i}"))
    }

    /// The entities of `text`.
    pub fn run(&self, text: &str, params: &TokenClassificationParams) -> Result<Vec<Entity>> {
        self.run_batch(&[text], params)?
            .pop()
            .ok_or_else(|| Error::InvalidInput("no entities were computed".into()))
    }

    /// The entities of each text, in order: `params.batch_size` texts per forward pass,
    /// padded to the longest of them.
    pub fn run_batch(
        &self,
        texts: &[&str],
        params: &TokenClassificationParams,
    ) -> Result<Vec<Vec<Entity>>> {
        self.call(texts, params)
    }

    /// One text's entities from its encoding and per-token logits (padding skipped).
    fn entities(
        &self,
        text: &str,
        enc: &Encoding,
        logits: &[Vec<f32>],
        params: &TokenClassificationParams,
    ) -> Result<Vec<Entity>> {
        let chars: Vec<char> = text.chars().collect();
        let slice =
            |a: usize, b: usize| -> String { chars.get(a..b).unwrap_or_default().iter().collect() };
        let word_aware = self.tokenizer.continuing_subword_prefix().is_some();
        let unk = self.tokenizer.config().special.unk.clone();
        let mut pre = Vec::new();
        for (idx, row) in logits.iter().enumerate() {
            if enc.special_tokens_mask().get(idx) != Some(&0)
                || enc.attention_mask().get(idx) == Some(&0)
            {
                continue;
            }
            let scores = softmax(row);
            let (start, end) = enc.offsets()[idx];
            let word_ref = slice(start, end);
            let mut word = enc.tokens()[idx].clone();
            let mut is_subword = if word_aware {
                word.chars().count() != word_ref.chars().count()
            } else {
                start > 0 && !slice(start - 1, start + 1).contains(' ')
            };
            if unk.as_deref() == Some(word.as_str()) {
                word = word_ref;
                is_subword = false;
            }
            pre.push(PreEntity {
                word,
                scores,
                start,
                end,
                index: idx,
                is_subword,
            });
        }
        let entities = match params.aggregation {
            Aggregation::None | Aggregation::Simple => pre
                .iter()
                .map(|p| {
                    let i = argmax(&p.scores);
                    Entity {
                        label: self.label(i),
                        score: p.scores[i],
                        index: Some(p.index),
                        word: p.word.clone(),
                        start: p.start,
                        end: p.end,
                    }
                })
                .collect(),
            strategy => {
                let mut words: Vec<Vec<&PreEntity>> = Vec::new();
                for p in &pre {
                    match words.last_mut() {
                        Some(group) if p.is_subword => group.push(p),
                        _ => words.push(vec![p]),
                    }
                }
                words
                    .iter()
                    .map(|group| self.aggregate_word(group, strategy))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        let entities = if params.aggregation == Aggregation::None {
            entities
        } else {
            self.group(&entities)?
        };
        Ok(entities
            .into_iter()
            .filter(|e| !params.ignore_labels.contains(&e.label))
            .collect())
    }

    fn aggregate_word(&self, group: &[&PreEntity], strategy: Aggregation) -> Result<Entity> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Err(Error::InvalidInput("an empty word".into()));
        };
        let tokens: Vec<String> = group.iter().map(|p| p.word.clone()).collect();
        let (label, score) = match strategy {
            Aggregation::First => {
                let i = argmax(&first.scores);
                (i, first.scores[i])
            }
            Aggregation::Max => {
                // Python's max(): the first entity with the highest score.
                let mut best = first;
                for p in group {
                    let m =
                        |e: &PreEntity| e.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    if m(p) > m(best) {
                        best = p;
                    }
                }
                let i = argmax(&best.scores);
                (i, best.scores[i])
            }
            _ => {
                let n = group.len() as f32;
                let avg: Vec<f32> = (0..first.scores.len())
                    .map(|j| group.iter().map(|p| p.scores[j]).sum::<f32>() / n)
                    .collect();
                let i = argmax(&avg);
                (i, avg[i])
            }
        };
        Ok(Entity {
            label: self.label(label),
            score,
            index: None,
            word: self.tokenizer.tokens_to_string(&tokens)?,
            start: first.start,
            end: last.end,
        })
    }

    /// Adjacent entities with the same tag (and no `B-` starting a new one) become a group.
    fn group(&self, entities: &[Entity]) -> Result<Vec<Entity>> {
        let mut groups: Vec<Vec<&Entity>> = Vec::new();
        for e in entities {
            match groups.last_mut() {
                Some(g) => {
                    let (bi, t) = tag(&e.label);
                    let last = g.last().map(|l| tag(&l.label).1);
                    if last == Some(t) && bi != "B" {
                        g.push(e);
                    } else {
                        groups.push(vec![e]);
                    }
                }
                None => groups.push(vec![e]),
            }
        }
        groups
            .into_iter()
            .filter_map(|g| {
                let (first, last) = (g.first()?, g.last()?);
                let words: Vec<String> = g.iter().map(|e| e.word.clone()).collect();
                Some(self.tokenizer.tokens_to_string(&words).map(|word| {
                    Entity {
                        // transformers: label.split("-", 1)[-1].
                        label: first
                            .label
                            .split_once('-')
                            .map_or(first.label.as_str(), |(_, t)| t)
                            .to_string(),
                        score: g.iter().map(|e| e.score).sum::<f32>() / g.len() as f32,
                        index: None,
                        word,
                        start: first.start,
                        end: last.end,
                    }
                }))
            })
            .collect()
    }
}

/// A batch of texts with their padded encodings (entities point back into the texts).
pub struct TextBatch {
    texts: Vec<String>,
    batch: Batch,
}

impl Pipeline for TokenClassificationPipeline {
    const TASK: &'static str = "token-classification";
    type Input<'a> = &'a str;
    type Params = TokenClassificationParams;
    /// The entities of the text.
    type Output = Vec<Entity>;
    type ModelInputs = TextBatch;
    type ModelOutputs = EncoderTaskOutput;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn preprocess(&self, texts: &[&str], _: usize, _: &Self::Params) -> Result<TextBatch> {
        let opts = EncodeOptions {
            truncation: Some(Truncation::LongestFirst),
            padding: Padding::Longest,
            ..Default::default()
        };
        Ok(TextBatch {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            batch: tokenize(
                &self.tokenizer,
                &singles(texts),
                &opts,
                self.model.model().device(),
            )?,
        })
    }

    fn forward(&self, inputs: &TextBatch) -> Result<EncoderTaskOutput> {
        inputs.batch.run(&self.model)
    }

    fn postprocess(
        &self,
        inputs: &TextBatch,
        out: EncoderTaskOutput,
        params: &Self::Params,
    ) -> Result<Vec<Vec<Entity>>> {
        let logits = out
            .logits
            .ok_or_else(|| {
                Error::InvalidInput("the model has no token-classification head".into())
            })?
            .to_dtype(DType::F32)?
            .to_vec3::<f32>()?;
        inputs
            .texts
            .iter()
            .zip(&inputs.batch.encodings)
            .zip(&logits)
            .map(|((text, enc), rows)| self.entities(text, enc, rows, params))
            .collect()
    }
}
