//! Extractive question answering as transformers 4's `question-answering` pipeline did it
//! (transformers 5 removed the pipeline): the context is split into overlapping windows
//! (`max_seq_len`, `doc_stride`), each window scores answer spans from start/end
//! probabilities over context tokens, spans are aligned to whole words, the scores of equal
//! answers (from overlapping windows) add up, and the best answers win, as character offsets
//! into the context.

use super::pipeline::Pipeline;
use super::{load_encoder_and_tokenizer, max_input_tokens, softmax};
use crate::auto::LoadOptions;
use candle_core::{DType, Tensor};
use serde::Serialize;
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_models::{EncoderForTask, EncoderTask};
use trustformers_tokenizers::{EncodeOptions, Encoding, TextInput, Tokenizer, Truncation};

/// One answer span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub score: f32,
    /// Character offsets into the context.
    pub start: usize,
    pub end: usize,
    pub answer: String,
}

/// Options of [`QuestionAnsweringPipeline::run`].
#[derive(Debug, Clone)]
pub struct QuestionAnsweringParams {
    /// Answers returned, best first.
    pub top_k: usize,
    /// Longest answer, in tokens.
    pub max_answer_len: usize,
    /// Tokens per window (question, context and special tokens); default
    /// `min(model_max_length, 384)`.
    pub max_seq_len: Option<usize>,
    /// Overlap between windows, in tokens; default `min(max_seq_len / 2, 128)`.
    pub doc_stride: Option<usize>,
    /// Also consider "no answer" (the CLS score), returned as an empty answer at 0..0.
    pub handle_impossible_answer: bool,
    /// (question, context) pairs per forward pass in
    /// [`QuestionAnsweringPipeline::run_batch`].
    pub batch_size: usize,
}

impl Default for QuestionAnsweringParams {
    fn default() -> Self {
        Self {
            top_k: 1,
            max_answer_len: 15,
            max_seq_len: None,
            doc_stride: None,
            handle_impossible_answer: false,
            batch_size: 8,
        }
    }
}

/// A question-answering model and its tokenizer.
pub struct QuestionAnsweringPipeline {
    tokenizer: Tokenizer,
    model: EncoderForTask,
}

