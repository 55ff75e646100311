//! Generation one step at a time, for a caller that owns the loop: a server's scheduler
//! keeps many [`Sequence`]s and advances each in turn, admitting new ones between steps.
//! A sequence fed its prompt in one piece and stepped to the end gives the tokens
//! [`generate_ids`](crate::generate_ids) gives for that prompt and configuration (the same
//! processors, the same seeded sampler).

use crate::config::GenerationConfig;
use crate::generate::{check_prompts, next_token, FinishReason, TokenLogprob};
use crate::processors::{Context, LogitsProcessorList};
use candle_core::Tensor;
use rand::{rngs::StdRng, SeedableRng};
use trustformers_core::{Error, Result};
use trustformers_models::decoder::default_positions;
use trustformers_models::Cache;
use trustformers_models::{CausalLM, ForwardOptions};
use trustformers_tokenizers::{DecodeStream, Tokenizer};

/// What one [`Sequence::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Part of the prompt went into the cache; no token yet (chunked prefill).
    Prefilled(usize),
    /// A new token, with its log-probability when `top_logprobs` is set.
    Token(u32, Option<TokenLogprob>),
    /// The sequence had finished already: nothing ran.
    Done,
}

/// One sequence being generated greedily or by sampling, with its own KV cache.
pub struct Sequence {
    /// The prompt, then the generated tokens.
    ids: Vec<u32>,
    prompt_len: usize,
    /// How many of `ids` the cache holds.
    fed: usize,
    max_length: usize,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    rng: StdRng,
    cache: Cache,
    finished: Option<FinishReason>,
}

impl Sequence {
    /// A sequence for `prompt` under `config` (checked as `generate_ids` checks them: the
    /// prompt and `max_new_tokens` must fit the context). Beam search and several return
    /// sequences are not stepwise: they are refused.
    pub fn new(model: &dyn CausalLM, prompt: &[u32], config: &GenerationConfig) -> Result<Self> {
        if config.num_beams > 1 {
            return Err(Error::config(
                "num_beams",
                "beam search is not stepwise; use beam_search",
            ));
        }
        if config.num_return_sequences > 1 {
            return Err(Error::config(
                "num_return_sequences",
                "a sequence is one sequence; make one per return sequence",
            ));
        }
        let max_length = check_prompts(model, &[prompt], config)?;
        if config.guidance().is_some() {
            return Err(Error::config(
                "guidance_scale",
                "classifier-free guidance runs in generate_batch, not stepwise",
            ));
        }
        Ok(Self {
            ids: prompt.to_vec(),
            prompt_len: prompt.len(),
            fed: 0,
            max_length,
            processors: config.processors(max_length),
            rng: StdRng::seed_from_u64(config.seed),
            config: config.clone(),
            cache: model.new_cache(),
            finished: None,
        })
    }

    /// [`Sequence::new`] starting from `cache`, which holds the keys and values of another
    /// sequence's first `cached` tokens, the same as `prompt`'s first `cached` (a shared
    /// system prompt, the earlier turns of a chat): those are not computed again. At least
    /// the prompt's last token is: `cached` must be below the prompt's length.
    pub fn with_prefix(
        model: &dyn CausalLM,
        prompt: &[u32],
        config: &GenerationConfig,
        mut cache: Cache,
        cached: usize,
    ) -> Result<Self> {
        let mut seq = Self::new(model, prompt, config)?;
        if cached >= prompt.len() {
            return Err(Error::InvalidInput(format!(
                "a cached prefix of {cached} tokens leaves nothing of a {}-token prompt to run",
                prompt.len()
            )));
        }
        cache.truncate(cached)?;
        seq.cache = cache;
        seq.fed = cached;
        Ok(seq)
    }

    /// The tokens the cache holds and the cache itself: what a later sequence with the
    /// same beginning can start from ([`Sequence::with_prefix`]).
    pub fn into_cache(self) -> (Vec<u32>, Cache) {
        let mut ids = self.ids;
        ids.truncate(self.fed);
        (ids, self.cache)
    }

