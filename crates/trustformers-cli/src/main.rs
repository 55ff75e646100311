//! The `trustformers` command-line tool.

mod bench;
mod chat;
mod debug;
mod debug_optim;
mod embed;
mod generate;
mod interrupt;
mod options;
mod pipeline;
mod serve;
mod tokenize;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "trustformers",
    version,
    about = "Hugging Face Transformers in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Continue a prompt, streaming the text to stdout.
    Generate(generate::GenerateArgs),
    /// Chat with an instruct model through its chat template (a REPL on a terminal; one
    /// message per line otherwise).
    Chat(chat::ChatArgs),
    /// Sentence embeddings of texts (sentence-transformers' encode).
    Embed(embed::EmbedArgs),
    /// Run a task pipeline (fill-mask, text-classification, token-classification,
    /// question-answering, zero-shot-classification, feature-extraction) and print
    /// transformers' JSON.
    Pipeline(pipeline::PipelineArgs),
    /// Time loading, prompt processing and generation (llama-bench's pp/tg tests).
    Bench(bench::BenchArgs),
    /// An OpenAI-compatible server: chat and text completions, embeddings, metrics and a
    /// chat page.
    Serve(serve::ServeArgs),
    /// Tokenize a text the way transformers' tokenizer does.
    Tokenize(tokenize::TokenizeArgs),
    /// Train tokenizers and analyse them on a corpus.
    Tokenizer {
        #[command(subcommand)]
        command: tokenize::TokenizerCommand,
    },
    /// Fine-tune a model with the Trainer (transformers' TrainingArguments as flags).
    Train(Box<train::TrainArgs>),
    /// Tools for finding where a port diverges from transformers.
    Debug {
        #[command(subcommand)]
        command: debug::DebugCommand,
    },
}

fn main() {
    if let Err(e) = run() {
        // No backtrace, whatever RUST_BACKTRACE says.
        eprintln!("error: {}", report(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, outermost first, each said once: a cause whose text the one
/// before it already holds (the library's errors print their source) is left out.
fn report(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|prev| prev.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let cli = Cli::parse();
    set_threads(match &cli.command {
        Command::Bench(args) => args.threads,
        _ => None,
    })?;
    if let Command::Serve(args) = &cli.command {
        // The server handles SIGINT and SIGTERM itself (a graceful stop).
        return serve::run(args);
    }
    interrupt::install()?;
    match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Chat(args) => chat::run(&args),
        Command::Debug { command } => debug::run(command),
        Command::Embed(args) => embed::run(&args),
        Command::Pipeline(args) => pipeline::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Tokenize(args) => tokenize::tokenize(&args),
        Command::Tokenizer { command } => tokenize::run(command),
        Command::Train(args) => train::run(&args),
    }
}

/// Fixes the thread count before any thread pool starts: `threads` when given, else what
/// candle picks (`RAYON_NUM_THREADS`, or the physical cores). Candle reads the count from
/// the environment at every matmul, and without the variable it counts the cores by
/// parsing `/proc/cpuinfo` each time; that halved decode speed.
fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    let t = match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(t) => t,
        None => candle_core::utils::get_num_threads(),
    };
    std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_error_chain_says_each_cause_once_outermost_first() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no tokenizer.json here");
        let inner = trustformers::Error::io("/m", io);
        let e = anyhow::Error::new(inner).context("loading /m");
        assert_eq!(report(&e), "loading /m: /m: no tokenizer.json here");
    }

    #[test]
    fn the_thread_count_is_always_fixed_in_the_environment() {
        assert!(set_threads(Some(0)).is_err());
        set_threads(Some(3)).unwrap();
        assert_eq!(std::env::var("RAYON_NUM_THREADS").unwrap(), "3");
        // Without --threads, candle's own choice is written down, so that it is not worked
        // out again (from /proc/cpuinfo) at every matmul.
        set_threads(None).unwrap();
        let t: usize = std::env::var("RAYON_NUM_THREADS").unwrap().parse().unwrap();
        assert!(t >= 1);
    }
}
