//! `POST /v1/completions`.

use super::generation::{
    choices, collect, completion_logprobs, finish_reason, generation_config, submit, Meta,
};
use super::stream::{sse, Kind};
use super::{generation_request, response_id, unix_now};
use crate::api::{CompletionRequest, Prompt, Usage};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

pub(super) async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (request, sampling, chat): (CompletionRequest, _, _) = generation_request(&state, body)?;
    let tokenizer = &chat.loaded.tokenizer;
    let prompts: Vec<Vec<u32>> = match &request.prompt {
        Prompt::Text(t) => vec![tokenizer.encode_ids(t, true)?],
        Prompt::Texts(ts) => ts
            .iter()
            .map(|t| tokenizer.encode_ids(t, true))
            .collect::<Result<_, _>>()?,
        Prompt::Ids(ids) => vec![ids.clone()],
        Prompt::IdLists(lists) => lists.clone(),
    };
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(ApiError::invalid("prompt", "`prompt` must not be empty"));
    }
    if sampling.stream && prompts.len() > 1 {
        return Err(ApiError::invalid(
            "prompt",
            "streaming takes one prompt per request",
        ));
    }
    let top_logprobs = match request.logprobs {
        Some(n) if n > 5 => {
            return Err(ApiError::invalid(
                "logprobs",
                format!("`logprobs` must be between 0 and 5, got {n}"),
            ))
        }
        other => other,
    };
    let n = choices(&sampling, chat)?;
    if prompts.len() * n > chat.engine.options().max_batch_size {
        return Err(ApiError::invalid(
            "prompt",
            format!(
                "{} prompts x n = {n} sequences exceed --max-batch-size {}",
                prompts.len(),
                chat.engine.options().max_batch_size
            ),
        ));
    }
    let mut receivers = Vec::new();
    for ids in &prompts {
        let config = generation_config(
            chat,
            &sampling,
            sampling.max_tokens.or(Some(16)),
            ids.len(),
            top_logprobs,
        )
        .map_err(|mut e| {
            if e.param.as_deref() == Some("messages") {
                e.param = Some("prompt".into());
            }
            e
        })?;
        receivers.push(submit(chat, ids.clone(), config, n, None)?);
    }
    let meta = |prompt_tokens| Meta::new("cmpl", &state, prompt_tokens, n, top_logprobs.is_some());
    if sampling.stream {
        let usage = sampling.include_usage();
        let prompt = &prompts[0];
        let echo = request
            .echo
            .then(|| tokenizer.decode(prompt, true))
            .transpose()?;
        let Some(rx) = receivers.pop() else {
            return Err(ApiError::internal("no generation was started"));
        };
        return Ok(sse(meta(prompt.len()), rx, usage, Kind::Completion { echo }).into_response());
    }
    let mut all = Vec::new();
    let (mut prompt_tokens, mut completion_tokens) = (0, 0);
    for (p, (rx, ids)) in receivers.into_iter().zip(&prompts).enumerate() {
        let (texts, finishes, logprobs, completion) = collect(rx, n).await?;
        prompt_tokens += ids.len();
        completion_tokens += completion;
        let echo = if request.echo {
            tokenizer.decode(ids, true)?
        } else {
            String::new()
        };
        let m = meta(ids.len());
        for i in 0..n {
            all.push(json!({
                "index": p * n + i,
                "text": format!("{echo}{}", texts[i]),
                "logprobs": m.logprobs.then(|| completion_logprobs(&m, &logprobs[i], &mut echo.len())),
                "finish_reason": finish_reason(finishes[i]),
            }));
        }
    }
    Ok(Json(json!({
        "id": response_id("cmpl"),
        "object": "text_completion",
        "created": unix_now(),
        "model": chat.id,
        "choices": all,
        "usage": Usage::new(prompt_tokens, completion_tokens),
        "system_fingerprint": null,
    }))
    .into_response())
}
