//! `trustformers train`: fine-tune a checkpoint on a JSON Lines, CSV or text file with the
//! Trainer, under transformers' `TrainingArguments` names (in kebab-case). Progress on a
//! bar, every log entry as a JSON line in `{output-dir}/trainer_log.jsonl`, Ctrl-C saves a
//! checkpoint before exiting, the final model in `{output-dir}` as `save_pretrained`
//! writes it.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use trustformers::core::lora::LoraConfig;
use trustformers::core::parse_dtype;
use trustformers::train::collate::{self, Example, Masking, Padding};
use trustformers::train::dataset::Dataset;
use trustformers::train::prepare::{self, Columns, Task};
use trustformers::train::{Collator, SaveSpec, Trainer, TrainingArguments};
use trustformers::{resolve_model, AutoConfig, AutoTokenizer, EncoderTask, LoadOptions, Tokenizer};

#[derive(Args)]
pub struct TrainArgs {
    /// Checkpoint directory (config.json + safetensors + tokenizer), .gguf file (dequantized
    /// for training), Hub repo id or alias (`all-minilm-l6-v2`, ...).
    #[arg(long)]
    model: String,
    /// causal-lm, masked-lm, text-classification, token-classification or
    /// question-answering.
    #[arg(long)]
    task: String,
    /// Training data: .jsonl/.json (JSON Lines), .csv, .txt (one example per line) or
    /// .parquet (as `datasets` saves it).
    /// Token classification reads a list of words and a list of labels per example;
    /// question answering reads SQuAD's `question`, `context` and `answers` columns.
    #[arg(long)]
    train_file: PathBuf,
    /// Evaluation data, in the same formats.
    #[arg(long)]
    validation_file: Option<PathBuf>,
    /// Default: `text` (`tokens` for token-classification).
    #[arg(long)]
    text_column: Option<String>,
    /// Default: `label` (`ner_tags` for token-classification).
    #[arg(long)]
    label_column: Option<String>,
    /// Tokens per example: the block size for language modelling (texts are concatenated
    /// and cut into blocks), the truncation length for classification, the window for
    /// question answering. Default: 128 (384 for question answering), capped at the
    /// model's positions.
    #[arg(long)]
    max_length: Option<usize>,
    /// Question answering: overlap of the windows over a long context, in tokens.
    #[arg(long, default_value_t = 128)]
    doc_stride: usize,
    /// Classes of a new classification head (a base checkpoint); the config's labels
    /// otherwise.
    #[arg(long)]
    num_labels: Option<usize>,
    /// Share of tokens masked for masked-lm.
    #[arg(long, default_value_t = 0.15)]
    mlm_probability: f64,
    /// Keep the training data in file order (no shuffling).
    #[arg(long)]
    no_shuffle: bool,
    /// Training dtype; f32 (the default) is the one supported so far.
    #[arg(long)]
    dtype: Option<String>,
    /// Train a LoRA adapter of this rank instead of the whole model; saves PEFT's
    /// adapter_config.json + adapter_model.safetensors. A classifier head trains in full
    /// with it (PEFT's `modules_to_save`: classifier and score, qa_outputs for question
    /// answering).
    #[arg(long)]
    lora_r: Option<usize>,
    #[arg(long, default_value_t = 8.0)]
    lora_alpha: f64,
    /// Comma-separated module names (PEFT's target_modules).
    /// Default: PEFT's for the model type (`q_proj,v_proj` for the LLaMA family,
    /// `query,value` for BERT, RoBERTa and ELECTRA).
    #[arg(long, value_delimiter = ',')]
    lora_target_modules: Option<Vec<String>>,
    /// Scale by lora_alpha / sqrt(r) (rsLoRA).
    #[arg(long)]
    use_rslora: bool,
    /// Continue training this PEFT adapter directory.
    #[arg(long)]
    lora_from: Option<PathBuf>,
    #[command(flatten)]
    training: TrainingFlags,
}

