//! Beam search as transformers' `_beam_search` runs it (generation/utils.py): every step keeps
//! the `beams_to_keep` best continuations of all beams, continues the best `num_beams` that
//! did not finish, and merges the finished ones into a length-penalised list of
//! `num_beams` hypotheses. The stopping rules (`early_stopping` false / true / "never") and
//! the `-1e9` masking arithmetic are the same, so the same sequences come out.

use crate::config::{EarlyStopping, GenerationConfig};
use crate::generate::{check_prompts, logprob_of};
use crate::processors::{softmax, Context};
use crate::{FinishReason, StepScores, TokenLogprob, TokenOutput};
use candle_core::Tensor;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;
use trustformers_core::numeric::log_softmax;
use trustformers_core::Result;
use trustformers_models::decoder::default_positions;
use trustformers_models::{CausalLM, ForwardOptions};
use web_time::Instant;

/// transformers' stand-in for "impossible" in beam scores.
const NEG: f32 = -1.0e9;

#[derive(Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    /// The running beam each token extended.
    beams: Vec<u32>,
    score: f32,
    finished: bool,
}

impl Hypothesis {
    fn empty(score: f32) -> Self {
        Self {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            beams: Vec::new(),
            score,
            finished: false,
        }
    }
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(values.len());
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let order = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
    }
    idx.truncate(k);
    idx.sort_by(order);
    idx
}

/// `k` indices drawn without replacement with probabilities `softmax(values)`, then ordered by
/// value like transformers' beam sampling does.
fn sample_k(values: &[f32], k: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut probs = softmax(values);
    let mut picked = Vec::with_capacity(k);
    for _ in 0..k.min(values.len()) {
        let total: f32 = probs.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut u = rng.random::<f32>() * total;
        let mut choice = None;
        for (i, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                choice = Some(i);
                if u < p {
                    break;
                }
                u -= p;
            }
        }
        let Some(i) = choice else { break };
        probs[i] = 0.0;
        picked.push(i);
    }
    picked.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    picked
}

/// `len ^ length_penalty` in the f32 transformers divides by.
fn length_norm(len: usize, length_penalty: f32) -> f32 {
    (len as f64).powf(length_penalty as f64) as f32
}

