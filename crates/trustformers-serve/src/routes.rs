//! The routes: request checks, the requests' translation into generation settings, and
//! the responses, whole or streamed as server-sent events.

use crate::api::{
    ChatRequest, CompletionRequest, EmbeddingInput, EmbeddingRequest, Prompt, Sampling, Usage,
};
use crate::engine::{Event, Job};
use crate::error::ApiError;
use crate::tools::{self, ToolCallStream};
use crate::{AppState, ChatModel, Models};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::stream::{self, Stream};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedReceiver;
use trustformers::generation::processors::JsonConstraint;
use trustformers::generation::{FinishReason, TokenLogprob};
use trustformers::pipelines::EmbedParams;
use trustformers::tokenizers::chat::{ChatOptions, Message};
use trustformers::GenerationConfig;

/// Most `n` and `top_logprobs` a request may ask for.
const MAX_TOP_LOGPROBS: u64 = 20;

/// The server's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.options.max_body_bytes;
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .merge(v1)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/", get(chat_page))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts every answer by endpoint and status, and logs it.
async fn count(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let endpoint = match path.as_str() {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/embeddings"
        | "/v1/models"
        | "/health"
        | "/metrics"
        | "/" => path.as_str(),
        _ => "other",
    };
    state.metrics.request(endpoint, status);
    tracing::info!(%method, path = endpoint, status, elapsed_ms = start.elapsed().as_millis() as u64, "request");
    response
}

/// `Authorization: Bearer <key>` on `/v1/*` when a key is set.
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.options.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                return ApiError::unauthorized(
                    "You didn't provide an API key: pass it as `Authorization: Bearer <key>`",
                )
                .into_response()
            }
            Some(given) if !constant_time_eq(given.as_bytes(), key.as_bytes()) => {
                return ApiError::unauthorized("Incorrect API key provided").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// how much of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(request: Request) -> ApiError {
    ApiError::with_status(
        StatusCode::NOT_FOUND,
        format!(
            "{} {} is not a route of this server",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.models.get() {
        Some(_) => Json(json!({"status": "ok"})).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn chat_page() -> Html<&'static str> {
    Html(include_str!("chat.html"))
}

fn loaded(state: &AppState) -> Result<&Models, ApiError> {
    state
        .models
        .get()
        .ok_or_else(|| ApiError::unavailable("the models are still loading"))
}

/// The body as JSON: 413 past the limit, 400 when it is not JSON.
fn parse_json(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|e| ApiError::with_status(e.status(), e.body_text()))?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

/// `T` read from the body, with a wrong field named as the error's `param`.
fn typed<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("the body does not fit this route: {inner}"))
        } else {
            ApiError::invalid(&path, format!("`{path}`: {inner}"))
        }
    })
}

/// A chat or text completion request: the body as `T`, its sampling fields, and the
/// model, which must be the one served (or not named).
fn generation_request<T: DeserializeOwned>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(T, Sampling, &ChatModel), ApiError> {
    let body = parse_json(body)?;
    let request: T = typed(&body)?;
    let sampling: Sampling = typed(&body)?;
    let chat = &loaded(state)?.chat;
    check_model(sampling.model.as_deref(), &chat.id)?;
    Ok((request, sampling, chat))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An id for a response: the prefix, the time and a per-process counter.
fn response_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{:x}{nanos:08x}{n:x}", unix_now())
}

fn check_model(requested: Option<&str>, served: &str) -> Result<(), ApiError> {
    match requested {
        Some(name) if name != served => Err(ApiError::model_not_found(name)),
        _ => Ok(()),
    }
}

