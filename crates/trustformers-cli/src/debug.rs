//! `trustformers debug dump`: run a model on saved inputs and write every output under
//! transformers' field names, for side-by-side comparison with a Python run.
//! `trustformers debug optim`: step an optimizer (and a schedule) on saved parameters and
//! gradients, for comparison with the reference implementation.
//! `trustformers debug grad`: one forward and backward pass of a model's training loss on
//! saved inputs and labels; writes the loss and every parameter's gradient.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand};
use std::collections::HashMap;
use std::path::PathBuf;
use trustformers::core::parse_dtype;
use trustformers::models::decoder::positions_from_mask;
use trustformers::models::vision::VisionTask;
use trustformers::models::ForwardOptions;
use trustformers::train::TrainBatch;
use trustformers::{AutoConfig, CausalLM, EncoderTask, LoadOptions, ModelConfig, ModelKind};

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Run a model on inputs from a safetensors file and save its outputs.
    Dump(DumpArgs),
    /// Step an optimizer on parameters and per-step gradients from safetensors files and
    /// save every step's parameters and learning rate.
    Optim(crate::debug_optim::OptimArgs),
    /// Compute a model's training loss on inputs and labels from a safetensors file and save
    /// the loss and every parameter's gradient under its checkpoint name.
    Grad(GradArgs),
}

#[derive(Args)]
pub struct GradArgs {
    /// Checkpoint directory (config.json + safetensors) or .gguf file (dequantized).
    #[arg(long)]
    model: PathBuf,
    /// safetensors file with the model inputs under transformers' names (`input_ids`,
    /// `attention_mask`, `token_type_ids`, `position_ids`) and the labels its `forward`
    /// takes: `labels`, or `start_positions` and `end_positions` for question answering.
    #[arg(long)]
    inputs: PathBuf,
    /// Where to write `loss` and each parameter's gradient (float32), named as the
    /// checkpoint names the parameter. Parameters the loss does not reach are left out.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct DumpArgs {
    /// Checkpoint directory (config.json + safetensors) or .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// safetensors file with integer `input_ids` [batch, seq] and optional
    /// `attention_mask`, `position_ids` (decoders) and `token_type_ids` (encoders) of the same
    /// shape. For a multiple-choice head the rows are the choices of one example. Image models
    /// take float `pixel_values` [batch, channels, height, width] (and image-text models
    /// `input_ids` and `attention_mask` too).
    #[arg(long)]
    inputs: PathBuf,
    /// Where to write the float32 outputs (`logits`, `last_hidden_state`, ...).
    #[arg(long)]
    out: PathBuf,
    /// Compute dtype (f32, f16, bf16). For a GGUF file, giving one dequantizes the weights;
    /// without it they stay quantized.
    #[arg(long)]
    dtype: Option<String>,
    /// Also write `hidden_states.{i}`: transformers' `hidden_states` tuple (decoders: the
    /// embeddings, then each layer's output; Mamba: each layer's output, then the normed last).
    #[arg(long)]
    layers: bool,
    /// A PEFT LoRA adapter directory merged into the weights it targets.
    #[arg(long)]
    adapter: Option<PathBuf>,
}

pub fn run(command: DebugCommand) -> Result<()> {
    match command {
        DebugCommand::Dump(args) => dump(&args),
        DebugCommand::Optim(args) => crate::debug_optim::run(&args),
        DebugCommand::Grad(args) => grad(&args),
    }
}

fn grad(args: &GradArgs) -> Result<()> {
    // Training runs in f32.
    let opts = LoadOptions {
        dtype: Some(DType::F32),
        ..LoadOptions::default()
    };
    let trainable = AutoConfig::from_pretrained(&args.model)
        .and_then(|config| config.load_trainable(None, &opts))
        .with_context(|| format!("loading {} for training", args.model.display()))?;
    let inputs = candle_core::safetensors::load(&args.inputs, &opts.device)
        .with_context(|| format!("reading {}", args.inputs.display()))?;
    let batch = TrainBatch::from_named(&trainable.model, &inputs)
        .with_context(|| format!("reading the batch in {}", args.inputs.display()))?;
    let (loss, grads) = trainable.loss_and_gradients(&batch)?;
    let mut out = HashMap::new();
    out.insert("loss".to_string(), loss.to_dtype(DType::F32)?);
    for (name, g) in grads {
        out.insert(name, g.to_dtype(DType::F32)?);
    }
    candle_core::safetensors::save(&out, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "loss {:.6}; wrote it and {} gradients ({} parameters in the model) to {}",
        loss.to_dtype(DType::F32)?.to_scalar::<f32>()?,
        out.len() - 1,
        trainable.parameters.len(),
        args.out.display()
    );
    Ok(())
}

