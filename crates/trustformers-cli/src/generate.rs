//! `trustformers generate`: stream a continuation of a prompt to stdout.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::io::Write;
use trustformers::generation::generate_text;
use trustformers::tokenizers::chat::{ChatOptions, Message};
use trustformers::{
    resolve_model, AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LoadOptions,
};

/// Overwrites `slot` when the flag was given.
fn set<T>(slot: &mut T, flag: Option<T>) {
    if let Some(v) = flag {
        *slot = v;
    }
}

/// Flags are transformers' `GenerationConfig` fields in kebab-case.
#[derive(Args)]
pub struct GenerateArgs {
    /// Checkpoint directory, .gguf file, or a known model name
    /// (smollm2-135m-instruct, gemma-3-270m); default smollm2-135m-instruct, fetched once.
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    max_new_tokens: Option<usize>,
    #[arg(long)]
    min_new_tokens: Option<usize>,
    /// Sample instead of picking the most likely token.
    #[arg(long)]
    do_sample: bool,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    min_p: Option<f32>,
    #[arg(long)]
    typical_p: Option<f32>,
    #[arg(long)]
    repetition_penalty: Option<f32>,
    #[arg(long)]
    frequency_penalty: Option<f32>,
    #[arg(long)]
    presence_penalty: Option<f32>,
    #[arg(long)]
    no_repeat_ngram_size: Option<usize>,
    /// Text that ends generation (repeatable); it is left out of the output.
    #[arg(long = "stop-strings")]
    stop_strings: Vec<String>,
    /// Seconds after which generation stops.
    #[arg(long)]
    max_time: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue the prompt as raw text. By default, a model with a chat template (an
    /// instruct model) gets the prompt as a user message through its template.
    #[arg(long)]
    raw: bool,
    /// Compute dtype (f32, f16, bf16); for a GGUF file this dequantizes the weights.
    #[arg(long)]
    dtype: Option<String>,
    /// Print text, token ids, finish reason and timings as JSON at the end instead of streaming.
    #[arg(long)]
    json: bool,
    /// The prompt.
    prompt: String,
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    if args.prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let dtype = args
        .dtype
        .as_deref()
        .map(trustformers::core::parse_dtype)
        .transpose()?;
    let path = resolve_model(args.model.as_deref())?;
    let model = AutoModelForCausalLM::from_pretrained(
        &path,
        &LoadOptions {
            dtype,
            ..Default::default()
        },
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let tok = AutoTokenizer::from_pretrained(&path)
        .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
    let mut config = if path.is_dir() {
        GenerationConfig::from_dir(&path)?
    } else {
        GenerationConfig::default()
    };
    if config.eos_token_id.is_empty() {
        config.eos_token_id.extend(tok.eos_token_id());
    }
    set(&mut config.max_new_tokens, args.max_new_tokens);
    set(&mut config.min_new_tokens, args.min_new_tokens);
    set(&mut config.temperature, args.temperature);
    set(&mut config.top_k, args.top_k);
    set(&mut config.top_p, args.top_p);
    set(&mut config.typical_p, args.typical_p);
    set(&mut config.repetition_penalty, args.repetition_penalty);
    set(&mut config.frequency_penalty, args.frequency_penalty);
    set(&mut config.presence_penalty, args.presence_penalty);
    set(&mut config.no_repeat_ngram_size, args.no_repeat_ngram_size);
    config.do_sample |= args.do_sample;
    config.min_p = args.min_p.or(config.min_p);
    config.max_time = args.max_time.or(config.max_time);
    config.seed = args.seed;
    config
        .stop_strings
        .extend(args.stop_strings.iter().cloned());

    let chat = !args.raw && tok.config().chat_template.is_some();
    let prompt = if chat {
        let opts = ChatOptions {
            add_generation_prompt: true,
            ..Default::default()
        };
        tok.apply_chat_template(&[Message::new("user", args.prompt.clone())], &opts)?
    } else {
        args.prompt.clone()
    };
    // A chat template writes its own special tokens.
    let ids = tok.encode_ids(&prompt, !chat)?;
    let mut stdout = std::io::stdout().lock();
    let out = generate_text(&model, &tok, &ids, &config, |piece| {
        if !args.json {
            // A closed pipe (e.g. `| head`) just ends the stream.
            let _ = stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush());
        }
    })?;
    let new_tokens = out.tokens.ids.len();
    if args.json {
        println!(
            "{}",
            json!({
                "text": out.text,
                "token_ids": out.tokens.ids,
                "finish_reason": format!("{:?}", out.tokens.finish_reason).to_lowercase(),
                "prompt_tokens": ids.len(),
                "prefill_s": out.tokens.prefill.as_secs_f64(),
                "decode_s": out.tokens.decode.as_secs_f64(),
                "decode_tok_s": new_tokens.saturating_sub(1) as f64 / out.tokens.decode.as_secs_f64().max(1e-9),
            })
        );
    } else {
        println!();
    }
    Ok(())
}
