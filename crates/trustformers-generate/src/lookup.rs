//! Prompt lookup decoding (transformers' `prompt_lookup_num_tokens`): greedy search that
//! guesses the next tokens by finding the sequence's last few tokens earlier in it (the
//! prompt, usually: summaries, edits and answers quote their input) and checks the guess in
//! one forward pass, keeping the longest part of it the model agrees with, plus the model's
//! own next token. The ids are greedy search's; there are fewer forward passes when the
//! output copies its input.

use crate::config::GenerationConfig;
use crate::generate::{check_prompts, logprob_of, processed, FinishReason, TokenOutput};
use crate::processors::Context;
use candle_core::Tensor;
use std::time::Duration;
use trustformers_core::{Error, Result};
use trustformers_models::decoder::default_positions;
use trustformers_models::{CausalLM, ForwardOptions};
use web_time::Instant;

/// The tokens that followed the latest earlier occurrence of `ids`' last `n`-gram, for the
/// largest `n` up to `max_ngram` that occurs, at most `count` of them (transformers'
/// `PromptLookupCandidateGenerator`: the first match, scanning from the start).
pub fn lookup_candidates(ids: &[u32], max_ngram: usize, count: usize) -> Vec<u32> {
    for n in (1..=max_ngram.min(ids.len().saturating_sub(1))).rev() {
        let tail = &ids[ids.len() - n..];
        // Windows that end before the tail itself.
        for start in 0..ids.len() - n {
            if &ids[start..start + n] == tail {
                let from = start + n;
                let to = (from + count).min(ids.len());
                if from < to {
                    return ids[from..to].to_vec();
                }
            }
        }
    }
    Vec::new()
}

/// Greedy search after `prompt` with prompt lookup (`config.prompt_lookup_num_tokens`
/// guessed tokens per pass). `on_token` sees each new id and may return `false` to stop.
pub(crate) fn prompt_lookup(
    model: &dyn CausalLM,
    prompt: &[u32],
    config: &GenerationConfig,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<TokenOutput> {
    let guesses = config.prompt_lookup_num_tokens.unwrap_or(0);
    let refuse = |field: &str, why: &str| Err(Error::config(field, why.to_owned()));
    if config.do_sample {
        return refuse(
            "prompt_lookup_num_tokens",
            "prompt lookup runs greedy search here: do_sample must be false",
        );
    }
    if config.keeps_steps() || config.guidance().is_some() {
        return refuse(
            "prompt_lookup_num_tokens",
            "prompt lookup keeps no per-step scores and runs no guidance",
        );
    }
    let max_length = check_prompts(model, &[prompt], config)?;
    let processors = config.processors(max_length);
    let device = model.device().clone();
    let start = Instant::now();
    let deadline = config
        .max_time
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    let mut cache = model.new_cache();
    let mut ids = prompt.to_vec();
    let mut logprobs = Vec::new();
    let mut finished = None;
    let mut prefill = Duration::ZERO;
    // The tokens the next pass feeds: the prompt, then the last token and the guesses.
    let mut feed = prompt.to_vec();
    while finished.is_none() {
        let past = cache.seq_len();
        let input = Tensor::new(feed.as_slice(), &device)?.unsqueeze(0)?;
        let positions = default_positions(1, past, feed.len(), &device)?;
        let guessed = &feed[1.min(feed.len())..];
        let guessed: Vec<u32> = if past == 0 {
            Vec::new()
        } else {
            guessed.to_vec()
        };
        let opts = ForwardOptions {
            logits_to_keep: Some(guessed.len() + 1),
            ..ForwardOptions::default()
        };
        let rows: Vec<Vec<f32>> = model
            .forward_with(&input, &positions, &opts, &mut cache)?
            .logits
            .squeeze(0)?
            .to_vec2()?;
        if past == 0 {
            prefill = start.elapsed();
        }
        for (j, logits) in rows.iter().enumerate() {
            let ctx = Context {
                ids: &ids,
                prompt_len: prompt.len(),
                padding: 0,
                source: prompt,
            };
            let scores = processed(&processors, config, ctx, logits, None);
            let next = argmax(&scores);
            if let Some(n) = config.top_logprobs {
                logprobs.push(logprob_of(logits, next, n));
            }
            ids.push(next);
            finished = if !on_token(next)? {
                Some(FinishReason::Stopped)
            } else if config.eos_token_id.contains(&next) {
                Some(FinishReason::Eos)
            } else if ids.len() >= max_length {
                Some(FinishReason::Length)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(FinishReason::MaxTime)
            } else {
                None
            };
            // The model's token past a wrong guess ends the pass, as does the end.
            if finished.is_some() || guessed.get(j) != Some(&next) {
                break;
            }
        }
        if finished.is_some() {
            break;
        }
        // The cache keeps what was fed and agreed with: all but the newest token.
        cache.truncate(ids.len() - 1).map_err(|e| {
            Error::config(
                "prompt_lookup_num_tokens",
                format!("{}: {e}", model.model_type()),
            )
        })?;
        let room = max_length.saturating_sub(ids.len() + 1);
        let max_ngram = config.max_matching_ngram_size.unwrap_or(2);
        feed = vec![ids[ids.len() - 1]];
        feed.extend(lookup_candidates(&ids, max_ngram, guesses.min(room)));
    }
    let total = start.elapsed();
    Ok(TokenOutput {
        ids: ids[prompt.len()..].to_vec(),
        finish_reason: finished.unwrap_or(FinishReason::Length),
        logprobs,
        score: None,
        prefill,
        decode: total.saturating_sub(prefill),
        steps: None,
        beam_indices: Vec::new(),
    })
}

/// The first maximum, like torch.argmax.
fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}