fn input(
    inputs: &HashMap<String, Tensor>,
    name: &str,
    shape: Option<&[usize]>,
) -> Result<Option<Tensor>> {
    let Some(t) = inputs.get(name) else {
        return Ok(None);
    };
    if !t.dtype().is_int() {
        bail!(
            "input `{name}` must be an integer tensor, got {:?}",
            t.dtype()
        );
    }
    if t.rank() != 2 {
        bail!(
            "input `{name}` must be [batch, seq], got shape {:?}",
            t.dims()
        );
    }
    if let Some(shape) = shape {
        if t.dims() != shape {
            bail!(
                "input `{name}` has shape {:?}, expected {shape:?} like input_ids",
                t.dims()
            );
        }
    }
    Ok(Some(t.to_dtype(DType::I64)?))
}

/// The `--inputs` file, on `device`, and its `input_ids`.
fn read_inputs(args: &DumpArgs, device: &Device) -> Result<(HashMap<String, Tensor>, Tensor)> {
    let inputs = candle_core::safetensors::load(&args.inputs, device)
        .with_context(|| format!("reading {}", args.inputs.display()))?;
    let ids = input(&inputs, "input_ids", None)?
        .with_context(|| format!("{} has no `input_ids` tensor", args.inputs.display()))?;
    Ok((inputs, ids))
}

/// An encoder with the head its config names: writes every output transformers gives
/// (`last_hidden_state`, `pooler_output`, `logits`, `start_logits`, `end_logits`).
fn dump_encoder(args: &DumpArgs, config: &ModelConfig, opts: &LoadOptions) -> Result<()> {
    let model = config
        .load_encoder(None, opts)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let (inputs, ids) = read_inputs(args, model.model().device())?;
    let shape = ids.dims().to_vec();
    let mask = input(&inputs, "attention_mask", Some(&shape))?;
    let types = input(&inputs, "token_type_ids", Some(&shape))?;
    let mc = model.task() == EncoderTask::MultipleChoice;
    let lift = |t: Tensor| -> Result<Tensor> { Ok(if mc { t.unsqueeze(0)? } else { t }) };
    let out = model.forward(
        &lift(ids)?,
        types.map(lift).transpose()?.as_ref(),
        mask.map(lift).transpose()?.as_ref(),
        args.layers && !mc,
    )?;
    let mut tensors = HashMap::new();
    let named = [
        ("last_hidden_state", Some(out.last_hidden_state)),
        ("pooler_output", out.pooler_output),
        ("logits", out.logits),
        ("start_logits", out.start_logits),
        ("end_logits", out.end_logits),
    ];
    for (name, t) in named {
        if let Some(t) = t {
            tensors.insert(name.to_string(), t);
        }
    }
    let n = save(args, tensors, &out.hidden_states)?;
    eprintln!(
        "wrote {n} tensors to {} ({:?} head)",
        args.out.display(),
        model.task()
    );
    Ok(())
}

/// An encoder-decoder: the encoder over `input_ids` (and `attention_mask`), the decoder over
/// `decoder_input_ids` (and `decoder_attention_mask`); writes `logits`, `last_hidden_state`
/// (the decoder's) and `encoder_last_hidden_state`, as transformers names them.
fn dump_seq2seq(args: &DumpArgs, config: &ModelConfig, opts: &LoadOptions) -> Result<()> {
    let head = config.json["architectures"][0].as_str().unwrap_or_default();
    if head.ends_with("ForSequenceClassification") || head.ends_with("ForQuestionAnswering") {
        return dump_bart_head(args, config, opts, head);
    }
    let model = config
        .load_seq2seq_lm(opts)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let (inputs, ids) = read_inputs(args, model.device())?;
    let mask = input(&inputs, "attention_mask", Some(ids.dims()))?;
    let decoder_ids = input(&inputs, "decoder_input_ids", None)?.with_context(|| {
        format!(
            "{} has no `decoder_input_ids` tensor (an encoder-decoder needs one)",
            args.inputs.display()
        )
    })?;
    if decoder_ids.dim(0)? != ids.dim(0)? {
        bail!(
            "decoder_input_ids has {} rows, input_ids {}",
            decoder_ids.dim(0)?,
            ids.dim(0)?
        );
    }
    let decoder_mask = input(&inputs, "decoder_attention_mask", Some(decoder_ids.dims()))?;
    let encoded = model.encode(&ids, mask.as_ref())?;
    let mut cache = model.new_cache(encoded.clone(), mask)?;
    let fwd = ForwardOptions {
        attention_mask: decoder_mask,
        ..Default::default()
    };
    let out = model.decode(&decoder_ids, &fwd, &mut cache)?;
    let logits_dims = out.logits.dims().to_vec();
    let tensors = HashMap::from([
        ("logits".to_string(), out.logits),
        ("last_hidden_state".to_string(), out.last_hidden_state),
        ("encoder_last_hidden_state".to_string(), encoded),
    ]);
    let n = save(args, tensors, &[])?;
    eprintln!(
        "wrote {n} tensors to {} (logits {logits_dims:?})",
        args.out.display()
    );
    Ok(())
}

