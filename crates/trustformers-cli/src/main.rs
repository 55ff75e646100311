//! The `trustformers` command-line tool.

mod bench;
mod chat;
mod debug;
mod embed;
mod generate;
mod interrupt;
mod options;
mod pipeline;
mod tokenize;

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
    /// Tokenize a text the way transformers' tokenizer does.
    Tokenize(tokenize::TokenizeArgs),
    /// Train tokenizers and analyse them on a corpus.
    Tokenizer {
        #[command(subcommand)]
        command: tokenize::TokenizerCommand,
    },
    /// Tools for finding where a port diverges from transformers.
    Debug {
        #[command(subcommand)]
        command: debug::DebugCommand,
    },
}

fn main() {
    if let Err(e) = run() {
        // The error chain, one cause per line; no backtrace, whatever RUST_BACKTRACE says.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
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
    bench::set_threads(match &cli.command {
        Command::Bench(args) => args.threads,
        _ => None,
    })?;
    interrupt::install()?;
    match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Chat(args) => chat::run(&args),
        Command::Debug { command } => debug::run(command),
        Command::Embed(args) => embed::run(&args),
        Command::Pipeline(args) => pipeline::run(&args),
        Command::Tokenize(args) => tokenize::tokenize(&args),
        Command::Tokenizer { command } => tokenize::run(command),
    }
}