    /// Adds `processor` before the configuration's own (a constraint such as
    /// [`JsonConstraint`](crate::processors::JsonConstraint), which must see the scores
    /// before temperature and top-k do).
    pub fn with_processor(
        mut self,
        processor: Box<dyn crate::processors::LogitsProcessor>,
    ) -> Self {
        self.processors.0.insert(0, processor);
        self
    }

    /// Runs the model once: at most `max_prompt_tokens` of the prompt still to process
    /// (`None`: all of it), or the last generated token; picks the next token once the
    /// whole prompt is in. Generation stops at an end-of-sequence token or
    /// `max_new_tokens`; [`Sequence::stop`] ends it from outside.
    pub fn step(&mut self, model: &dyn CausalLM, max_prompt_tokens: Option<usize>) -> Result<Step> {
        if self.finished.is_some() {
            return Ok(Step::Done);
        }
        let take = self.next_take(max_prompt_tokens);
        let device = model.device();
        let input = Tensor::new(&self.ids[self.fed..self.fed + take], device)?.unsqueeze(0)?;
        let positions = default_positions(1, self.fed, take, device)?;
        let opts = ForwardOptions {
            logits_to_keep: Some(1),
            ..Default::default()
        };
        let logits = model
            .forward_with(&input, &positions, &opts, &mut self.cache)?
            .logits;
        self.fed += take;
        if self.fed < self.prompt_len {
            return Ok(Step::Prefilled(take));
        }
        Ok(self.choose(logits.flatten_all()?.to_vec1()?))
    }

    /// How many tokens the next step feeds: the rest of the prompt (at most
    /// `max_prompt_tokens`), or the last token.
    pub fn next_take(&self, max_prompt_tokens: Option<usize>) -> usize {
        let pending = self.ids.len() - self.fed;
        if self.fed < self.prompt_len {
            pending.min(max_prompt_tokens.unwrap_or(usize::MAX).max(1))
        } else {
            pending
        }
    }

    /// Whether the prompt is in and the sequence goes on: it takes one token a step.
    pub fn decoding(&self) -> bool {
        self.finished.is_none() && self.fed >= self.prompt_len && self.ids.len() - self.fed == 1
    }

    /// Picks the next token from the last position's logits.
    fn choose(&mut self, logits: Vec<f32>) -> Step {
        let ctx = Context {
            ids: &self.ids,
            prompt_len: self.prompt_len,
            padding: 0,
            source: &self.ids[..self.prompt_len],
        };
        let (next, logprob, _) = next_token(
            &self.processors,
            &self.config,
            ctx,
            &logits,
            None,
            &mut self.rng,
        );
        self.ids.push(next);
        if self.config.eos_token_id.contains(&next) {
            self.finished = Some(FinishReason::Eos);
        } else if self.ids.len() >= self.max_length {
            self.finished = Some(FinishReason::Length);
        }
        Step::Token(next, logprob)
    }

    /// Ends the sequence (a stop string seen by the caller, a client gone): `reason` is
    /// what [`Sequence::finished`] then says. A finished sequence keeps its first reason.
    pub fn stop(&mut self, reason: FinishReason) {
        self.finished.get_or_insert(reason);
    }

    /// Why the sequence ended, once it has.
    pub fn finished(&self) -> Option<FinishReason> {
        self.finished
    }

    /// The prompt's length in tokens.
    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    /// The tokens generated so far (an end-of-sequence token included).
    pub fn generated(&self) -> &[u32] {
        &self.ids[self.prompt_len..]
    }

    /// Bytes the KV cache holds.
    pub fn cache_bytes(&self) -> usize {
        self.cache.memory_bytes()
    }

    /// Drops the cache's memory now (the sequence is over but still referenced).
    pub fn free_cache(&mut self, model: &dyn CausalLM) {
        self.cache = model.new_cache();
    }
}