/// BART with the task head its config names: `logits` of the classifier, or the QA head's
/// `start_logits` and `end_logits`.
fn dump_bart_head(
    args: &DumpArgs,
    config: &ModelConfig,
    opts: &LoadOptions,
    head: &str,
) -> Result<()> {
    let loading = || format!("loading {}", args.model.display());
    let (inputs, ids) = read_inputs(args, &opts.device)?;
    let mask = input(&inputs, "attention_mask", Some(ids.dims()))?;
    let tensors = if head.ends_with("ForSequenceClassification") {
        let model = config
            .load_bart_for_sequence_classification(opts)
            .with_context(loading)?;
        HashMap::from([("logits".to_string(), model.forward(&ids, mask.as_ref())?)])
    } else {
        let model = config
            .load_bart_for_question_answering(opts)
            .with_context(loading)?;
        let (start, end) = model.forward(&ids, mask.as_ref())?;
        HashMap::from([
            ("start_logits".to_string(), start),
            ("end_logits".to_string(), end),
        ])
    };
    let n = save(args, tensors, &[])?;
    eprintln!("wrote {n} tensors to {} ({head})", args.out.display());
    Ok(())
}

/// Writes `tensors` and `hidden_states.{i}` as float32 to `--out`; returns how many.
/// Image models (`pixel_values` -> `last_hidden_state`, `pooler_output`, `logits`) and
/// image-text models (also `input_ids`, `attention_mask` -> `logits_per_image`,
/// `logits_per_text`, `text_embeds`, `image_embeds`, `text_last_hidden_state`,
/// `vision_last_hidden_state`, and `get_image_features` / `get_text_features` as
/// `image_features` / `text_features`).
fn dump_vision(args: &DumpArgs, config: &ModelConfig, opts: &LoadOptions) -> Result<()> {
    let loading = || format!("loading {}", args.model.display());
    let inputs = candle_core::safetensors::load(&args.inputs, &opts.device)
        .with_context(|| format!("reading {}", args.inputs.display()))?;
    let pixels = inputs
        .get("pixel_values")
        .with_context(|| format!("{} has no `pixel_values` tensor", args.inputs.display()))?
        .to_dtype(DType::F32)?;
    let mut tensors = HashMap::new();
    if config.architecture.is_image_text() {
        let model = config.load_image_text_model(opts).with_context(loading)?;
        let (_, ids) = read_inputs(args, &opts.device)?;
        let mask = input(&inputs, "attention_mask", Some(ids.dims()))?;
        let out = model.forward(&ids, mask.as_ref(), &pixels)?;
        tensors.insert("image_features".into(), model.image_features(&pixels)?);
        tensors.insert(
            "text_features".into(),
            model.text_features(&ids, mask.as_ref())?,
        );
        for (name, t) in [
            ("logits_per_image", out.logits_per_image),
            ("logits_per_text", out.logits_per_text),
            ("text_embeds", out.text_embeds),
            ("image_embeds", out.image_embeds),
            ("text_last_hidden_state", out.text_last_hidden_state),
            ("vision_last_hidden_state", out.vision_last_hidden_state),
        ] {
            tensors.insert(name.to_string(), t);
        }
        let n = save(args, tensors, &[])?;
        eprintln!("wrote {n} tensors to {}", args.out.display());
        return Ok(());
    }
    let head = config.json["architectures"][0].as_str().unwrap_or_default();
    let task = if head.contains("ForImageClassification") {
        VisionTask::ImageClassification
    } else {
        VisionTask::Base
    };
    let model = config.load_image_model(task, opts).with_context(loading)?;
    let out = model.forward(&pixels, args.layers)?;
    tensors.insert("last_hidden_state".to_string(), out.last_hidden_state);
    for (name, t) in [("pooler_output", out.pooler_output), ("logits", out.logits)] {
        if let Some(t) = t {
            tensors.insert(name.to_string(), t);
        }
    }
    let n = save(args, tensors, &out.hidden_states)?;
    eprintln!("wrote {n} tensors to {} ({task:?})", args.out.display());
    Ok(())
}