/// The request's sampling fields over the model's generation defaults, checked against
/// OpenAI's ranges. `max_tokens` is the room the context leaves when not given.
fn generation_config(
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

fn choices(s: &Sampling, chat: &ChatModel) -> Result<usize, ApiError> {
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

async fn chat_completions(
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

async fn completions(
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

async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: EmbeddingRequest = typed(&parse_json(body)?)?;
    let models = loaded(&state)?;
    let Some(embedding) = &models.embedding else {
        return Err(match &request.model {
            Some(name) => ApiError::model_not_found(name),
            None => ApiError::invalid(
                "model",
                "this server has no embedding model (start it with --embedding-model)",
            ),
        });
    };
    check_model(request.model.as_deref(), &embedding.id)?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("`encoding_format` is `float` or `base64`, not {other:?}"),
            ))
        }
    };
    let tokenizer = embedding.model.tokenizer();
    // Token arrays are decoded to text and tokenized again by the model's own pipeline.
    let decode = |ids: &[u32]| tokenizer.decode(ids, false);
    let texts: Vec<String> = match request.input {
        EmbeddingInput::Text(t) => vec![t],
        EmbeddingInput::Texts(ts) => ts,
        EmbeddingInput::Ids(ids) => vec![decode(&ids)?],
        EmbeddingInput::IdLists(lists) => lists
            .iter()
            .map(|ids| decode(ids))
            .collect::<Result<_, _>>()?,
    };
    if texts.is_empty() {
        return Err(ApiError::invalid("input", "`input` must not be empty"));
    }
    if texts.len() > 2048 {
        return Err(ApiError::invalid(
            "input",
            format!("`input` takes at most 2048 items, got {}", texts.len()),
        ));
    }
    let mut prompt_tokens = 0;
    for t in &texts {
        let n = tokenizer.encode_ids(t, true)?.len();
        prompt_tokens += n.min(embedding.model.max_seq_length());
    }
    let model = embedding.model.clone();
    let vectors = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        model.encode(&refs, &EmbedParams::default())
    })
    .await
    .map_err(|e| ApiError::internal(format!("embedding failed: {e}")))??;
    if let (Some(d), Some(first)) = (request.dimensions, vectors.first()) {
        if d as usize != first.len() {
            return Err(ApiError::invalid(
                "dimensions",
                format!(
                    "`{}` makes {}-dimensional embeddings and cannot shorten them",
                    embedding.id,
                    first.len()
                ),
            ));
        }
    }
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": embedding.id,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }))
    .into_response())
}

async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let models = loaded(&state)?;
    let created = unix_now();
    let entry = |id: &str| json!({"id": id, "object": "model", "created": created, "owned_by": "trustformers"});
    let mut data = vec![entry(&models.chat.id)];
    data.extend(models.embedding.iter().map(|e| entry(&e.id)));
    Ok(Json(json!({"object": "list", "data": data})))
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

fn submit(
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
type Collected = (
    Vec<String>,
    Vec<FinishReason>,
    Vec<Vec<TokenLogprob>>,
    usize,
);

async fn collect(mut rx: UnboundedReceiver<Event>, n: usize) -> Result<Collected, ApiError> {
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

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length | FinishReason::MaxTime => "length",
        FinishReason::Eos | FinishReason::StopString | FinishReason::Stopped => "stop",
    }
}

/// What a response says besides its choices.
struct Meta {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: usize,
    n: usize,
    logprobs: bool,
    state: Arc<AppState>,
}