/// `TrainingArguments` fields as flags; those given override transformers' defaults.
#[derive(Args)]
struct TrainingFlags {
    #[arg(long, default_value = "trainer_output")]
    output_dir: PathBuf,
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long)]
    per_device_train_batch_size: Option<usize>,
    #[arg(long)]
    per_device_eval_batch_size: Option<usize>,
    #[arg(long)]
    gradient_accumulation_steps: Option<usize>,
    #[arg(long)]
    num_train_epochs: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    max_steps: Option<i64>,
    #[arg(long)]
    warmup_steps: Option<u64>,
    #[arg(long)]
    warmup_ratio: Option<f64>,
    #[arg(long)]
    weight_decay: Option<f64>,
    #[arg(long)]
    adam_beta1: Option<f64>,
    #[arg(long)]
    adam_beta2: Option<f64>,
    #[arg(long)]
    adam_epsilon: Option<f64>,
    #[arg(long)]
    max_grad_norm: Option<f64>,
    #[arg(long)]
    lr_scheduler_type: Option<String>,
    #[arg(long)]
    optim: Option<String>,
    #[arg(long)]
    logging_steps: Option<u64>,
    /// no, steps or epoch.
    #[arg(long)]
    eval_strategy: Option<String>,
    #[arg(long)]
    eval_steps: Option<u64>,
    /// no, steps or epoch.
    #[arg(long)]
    save_strategy: Option<String>,
    #[arg(long)]
    save_steps: Option<u64>,
    #[arg(long)]
    save_total_limit: Option<usize>,
    #[arg(long)]
    load_best_model_at_end: bool,
    #[arg(long)]
    metric_for_best_model: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    data_seed: Option<u64>,
    #[arg(long)]
    resume_from_checkpoint: Option<PathBuf>,
    /// Skip a step whose loss is not finite instead of stopping.
    #[arg(long)]
    skip_nonfinite_loss: bool,
    /// Recompute each layer's activations in backward instead of keeping them (less memory,
    /// about a third more time).
    #[arg(long)]
    gradient_checkpointing: bool,
    /// bf16 mixed precision: not supported yet (refused with the reason).
    #[arg(long)]
    bf16: bool,
}

impl TrainingFlags {
    /// transformers' defaults with the given flags on top, checked.
    fn arguments(&self, shuffle: bool) -> Result<TrainingArguments> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                m.insert(k.to_string(), v);
            }
        };
        put("output_dir", json!(self.output_dir));
        put("learning_rate", json!(self.learning_rate));
        put(
            "per_device_train_batch_size",
            json!(self.per_device_train_batch_size),
        );
        put(
            "per_device_eval_batch_size",
            json!(self.per_device_eval_batch_size),
        );
        put(
            "gradient_accumulation_steps",
            json!(self.gradient_accumulation_steps),
        );
        put("num_train_epochs", json!(self.num_train_epochs));
        put("max_steps", json!(self.max_steps));
        put("warmup_steps", json!(self.warmup_steps));
        put("warmup_ratio", json!(self.warmup_ratio));
        put("weight_decay", json!(self.weight_decay));
        put("adam_beta1", json!(self.adam_beta1));
        put("adam_beta2", json!(self.adam_beta2));
        put("adam_epsilon", json!(self.adam_epsilon));
        put("max_grad_norm", json!(self.max_grad_norm));
        put("lr_scheduler_type", json!(self.lr_scheduler_type));
        put("optim", json!(self.optim));
        put("logging_steps", json!(self.logging_steps));
        put("eval_strategy", json!(self.eval_strategy));
        put("eval_steps", json!(self.eval_steps));
        put("save_strategy", json!(self.save_strategy));
        put("save_steps", json!(self.save_steps));
        put("save_total_limit", json!(self.save_total_limit));
        put("load_best_model_at_end", json!(self.load_best_model_at_end));
        put("metric_for_best_model", json!(self.metric_for_best_model));
        put("seed", json!(self.seed));
        put("data_seed", json!(self.data_seed));
        put("resume_from_checkpoint", json!(self.resume_from_checkpoint));
        put("skip_nonfinite_loss", json!(self.skip_nonfinite_loss));
        put("gradient_checkpointing", json!(self.gradient_checkpointing));
        put("bf16", json!(self.bf16));
        put("shuffle", json!(shuffle));
        let args: TrainingArguments =
            serde_json::from_value(Value::Object(m)).context("reading the training arguments")?;
        args.validate()?;
        Ok(args)
    }
}