/// Vision-language models (`input_ids` with image tokens, `pixel_values`, optional
/// `attention_mask` -> `logits`, `last_hidden_state` (the language model's), `image_features`
/// ([images, image tokens, hidden]) and the model's own stages, BLIP-2's
/// `vision_last_hidden_state` and `qformer_last_hidden_state`).
fn dump_multimodal(args: &DumpArgs, config: &ModelConfig, opts: &LoadOptions) -> Result<()> {
    use trustformers::models::multimodal::WithImages;
    let model = config
        .load_vision_language_model(opts)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let (inputs, ids) = read_inputs(args, &opts.device)?;
    let pixels = inputs
        .get("pixel_values")
        .with_context(|| format!("{} has no `pixel_values` tensor", args.inputs.display()))?
        .to_dtype(DType::F32)?;
    let shape = ids.dims().to_vec();
    let mask = input(&inputs, "attention_mask", Some(&shape))?;
    let ones = Tensor::ones(shape.as_slice(), DType::I64, &opts.device)?;
    let positions = positions_from_mask(mask.as_ref().unwrap_or(&ones), shape[1])?;
    let features = model.image_features(&pixels)?;
    let fwd = ForwardOptions {
        attention_mask: mask,
        output_hidden_states: false,
        logits_to_keep: None,
    };
    let out = WithImages::new(model.as_ref(), &features)?.forward_with(
        &ids,
        &positions,
        &fwd,
        &mut model.new_cache(),
    )?;
    let mut tensors = HashMap::from([
        ("logits".to_string(), out.logits),
        ("last_hidden_state".to_string(), out.last_hidden_state),
        ("image_features".to_string(), features),
    ]);
    for (name, t) in model.image_stages(&pixels)? {
        tensors.insert(name.to_string(), t);
    }
    let n = save(args, tensors, &[])?;
    eprintln!("wrote {n} tensors to {}", args.out.display());
    Ok(())
}

fn save(args: &DumpArgs, tensors: HashMap<String, Tensor>, hidden: &[Tensor]) -> Result<usize> {
    let mut all = HashMap::new();
    for (name, t) in tensors {
        all.insert(name, t.to_dtype(DType::F32)?);
    }
    for (i, h) in hidden.iter().enumerate() {
        all.insert(format!("hidden_states.{i}"), h.to_dtype(DType::F32)?);
    }
    candle_core::safetensors::save(&all, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(all.len())
}

fn dump(args: &DumpArgs) -> Result<()> {
    let dtype = args.dtype.as_deref().map(parse_dtype).transpose()?;
    let opts = LoadOptions {
        dtype,
        adapter: args.adapter.clone(),
        ..Default::default()
    };
    let config = AutoConfig::from_pretrained(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    match config.kind() {
        ModelKind::Encoder => return dump_encoder(args, &config, &opts),
        ModelKind::EncoderDecoder => return dump_seq2seq(args, &config, &opts),
        ModelKind::Vision => return dump_vision(args, &config, &opts),
        ModelKind::Multimodal => return dump_multimodal(args, &config, &opts),
        _ => {}
    }
    let model = config
        .load_causal_lm(&opts)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let (inputs, ids) = read_inputs(args, model.device())?;
    let shape = ids.dims().to_vec();
    let mask = input(&inputs, "attention_mask", Some(&shape))?;
    let ones = Tensor::ones(shape.as_slice(), DType::I64, model.device())?;
    let positions = match input(&inputs, "position_ids", Some(&shape))? {
        Some(p) => p,
        None => positions_from_mask(mask.as_ref().unwrap_or(&ones), shape[1])?,
    };
    let fwd = ForwardOptions {
        attention_mask: mask,
        output_hidden_states: args.layers,
        logits_to_keep: None,
    };
    let out = model.forward_with(&ids, &positions, &fwd, &mut model.new_cache())?;
    let mut tensors = HashMap::new();
    tensors.insert("logits".to_string(), out.logits.clone());
    tensors.insert("last_hidden_state".to_string(), out.last_hidden_state);
    let n = save(args, tensors, &out.hidden_states)?;
    eprintln!(
        "wrote {n} tensors to {} (logits {:?})",
        args.out.display(),
        out.logits.dims()
    );
    Ok(())
}