/// Beam search for one prompt: the best `num_return_sequences` hypotheses, best first, each
/// with its length-penalised `score`.
pub fn beam_search(
    model: &dyn CausalLM,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<Vec<TokenOutput>> {
    beam_search_with(model, prompt, config, |_| Ok(false))
}

/// [`beam_search`] with a stopping criterion of the caller's (a stop string): `stops(tokens)`
/// sees each candidate's generated tokens and says whether they end it, as an EOS id would
/// (transformers applies its stopping criteria to every candidate the same way).
pub fn beam_search_with(
    model: &dyn CausalLM,
    prompt: &[u32],
    config: &GenerationConfig,
    stops: impl FnMut(&[u32]) -> Result<bool>,
) -> Result<Vec<TokenOutput>> {
    beam_search_of(model, prompt, prompt, config, stops, 0)
}

/// Beam search for each of `prompts` ([`beam_search_with`]), `num_return_sequences`
/// outputs each, in order. With `output_scores` / `output_logits`, a prompt whose search
/// ends before another's is run again to the same number of steps, its finished
/// hypotheses unchanged, as transformers' batched search goes on scoring the beams of a
/// finished prompt: every prompt then has as many steps of scores.
pub fn beam_search_batch(
    model: &dyn CausalLM,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    mut stops: impl FnMut(&[u32]) -> Result<bool>,
) -> Result<Vec<TokenOutput>> {
    aligned(prompts.len(), config, |i, min_steps| {
        beam_search_of(
            model,
            &prompts[i],
            &prompts[i],
            config,
            &mut stops,
            min_steps,
        )
    })
}

/// Runs `search(i, min_steps)` for `n` prompts; when steps are kept, reruns the prompts
/// whose search had fewer steps than the longest with that many as `min_steps`.
pub(crate) fn aligned(
    n: usize,
    config: &GenerationConfig,
    mut search: impl FnMut(usize, usize) -> Result<Vec<TokenOutput>>,
) -> Result<Vec<TokenOutput>> {
    let mut outs = (0..n).map(|i| search(i, 0)).collect::<Result<Vec<_>>>()?;
    if config.output_scores || config.output_logits {
        let steps = |o: &[TokenOutput]| {
            o.first()
                .and_then(|t| t.steps.as_ref())
                .map_or(0, |s| s.scores.len().max(s.logits.len()))
        };
        let most = outs.iter().map(|o| steps(o)).max().unwrap_or(0);
        for (i, out) in outs.iter_mut().enumerate() {
            if steps(out) < most {
                *out = search(i, most)?;
            }
        }
    }
    Ok(outs.concat())
}

/// [`beam_search_with`] where the processors' [`Context::source`] is `source` (an
/// encoder-decoder's source; a decoder's is its prompt).
///
/// The search goes on for at least `min_steps` steps while the length allows (its finished
/// hypotheses no longer change once it could stop), so that its steps line up with a
/// longer search's in a batch.
pub(crate) fn beam_search_of(
    model: &dyn CausalLM,
    prompt: &[u32],
    source: &[u32],
    config: &GenerationConfig,
    mut stops: impl FnMut(&[u32]) -> Result<bool>,
    min_steps: usize,
) -> Result<Vec<TokenOutput>> {
    let max_length = check_prompts(model, &[prompt], config)?;
    if config.guidance().is_some() {
        return Err(trustformers_core::Error::config(
            "guidance_scale",
            "classifier-free guidance is applied in greedy search and sampling, not beam search",
        ));
    }
    if config.output_hidden_states {
        return Err(trustformers_core::Error::config(
            "output_hidden_states",
            "hidden states are kept by greedy search and sampling, not beam search",
        ));
    }
    let num_beams = config.num_beams;
    let prompt_len = prompt.len();
    let eos = &config.eos_token_id;
    // Enough candidates that `num_beams` of them are still running even if the best ones
    // all end in (any of the) EOS ids.
    let beams_to_keep = 2.max(1 + eos.len()) * num_beams;
    let processors = config.processors(max_length);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let device = model.device().clone();
    let start = Instant::now();
    let deadline = config
        .max_time
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));

    // Prefill the prompt once, then give every beam a copy of its cache.
    let mut cache = model.new_cache();
    let input = Tensor::new(prompt, &device)?.unsqueeze(0)?;
    let opts = ForwardOptions {
        logits_to_keep: Some(1),
        ..ForwardOptions::default()
    };
    let logits = model
        .forward_with(
            &input,
            &default_positions(1, 0, prompt_len, &device)?,
            &opts,
            &mut cache,
        )?
        .logits;
    let first: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    cache.select_rows(&vec![0; num_beams])?;
    let prefill = start.elapsed();
    let mut step_logits = vec![first; num_beams];

    // Only the first beam starts live, so the first step does not pick one token n times.
    let mut running: Vec<Hypothesis> = (0..num_beams)
        .map(|b| Hypothesis::empty(if b == 0 { 0.0 } else { NEG }))
        .collect();
    let mut done: Vec<Hypothesis> = vec![Hypothesis::empty(NEG); num_beams];
    let mut improvable = true;
    let mut cur_len = prompt_len;
    let mut timed_out = false;
    let mut ids = prompt.to_vec();
    let keep_steps = config.output_scores || config.output_logits;
    let mut steps = StepScores {
        rows: num_beams,
        ..StepScores::default()
    };
    loop {
        let vocab = step_logits.first().map_or(0, Vec::len);
        let mut acc = Vec::with_capacity(num_beams * vocab);
        let (mut step_scores, mut step_raw) = (Vec::new(), Vec::new());
        for (beam, logits) in running.iter().zip(&step_logits) {
            let mut lp = log_softmax(logits);
            ids.truncate(prompt_len);
            ids.extend_from_slice(&beam.tokens);
            processors.process(
                &Context {
                    ids: &ids,
                    prompt_len,
                    padding: 0,
                    source,
                },
                &mut lp,
            );
            if config.output_scores {
                step_scores.extend_from_slice(&lp);
            }
            if config.output_logits {
                step_raw.extend_from_slice(logits);
            }
            acc.extend(lp.iter().map(|&x| x + beam.score));
        }
        if keep_steps {
            steps.record(config, &step_scores, &step_raw);
        }
        let top = if config.do_sample {
            sample_k(&acc, beams_to_keep, &mut rng)
        } else {
            top_k(&acc, beams_to_keep)
        };
        timed_out |= deadline.is_some_and(|d| Instant::now() >= d);
        let candidates: Vec<Hypothesis> = top
            .iter()
            .map(|&i| {
                let (beam, id) = (i / vocab, (i % vocab) as u32);
                let mut h = running[beam].clone();
                h.tokens.push(id);
                h.beams.push(beam as u32);
                if let Some(n) = config.top_logprobs {
                    h.logprobs.push(logprob_of(&step_logits[beam], id, n));
                }
                h.score = acc[i];
                h.finished = eos.contains(&id)
                    || cur_len + 1 >= max_length
                    || timed_out
                    || stops(&h.tokens)?;
                Ok(h)
            })
            .collect::<Result<_>>()?;
        let sources: Vec<usize> = top.iter().map(|&i| i / vocab).collect();

        // The best candidates that did not finish keep running.
        let running_scores: Vec<f32> = candidates
            .iter()
            .map(|c| c.score + if c.finished { NEG } else { 0.0 })
            .collect();
        let keep = top_k(&running_scores, num_beams);

        // Finished candidates among the top `num_beams` compete with the finished list.
        let full = config.early_stopping == EarlyStopping::True && done.iter().all(|h| h.finished);
        let norm = length_norm(cur_len + 1 - prompt_len, config.length_penalty);
        let mut merged = done;
        for (k, c) in candidates.iter().enumerate() {
            let just_finished = c.finished && k < num_beams;
            let mut score = c.score / norm;
            if full {
                score += NEG;
            }
            if !improvable {
                score += NEG;
            }
            if !just_finished {
                score += NEG;
            }
            merged.push(Hypothesis {
                score,
                finished: just_finished,
                ..c.clone()
            });
        }
        let merged_scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
        done = top_k(&merged_scores, num_beams)
            .into_iter()
            .map(|i| merged[i].clone())
            .collect();

        let beam_rows: Vec<u32> = keep.iter().map(|&k| sources[k] as u32).collect();
        running = keep
            .iter()
            .map(|&k| Hypothesis {
                score: running_scores[k],
                ..candidates[k].clone()
            })
            .collect();
        cur_len += 1;

        // Can a running beam still beat the worst finished one?
        let best_len =
            if config.early_stopping == EarlyStopping::Never && config.length_penalty > 0.0 {
                max_length - prompt_len
            } else {
                cur_len - prompt_len
            };
        let best_running = running[0].score / length_norm(best_len, config.length_penalty);
        let worst_done = done.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
        improvable &= done
            .iter()
            .any(|h| best_running > if h.finished { worst_done } else { NEG });
        let all_full =
            config.early_stopping == EarlyStopping::True && done.iter().all(|h| h.finished);
        let over = !improvable || all_full || candidates.iter().all(|c| c.finished);
        if cur_len >= max_length || timed_out || (over && cur_len - prompt_len >= min_steps) {
            break;
        }

        cache.select_rows(&beam_rows)?;
        let next: Vec<u32> = running
            .iter()
            .map(|h| h.tokens.last().copied().unwrap_or(0))
            .collect();
        let past = cache.seq_len();
        let input = Tensor::from_vec(next, (num_beams, 1), &device)?;
        let logits = model.forward(
            &input,
            &default_positions(num_beams, past, 1, &device)?,
            &mut cache,
        )?;
        step_logits = logits.squeeze(1)?.to_vec2()?;
    }
    let decode = start.elapsed().saturating_sub(prefill);
    let steps = keep_steps.then(|| Arc::new(steps));
    Ok(done
        .into_iter()
        .take(config.num_return_sequences)
        .map(|h| {
            let finish_reason = match h.tokens.last() {
                Some(id) if eos.contains(id) => FinishReason::Eos,
                _ if timed_out => FinishReason::MaxTime,
                _ => FinishReason::Length,
            };
            TokenOutput {
                ids: h.tokens,
                finish_reason,
                logprobs: h.logprobs,
                score: Some(h.score),
                prefill,
                decode,
                steps: steps.clone(),
                beam_indices: h.beams,
            }
        })
        .collect())
}