/// The checkpoint's files a saved model needs besides weights and config.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spm.model",
    "tokenizer.model",
    "generation_config.json",
];

/// Keeps freed activation buffers in the heap instead of returning them to the OS: a
/// training step allocates and frees hundreds of megabytes of activations and gradients, and
/// glibc's default (large blocks mapped and unmapped each time) spent 30% of a MiniLM step
/// in page faults (`scripts/bench_train.py`). Blocks past the largest mmap threshold (a
/// causal LM's logits and their gradients, 200 MB at 4 x 256 tokens of SmolLM2) come from the
/// heap too: 10% off a LoRA step on SmolLM2.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the training
    // threads allocate.
    unsafe {
        // The largest threshold glibc takes (32 MiB on 64-bit), and no trimming.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

pub fn run(args: &TrainArgs) -> Result<()> {
    keep_freed_memory();
    let task = Task::from_name(&args.task)?;
    let training = args.training.arguments(!args.no_shuffle)?;
    let dtype = args
        .dtype
        .as_deref()
        .map(parse_dtype)
        .transpose()?
        .unwrap_or(trustformers::DType::F32);
    if dtype != trustformers::DType::F32 {
        bail!("--dtype {dtype:?}: training runs in f32 so far (mixed precision is not done yet)");
    }
    let model_path = resolve_model(Some(&args.model))?;
    let mut config = AutoConfig::from_pretrained(&model_path)
        .with_context(|| format!("reading {}", model_path.display()))?;
    let encoder_task = match task {
        Task::CausalLm if config.architecture.is_causal_lm() => None,
        Task::MaskedLm
        | Task::TextClassification
        | Task::TokenClassification
        | Task::QuestionAnswering
            if config.architecture.is_causal_lm() =>
        {
            bail!(
                "{} is a causal language model (`{}`): train it with --task causal-lm",
                model_path.display(),
                config.model_type()
            )
        }
        Task::CausalLm => bail!(
            "{} is an encoder (`{}`): train it with --task masked-lm, text-classification, \
             token-classification or question-answering",
            model_path.display(),
            config.model_type()
        ),
        Task::MaskedLm => Some(EncoderTask::MaskedLm),
        Task::TextClassification => Some(EncoderTask::SequenceClassification),
        Task::TokenClassification => Some(EncoderTask::TokenClassification),
        Task::QuestionAnswering => Some(EncoderTask::QuestionAnswering),
    };
    let (default_text, default_label) = task.default_columns();
    let text_column = args.text_column.as_deref().unwrap_or(default_text);
    let label_column = args.label_column.as_deref().unwrap_or(default_label);
    let train_data = Dataset::from_file(&args.train_file)?;
    // Word labels given by name make the label list, sorted, as run_ner.py does, unless the
    // checkpoint's head already names them all.
    if task == Task::TokenClassification && args.num_labels.is_none() {
        if let Some(names) = train_data.word_label_names(label_column)? {
            let known: Vec<String> = config
                .json
                .get("id2label")
                .and_then(Value::as_object)
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if !names.iter().all(|n| known.contains(n)) {
                let id2label: Map<String, Value> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i.to_string(), json!(n)))
                    .collect();
                let label2id: Map<String, Value> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), json!(i)))
                    .collect();
                config.json["id2label"] = Value::Object(id2label);
                config.json["label2id"] = Value::Object(label2id);
                config.json["num_labels"] = json!(names.len());
            }
        }
    }
    if let Some(n) = args.num_labels {
        if n == 0 {
            bail!("--num-labels must be at least 1");
        }
        let labels: Map<String, Value> = (0..n)
            .map(|i| (i.to_string(), json!(format!("LABEL_{i}"))))
            .collect();
        config.json["id2label"] = Value::Object(labels);
        config.json["num_labels"] = json!(n);
    }
    let tokenizer = match config.gguf() {
        Some(file) => AutoTokenizer::from_gguf(file)?,
        None => AutoTokenizer::from_pretrained(&model_path)?,
    };
    let lora = match (args.lora_r, &args.lora_from) {
        (None, None) => None,
        (_, Some(dir)) => Some(trustformers::read_adapter(dir)?),
        (Some(r), None) => Some((
            LoraConfig {
                r,
                lora_alpha: args.lora_alpha,
                target_modules: match &args.lora_target_modules {
                    Some(t) => t.clone(),
                    None => default_lora_targets(config.model_type())?,
                },
                use_rslora: args.use_rslora,
                modules_to_save: match task {
                    Task::TextClassification | Task::TokenClassification => {
                        vec!["classifier".into(), "score".into()]
                    }
                    Task::QuestionAnswering => vec!["qa_outputs".into()],
                    Task::CausalLm | Task::MaskedLm => Vec::new(),
                },
                ..LoraConfig::default()
            },
            Default::default(),
        )),
    };
    // PEFT's task types.
    let task_type = match task {
        Task::CausalLm => "CAUSAL_LM",
        Task::MaskedLm => "FEATURE_EXTRACTION",
        Task::TextClassification => "SEQ_CLS",
        Task::TokenClassification => "TOKEN_CLS",
        Task::QuestionAnswering => "QUESTION_ANS",
    };
    let adapter_config = lora
        .as_ref()
        .map(|(c, _)| c.to_peft_json(task_type, &model_path.display().to_string()));
    let trainable = match lora {
        Some((lora, start)) => {
            config.load_trainable_lora(encoder_task, &LoadOptions::default(), lora, start)
        }
        None => config.load_trainable(encoder_task, &LoadOptions::default()),
    }
    .with_context(|| format!("loading {} for training", model_path.display()))?;
    let (num_labels, label_names) = match &trainable.model {
        trustformers::train::TaskModel::Encoder { model, .. } => {
            (model.labels().len(), model.labels().to_vec())
        }
        trustformers::train::TaskModel::CausalLm(_) => (0, Vec::new()),
    };
    let default_length = if task == Task::QuestionAnswering {
        384
    } else {
        128
    };
    let max_length = args
        .max_length
        .unwrap_or(default_length)
        .min(trainable.model.max_positions());
    let columns = Columns {
        text: text_column,
        label: label_column,
        max_length,
        num_labels,
        label_names: &label_names,
        doc_stride: args.doc_stride,
    };
    let train = prepare::examples(task, &train_data, &tokenizer, &columns)?;
    let eval = args
        .validation_file
        .as_ref()
        .map(|path| -> Result<Vec<Example>> {
            let data = Dataset::from_file(path)?;
            Ok(prepare::examples(task, &data, &tokenizer, &columns)?)
        })
        .transpose()?
        .unwrap_or_default();
    let collator = collator(task, &tokenizer, args.mlm_probability)?;
    let mut extra_files = Vec::new();
    let output_dir = training.output_dir.clone();
    if config.gguf().is_none() {
        for name in TOKENIZER_FILES {
            let path = model_path.join(name);
            if path.is_file() {
                extra_files.push(path);
            }
        }
    } else {
        // The tokenizer is inside the GGUF file: written out once, copied with each save.
        let dir = output_dir.join("gguf-tokenizer");
        trustformers::tokenizers::train::save(&tokenizer, &dir)?;
        extra_files.push(dir.join("tokenizer.json"));
        extra_files.push(dir.join("tokenizer_config.json"));
    }
    let save = SaveSpec {
        config: config.trained_config(encoder_task),
        extra_files,
        adapter_config,
    };
    std::fs::create_dir_all(&output_dir)
        .with_context(|| format!("creating {}", output_dir.display()))?;
    let log_path = output_dir.join("trainer_log.jsonl");
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?,
    ));
    eprintln!(
        "training {} ({} parameters) on {} examples of up to {max_length} tokens ({} for evaluation)",
        model_path.display(),
        trainable.parameters.numel(),
        train.len(),
        eval.len()
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let streaming = Arc::new(crate::interrupt::Streaming::start());
    let stop = streaming.clone();
    let step_bar = bar.clone();
    let log_bar = bar.clone();
    let mut trainer = Trainer::new(training, trainable, train, eval, collator, save)?
        .on_step(move |r| {
            step_bar.set_length(r.max_steps);
            step_bar.set_position(r.step);
            step_bar.set_message(format!(
                "loss {:.4}  lr {:.2e}  {:.0} tokens/s",
                r.loss, r.learning_rate, r.tokens_per_second
            ));
        })
        .on_log(move |entry| {
            if let Ok(mut f) = log.lock() {
                // A log line that fails to write must not stop training; the bar says so.
                if writeln!(f, "{entry}").is_err() {
                    log_bar.println("warning: could not write trainer_log.jsonl");
                }
            }
            if entry.get("eval_loss").is_some() {
                log_bar.println(entry.to_string());
            }
        })
        .stop_when(move || stop.requested());
    let summary = trainer.train()?;
    bar.finish_and_clear();
    drop(streaming);
    if trainer
        .state()
        .log_history
        .iter()
        .any(|e| e.get("interrupted_at_step").is_some())
    {
        eprintln!(
            "interrupted: saved checkpoint-{} in {} (resume with --resume-from-checkpoint)",
            trainer.state().global_step,
            output_dir.display()
        );
        return Ok(());
    }
    trainer.save_pretrained(&output_dir)?;
    println!("{summary}");
    eprintln!("saved the model to {}", output_dir.display());
    Ok(())
}

