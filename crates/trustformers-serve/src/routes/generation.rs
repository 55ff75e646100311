//! What chat and text completions share: the request's sampling fields as a
//! GenerationConfig, the job for the scheduler, collecting its events, logprobs in OpenAI's
//! two shapes.

use super::{response_id, unix_now};
use crate::api::Sampling;
use crate::engine::{Event, Job};
use crate::error::ApiError;
use crate::{AppState, ChatModel};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedReceiver;
use trustformers::generation::processors::JsonConstraint;
use trustformers::generation::{FinishReason, TokenLogprob};
use trustformers::GenerationConfig;

/// Most `n` and `top_logprobs` a request may ask for.
const MAX_TOP_LOGPROBS: u64 = 20;

/// The request's sampling fields over the model's generation defaults, checked against
/// OpenAI's ranges. `max_tokens` is the room the context leaves when not given.
pub(super) fn generation_config(
    chat: &ChatModel,
    s: &Sampling,
    max_tokens: Option<u64>,
    prompt_len: usize,
    top_logprobs: Option<u64>,
) -> Result<GenerationConfig, ApiError> {
    let mut c = chat.loaded.generation.clone();
    let in_range = |field: &str, v: f64, lo: f64, hi: f64| {
        if v.is_finite() && (lo..=hi).contains(&v) {
            Ok(v as f32)
        } else {
            Err(ApiError::invalid(
                field,
                format!("`{field}` must be between {lo} and {hi}, got {v}"),
            ))
        }
    };
    if prompt_len >= chat.context {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "the prompt has {prompt_len} tokens; the context holds {} in all",
                chat.context
            ),
        ));
    }
    let room = chat.context - prompt_len;
    c.max_new_tokens = match max_tokens {
        None => room,
        Some(0) => return Err(ApiError::invalid("max_tokens", "`max_tokens` must be at least 1")),
        Some(m) if m as usize > room || m > u32::MAX as u64 => {
            return Err(ApiError::invalid(
                "max_tokens",
                format!(
                    "the prompt ({prompt_len} tokens) + max_tokens ({m}) exceed the context of {} tokens",
                    chat.context
                ),
            ))
        }
        Some(m) => m as usize,
    };
    c.min_new_tokens = 0;
    if let Some(t) = s.temperature {
        let t = in_range("temperature", t, 0.0, 2.0)?;
        // 0 is greedy, as llama-server and vLLM read it.
        c.do_sample = t > 0.0;
        if t > 0.0 {
            c.temperature = t;
        }
    }
    if let Some(p) = s.top_p {
        let p = in_range("top_p", p, 0.0, 1.0)?;
        if p == 0.0 {
            return Err(ApiError::invalid("top_p", "`top_p` must be above 0"));
        }
        c.top_p = p;
    }
    if let Some(k) = s.top_k {
        c.top_k = usize::try_from(k).unwrap_or(usize::MAX);
    }
    if let Some(m) = s.min_p {
        c.min_p = Some(in_range("min_p", m, 0.0, 1.0)?);
    }
    if let Some(r) = s.repetition_penalty {
        let r = in_range("repetition_penalty", r, 0.0, 1e6)?;
        if r == 0.0 {
            return Err(ApiError::invalid(
                "repetition_penalty",
                "`repetition_penalty` must be above 0",
            ));
        }
        c.repetition_penalty = r;
    }
    if let Some(f) = s.frequency_penalty {
        c.frequency_penalty = in_range("frequency_penalty", f, -2.0, 2.0)?;
    }
    if let Some(p) = s.presence_penalty {
        c.presence_penalty = in_range("presence_penalty", p, -2.0, 2.0)?;
    }
    if let Some(seed) = s.seed {
        c.seed = seed as u64;
    }
    if let Some(stop) = &s.stop {
        let stop = stop.clone().into_vec();
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                "stop",
                "`stop` takes up to 4 non-empty strings",
            ));
        }
        c.stop_strings = stop;
    }
    if let Some(bias) = &s.logit_bias {
        let vocab = chat.loaded.model.vocab_size();
        c.logit_bias = bias
            .iter()
            .map(|(token, b)| {
                let id = token
                    .parse::<u32>()
                    .ok()
                    .filter(|&id| (id as usize) < vocab);
                let b = b.as_f64().filter(|b| (-100.0..=100.0).contains(b));
                match (id, b) {
                    (Some(id), Some(b)) => Ok((id, b as f32)),
                    (None, _) => Err(ApiError::invalid(
                        "logit_bias",
                        format!("`logit_bias` key {token:?} is not a token id below {vocab}"),
                    )),
                    (_, None) => Err(ApiError::invalid(
                        "logit_bias",
                        format!("`logit_bias[{token:?}]` must be a number in [-100, 100]"),
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
    }
    c.top_logprobs = match top_logprobs {
        Some(n) if n > MAX_TOP_LOGPROBS => {
            return Err(ApiError::invalid(
                "top_logprobs",
                format!("`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}, got {n}"),
            ))
        }
        Some(n) => Some(n as usize),
        None => None,
    };
    c.num_beams = 1;
    c.num_return_sequences = 1;
    c.max_time = None;
    c.validate()?;
    Ok(c)
}

pub(super) fn choices(s: &Sampling, chat: &ChatModel) -> Result<usize, ApiError> {
    let max = chat.engine.options().max_batch_size as u64;
    match s.n {
        None => Ok(1),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid(
            "n",
            format!("`n` must be between 1 and {max} (--max-batch-size), got {n}"),
        )),
    }
}

pub(super) fn submit(
    chat: &ChatModel,
    prompt: Vec<u32>,
    config: GenerationConfig,
    n: usize,
    constraint: Option<JsonConstraint>,
) -> Result<UnboundedReceiver<Event>, ApiError> {
    let (events, rx) = tokio::sync::mpsc::unbounded_channel();
    chat.engine.submit(Job {
        prompt,
        config,
        n,
        constraint,
        events,
        received: Instant::now(),
    })?;
    Ok(rx)
}

/// Per-choice texts, finish reasons and logprobs, and the completion tokens in all.
pub(super) type Collected = (
    Vec<String>,
    Vec<FinishReason>,
    Vec<Vec<TokenLogprob>>,
    usize,
);

pub(super) async fn collect(
    mut rx: UnboundedReceiver<Event>,
    n: usize,
) -> Result<Collected, ApiError> {
    let mut texts = vec![String::new(); n];
    let mut finishes = vec![None; n];
    let mut logprobs = vec![Vec::new(); n];
    let mut completion = 0;
    while finishes.iter().any(Option::is_none) {
        match rx.recv().await {
            Some(Event::Token {
                index,
                text,
                logprob,
                ..
            }) => {
                if let Some(t) = texts.get_mut(index) {
                    t.push_str(&text);
                }
                if let (Some(l), Some(lp)) = (logprobs.get_mut(index), logprob) {
                    l.push(lp);
                }
            }
            Some(Event::Finish {
                index,
                reason,
                completion_tokens,
            }) => {
                if let Some(f) = finishes.get_mut(index) {
                    *f = Some(reason);
                }
                completion += completion_tokens;
            }
            Some(Event::Error(e)) => return Err(e),
            None => return Err(ApiError::internal("the scheduler stopped")),
        }
    }
    let finishes = finishes
        .into_iter()
        .map(|f| f.unwrap_or(FinishReason::Stopped))
        .collect();
    Ok((texts, finishes, logprobs, completion))
}

pub(super) fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length | FinishReason::MaxTime => "length",
        FinishReason::Eos | FinishReason::StopString | FinishReason::Stopped => "stop",
    }
}

/// What a response says besides its choices.
pub(super) struct Meta {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) prompt_tokens: usize,
    pub(super) n: usize,
    pub(super) logprobs: bool,
    pub(super) state: Arc<AppState>,
}