impl QuestionAnsweringPipeline {
    /// Loads a question-answering checkpoint directory.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let (model, tokenizer) =
            load_encoder_and_tokenizer(dir.as_ref(), EncoderTask::QuestionAnswering, opts)?;
        Ok(Self { tokenizer, model })
    }

    /// The best answers to `question` in `context`.
    pub fn run(
        &self,
        question: &str,
        context: &str,
        params: &QuestionAnsweringParams,
    ) -> Result<Vec<Answer>> {
        self.run_batch(&[(question, context)], params)?
            .pop()
            .ok_or_else(|| Error::InvalidInput("no answers were computed".into()))
    }

    /// The best answers for each (question, context) pair, in order: the windows of
    /// `params.batch_size` pairs go through the model as one padded batch.
    pub fn run_batch(
        &self,
        pairs: &[(&str, &str)],
        params: &QuestionAnsweringParams,
    ) -> Result<Vec<Vec<Answer>>> {
        self.call(pairs, params)
    }

    /// The encoded windows of one pair: the question with overlapping slices of the context.
    fn windows(
        &self,
        question: &str,
        context: &str,
        params: &QuestionAnsweringParams,
    ) -> Result<Vec<Encoding>> {
        if question.trim().is_empty() || context.trim().is_empty() {
            return Err(Error::InvalidInput(
                "question and context must not be empty".into(),
            ));
        }
        let max_seq_len = params
            .max_seq_len
            .unwrap_or_else(|| max_input_tokens(&self.tokenizer, &self.model).min(384));
        let doc_stride = params.doc_stride.unwrap_or((max_seq_len / 2).min(128));
        let opts = EncodeOptions {
            truncation: Some(Truncation::OnlySecond),
            max_length: Some(max_seq_len),
            stride: doc_stride,
            ..Default::default()
        };
        let first = self
            .tokenizer
            .encode(TextInput::Pair(question, context), &opts)?;
        let mut spans: Vec<Encoding> = vec![first.clone()];
        spans.extend(first.overflowing());
        Ok(spans)
    }

    /// One pair's answers from its windows' start and end logits.
    fn answers(
        &self,
        context: &str,
        spans: &[Encoding],
        starts: &[Vec<f32>],
        ends: &[Vec<f32>],
        params: &QuestionAnsweringParams,
    ) -> Vec<Answer> {
        let cls = self
            .tokenizer
            .config()
            .special
            .cls
            .as_deref()
            .and_then(|c| self.tokenizer.token_to_id(c));
        let chars: Vec<char> = context.chars().collect();
        let mut min_null = 1_000_000f32;
        let mut answers = Vec::new();
        for (i, enc) in spans.iter().enumerate() {
            let n = enc.len();
            let inner = enc.as_inner();
            // Desired tokens: context tokens, and CLS (for "no answer").
            let desired: Vec<bool> = (0..n)
                .map(|t| inner.get_sequence_ids()[t] == Some(1) || Some(enc.input_ids()[t]) == cls)
                .collect();
            let masked = |logits: &[f32]| -> Vec<f32> {
                logits[..n]
                    .iter()
                    .zip(&desired)
                    .map(|(&x, &d)| if d { x } else { -10000.0 })
                    .collect()
            };
            let mut p_start = softmax(&masked(&starts[i]));
            let mut p_end = softmax(&masked(&ends[i]));
            if params.handle_impossible_answer {
                min_null = min_null.min(p_start[0] * p_end[0]);
            }
            p_start[0] = 0.0;
            p_end[0] = 0.0;
            // Spans of the same words collapse once aligned: take more candidates.
            let candidates = params.top_k * 2 + 10;
            for (s, e, score) in decode_spans(
                &p_start,
                &p_end,
                candidates,
                params.max_answer_len,
                &desired,
            ) {
                let (a, b) = word_chars(enc, s, e);
                let text: String = chars.get(a..b).unwrap_or_default().iter().collect();
                // The same answer from several spans or windows: scores add up.
                match answers
                    .iter_mut()
                    .find(|x: &&mut Answer| x.answer.to_lowercase() == text.to_lowercase())
                {
                    Some(seen) => seen.score += score,
                    None => answers.push(Answer {
                        score,
                        start: a,
                        end: b,
                        answer: text,
                    }),
                }
            }
        }
        if params.handle_impossible_answer {
            answers.push(Answer {
                score: min_null,
                start: 0,
                end: 0,
                answer: String::new(),
            });
        }
        // Python's sorted(reverse=True) is stable: equal scores keep their order.
        answers.sort_by(|a, b| b.score.total_cmp(&a.score));
        answers.truncate(params.top_k);
        answers
    }

    fn batch(&self, spans: &[Encoding]) -> Result<(Tensor, Tensor, Tensor)> {
        // The windows are already encoded: pad them to one length.
        let seq = spans.iter().map(Encoding::len).max().unwrap_or(0);
        let pad = self.tokenizer.pad_token_id().unwrap_or(0);
        let rows = spans.len();
        let device = self.model.model().device();
        let mut ids = Vec::with_capacity(rows * seq);
        let mut types = Vec::with_capacity(rows * seq);
        let mut mask = Vec::with_capacity(rows * seq);
        for e in spans {
            let extra = seq - e.len();
            ids.extend(
                e.input_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, extra)),
            );
            types.extend(
                e.token_type_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, extra)),
            );
            mask.extend(
                e.attention_mask()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, extra)),
            );
        }
        let t = |v: Vec<u32>| Tensor::from_vec(v, (rows, seq), device);
        Ok((t(ids)?, t(types)?, t(mask)?))
    }
}

/// The `top_k` best spans `start <= end < start + max_answer_len` by `p_start * p_end`
/// (ties: the lower flat index first, as numpy's argsort), keeping those that start and end
/// on desired tokens.
fn decode_spans(
    p_start: &[f32],
    p_end: &[f32],
    top_k: usize,
    max_answer_len: usize,
    desired: &[bool],
) -> Vec<(usize, usize, f32)> {
    let n = p_start.len();
    let mut cands: Vec<(usize, f32)> = Vec::with_capacity(n * n);
    for (s, &ps) in p_start.iter().enumerate() {
        for (e, &pe) in p_end.iter().enumerate() {
            let score = if e >= s && e - s < max_answer_len {
                ps * pe
            } else {
                0.0
            };
            cands.push((s * n + e, score));
        }
    }
    cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    cands
        .into_iter()
        .take(top_k)
        .map(|(flat, score)| (flat / n, flat % n, score))
        .filter(|&(s, e, _)| desired[s] && desired[e])
        .collect()
}