/// transformers' collator for `task`, padding with the tokenizer's pad token (0 without one).
/// PEFT's default `target_modules` for a model type (its
/// `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`).
fn default_lora_targets(model_type: &str) -> Result<Vec<String>> {
    let names: &[&str] = match model_type {
        "bert" | "roberta" | "xlm-roberta" | "electra" | "albert" => &["query", "value"],
        "deberta-v2" => &["query_proj", "value_proj"],
        "distilbert" => &["q_lin", "v_lin"],
        "gpt2" => &["c_attn"],
        "gpt_neox" | "falcon" => &["query_key_value"],
        "phi3" => &["qkv_proj"],
        "llama" | "mistral" | "mixtral" | "qwen2" | "qwen3" | "gemma" | "gemma2" | "gemma3"
        | "gemma3_text" | "stablelm" | "phi" | "gptj" | "gpt_neo" => &["q_proj", "v_proj"],
        other => bail!("no default LoRA target modules for `{other}`: pass --lora-target-modules"),
    };
    Ok(names.iter().map(|s| s.to_string()).collect())
}

fn collator(task: Task, tokenizer: &Tokenizer, mlm_probability: f64) -> Result<Collator> {
    let padding = Padding {
        pad_token_id: tokenizer.pad_token_id().unwrap_or(0),
        ..Padding::default()
    };
    Ok(match task {
        Task::CausalLm => Box::new(move |ex: &[Example], _| collate::causal_lm(ex, &padding)),
        Task::TextClassification | Task::QuestionAnswering => {
            Box::new(move |ex: &[Example], _| collate::with_padding(ex, &padding))
        }
        Task::TokenClassification => {
            Box::new(move |ex: &[Example], _| collate::for_token_classification(ex, &padding))
        }
        Task::MaskedLm => {
            let mask = tokenizer
                .mask_token_id()
                .context("masked-lm needs a tokenizer with a mask token")?;
            let vocab = u32::try_from(tokenizer.len()).context("vocabulary size")?;
            let mut masking = Masking::new(mask, vocab, tokenizer.special_token_ids());
            masking.probability = mlm_probability;
            Box::new(move |ex: &[Example], seed| {
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
                collate::masked_lm(ex, &padding, &masking, &mut rng)
            })
        }
    })
}