impl Meta {
    pub(super) fn new(
        prefix: &str,
        state: &Arc<AppState>,
        prompt_tokens: usize,
        n: usize,
        logprobs: bool,
    ) -> Self {
        Self {
            id: response_id(prefix),
            created: unix_now(),
            model: state.options.model.clone(),
            prompt_tokens,
            n,
            logprobs,
            state: state.clone(),
        }
    }

    fn token_text(&self, id: u32) -> String {
        self.state
            .models
            .get()
            .and_then(|m| m.chat.loaded.tokenizer.decode(&[id], false).ok())
            .unwrap_or_default()
    }
}

/// Chat's `logprobs.content`.
pub(super) fn chat_logprobs(meta: &Meta, logprobs: &[TokenLogprob]) -> Vec<Value> {
    let entry = |id: u32, logprob: f32| {
        let token = meta.token_text(id);
        json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
    };
    logprobs
        .iter()
        .map(|lp| {
            let mut e = entry(lp.id, lp.logprob);
            e["top_logprobs"] = lp.top.iter().map(|&(id, l)| entry(id, l)).collect();
            e
        })
        .collect()
}

/// Legacy completions' `logprobs` object; `offset` is where the first token starts in the
/// choice's text (after an echoed prompt), and is moved past the last one.
pub(super) fn completion_logprobs(
    meta: &Meta,
    logprobs: &[TokenLogprob],
    offset: &mut usize,
) -> Value {
    let (mut tokens, mut token_logprobs, mut top, mut offsets) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for lp in logprobs {
        let token = meta.token_text(lp.id);
        offsets.push(*offset);
        *offset += token.len();
        tokens.push(token);
        token_logprobs.push(lp.logprob);
        let alternatives: serde_json::Map<String, Value> = lp
            .top
            .iter()
            .map(|&(id, l)| (meta.token_text(id), json!(l)))
            .collect();
        top.push(Value::Object(alternatives));
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets})
}