/// One step of each of `seqs` in one forward pass ([`CausalLM::forward_rows`]: each weight
/// read once for all of them). Every row feeds the same number of tokens: the fewest any
/// of the sequences has to feed, and at most `max_prompt_tokens` of a prompt; so a group
/// of [`Sequence::decoding`] sequences takes one token each, and a group of prompts of one
/// length goes in together. The steps are those [`Sequence::step`] gives each sequence
/// alone (up to rounding in the batched matrix products).
pub fn step_rows(
    model: &dyn CausalLM,
    seqs: &mut [&mut Sequence],
    max_prompt_tokens: Option<usize>,
) -> Result<Vec<Step>> {
    if let Some(i) = seqs.iter().position(|s| s.finished.is_some()) {
        return Err(Error::InvalidInput(format!("sequence {i} has finished")));
    }
    let Some(take) = seqs.iter().map(|s| s.next_take(max_prompt_tokens)).min() else {
        return Ok(Vec::new());
    };
    let device = model.device();
    let rows = seqs.len();
    let ids: Vec<u32> = seqs
        .iter()
        .flat_map(|s| s.ids[s.fed..s.fed + take].iter().copied())
        .collect();
    let positions: Vec<i64> = seqs
        .iter()
        .flat_map(|s| (s.fed..s.fed + take).map(|p| p as i64))
        .collect();
    let input = Tensor::from_vec(ids, (rows, take), device)?;
    let positions = Tensor::from_vec(positions, (rows, take), device)?;
    let mut caches: Vec<&mut Cache> = seqs.iter_mut().map(|s| &mut s.cache).collect();
    let logits: Vec<Vec<f32>> = model
        .forward_rows(&input, &positions, &mut caches)?
        .to_vec2()?;
    Ok(seqs
        .iter_mut()
        .zip(logits)
        .map(|(s, logits)| {
            s.fed += take;
            if s.fed < s.prompt_len {
                Step::Prefilled(take)
            } else {
                s.choose(logits)
            }
        })
        .collect())
}

/// Token ids to text as generation produces them: the streaming detokenizer, with stop
/// strings cut from the text and whatever might begin one held back until it is ruled out.
pub struct TextStream<'a> {
    decode: DecodeStream<'a>,
    stop_strings: Vec<String>,
    text: String,
    emitted: usize,
    stopped: bool,
}

impl<'a> TextStream<'a> {
    /// A stream through `tokenizer` (special tokens skipped) that ends at any of
    /// `stop_strings`.
    pub fn new(tokenizer: &'a Tokenizer, stop_strings: &[String]) -> Self {
        Self {
            decode: DecodeStream::new(tokenizer, true),
            stop_strings: stop_strings.to_vec(),
            text: String::new(),
            emitted: 0,
            stopped: false,
        }
    }

    /// Adds a token; returns the text that can be shown now (empty while a piece is
    /// incomplete or might start a stop string).
    pub fn push(&mut self, id: u32) -> Result<&str> {
        if self.stopped {
            return Ok("");
        }
        if let Some(piece) = self.decode.step(id)? {
            self.text.push_str(&piece);
        }
        if let Some(at) = self
            .stop_strings
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            self.stopped = true;
        }
        let ready = if self.stopped {
            self.text.len()
        } else {
            self.text.len() - held_back(&self.text, &self.stop_strings)
        };
        Ok(self.release(ready))
    }

    /// Whether a stop string has appeared: generation should end.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The end of generation: the rest of the text, what was held back included (unless
    /// a stop string cut it).
    pub fn finish(&mut self) -> Result<&str> {
        if !self.stopped {
            if let Some(rest) = self.decode.finish()? {
                self.text.push_str(&rest);
            }
        }
        Ok(self.release(self.text.len()))
    }

    /// The text shown so far.
    pub fn emitted(&self) -> &str {
        &self.text[..self.emitted]
    }

    fn release(&mut self, ready: usize) -> &str {
        let from = self.emitted;
        self.emitted = self.emitted.max(ready);
        &self.text[from..self.emitted]
    }
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
