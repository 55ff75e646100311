//! The generation loop: prefill the prompt, then one token at a time through the KV cache,
//! the logits processors and greedy or seeded multinomial selection; text comes out through
//! the streaming detokenizer, with stop strings held back until they can be ruled out.

use crate::config::GenerationConfig;
use crate::processors::{softmax, Context};
use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::{Duration, Instant};
use trustformers_core::{Error, Result};
use trustformers_models::decoder::default_positions;
use trustformers_models::DecoderForCausalLM;
use trustformers_tokenizers::{DecodeStream, Tokenizer};

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

/// Token-level result.
#[derive(Debug, Clone)]
pub struct TokenOutput {
    /// Generated ids (the final EOS included, as transformers returns it).
    pub ids: Vec<u32>,
    pub finish_reason: FinishReason,
    /// Time to process the prompt, and to generate the rest.
    pub prefill: Duration,
    pub decode: Duration,
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

/// Generates token ids after `prompt`. `on_token` sees each new id and may return `false`
/// to stop.
pub fn generate_ids(
    model: &DecoderForCausalLM,
    prompt: &[u32],
    config: &GenerationConfig,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<TokenOutput> {
    config.validate()?;
    if prompt.is_empty() {
        return Err(Error::InvalidInput("the prompt is empty".into()));
    }
    let context = model.model().spec().max_position_embeddings;
    let max_length = prompt.len() + config.max_new_tokens;
    if max_length > context {
        return Err(Error::InvalidInput(format!(
            "prompt ({} tokens) + max_new_tokens ({}) exceeds the model's context of {context} tokens",
            prompt.len(),
            config.max_new_tokens
        )));
    }
    let processors = config.processors(max_length);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut cache = model.new_cache();
    let mut ids = prompt.to_vec();
    let mut input = Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?;
    let start = Instant::now();
    let mut prefill = Duration::ZERO;
    let deadline = config
        .max_time
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    let finish_reason = loop {
        let past = cache.seq_len();
        let pos = default_positions(1, past, input.dim(1)?, &Device::Cpu)?;
        let logits = model.forward(&input, &pos, &mut cache)?;
        let last = logits.narrow(1, logits.dim(1)? - 1, 1)?.flatten_all()?;
        let mut scores: Vec<f32> = last.to_vec1()?;
        if past == 0 {
            prefill = start.elapsed();
        }
        processors.process(
            &Context {
                ids: &ids,
                prompt_len: prompt.len(),
            },
            &mut scores,
        );
        let next = select(&scores, config.do_sample, &mut rng);
        ids.push(next);
        if !on_token(next)? {
            break FinishReason::Stopped;
        }
        if config.eos_token_id.contains(&next) {
            break FinishReason::Eos;
        }
        if ids.len() >= max_length {
            break FinishReason::Length;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break FinishReason::MaxTime;
        }
        input = Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?;
    };
    let total = start.elapsed();
    Ok(TokenOutput {
        ids: ids[prompt.len()..].to_vec(),
        finish_reason,
        prefill,
        decode: total.saturating_sub(prefill),
    })
}

/// Text-level result.
#[derive(Debug, Clone)]
pub struct TextOutput {
    pub text: String,
    pub tokens: TokenOutput,
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string: that
/// much must be held back, since the next token may complete a stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            if text.ends_with(&stop[..i]) {
                hold = hold.max(i);
            }
        }
    }
    hold
}

/// Generates text after `prompt`, streaming it to `on_text` as it is produced. Special
/// tokens (and the end-of-sequence token) are not part of the text; stop strings end
/// generation and are cut from it.
pub fn generate_text(
    model: &DecoderForCausalLM,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    config: &GenerationConfig,
    mut on_text: impl FnMut(&str),
) -> Result<TextOutput> {
    let mut stream = DecodeStream::new(tokenizer, true);
    let mut text = String::new();
    let mut emitted = 0usize;
    let mut stopped = false;
    let mut tokens = generate_ids(model, prompt, config, |id| {
        if let Some(piece) = stream.step(id)? {
            text.push_str(&piece);
        }
        if let Some(at) = config
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(at);
            stopped = true;
        }
        let ready = if stopped {
            text.len()
        } else {
            text.len() - held_back(&text, &config.stop_strings)
        };
        if ready > emitted {
            on_text(&text[emitted..ready]);
            emitted = ready;
        }
        Ok(!stopped)
    })?;
    if !stopped {
        if let Some(rest) = stream.finish()? {
            text.push_str(&rest);
        }
        if text.len() > emitted {
            on_text(&text[emitted..]);
        }
    } else {
        tokens.finish_reason = FinishReason::StopString;
    }
    Ok(TextOutput { text, tokens })
}
