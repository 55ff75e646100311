//! The generation loop: prefill the prompt, then one token at a time through the KV cache,
//! the logits processors and greedy or seeded multinomial selection; text comes out through
//! the streaming detokenizer, with stop strings held back until they can be ruled out.

use crate::beam::beam_search_batch;
use crate::config::GenerationConfig;
use crate::lookup::prompt_lookup;
use crate::processors::{softmax, Context, LogitsProcessorList};
use crate::step::TextStream;
use candle_core::Tensor;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use trustformers_core::numeric::log_softmax;
use trustformers_core::{Error, Result};
use trustformers_models::decoder::{default_positions, positions_from_mask};
use trustformers_models::{CausalLM, ForwardOptions};
use trustformers_tokenizers::Tokenizer;
use web_time::Instant;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_new_tokens` reached.
    Length,
    /// An end-of-sequence token was produced.
    Eos,
    /// A stop string appeared in the text.
    StopString,
    /// `max_time` passed.
    MaxTime,
    /// The token callback asked to stop.
    Stopped,
}

/// A generated token's log-probability under the model (log-softmax of the raw logits,
/// before any processor), with the most likely alternatives at that step.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
    /// `(id, logprob)`, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// Token-level result.
#[derive(Debug, Clone)]
pub struct TokenOutput {
    /// Generated ids (the final EOS included, as transformers returns it).
    pub ids: Vec<u32>,
    pub finish_reason: FinishReason,
    /// With `top_logprobs`: one entry per generated id.
    pub logprobs: Vec<TokenLogprob>,
    /// Beam search: the sequence's length-penalised score (transformers' `sequences_scores`).
    pub score: Option<f32>,
    /// Time to process the prompt, and to generate the rest.
    pub prefill: Duration,
    pub decode: Duration,
    /// With `output_scores` / `output_logits`: what each step scored (shared by the
    /// outputs of one beam search).
    pub steps: Option<Arc<StepScores>>,
    /// Beam search: for each generated token, the beam row it extended (transformers'
    /// `beam_indices`, before the caller adds the prompt's offset in a batch).
    pub beam_indices: Vec<u32>,
}

/// Every generation step's next-token scores, as transformers' `generate()` returns them with
/// `return_dict_in_generate`: one entry per step, each `rows × vocab` values. Greedy search
/// and sampling: one row, this output's (steps after it finished included, while other rows
/// of the batch went on); beam search: every running beam of the prompt, in transformers'
/// order.
#[derive(Debug, Clone, Default)]
pub struct StepScores {
    pub rows: usize,
    /// The scores after the logits processors (`output_scores`); for beam search, the
    /// processed log-softmax of the logits.
    pub scores: Vec<Vec<f32>>,
    /// The model's raw logits (`output_logits`).
    pub logits: Vec<Vec<f32>>,
    /// Greedy search and sampling with `output_hidden_states`: per step, this row's hidden
    /// states after the embeddings and after every layer (the model's `hidden_states`),
    /// each `[positions, hidden]`: the padded prompt's at the first step, one after that.
    pub hidden_states: Vec<Vec<Tensor>>,
}

impl StepScores {
    pub(crate) fn record(&mut self, config: &GenerationConfig, scores: &[f32], logits: &[f32]) {
        if config.output_scores {
            self.scores.push(scores.to_vec());
        }
        if config.output_logits {
            self.logits.push(logits.to_vec());
        }
    }
}

/// Picks the next token from processed scores.
fn select(scores: &[f32], sample: bool, rng: &mut StdRng) -> u32 {
    if sample {
        let probs = softmax(scores);
        let mut u: f32 = rng.random();
        for (i, p) in probs.iter().enumerate() {
            if u < *p {
                return i as u32;
            }
            u -= p;
        }
    }
    // Greedy (and the sampling fallback for rounding): the first maximum, like torch.argmax.
    let mut best = 0usize;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}

/// The next token from one row's raw logits: the processors, then greedy or seeded
/// sampled selection; with `top_logprobs`, its log-probability (of the raw logits). The
/// processed scores come back for `output_scores`.
pub(crate) fn next_token(
    processors: &LogitsProcessorList,
    config: &GenerationConfig,
    ctx: Context<'_>,
    logits: &[f32],
    unconditional: Option<&[f32]>,
    rng: &mut StdRng,
) -> (u32, Option<TokenLogprob>, Vec<f32>) {
    let scores = processed(processors, config, ctx, logits, unconditional);
    let next = select(&scores, config.do_sample, rng);
    (
        next,
        config.top_logprobs.map(|n| logprob_of(logits, next, n)),
        scores,
    )
}

/// A row's scores after classifier-free guidance (with the unconditional logits) and the
/// processors.
pub(crate) fn processed(
    processors: &LogitsProcessorList,
    config: &GenerationConfig,
    ctx: Context<'_>,
    logits: &[f32],
    unconditional: Option<&[f32]>,
) -> Vec<f32> {
    let mut scores = match (config.guidance(), unconditional) {
        (Some(scale), Some(u)) => {
            let (c, u) = (log_softmax(logits), log_softmax(u));
            c.iter().zip(&u).map(|(c, u)| scale * (c - u) + u).collect()
        }
        _ => logits.to_vec(),
    };
    processors.process(&ctx, &mut scores);
    scores
}

/// The chosen token's log-probability and the `n` most likely tokens.
pub(crate) fn logprob_of(logits: &[f32], id: u32, n: usize) -> TokenLogprob {
    let lp = log_softmax(logits);
    let mut order: Vec<u32> = (0..lp.len() as u32).collect();
    let n = n.min(order.len());
    let by_score = |a: &u32, b: &u32| lp[*b as usize].total_cmp(&lp[*a as usize]).then(a.cmp(b));
    if n > 0 && n < order.len() {
        order.select_nth_unstable_by(n - 1, by_score);
    }
    order.truncate(n);
    order.sort_by(by_score);
    TokenLogprob {
        id,
        logprob: lp.get(id as usize).copied().unwrap_or(f32::NEG_INFINITY),
        top: order.into_iter().map(|i| (i, lp[i as usize])).collect(),
    }
}

/// Checks the prompts and returns `max_length` (longest prompt + `max_new_tokens`), refusing
/// what the model's context cannot hold.
pub(crate) fn check_prompts(
    model: &dyn CausalLM,
    prompts: &[&[u32]],
    config: &GenerationConfig,
) -> Result<usize> {
    config.validate()?;
    if prompts.is_empty() {
        return Err(Error::InvalidInput("no prompts to generate from".into()));
    }
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(Error::InvalidInput(format!("prompt {i} is empty")));
    }
    let vocab = model.vocab_size();
    if let Some(&id) = prompts
        .iter()
        .flat_map(|p| p.iter())
        .find(|&&id| id as usize >= vocab)
    {
        return Err(Error::InvalidInput(format!(
            "token id {id} is outside the model's vocabulary of {vocab}"
        )));
    }
    let context = model.max_position_embeddings();
    let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    if longest >= context {
        return Err(Error::InvalidInput(format!(
            "the prompt ({longest} tokens) does not fit the model's context of {context} tokens"
        )));
    }
    if let Some(&id) = config
        .sequence_bias
        .iter()
        .flat_map(|(seq, _)| seq)
        .find(|&&id| id as usize >= vocab)
    {
        return Err(Error::config(
            "sequence_bias",
            format!("token id {id} is outside the model's vocabulary of {vocab}"),
        ));
    }
    let max_length = longest + config.max_new_tokens;
    if max_length > context {
        return Err(Error::InvalidInput(format!(
            "prompt ({longest} tokens) + max_new_tokens ({}) exceeds the model's context of {context} tokens; \
             at most {} new tokens fit",
            config.max_new_tokens,
            context - longest
        )));
    }
    Ok(max_length)
}

/// One row of a batch being generated.
struct Row {
    /// Left padding, prompt and generated tokens.
    ids: Vec<u32>,
    /// How many of `ids` are left padding.
    padding: usize,
    mask: Vec<u32>,
    /// How many of `ids` are generated tokens (padding fed after the end is not).
    generated: usize,
    finished: Option<FinishReason>,
    logprobs: Vec<TokenLogprob>,
    steps: StepScores,
}

/// Greedy or sampled generation for a batch of prompts, left-padded to one width like
/// transformers' `generate()`: padded slots are masked out, positions count real tokens only,
/// and a finished row is fed padding until every row is done. `on_token(row, id)` sees each
/// new id and may return `false` to stop that row.
///
/// `sources` are the rows' [`Context::source`] (an encoder-decoder's sources); `None`: each
/// row's padded prompt.
pub(crate) fn sample_rows(
    model: &dyn CausalLM,
    prompts: &[&[u32]],
    sources: Option<&[Vec<u32>]>,
    config: &GenerationConfig,
    mut on_token: impl FnMut(usize, u32) -> Result<bool>,
) -> Result<Vec<TokenOutput>> {
    let max_length = check_prompts(model, prompts, config)?;
    let width = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let padded = prompts.iter().any(|p| p.len() < width);
    let pad = config
        .pad_token_id
        .or(config.eos_token_id.first().copied())
        .unwrap_or(0);
    let mut rows: Vec<Row> = prompts
        .iter()
        .map(|p| {
            let n = width - p.len();
            Row {
                ids: std::iter::repeat_n(pad, n)
                    .chain(p.iter().copied())
                    .collect(),
                mask: std::iter::repeat_n(0, n)
                    .chain(std::iter::repeat_n(1, p.len()))
                    .collect(),
                padding: n,
                generated: 0,
                finished: None,
                logprobs: Vec::new(),
                steps: StepScores {
                    rows: 1,
                    ..StepScores::default()
                },
            }
        })
        .collect();
    let batch = rows.len();
    let processors = config.processors(max_length);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut cache = model.new_cache();
    let device = model.device().clone();
    let mut input = Tensor::new(
        rows.iter().flat_map(|r| r.ids.clone()).collect::<Vec<_>>(),
        &device,
    )?
    .reshape((batch, width))?;
    // Classifier-free guidance: the model again, from each row's last prompt token alone.
    let mut unconditional = config
        .guidance()
        .map(|_| -> Result<_> { Ok((model.new_cache(), input.narrow(1, width - 1, 1)?)) })
        .transpose()?;
    let start = Instant::now();
    let mut prefill = Duration::ZERO;
    let deadline = config
        .max_time
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    loop {
        let past = cache.seq_len();
        let seq = input.dim(1)?;
        let (pos, mask) = if padded {
            let flat: Vec<u32> = rows.iter().flat_map(|r| r.mask.iter().copied()).collect();
            let mask = Tensor::from_vec(flat, (batch, past + seq), &device)?;
            (positions_from_mask(&mask, seq)?, Some(mask))
        } else {
            (default_positions(batch, past, seq, &device)?, None)
        };
        let opts = ForwardOptions {
            attention_mask: mask,
            output_hidden_states: config.output_hidden_states,
            logits_to_keep: Some(1),
        };
        let out = model.forward_with(&input, &pos, &opts, &mut cache)?;
        let (logits, hidden) = (out.logits, out.hidden_states);
        if config.output_hidden_states && hidden.is_empty() {
            return Err(Error::config(
                "output_hidden_states",
                format!("{} returns no hidden states here", model.model_type()),
            ));
        }
        let last: Vec<Vec<f32>> = logits.squeeze(1)?.to_vec2()?;
        let uncond: Option<Vec<Vec<f32>>> = match &mut unconditional {
            Some((cache, input)) => {
                let past = cache.seq_len();
                let opts = ForwardOptions {
                    logits_to_keep: Some(1),
                    ..ForwardOptions::default()
                };
                let positions = default_positions(batch, past, 1, &device)?;
                let out = model.forward_with(input, &positions, &opts, cache)?;
                Some(out.logits.squeeze(1)?.to_vec2()?)
            }
            None => None,
        };
        if past == 0 {
            prefill = start.elapsed();
        }
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        let keep_steps = config.output_scores || config.output_logits;
        if config.output_hidden_states {
            for (r, row) in rows.iter_mut().enumerate() {
                let layers = hidden
                    .iter()
                    .map(|h| h.get(r))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                row.steps.hidden_states.push(layers);
            }
        }
        for (r, (row, logits)) in rows.iter_mut().zip(last).enumerate() {
            let ctx = Context {
                ids: &row.ids,
                prompt_len: width,
                padding: row.padding,
                source: match sources {
                    Some(sources) => &sources[r],
                    None => &row.ids[..width],
                },
            };
            let u = uncond.as_ref().map(|u| u[r].as_slice());
            if row.finished.is_some() {
                // transformers runs the processors over finished rows too.
                if keep_steps {
                    let scores = processed(&processors, config, ctx, &logits, u);
                    row.steps.record(config, &scores, &logits);
                }
                row.ids.push(pad);
                row.mask.push(1);
                continue;
            }
            let (next, logprob, scores) =
                next_token(&processors, config, ctx, &logits, u, &mut rng);
            if keep_steps {
                row.steps.record(config, &scores, &logits);
            }
            row.logprobs.extend(logprob);
            row.ids.push(next);
            row.mask.push(1);
            row.generated += 1;
            row.finished = if !on_token(r, next)? {
                Some(FinishReason::Stopped)
            } else if config.eos_token_id.contains(&next) {
                Some(FinishReason::Eos)
            } else if row.ids.len() >= max_length {
                Some(FinishReason::Length)
            } else if timed_out {
                Some(FinishReason::MaxTime)
            } else {
                None
            };
        }
        if rows.iter().all(|r| r.finished.is_some()) {
            break;
        }
        let next: Vec<u32> = rows
            .iter()
            .map(|r| r.ids.last().copied().unwrap_or(pad))
            .collect();
        input = Tensor::from_vec(next, (batch, 1), &device)?;
        if let Some((_, u)) = &mut unconditional {
            *u = input.clone();
        }
    }
    let total = start.elapsed();
    Ok(rows
        .into_iter()
        .map(|row| TokenOutput {
            ids: row.ids[width..width + row.generated].to_vec(),
            finish_reason: row.finished.unwrap_or(FinishReason::Length),
            logprobs: row.logprobs,
            score: None,
            prefill,
            decode: total.saturating_sub(prefill),
            steps: config.keeps_steps().then(|| Arc::new(row.steps)),
            beam_indices: Vec::new(),
        })
        .collect())
}
/// Generates token ids after `prompt` (greedy or sampled). `on_token` sees each new id and
/// may return `false` to stop. Beam search is [`beam_search`](crate::beam_search): it
/// cannot stream, since the best sequence is only known at the end.
pub fn generate_ids(
    model: &dyn CausalLM,
    prompt: &[u32],
    config: &GenerationConfig,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<TokenOutput> {
    if config.num_beams > 1 {
        return Err(Error::config(
            "num_beams",
            "beam search does not stream; use beam_search or generate_batch",
        ));
    }
    if config.num_return_sequences > 1 {
        return Err(Error::config(
            "num_return_sequences",
            "a streamed generation returns one sequence; use generate_batch",
        ));
    }
    if config.prompt_lookup() {
        return prompt_lookup(model, prompt, config, on_token);
    }
    let mut out = sample_rows(model, &[prompt], None, config, |_, id| on_token(id))?;
    out.pop()
        .ok_or_else(|| Error::InvalidInput("no sequence was generated".into()))
}

/// transformers' `generate()` on a batch of prompts of any lengths: `num_return_sequences`
/// outputs per prompt, in prompt order, by greedy search, sampling or beam search
/// (`num_beams > 1`). Greedy and sampled prompts run together, left-padded; beam search runs
/// one prompt at a time.
pub fn generate_batch(
    model: &dyn CausalLM,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
) -> Result<Vec<TokenOutput>> {
    generate_batch_with(model, prompts, config, |_, _| Ok(true))
}

/// [`generate_batch`], showing each new token of greedy and sampled search to `on_token`
/// (its row among the outputs, and the id) as it is produced: returning `false` ends that
/// row, an error ends the whole generation (a caller's cancellation). Beam search, whose
/// tokens are only final at the end, calls it for none.
pub fn generate_batch_with(
    model: &dyn CausalLM,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    on_token: impl FnMut(usize, u32) -> Result<bool>,
) -> Result<Vec<TokenOutput>> {
    if config.num_beams > 1 {
        if config.prompt_lookup() {
            return Err(Error::config(
                "prompt_lookup_num_tokens",
                "prompt lookup runs greedy search, not beam search",
            ));
        }
        return beam_search_batch(model, prompts, config, |_| Ok(false));
    }
    if config.prompt_lookup() {
        // One prompt at a time, as transformers' assisted generation takes them.
        let mut on_token = on_token;
        return prompts
            .iter()
            .enumerate()
            .map(|(row, p)| prompt_lookup(model, p, config, |id| on_token(row, id)))
            .collect();
    }
    let rows: Vec<&[u32]> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.as_slice(), config.num_return_sequences))
        .collect();
    sample_rows(model, &rows, None, config, on_token)
}

/// Text-level result.
#[derive(Debug, Clone)]
pub struct TextOutput {
    pub text: String,
    pub tokens: TokenOutput,
}

/// Generates text after `prompt`, streaming it to `on_text` as it is produced; `on_text`
/// returns `false` to stop (finish reason `Stopped`). Special tokens (and the
/// end-of-sequence token) are not part of the text; stop strings end generation and are cut
/// from it.
pub fn generate_text(
    model: &dyn CausalLM,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    config: &GenerationConfig,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<TextOutput> {
    let mut stream = TextStream::new(tokenizer, &config.stop_strings);
    let mut go_on = true;
    let mut tokens = generate_ids(model, prompt, config, |id| {
        let piece = stream.push(id)?;
        if !piece.is_empty() {
            go_on = on_text(piece);
        }
        Ok(!stream.stopped() && go_on)
    })?;
    if stream.stopped() {
        tokens.finish_reason = FinishReason::StopString;
    } else if tokens.finish_reason != FinishReason::Stopped {
        let rest = stream.finish()?;
        if !rest.is_empty() {
            on_text(rest);
        }
    }
    // When the caller stopped, the text is what it was given.
    let text = stream.emitted().to_owned();
    Ok(TextOutput { text, tokens })
}
