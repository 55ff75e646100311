//! `POST /v1/embeddings`.

use super::{check_model, loaded, parse_json, typed};
use crate::api::{EmbeddingInput, EmbeddingRequest};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
use trustformers::pipelines::EmbedParams;

pub(super) async fn embeddings(
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
