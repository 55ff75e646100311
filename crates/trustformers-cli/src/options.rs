//! Flags shared by the commands that run a causal LM (`generate`, `chat`, `bench`), and
//! loading what they name.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use trustformers::generation::EarlyStopping;
use trustformers::{resolve_model, GenerationConfig, LoadOptions, LoadedModel};

/// Which model, and how to load it.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Checkpoint directory, .gguf file, Hub repo id, or a known model name
    /// (smollm2-135m-instruct, gemma-3-270m); default smollm2-135m-instruct, fetched once.
    #[arg(long)]
    pub model: Option<String>,
    /// Compute dtype (f32, f16, bf16; for a GGUF file this dequantizes the weights), or q8:
    /// int8 weights and activations for encoder models (`bench --task feature-extraction`).
    #[arg(long)]
    pub dtype: Option<String>,
    /// What the KV cache keeps keys and values as (f32, f16); default f16 for quantized
    /// weights, as llama.cpp does, and f32 otherwise.
    #[arg(long)]
    pub kv_cache_dtype: Option<String>,
    /// Most prompt tokens run through the layers at once (llama.cpp's `--ubatch-size`): a
    /// longer prompt goes in chunks, so its activations take one chunk's memory.
    #[arg(long, default_value_t = trustformers::models::DEFAULT_PREFILL_CHUNK)]
    pub ubatch_size: usize,
    /// A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors),
    /// merged into the weights it targets at load.
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
}

impl ModelArgs {
    /// The load options these flags ask for, checked before anything is read.
    pub fn load_options(&self) -> Result<LoadOptions> {
        let (dtype, quantize) = parse_dtype_flag(self.dtype.as_deref())?;
        let kv_cache_dtype = self
            .kv_cache_dtype
            .as_deref()
            .map(trustformers::core::parse_dtype)
            .transpose()
            .context("--kv-cache-dtype")?;
        if self.ubatch_size == 0 {
            anyhow::bail!("--ubatch-size must be at least 1");
        }
        let opts = LoadOptions {
            dtype,
            kv_cache_dtype,
            prefill_chunk: self.ubatch_size,
            adapter: self.adapter.clone(),
            quantize,
            ..Default::default()
        };
        // Refused before the weights load, not after.
        opts.validate().context("--kv-cache-dtype")?;
        Ok(opts)
    }

    /// Resolves and loads the model with its tokenizer and generation defaults.
    pub fn load(&self) -> Result<LoadedModel> {
        let opts = self.load_options()?;
        let path = resolve_model(self.model.as_deref())?;
        LoadedModel::from_path(&path, &opts).with_context(|| format!("loading {}", path.display()))
    }
}

/// `--dtype`'s value as load settings: a compute dtype, or q8's int8 quantization.
pub fn parse_dtype_flag(
    value: Option<&str>,
) -> Result<(
    Option<trustformers::DType>,
    Option<trustformers::Quantization>,
)> {
    match value {
        Some(v) => Ok(trustformers::parse_load_dtype(v).context("--dtype")?),
        None => Ok((None, None)),
    }
}

/// Load options for `--dtype` alone (the encoder commands: `embed`, `pipeline`).
pub fn dtype_load_options(value: Option<&str>) -> Result<LoadOptions> {
    let (dtype, quantize) = parse_dtype_flag(value)?;
    Ok(LoadOptions {
        dtype,
        quantize,
        ..Default::default()
    })
}

/// transformers' `early_stopping` values.
#[derive(Clone, Copy, ValueEnum)]
pub enum EarlyStoppingArg {
    False,
    True,
    Never,
}

/// Generation flags: transformers' `GenerationConfig` fields in kebab-case. Unset flags keep
/// the model's generation_config.json values.
#[derive(Args, Clone)]
pub struct GenerationArgs {
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    #[arg(long)]
    pub min_new_tokens: Option<usize>,
    /// Sample instead of picking the most likely token.
    #[arg(long)]
    pub do_sample: bool,
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    #[arg(long, allow_negative_numbers = true)]
    pub min_p: Option<f32>,
    #[arg(long, allow_negative_numbers = true)]
    pub typical_p: Option<f32>,
    #[arg(long, allow_negative_numbers = true)]
    pub repetition_penalty: Option<f32>,
    /// OpenAI's additive penalty per previous occurrence.
    #[arg(long, allow_negative_numbers = true)]
    pub frequency_penalty: Option<f32>,
    /// OpenAI's additive penalty for any previous occurrence.
    #[arg(long, allow_negative_numbers = true)]
    pub presence_penalty: Option<f32>,
    #[arg(long)]
    pub no_repeat_ngram_size: Option<usize>,
    /// Beam search with this many beams.
    #[arg(long)]
    pub num_beams: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    pub length_penalty: Option<f32>,
    #[arg(long, value_enum)]
    pub early_stopping: Option<EarlyStoppingArg>,
    #[arg(long)]
    pub num_return_sequences: Option<usize>,
    /// Text that ends generation (repeatable); it is left out of the output.
    #[arg(long = "stop-strings")]
    pub stop_strings: Vec<String>,
    /// Seconds after which generation stops.
    #[arg(long, allow_negative_numbers = true)]
    pub max_time: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Overwrites `slot` when the flag was given.
fn set<T: Copy>(slot: &mut T, flag: Option<T>) {
    if let Some(v) = flag {
        *slot = v;
    }
}

impl GenerationArgs {
    /// `base` with the given flags applied, checked.
    pub fn apply(&self, base: &GenerationConfig) -> Result<GenerationConfig> {
        let mut c = base.clone();
        if let Some(n) = self.max_new_tokens {
            c.max_new_tokens = n;
            c.max_length = None;
        }
        set(&mut c.min_new_tokens, self.min_new_tokens);
        set(&mut c.temperature, self.temperature);
        set(&mut c.top_k, self.top_k);
        set(&mut c.top_p, self.top_p);
        set(&mut c.typical_p, self.typical_p);
        set(&mut c.repetition_penalty, self.repetition_penalty);
        set(&mut c.frequency_penalty, self.frequency_penalty);
        set(&mut c.presence_penalty, self.presence_penalty);
        set(&mut c.no_repeat_ngram_size, self.no_repeat_ngram_size);
        set(&mut c.num_beams, self.num_beams);
        set(&mut c.length_penalty, self.length_penalty);
        set(&mut c.num_return_sequences, self.num_return_sequences);
        if let Some(e) = self.early_stopping {
            c.early_stopping = match e {
                EarlyStoppingArg::False => EarlyStopping::Heuristic,
                EarlyStoppingArg::True => EarlyStopping::True,
                EarlyStoppingArg::Never => EarlyStopping::Never,
            };
        }
        c.do_sample |= self.do_sample;
        c.min_p = self.min_p.or(c.min_p);
        c.max_time = self.max_time.or(c.max_time);
        c.seed = self.seed;
        c.stop_strings.extend(self.stop_strings.iter().cloned());
        c.validate()?;
        Ok(c)
    }
}
