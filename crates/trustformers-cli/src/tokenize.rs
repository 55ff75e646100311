//! `trustformers tokenize` and `trustformers tokenizer train|stats`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use trustformers::tokenizers::stats::corpus_stats;
use trustformers::tokenizers::train::{self, TrainOptions};
use trustformers::tokenizers::EncodeOptions;
use trustformers::{resolve_model, AutoTokenizer};

#[derive(Args)]
pub struct TokenizeArgs {
    /// Checkpoint directory, .gguf file, or known model name (default smollm2-135m-instruct).
    #[arg(long)]
    model: Option<String>,
    /// Leave out the special tokens transformers adds by default.
    #[arg(long)]
    no_special_tokens: bool,
    /// Print `{"ids": [...], "tokens": [...], "offsets": [...]}`.
    #[arg(long)]
    json: bool,
    /// Tokenize every text of a JSON array read from standard input instead of TEXT; one
    /// JSON line per text (as `--json` prints it), in order.
    #[arg(long, conflicts_with = "text")]
    batch: bool,
    /// The text to tokenize.
    #[arg(required_unless_present = "batch")]
    text: Option<String>,
}

pub fn tokenize(args: &TokenizeArgs) -> Result<()> {
    let path = resolve_model(args.model.as_deref())?;
    let tok = AutoTokenizer::from_pretrained(&path)
        .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
    let opts = EncodeOptions {
        add_special_tokens: !args.no_special_tokens,
        ..Default::default()
    };
    let as_json = |enc: &trustformers::tokenizers::Encoding| {
        let offsets: Vec<[usize; 2]> = enc.offsets().iter().map(|&(a, b)| [a, b]).collect();
        json!({ "ids": enc.input_ids(), "tokens": enc.tokens(), "offsets": offsets })
    };
    let Some(text) = &args.text else {
        let texts: Vec<String> = serde_json::from_reader(std::io::stdin().lock())
            .context("--batch reads a JSON array of strings from standard input")?;
        for text in &texts {
            println!("{}", as_json(&tok.encode(text.as_str(), &opts)?));
        }
        return Ok(());
    };
    let enc = tok.encode(text.as_str(), &opts)?;
    if args.json {
        println!("{}", as_json(&enc));
    } else {
        for ((id, token), (start, end)) in
            enc.input_ids().iter().zip(enc.tokens()).zip(enc.offsets())
        {
            println!("{id}\t{token:?}\t{start}..{end}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum TokenizerCommand {
    /// Train a new tokenizer on text files and save tokenizer.json + tokenizer_config.json.
    Train(TrainArgs),
    /// Vocabulary statistics of a tokenizer on a corpus.
    Stats(StatsArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// bpe, byte-level-bpe, wordpiece, unigram or char.
    #[arg(long = "type")]
    kind: String,
    #[arg(long, default_value_t = 30_000)]
    vocab_size: usize,
    /// Minimum frequency of a merge / character (default: 2, or 1 for char).
    #[arg(long)]
    min_frequency: Option<u64>,
    /// Special tokens, comma-separated (default: the usual ones for the type).
    #[arg(long, value_delimiter = ',')]
    special_tokens: Option<Vec<String>>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// UTF-8 text files, one training text per line.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Checkpoint directory or .gguf file holding the tokenizer.
    #[arg(long)]
    model: PathBuf,
    /// How many of the most split words to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Print the statistics as JSON.
    #[arg(long)]
    json: bool,
    /// UTF-8 text file.
    corpus: PathBuf,
}

pub fn run(command: TokenizerCommand) -> Result<()> {
    match command {
        TokenizerCommand::Train(args) => {
            let mut opts = TrainOptions::new(args.kind.parse()?);
            opts.vocab_size = args.vocab_size;
            if let Some(f) = args.min_frequency {
                opts.min_frequency = f;
            }
            if let Some(s) = args.special_tokens {
                opts.special_tokens = s;
            }
            let tok = train::train_from_files(&args.files, &opts)?;
            train::save(&tok, &args.out)?;
            eprintln!(
                "trained a {}-token {} tokenizer into {}",
                tok.len(),
                args.kind,
                args.out.display()
            );
            Ok(())
        }
        TokenizerCommand::Stats(args) => {
            let tok = AutoTokenizer::from_pretrained(&args.model)
                .with_context(|| format!("loading the tokenizer of {}", args.model.display()))?;
            let bytes = std::fs::read(&args.corpus)
                .with_context(|| format!("reading {}", args.corpus.display()))?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("{} is not UTF-8", args.corpus.display()))?;
            let s = corpus_stats(&tok, &text, args.top)?;
            if args.json {
                println!(
                    "{}",
                    json!({
                        "lines": s.lines, "words": s.words, "chars": s.chars, "tokens": s.tokens,
                        "tokens_per_word": s.tokens_per_word(), "tokens_per_char": s.tokens_per_char(),
                        "unknown_tokens": s.unknown_tokens, "unknown_rate": s.unknown_rate(),
                        "distinct_tokens": s.distinct_tokens, "vocab_size": s.vocab_size,
                        "vocab_used": s.vocab_used(), "most_split_words": s.most_split_words,
                    })
                );
            } else {
                println!("lines            {}", s.lines);
                println!("words            {}", s.words);
                println!("characters       {}", s.chars);
                println!("tokens           {}", s.tokens);
                println!("tokens per word  {:.3}", s.tokens_per_word());
                println!("tokens per char  {:.3}", s.tokens_per_char());
                println!(
                    "unknown tokens   {} ({:.3}%)",
                    s.unknown_tokens,
                    100.0 * s.unknown_rate()
                );
                println!(
                    "vocabulary used  {} of {} ({:.2}%)",
                    s.distinct_tokens,
                    s.vocab_size,
                    100.0 * s.vocab_used()
                );
                println!("most split words:");
                for (w, n) in &s.most_split_words {
                    println!("  {n:>4}  {w}");
                }
            }
            Ok(())
        }
    }
}