impl Meta {
    fn new(
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
fn chat_logprobs(meta: &Meta, logprobs: &[TokenLogprob]) -> Vec<Value> {
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
fn completion_logprobs(meta: &Meta, logprobs: &[TokenLogprob], offset: &mut usize) -> Value {
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

enum Kind {
    /// With tools: each choice's text goes through its tool-call filter.
    Chat {
        tools: Option<Vec<ToolCallStream>>,
    },
    Completion {
        echo: Option<String>,
    },
}

/// The state of a streamed response.
struct Streaming {
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    kind: Kind,
    include_usage: bool,
    pending: VecDeque<SseEvent>,
    finished: usize,
    completion_tokens: usize,
    /// Completions: where the next token starts in the text (one choice is streamed).
    offset: usize,
    done: bool,
}

impl Streaming {
    fn chunk(&self, choice: Value) -> SseEvent {
        let object = match self.kind {
            Kind::Chat { .. } => "chat.completion.chunk",
            Kind::Completion { .. } => "text_completion",
        };
        let body = json!({
            "id": self.meta.id,
            "object": object,
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [choice],
            "system_fingerprint": null,
        });
        SseEvent::default().data(body.to_string())
    }

    fn start(&mut self) {
        for index in 0..self.meta.n {
            let choice = match &self.kind {
                Kind::Chat { .. } => json!({
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": null,
                    "finish_reason": null,
                }),
                Kind::Completion { echo: Some(echo) } => json!({
                    "index": index, "text": echo, "logprobs": null, "finish_reason": null,
                }),
                Kind::Completion { echo: None } => continue,
            };
            let event = self.chunk(choice);
            self.pending.push_back(event);
        }
    }

    fn on(&mut self, event: Event) {
        match event {
            Event::Token {
                index,
                text,
                logprob,
                ..
            } => {
                let text = match &mut self.kind {
                    Kind::Chat { tools: Some(tools) } => match tools.get_mut(index) {
                        Some(t) => t.push(&text),
                        None => text,
                    },
                    _ => text,
                };
                if text.is_empty() && logprob.is_none() {
                    return;
                }
                let lp = logprob.map(|lp| vec![lp]).unwrap_or_default();
                let choice = match self.kind {
                    Kind::Chat { .. } => json!({
                        "index": index,
                        "delta": {"content": text},
                        "logprobs": self.meta.logprobs.then(|| json!({"content": chat_logprobs(&self.meta, &lp)})),
                        "finish_reason": null,
                    }),
                    Kind::Completion { .. } => json!({
                        "index": index,
                        "text": text,
                        "logprobs": self.meta.logprobs.then(|| completion_logprobs(&self.meta, &lp, &mut self.offset)),
                        "finish_reason": null,
                    }),
                };
                let event = self.chunk(choice);
                self.pending.push_back(event);
            }
            Event::Finish {
                index,
                reason,
                completion_tokens,
            } => {
                self.completion_tokens += completion_tokens;
                let mut reason = finish_reason(reason);
                let calls = match &mut self.kind {
                    Kind::Chat { tools: Some(tools) } => match tools.get_mut(index) {
                        Some(t) => std::mem::take(t).finish(&format!("call_{index}")),
                        None => (String::new(), Vec::new()),
                    },
                    _ => (String::new(), Vec::new()),
                };
                let (rest, calls) = calls;
                if !rest.is_empty() {
                    let event = self.chunk(json!({
                        "index": index, "delta": {"content": rest}, "logprobs": null,
                        "finish_reason": null,
                    }));
                    self.pending.push_back(event);
                }
                if !calls.is_empty() {
                    reason = "tool_calls";
                    let calls: Vec<Value> = calls
                        .into_iter()
                        .enumerate()
                        .map(|(k, mut c)| {
                            c["index"] = k.into();
                            c
                        })
                        .collect();
                    let event = self.chunk(json!({
                        "index": index, "delta": {"tool_calls": calls}, "logprobs": null,
                        "finish_reason": null,
                    }));
                    self.pending.push_back(event);
                }
                let choice = match self.kind {
                    Kind::Chat { .. } => json!({
                        "index": index, "delta": {}, "logprobs": null,
                        "finish_reason": reason,
                    }),
                    Kind::Completion { .. } => json!({
                        "index": index, "text": "", "logprobs": null,
                        "finish_reason": reason,
                    }),
                };
                let event = self.chunk(choice);
                self.pending.push_back(event);
                self.finished += 1;
                if self.finished == self.meta.n {
                    self.end();
                }
            }
            Event::Error(e) => {
                // Headers are sent: the error goes in the stream, as OpenAI's does.
                self.pending
                    .push_back(SseEvent::default().data(e.body().to_string()));
                self.end();
            }
        }
    }

    fn end(&mut self) {
        if self.include_usage {
            let mut body = json!({
                "id": self.meta.id,
                "object": match self.kind { Kind::Chat { .. } => "chat.completion.chunk", Kind::Completion { .. } => "text_completion" },
                "created": self.meta.created,
                "model": self.meta.model,
                "choices": [],
                "system_fingerprint": null,
            });
            body["usage"] = json!(Usage::new(self.meta.prompt_tokens, self.completion_tokens));
            self.pending
                .push_back(SseEvent::default().data(body.to_string()));
        }
        self.pending.push_back(SseEvent::default().data("[DONE]"));
        self.done = true;
    }
}

/// The events of `rx` as server-sent events, ending with `data: [DONE]`. Dropping the
/// stream (the client went away) closes `rx`, and the scheduler drops the sequences.
fn sse(
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
    kind: Kind,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let offset = match &kind {
        Kind::Completion { echo: Some(echo) } => echo.len(),
        _ => 0,
    };
    let mut state = Streaming {
        meta,
        rx,
        kind,
        include_usage,
        pending: VecDeque::new(),
        finished: 0,
        completion_tokens: 0,
        offset,
        done: false,
    };
    state.start();
    let events = stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok(event), s));
            }
            if s.done {
                return None;
            }
            match s.rx.recv().await {
                Some(event) => s.on(event),
                None => {
                    s.on(Event::Error(ApiError::internal("the scheduler stopped")));
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