/// The character span of the words holding tokens `s` and `e` (token offsets when the
/// tokenizer has no words).
fn word_chars(enc: &Encoding, s: usize, e: usize) -> (usize, usize) {
    let inner = enc.as_inner();
    let word = |t: usize| inner.token_to_word(t);
    if let (Some((seq_s, ws)), Some((seq_e, we))) = (word(s), word(e)) {
        if let (Some(a), Some(b)) = (
            inner.word_to_chars(ws, seq_s),
            inner.word_to_chars(we, seq_e),
        ) {
            return (a.0, b.1);
        }
    }
    (enc.offsets()[s].0, enc.offsets()[e].1)
}

/// The windows of a batch of (question, context) pairs, padded into one batch.
pub struct WindowBatch {
    contexts: Vec<String>,
    /// Every pair's windows, pair after pair.
    windows: Vec<Encoding>,
    /// How many windows each pair has.
    counts: Vec<usize>,
    /// `input_ids`, `token_type_ids`, `attention_mask`, `[windows, seq]`.
    tensors: (Tensor, Tensor, Tensor),
}

impl Pipeline for QuestionAnsweringPipeline {
    const TASK: &'static str = "question-answering";
    /// `(question, context)`.
    type Input<'a> = (&'a str, &'a str);
    type Params = QuestionAnsweringParams;
    /// The best answers, best first.
    type Output = Vec<Answer>;
    type ModelInputs = WindowBatch;
    /// Start and end logits per window.
    type ModelOutputs = (Vec<Vec<f32>>, Vec<Vec<f32>>);

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn check(&self, params: &QuestionAnsweringParams) -> Result<()> {
        if params.top_k == 0 || params.max_answer_len == 0 {
            return Err(Error::InvalidInput(
                "top_k, max_answer_len and batch_size must be positive".into(),
            ));
        }
        Ok(())
    }

    fn preprocess(
        &self,
        pairs: &[(&str, &str)],
        _: usize,
        params: &QuestionAnsweringParams,
    ) -> Result<WindowBatch> {
        let (mut windows, mut counts) = (Vec::new(), Vec::new());
        for &(question, context) in pairs {
            let w = self.windows(question, context, params)?;
            counts.push(w.len());
            windows.extend(w);
        }
        Ok(WindowBatch {
            contexts: pairs.iter().map(|(_, c)| c.to_string()).collect(),
            tensors: self.batch(&windows)?,
            windows,
            counts,
        })
    }

    fn forward(&self, inputs: &WindowBatch) -> Result<Self::ModelOutputs> {
        let (ids, types, mask) = &inputs.tensors;
        let out = self.model.forward(ids, Some(types), Some(mask), false)?;
        let (Some(starts), Some(ends)) = (out.start_logits, out.end_logits) else {
            return Err(Error::InvalidInput(
                "the model has no question-answering head".into(),
            ));
        };
        Ok((
            starts.to_dtype(DType::F32)?.to_vec2::<f32>()?,
            ends.to_dtype(DType::F32)?.to_vec2::<f32>()?,
        ))
    }

    fn postprocess(
        &self,
        inputs: &WindowBatch,
        (starts, ends): Self::ModelOutputs,
        params: &QuestionAnsweringParams,
    ) -> Result<Vec<Vec<Answer>>> {
        let mut first = 0;
        let mut results = Vec::with_capacity(inputs.counts.len());
        for (context, &count) in inputs.contexts.iter().zip(&inputs.counts) {
            let rows = first..first + count;
            let (Some(windows), Some(s), Some(e)) = (
                inputs.windows.get(rows.clone()),
                starts.get(rows.clone()),
                ends.get(rows),
            ) else {
                return Err(Error::InvalidInput(
                    "the model gave fewer rows than there are windows".into(),
                ));
            };
            results.push(self.answers(context, windows, s, e, params));
            first += count;
        }
        Ok(results)
    }
}
