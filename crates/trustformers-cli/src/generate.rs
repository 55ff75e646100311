//! `trustformers generate`: stream a continuation of a prompt to stdout.

use crate::interrupt::Streaming;
use crate::options::{GenerationArgs, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::io::{Read, Write};
use trustformers::generation::{generate_batch, generate_seq2seq, FinishReason, TokenOutput};
use trustformers::session::generation_defaults;
use trustformers::{
    resolve_model, AutoConfig, AutoTokenizer, GenerationConfig, LoadOptions, LoadedModel,
    ModelConfig, ModelKind, Tokenizer,
};

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    generation: GenerationArgs,
    /// Continue the prompt as raw text. By default, a model with a chat template (an
    /// instruct model) gets the prompt as a user message through its template.
    #[arg(long)]
    raw: bool,
    /// Print text, token ids, finish reason and timings as JSON at the end instead of streaming.
    #[arg(long)]
    json: bool,
    /// With --json: each token's log-probability and this many most likely alternatives.
    #[arg(long)]
    top_logprobs: Option<usize>,
    /// The prompt; read from stdin when absent or `-`.
    prompt: Option<String>,
}

/// All of stdin as text, refusing bytes that are not UTF-8.
pub fn read_stdin() -> Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading the prompt from stdin")?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "stdin is not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn finish(reason: FinishReason) -> String {
    match reason {
        FinishReason::StopString => "stop_string".into(),
        FinishReason::MaxTime => "max_time".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn logprobs_json(tok: &Tokenizer, out: &TokenOutput) -> Value {
    let token = |id: u32| tok.id_to_token(id).unwrap_or_default();
    Value::Array(
        out.logprobs
            .iter()
            .map(|l| {
                json!({
                    "id": l.id,
                    "token": token(l.id),
                    "logprob": l.logprob,
                    "top_logprobs": l.top.iter().map(|&(id, lp)| json!({
                        "id": id, "token": token(id), "logprob": lp
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    let text = match args.prompt.as_deref() {
        None | Some("-") => read_stdin()?,
        Some(p) => p.to_owned(),
    };
    if text.trim().is_empty() {
        bail!("the prompt is empty");
    }
    // Refuse bad flags before spending time on loading.
    args.generation.apply(&GenerationConfig::default())?;
    let opts = args.model.load_options()?;
    let path = resolve_model(args.model.model.as_deref())?;
    // A directory's config.json is cheap to read (a GGUF file's metadata is not, and holds
    // decoders only).
    if path.is_dir() {
        let config = AutoConfig::from_pretrained(&path)?;
        if config.kind() == ModelKind::EncoderDecoder {
            return run_seq2seq(args, &config, &opts, &path, &text);
        }
    }
    let loaded = LoadedModel::from_path(&path, &opts)
        .with_context(|| format!("loading {}", path.display()))?;
    let tok = &loaded.tokenizer;
    let mut config = args.generation.apply(&loaded.generation)?;
    config.top_logprobs = args.top_logprobs;
    let ids = loaded.prompt_ids(&text, args.raw)?;

    if config.num_beams > 1 || config.num_return_sequences > 1 {
        // Beam search knows its best sequences only at the end: nothing streams.
        let outs = generate_batch(&*loaded.model, std::slice::from_ref(&ids), &config)?;
        print_sequences(args, tok, &outs, ids.len())?;
        return Ok(());
    }

    let streaming = Streaming::start();
    let mut stdout = std::io::stdout().lock();
    let out = loaded.generate_text(&ids, &config, |piece| {
        if !args.json {
            // A closed pipe (e.g. `| head`) just ends the stream.
            if stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return false;
            }
        }
        !streaming.requested()
    })?;
    let interrupted = streaming.requested();
    drop(streaming);
    let new_tokens = out.tokens.ids.len();
    if args.json {
        let mut v = json!({
            "text": out.text,
            "token_ids": out.tokens.ids,
            "finish_reason": finish(out.tokens.finish_reason),
            "prompt_tokens": ids.len(),
            "prefill_s": out.tokens.prefill.as_secs_f64(),
            "decode_s": out.tokens.decode.as_secs_f64(),
            "decode_tok_s": new_tokens.saturating_sub(1) as f64 / out.tokens.decode.as_secs_f64().max(1e-9),
        });
        if args.top_logprobs.is_some() {
            v["logprobs"] = logprobs_json(tok, &out.tokens);
        }
        println!("{v}");
    } else {
        println!();
    }
    if interrupted {
        eprintln!("[interrupted]");
        std::process::exit(130);
    }
    Ok(())
}

/// `generate` for an encoder-decoder (T5, BART, Marian): the prompt is the source, encoded
/// with the tokenizer's special tokens (no chat template); the output is the decoder's text,
/// printed when generation ends (beam search and batching know it only then).
fn run_seq2seq(
    args: &GenerateArgs,
    config: &ModelConfig,
    opts: &LoadOptions,
    path: &std::path::Path,
    text: &str,
) -> Result<()> {
    let model = config
        .load_seq2seq_lm(opts)
        .with_context(|| format!("loading {}", path.display()))?;
    let tok = AutoTokenizer::from_pretrained(path)?;
    let mut generation = args.generation.apply(&generation_defaults(path, &tok)?)?;
    generation.top_logprobs = args.top_logprobs;
    let ids = tok.encode_ids(text, true)?;
    let outs = generate_seq2seq(model.as_ref(), std::slice::from_ref(&ids), &generation)?;
    print_sequences(args, &tok, &outs, ids.len())?;
    Ok(())
}

/// Sequences known only when generation ends (beam search, several sequences, an
/// encoder-decoder's output): their text, or with `--json` one object with every sequence
/// and the timings.
fn print_sequences(
    args: &GenerateArgs,
    tok: &Tokenizer,
    outs: &[TokenOutput],
    prompt_tokens: usize,
) -> Result<()> {
    let mut seqs = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        let text = tok.decode(&out.ids, true)?;
        if args.json {
            seqs.push(json!({
                "text": text,
                "token_ids": out.ids,
                "finish_reason": finish(out.finish_reason),
                "score": out.score,
                "logprobs": args.top_logprobs.map(|_| logprobs_json(tok, out)),
            }));
        } else {
            if outs.len() > 1 {
                println!("--- sequence {} ---", i + 1);
            }
            println!("{text}");
        }
    }
    if args.json {
        let (prefill, decode) = outs.first().map_or((0.0, 0.0), |o| {
            (o.prefill.as_secs_f64(), o.decode.as_secs_f64())
        });
        println!(
            "{}",
            json!({"sequences": seqs, "prompt_tokens": prompt_tokens, "prefill_s": prefill, "decode_s": decode})
        );
    }
    Ok(())
}
