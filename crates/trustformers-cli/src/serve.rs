//! `trustformers serve`: the OpenAI-compatible server (`trustformers-serve`).

use crate::options::ModelArgs;
use anyhow::{Context, Result};
use clap::Args;
use trustformers::DEFAULT_MODEL;
use trustformers_serve::{EngineOptions, ServeOptions};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Sentence-embedding model for /v1/embeddings (a directory, a Hub repo id or a known
    /// model name such as all-minilm-l6-v2).
    #[arg(long)]
    embedding_model: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port (the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests to /v1/* must carry `Authorization: Bearer KEY`.
    #[arg(long, env = "TRUSTFORMERS_API_KEY")]
    api_key: Option<String>,
    /// Most sequences generated at once.
    #[arg(long, default_value_t = 8)]
    max_batch_size: usize,
    /// Most requests waiting for a place; more get 429.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// KV caches of finished requests kept for prompts that begin the same way (a shared
    /// system prompt, a growing chat); 0 (the default) is off. With quantized weights a
    /// reused prefix can change a reply slightly (the rest of the prompt runs on another
    /// kernel than a fresh run's).
    #[arg(long, default_value_t = 0)]
    prefix_cache: usize,
    /// Longest prompt + completion, in tokens (default: the model's context).
    #[arg(long)]
    ctx_size: Option<usize>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = trustformers_serve::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    if args.max_batch_size == 0 {
        anyhow::bail!("--max-batch-size must be at least 1");
    }
    if args.ctx_size == Some(0) {
        anyhow::bail!("--ctx-size must be at least 1");
    }
    let mut options = ServeOptions::new(args.model.model.as_deref().unwrap_or(DEFAULT_MODEL));
    options.embedding_model = args.embedding_model.clone();
    options.api_key = args.api_key.clone().filter(|k| !k.is_empty());
    options.engine = EngineOptions {
        max_batch_size: args.max_batch_size,
        max_queue: args.max_queue,
        prefix_cache_entries: args.prefix_cache,
        ..EngineOptions::default()
    };
    options.ctx_size = args.ctx_size;
    options.max_body_bytes = args.max_body_bytes;
    options.load = args.model.load_options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let address = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        let local = listener.local_addr()?;
        println!(
            "listening on http://{local} (GET /health answers 200 once the models are loaded)"
        );
        trustformers_serve::serve(listener, options, shutdown_signal())
            .await
            .context("serving")
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    eprintln!("shutting down: finishing the streams in flight");
}
