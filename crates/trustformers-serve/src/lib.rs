//! `trustformers serve`: an OpenAI-compatible HTTP server over the facade's
//! [`LoadedModel`] and [`SentenceTransformer`], on axum and tokio.
//!
//! - `POST /v1/chat/completions`, `POST /v1/completions` (streamed as server-sent events
//!   or not), `POST /v1/embeddings`, `GET /v1/models`, with OpenAI's JSON shapes and error
//!   object;
//! - `GET /health` (503 until the models are loaded), `GET /metrics` (Prometheus);
//! - a scheduler thread that interleaves the running sequences step by step
//!   ([`engine`]), a bounded queue (429 beyond it), a body limit (413), an API key (401).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let options = trustformers_serve::ServeOptions::new("smollm2-135m-instruct");
//! trustformers_serve::serve(listener, options, std::future::pending()).await
//! # }
//! ```

pub mod api;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod prefix;
mod routes;
pub mod tools;

pub use engine::EngineOptions;
pub use error::ApiError;
pub use routes::router;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use trustformers::pipelines::SentenceTransformer;
use trustformers::{resolve_model, LoadOptions, LoadedModel};

/// Largest request body by default: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// What to serve and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The generative model: a directory, a .gguf file, a Hub id or an alias, resolved as
    /// every command resolves it. Its `id` in the API is this string.
    pub model: String,
    /// An embedding model for `/v1/embeddings`, resolved the same way.
    pub embedding_model: Option<String>,
    /// Requests to `/v1/*` need `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    pub engine: EngineOptions,
    /// Longest prompt + completion; the model's context when `None` or larger.
    pub ctx_size: Option<usize>,
    pub max_body_bytes: usize,
    pub load: LoadOptions,
    /// How long in-flight streams may go on after a shutdown signal before they are ended.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// Defaults for serving `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            embedding_model: None,
            api_key: None,
            engine: EngineOptions::default(),
            ctx_size: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            load: LoadOptions::default(),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// The generative model, loaded, and its scheduler.
pub(crate) struct ChatModel {
    pub id: String,
    pub loaded: Arc<LoadedModel>,
    pub engine: engine::Engine,
    /// Longest prompt + completion.
    pub context: usize,
    /// Each vocabulary id's text, for constrained decoding (made on first use).
    pub token_texts: OnceLock<Arc<Vec<Option<String>>>>,
}

impl ChatModel {
    /// What each token id adds to a text: `decode([p, id])` after `decode([p])` for an
    /// ordinary token `p`, so that tokenizers which drop a leading space at the start of a
    /// text (SentencePiece) give the token's text in the middle of one. Special tokens and
    /// ids the tokenizer does not have are `None`.
    pub fn token_texts(&self) -> Arc<Vec<Option<String>>> {
        self.token_texts
            .get_or_init(|| {
                let tok = &self.loaded.tokenizer;
                let prefix = tok
                    .encode_ids("a", false)
                    .ok()
                    .and_then(|ids| ids.first().copied());
                let base = prefix.and_then(|p| tok.decode(&[p], false).ok());
                let texts = (0..self.loaded.model.vocab_size() as u32)
                    .map(|id| {
                        if id as usize >= tok.len() || tok.is_special(id) {
                            return None;
                        }
                        match (prefix, &base) {
                            (Some(p), Some(base)) => {
                                let full = tok.decode(&[p, id], false).ok()?;
                                full.strip_prefix(base.as_str()).map(str::to_owned)
                            }
                            _ => tok.decode(&[id], false).ok(),
                        }
                    })
                    .collect();
                Arc::new(texts)
            })
            .clone()
    }
}

/// The embedding model, loaded.
pub(crate) struct EmbeddingModel {
    pub id: String,
    pub model: Arc<SentenceTransformer>,
}

/// The models once loaded.
pub(crate) struct Models {
    pub chat: ChatModel,
    pub embedding: Option<EmbeddingModel>,
}

/// What every handler sees.
pub struct AppState {
    pub(crate) options: ServeOptions,
    pub(crate) models: OnceLock<Models>,
    pub(crate) metrics: Arc<metrics::Metrics>,
}

impl AppState {
    /// A state whose models are not loaded yet (`/health` says 503).
    pub fn new(options: ServeOptions) -> Arc<Self> {
        Arc::new(Self {
            options,
            models: OnceLock::new(),
            metrics: Arc::new(metrics::Metrics::new()),
        })
    }

    /// Loads the models the options name and starts the scheduler (blocking: minutes for
    /// a large model). The server answers 503 until this returns.
    pub fn load(&self) -> trustformers::Result<()> {
        let opts = &self.options;
        let path = resolve_model(Some(&opts.model))?;
        let loaded = Arc::new(LoadedModel::from_path(&path, &opts.load)?);
        let context = opts
            .ctx_size
            .map_or(loaded.context_size(), |c| c.min(loaded.context_size()));
        let embedding = match &opts.embedding_model {
            Some(name) => {
                let path = resolve_model(Some(name))?;
                let model = SentenceTransformer::from_pretrained(&path, &opts.load)?;
                Some(EmbeddingModel {
                    id: name.clone(),
                    model: Arc::new(model),
                })
            }
            None => None,
        };
        let engine = engine::Engine::start(loaded.clone(), opts.engine, self.metrics.clone())
            .map_err(|e| {
                trustformers::Error::InvalidInput(format!("starting the scheduler: {e}"))
            })?;
        let models = Models {
            chat: ChatModel {
                id: opts.model.clone(),
                loaded,
                engine,
                context,
                token_texts: OnceLock::new(),
            },
            embedding,
        };
        if self.models.set(models).is_err() {
            return Err(trustformers::Error::InvalidInput(
                "the models are loaded already".into(),
            ));
        }
        Ok(())
    }

    /// Ends every running stream (the shutdown's last step).
    pub fn cancel_all(&self) {
        if let Some(models) = self.models.get() {
            models.chat.engine.cancel_all();
        }
    }
}

/// Serves on `listener` until `shutdown` completes: the models load in the background
/// (`/health` answers 503 meanwhile; a model that fails to load ends the server with its
/// error); after `shutdown`, no new connection is accepted, streams running get
/// `shutdown_grace` to finish and are then ended.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(options);
    let loading = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.load())
    };
    let app = router(state.clone());
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        match loading.await {
            Ok(Ok(())) => tracing::info!("models loaded"),
            Ok(Err(e)) => {
                let _ = failed_tx.send(e.to_string());
            }
            Err(e) => {
                let _ = failed_tx.send(format!("loading the models failed: {e}"));
            }
        }
    });
    let (error_tx, mut error_rx) = tokio::sync::mpsc::channel::<String>(1);
    let grace = state.options.shutdown_grace;
    let signal = {
        let state = state.clone();
        async move {
            tokio::select! {
                _ = shutdown => {}
                Ok(message) = failed_rx => {
                    let _ = error_tx.send(message).await;
                }
            }
            // Streams in flight get the grace period, then are ended.
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                state.cancel_all();
            });
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await?;
    match error_rx.try_recv() {
        Ok(message) => Err(std::io::Error::other(message)),
        Err(_) => Ok(()),
    }
}
