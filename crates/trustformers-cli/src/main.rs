//! The `trustformers` command-line tool.

mod debug;
mod generate;
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Generate(args) => generate::run(&args),
        Command::Debug { command } => debug::run(command),
        Command::Tokenize(args) => tokenize::tokenize(&args),
        Command::Tokenizer { command } => tokenize::run(command),
    }
}
