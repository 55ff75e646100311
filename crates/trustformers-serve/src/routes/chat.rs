//! `POST /v1/chat/completions`.

use super::generation::{
    chat_logprobs, choices, collect, finish_reason, generation_config, submit, Meta,
};
use super::generation_request;
use super::stream::{sse, Kind};
use crate::api::ChatRequest;
use crate::api::Usage;
use crate::error::ApiError;
use crate::tools::{self, ToolCallStream};
use crate::{AppState, ChatModel};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use trustformers::generation::processors::JsonConstraint;
use trustformers::tokenizers::chat::{ChatOptions, Message};

/// Text content of a message: a string, or the text parts of a list of parts.
fn text_content(message: &mut Message, index: usize) -> Result<(), ApiError> {
    if let Value::Array(parts) = &message.content {
        let mut text = String::new();
        for part in parts {
            match (part["type"].as_str(), part["text"].as_str()) {
                (Some("text"), Some(t)) => text.push_str(t),
                _ => {
                    return Err(ApiError::invalid(
                        &format!("messages[{index}].content"),
                        "only text content parts are supported by this model",
                    ))
                }
            }
        }
        message.content = Value::String(text);
    }
    Ok(())
}

pub(super) async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (request, sampling, chat): (ChatRequest, _, _) = generation_request(&state, body)?;
    let constraint = response_format(chat, request.response_format.as_ref())?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    if !chat.loaded.has_chat_template() {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "`{}` has no chat template; use /v1/completions with a prompt",
                chat.id
            ),
        ));
    }
    let mut messages = request.messages.clone();
    for (i, m) in messages.iter_mut().enumerate() {
        text_content(m, i)?;
    }
    let tools = match request.tool_choice.as_ref().and_then(Value::as_str) {
        Some("none") => None,
        _ => request.tools.clone().filter(|t| !t.is_empty()),
    };
    // With tools, `<tool_call>` blocks in the reply become `tool_calls`.
    let calls_tools = tools.is_some();
    let opts = ChatOptions {
        add_generation_prompt: true,
        tools,
        ..Default::default()
    };
    let tokenizer = &chat.loaded.tokenizer;
    let prompt = tokenizer.apply_chat_template(&messages, &opts)?;
    let ids = tokenizer.encode_ids(&prompt, false)?;
    let top_logprobs = match (request.logprobs, request.top_logprobs) {
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`",
            ))
        }
        (false, None) => None,
        (true, n) => Some(n.unwrap_or(0)),
    };
    let max_tokens = request.max_completion_tokens.or(sampling.max_tokens);
    let config = generation_config(chat, &sampling, max_tokens, ids.len(), top_logprobs)?;
    let n = choices(&sampling, chat)?;
    let rx = submit(chat, ids.clone(), config, n, constraint)?;
    let meta = Meta::new("chatcmpl", &state, ids.len(), n, request.logprobs);
    if sampling.stream {
        let usage = sampling.include_usage();
        let tools = calls_tools.then(|| (0..n).map(|_| ToolCallStream::default()).collect());
        Ok(sse(meta, rx, usage, Kind::Chat { tools }).into_response())
    } else {
        let (texts, finishes, logprobs, completion) = collect(rx, n).await?;
        let choices: Vec<Value> = (0..n)
            .map(|i| {
                let (text, calls) = if calls_tools {
                    tools::parse(&texts[i], &format!("call_{i}"))
                } else {
                    (texts[i].clone(), Vec::new())
                };
                let mut message = json!({"role": "assistant", "content": text});
                let mut reason = finish_reason(finishes[i]);
                if !calls.is_empty() {
                    if text.is_empty() {
                        message["content"] = Value::Null;
                    }
                    message["tool_calls"] = Value::Array(calls);
                    reason = "tool_calls";
                }
                json!({
                    "index": i,
                    "message": message,
                    "logprobs": meta.logprobs.then(|| json!({"content": chat_logprobs(&meta, &logprobs[i])})),
                    "finish_reason": reason,
                })
            })
            .collect();
        Ok(Json(json!({
            "id": meta.id,
            "object": "chat.completion",
            "created": meta.created,
            "model": meta.model,
            "choices": choices,
            "usage": Usage::new(meta.prompt_tokens, completion),
            "system_fingerprint": null,
        }))
        .into_response())
    }
}

/// `response_format`: text (none), any JSON object, or a JSON schema, enforced while
/// decoding so that the reply parses.
fn response_format(
    chat: &ChatModel,
    format: Option<&Value>,
) -> Result<Option<JsonConstraint>, ApiError> {
    let Some(format) = format else {
        return Ok(None);
    };
    let eos = chat.loaded.generation.eos_token_id.clone();
    match format["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(JsonConstraint::object(chat.token_texts(), eos))),
        Some("json_schema") => {
            let Some(schema) = format["json_schema"].get("schema") else {
                return Err(ApiError::invalid(
                    "response_format",
                    "`json_schema` needs `json_schema.schema`",
                ));
            };
            Ok(Some(JsonConstraint::schema(
                chat.token_texts(),
                eos,
                schema,
            )?))
        }
        _ => Err(ApiError::invalid(
            "response_format",
            "`response_format.type` is `text`, `json_object` or `json_schema`",
        )),
    }
}
