//! The routes: request checks, the requests' translation into generation settings, and
//! the responses, whole or streamed as server-sent events. This file: the router, its
//! middleware (request counting, the API key), the small endpoints and what the handlers
//! share; one file per generation endpoint beside it.

mod chat;
mod completions;
mod embeddings;
mod generation;
mod stream;

use crate::api::Sampling;
use crate::error::ApiError;
use crate::{AppState, ChatModel, Models};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The server's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.options.max_body_bytes;
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
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
    Html(include_str!("../chat.html"))
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

async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let models = loaded(&state)?;
    let created = unix_now();
    let entry = |id: &str| json!({"id": id, "object": "model", "created": created, "owned_by": "trustformers"});
    let mut data = vec![entry(&models.chat.id)];
    data.extend(models.embedding.iter().map(|e| entry(&e.id)));
    Ok(Json(json!({"object": "list", "data": data})))
}
