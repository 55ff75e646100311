//! The one load path for every kind of model: find the files, read the config (config.json,
//! or a GGUF file's metadata), pick the architecture from the registry, build the model of
//! the requested kind and load its weights strictly.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trustformers_core::config::{checkpoint_kind, CheckpointKind};
use trustformers_core::gguf::GgufFile;
use trustformers_core::lora::LoraConfig;
use trustformers_core::memory::release_free_memory;
use trustformers_core::weights::{TensorSource, WithAdded};
use trustformers_core::LoraMode;
use trustformers_core::Tensor;
use trustformers_core::{config, DType, Device, Error, Result, Weights};
use trustformers_models::encoder::heads::HeadOut;
use trustformers_models::encoder::heads::{id2label, EncoderTask};
use trustformers_models::registry::{self, Architecture, ModelKind};
use trustformers_models::seq2seq::{
    BartForQuestionAnswering, BartForSequenceClassification, BartSpec, T5EncoderModel, T5Spec,
};
use trustformers_models::{
    gguf, CausalLM, DecoderModel, DecoderSpec, EncoderDecoderLM, EncoderForTask, RuntimeOptions,
};
use trustformers_train::{TaskModel, Trainable};

/// How a new head tensor starts.
#[derive(Clone, Copy)]
enum Init {
    Zeros,
    Ones,
    Normal,
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// How to load a model: where it runs, in what dtype, and how it runs once loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype. `None`: f32, and GGUF weights stay quantized. `Some(f32)` on a GGUF
    /// file dequantizes every weight instead.
    pub dtype: Option<DType>,
    /// Where the weights and activations live.
    pub device: Device,
    /// What KV caches keep keys and values as (f32 or f16). `None`: f16 for quantized
    /// weights, as llama.cpp does, f32 otherwise.
    pub kv_cache_dtype: Option<DType>,
    /// The most prompt tokens one pass through the layers takes (llama.cpp's
    /// `--ubatch-size`): a longer prompt goes in chunks, so its activations take one
    /// chunk's memory. The results are those of one pass.
    pub prefill_chunk: usize,
    /// A PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors`)
    /// merged into the weights it targets at load.
    pub adapter: Option<PathBuf>,
    /// Weights quantized at load, beyond what the files hold (`--dtype q8`).
    pub quantize: Option<Quantization>,
}

/// A quantization applied to a checkpoint's weights at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// Every linear layer's weight quantized to int8 per output channel, activations to
    /// int8 per token on every call, products summed in integers: onnxruntime's
    /// `quantize_dynamic` (weights `QInt8`). Encoder models only; activations and
    /// everything between the linear layers stay f32.
    DynamicInt8,
}

/// The load settings a `--dtype` value names: a compute dtype (`f32`, `f16`, `bf16`), or
/// `q8` / `int8` for [`Quantization::DynamicInt8`] with f32 activations.
pub fn parse_load_dtype(name: &str) -> Result<(Option<DType>, Option<Quantization>)> {
    match name.to_ascii_lowercase().as_str() {
        "q8" | "int8" => Ok((None, Some(Quantization::DynamicInt8))),
        other => match trustformers_core::parse_dtype(other) {
            Ok(dtype) => Ok((Some(dtype), None)),
            Err(_) => Err(Error::InvalidInput(format!(
                "unknown dtype `{name}` (expected f32, f16, bf16, or q8 for int8 encoders)"
            ))),
        },
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        let RuntimeOptions {
            kv_cache_dtype,
            prefill_chunk,
        } = RuntimeOptions::default();
        Self {
            dtype: None,
            device: Device::Cpu,
            kv_cache_dtype,
            prefill_chunk,
            adapter: None,
            quantize: None,
        }
    }
}

/// A PEFT LoRA adapter as saved: its config and weights by PEFT name.
pub fn read_adapter(dir: &Path) -> Result<(LoraConfig, BTreeMap<String, Tensor>)> {
    let config_path = dir.join("adapter_config.json");
    let config = LoraConfig::from_peft_json(&config_path, &config::read_json(&config_path)?)?;
    let weights_path = dir.join("adapter_model.safetensors");
    let source =
        trustformers_core::weights::SafetensorsSource::open(std::slice::from_ref(&weights_path))?;
    let weights = source
        .names()
        .into_iter()
        .map(|name| match source.load(&name, &Device::Cpu)? {
            trustformers_core::weights::StoredTensor::Dense(t) => Ok((name, t)),
            trustformers_core::weights::StoredTensor::Quantized(_) => {
                Err(Error::UnsupportedTensor {
                    name,
                    reason: "adapter weights must be dense".into(),
                })
            }
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok((config, weights))
}

impl LoadOptions {
    /// The settings that change how the loaded model runs.
    pub fn runtime(&self) -> RuntimeOptions {
        RuntimeOptions {
            kv_cache_dtype: self.kv_cache_dtype,
            prefill_chunk: self.prefill_chunk,
        }
    }

    /// Refuses options no model loads with, before any file is read.
    pub fn validate(&self) -> Result<()> {
        self.runtime().validate()
    }
}

enum Files {
    Dir(PathBuf),
    Gguf(Arc<GgufFile>),
    /// A checkpoint's tensors (by their Hugging Face names) handed over in memory.
    Tensors(Arc<dyn TensorSource>),
}

/// A shared in-memory source behind the `Box<dyn TensorSource>` a loader takes.
struct Shared(Arc<dyn TensorSource>);

impl TensorSource for Shared {
    fn names(&self) -> Vec<String> {
        self.0.names()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.0.shape(name)
    }
    fn load(
        &self,
        name: &str,
        device: &Device,
    ) -> Result<trustformers_core::weights::StoredTensor> {
        self.0.load(name, device)
    }
    fn is_quantized(&self) -> bool {
        self.0.is_quantized()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// A parsed model configuration and the checkpoint it belongs to.
pub struct ModelConfig {
    /// The config.json contents (for GGUF, the equivalent built from its metadata).
    pub json: Value,
    /// The registered architecture for `model_type`.
    pub architecture: &'static Architecture,
    files: Files,
}

impl ModelConfig {
    /// A checkpoint held in memory (WebAssembly has no file system): its config.json and its
    /// tensors under their Hugging Face names (e.g. [`SafetensorsSource::from_bytes`]).
    ///
    /// [`SafetensorsSource::from_bytes`]: trustformers_core::weights::SafetensorsSource::from_bytes
    pub fn from_memory(json: Value, tensors: Arc<dyn TensorSource>) -> Result<Self> {
        let architecture = registry::by_model_type(config_model_type(&json, "config.json")?)?;
        Ok(Self {
            json,
            architecture,
            files: Files::Tensors(tensors),
        })
    }

    /// A GGUF file already parsed (from a path or from bytes): its architecture and config
    /// from the metadata, its tensors renamed to the checkpoint names.
    pub fn from_gguf(file: Arc<GgufFile>) -> Result<Self> {
        let (architecture, json) = gguf::config_from_gguf(&file)?;
        Ok(Self {
            json,
            architecture,
            files: Files::Gguf(file),
        })
    }

    /// config.json's `model_type`.
    pub fn model_type(&self) -> &'static str {
        self.architecture.model_type
    }

    /// What kind of model the checkpoint holds.
    pub fn kind(&self) -> ModelKind {
        self.architecture.kind()
    }

    /// The decoder spec with every default applied.
    pub fn decoder_spec(&self) -> Result<DecoderSpec> {
        self.architecture.decoder_spec(&self.json)
    }

    /// The task of the checkpoint's own head (its `architectures` entry), for encoders.
    pub fn encoder_task(&self) -> EncoderTask {
        EncoderTask::from_config(&self.json)
    }

    /// The parsed GGUF file, when the checkpoint is one (its tokenizer is inside).
    pub fn gguf(&self) -> Option<&GgufFile> {
        match &self.files {
            Files::Gguf(file) => Some(file),
            Files::Dir(_) | Files::Tensors(_) => None,
        }
    }

    /// The checkpoint's weights, with `opts.adapter` merged; `trainable`: every tensor a
    /// `Var` (GGUF tensors dequantized), for [`Self::load_trainable`].
    pub(crate) fn weights(&self, opts: &LoadOptions, trainable: bool) -> Result<Weights> {
        let weights = self.weights_over(self.source()?, opts, trainable)?;
        match &opts.adapter {
            Some(dir) => {
                let (config, tensors) = read_adapter(dir)?;
                weights.with_lora(config, LoraMode::Merge, tensors)
            }
            None => Ok(weights),
        }
    }

    /// The checkpoint's tensors, as its files hold them (a GGUF file's renamed to the
    /// checkpoint names already).
    fn source(&self) -> Result<Box<dyn TensorSource>> {
        Ok(match &self.files {
            Files::Dir(dir) => trustformers_core::weights::open_dir(dir)?,
            Files::Tensors(tensors) => Box::new(Shared(tensors.clone())),
            Files::Gguf(file) => Box::new(gguf::gguf_source(
                file.clone(),
                self.architecture,
                &self.json,
            )?),
        })
    }

    /// A loader over `source` (see [`Self::weights`]), looking tensors up under the
    /// architecture's own names where it has them.
    fn weights_over(
        &self,
        source: Box<dyn TensorSource>,
        opts: &LoadOptions,
        trainable: bool,
    ) -> Result<Weights> {
        let dtype = opts.dtype.unwrap_or(DType::F32);
        let mut weights = match trainable {
            true => Weights::trainable(source, dtype, opts.device.clone()),
            false => Weights::new(source, dtype, opts.device.clone(), opts.dtype.is_none()),
        };
        if let Some(Quantization::DynamicInt8) = opts.quantize {
            self.check_int8(opts, trainable)?;
            weights = weights.with_int8_linears()?;
        }
        let rename = self.architecture.gguf.and_then(|d| d.rename);
        match (&self.files, self.architecture.tensor_names, rename) {
            (Files::Dir(_) | Files::Tensors(_), Some(names), _)
            | (Files::Gguf(_), _, Some(names)) => {
                let config = self.json.clone();
                weights.with_names(move |name| names(name, &config))
            }
            _ => Ok(weights),
        }
    }

    /// Refuses [`Quantization::DynamicInt8`] where it would not cover every linear layer
    /// or cannot apply: models other than encoders, training, a compute dtype other than
    /// f32, or a device other than the CPU.
    fn check_int8(&self, opts: &LoadOptions, trainable: bool) -> Result<()> {
        let refuse = |why: String| Err(Error::config("dtype", format!("int8 (q8): {why}")));
        if self.kind() != ModelKind::Encoder {
            let instead = match &self.files {
                Files::Gguf(_) => "its GGUF weights run as the file quantizes them (use no dtype)",
                _ => "use f32, f16 or bf16",
            };
            return refuse(format!(
                "covers encoder models (BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa, \
                 ModernBERT, nomic-bert); `{}` is a {:?} model: {instead}",
                self.model_type(),
                self.kind()
            ));
        }
        if trainable {
            return refuse("int8 weights cannot be trained: train in f32".into());
        }
        if opts.dtype.is_some_and(|d| d != DType::F32) {
            return refuse(
                "runs with f32 activations; it cannot be combined with another dtype".into(),
            );
        }
        if !opts.device.is_cpu() {
            return refuse("runs on the CPU only".into());
        }
        Ok(())
    }

    /// Builds the causal language model and loads its weights; every checkpoint tensor must
    /// be used, but for the buffers the architecture says transformers skips.
    pub fn load_causal_lm(&self, opts: &LoadOptions) -> Result<Box<dyn CausalLM>> {
        if !self.architecture.is_causal_lm() {
            return Err(self.architecture.wrong_kind("a causal language model"));
        }
        opts.validate()?;
        let vb = self.weights(opts, false)?;
        let model = self
            .architecture
            .causal_lm(&self.json, &vb, &opts.runtime())?;
        vb.finish(self.architecture.ignored_tensors())?;
        if let Some(dir) = &opts.adapter {
            if vb.lora_targets().is_empty() {
                return Err(Error::InvalidInput(format!(
                    "the adapter in {} targets no linear layer of this model",
                    dir.display()
                )));
            }
        }
        Ok(model)
    }

    /// Builds the encoder-decoder (`...ForConditionalGeneration`) and loads its weights;
    /// every checkpoint tensor must be used, but for the tied copies and computed tables
    /// the architecture says transformers skips.
    pub fn load_seq2seq_lm(&self, opts: &LoadOptions) -> Result<Box<dyn EncoderDecoderLM>> {
        if self.kind() != ModelKind::EncoderDecoder {
            return Err(self.architecture.wrong_kind("an encoder-decoder model"));
        }
        if self.model_type() == "t5encoder" {
            return Err(Error::InvalidInput(
                "this GGUF file holds a T5 encoder only (llama.cpp's `t5encoder`): load it with \
                 ModelConfig::load_t5_encoder"
                    .into(),
            ));
        }
        opts.validate()?;
        let vb = self.weights(opts, false)?;
        let model = self.architecture.encoder_decoder_lm(&self.json, &vb)?;
        vb.finish(self.architecture.ignored_tensors())?;
        Ok(model)
    }

    /// `T5EncoderModel`: the encoder of a T5, mT5 or UMT5 checkpoint (embedding models built
    /// on T5 encoders), from an encoder-only checkpoint or a whole one (whose decoder and
    /// head are skipped, as transformers does).
    pub fn load_t5_encoder(&self, opts: &LoadOptions) -> Result<T5EncoderModel> {
        let t = self.model_type();
        if !matches!(t, "t5" | "mt5" | "umt5" | "t5encoder") {
            return Err(self.architecture.wrong_kind("a T5 encoder"));
        }
        let spec = T5Spec::from_config(&self.json, t)?;
        let vb = self.weights(opts, false)?;
        let model = T5EncoderModel::new(&spec, &vb)?;
        vb.finish_unless(|name| {
            name.starts_with("decoder.")
                || name == "lm_head.weight"
                || name == "encoder.embed_tokens.weight"
        })?;
        Ok(model)
    }

    /// The BART-family spec, refusing other architectures.
    fn bart_spec(&self, head: &str) -> Result<BartSpec> {
        match self.model_type() {
            t @ ("bart" | "mbart") => BartSpec::from_config(&self.json, t),
            _ => Err(self.architecture.wrong_kind(head)),
        }
    }

    /// `BartForSequenceClassification` (bart-large-mnli's NLI head), every checkpoint
    /// tensor used.
    pub fn load_bart_for_sequence_classification(
        &self,
        opts: &LoadOptions,
    ) -> Result<BartForSequenceClassification> {
        let spec = self.bart_spec("a BART sequence classifier")?;
        let vb = self.weights(opts, false)?;
        let model =
            BartForSequenceClassification::new(&spec, &self.json, id2label(&self.json)?, &vb)?;
        vb.finish(self.architecture.ignored_tensors())?;
        Ok(model)
    }

    /// `BartForQuestionAnswering`, every checkpoint tensor used.
    pub fn load_bart_for_question_answering(
        &self,
        opts: &LoadOptions,
    ) -> Result<BartForQuestionAnswering> {
        let spec = self.bart_spec("a BART question-answering model")?;
        let vb = self.weights(opts, false)?;
        let model = BartForQuestionAnswering::new(&spec, &vb)?;
        vb.finish(self.architecture.ignored_tensors())?;
        Ok(model)
    }

    /// Builds the encoder with the head of `task` (`None`: the checkpoint's own, from
    /// `architectures`), as transformers' `AutoModelFor<Task>` does. Head tensors of other
    /// tasks in the checkpoint are skipped (transformers warns about them); an unused
    /// tensor of the base model is an error.
    pub fn load_encoder(
        &self,
        task: Option<EncoderTask>,
        opts: &LoadOptions,
    ) -> Result<EncoderForTask> {
        let vb = self.weights(opts, false)?;
        self.build_encoder(task, &vb)
    }

    /// The encoder with the head of `task` over `vb`, every base tensor used.
    fn build_encoder(&self, task: Option<EncoderTask>, vb: &Weights) -> Result<EncoderForTask> {
        let arch = self.architecture;
        let spec = arch.encoder_spec(&self.json)?;
        let task = task.unwrap_or_else(|| self.encoder_task());
        let layout = arch.encoder_head(task, &spec);
        if task != EncoderTask::Base && layout.is_none() {
            return Err(Error::InvalidInput(format!(
                "`{}` has no {task:?} head",
                arch.model_type
            )));
        }
        let labels = match task {
            EncoderTask::SequenceClassification | EncoderTask::TokenClassification => {
                id2label(&self.json)?
            }
            _ => Vec::new(),
        };
        let model = EncoderForTask::new(&spec, task, layout.as_ref(), labels, vb)?;
        vb.finish_unless(|name| model.may_skip_tensor(name))?;
        Ok(model)
    }

    /// The tensors of `task`'s head that the checkpoint lacks, initialized as
    /// transformers' `_init_weights` does (linear weights from N(0, `initializer_range`),
    /// biases 0, LayerNorm weights 1), from a fixed seed: a base checkpoint gets a new head
    /// to fine-tune, as `AutoModelForSequenceClassification.from_pretrained` gives it.
    fn new_head_tensors(
        &self,
        task: Option<EncoderTask>,
        source: &dyn TensorSource,
    ) -> Result<BTreeMap<String, Tensor>> {
        let arch = self.architecture;
        let spec = arch.encoder_spec(&self.json)?;
        let task = task.unwrap_or_else(|| self.encoder_task());
        let Some(layout) = arch.encoder_head(task, &spec) else {
            return Ok(BTreeMap::new());
        };
        let out_dim = match task {
            EncoderTask::SequenceClassification | EncoderTask::TokenClassification => {
                id2label(&self.json)?.len()
            }
            EncoderTask::MaskedLm => spec.vocab_size,
            EncoderTask::QuestionAnswering => 2,
            _ => 1,
        };
        let std = self
            .json
            .get("initializer_range")
            .and_then(Value::as_f64)
            .unwrap_or(0.02);
        let mut shapes: Vec<(String, Vec<usize>, Init)> = Vec::new();
        let mut width = spec.hidden_size;
        if let Some((name, dim, _, bias)) = layout.dense {
            shapes.push((format!("{name}.weight"), vec![dim, width], Init::Normal));
            if bias {
                shapes.push((format!("{name}.bias"), vec![dim], Init::Zeros));
            }
            width = dim;
        }
        if let Some((name, _, bias)) = layout.norm {
            shapes.push((format!("{name}.weight"), vec![width], Init::Ones));
            if bias {
                shapes.push((format!("{name}.bias"), vec![width], Init::Zeros));
            }
        }
        match layout.out {
            HeadOut::Linear(name) => {
                shapes.push((format!("{name}.weight"), vec![out_dim, width], Init::Normal));
                shapes.push((format!("{name}.bias"), vec![out_dim], Init::Zeros));
            }
            HeadOut::TiedEmbeddings { bias } => {
                shapes.push((bias.to_string(), vec![spec.vocab_size], Init::Zeros));
            }
        }
        let missing: Vec<_> = shapes
            .into_iter()
            .filter(|(name, _, _)| source.shape(name).is_none())
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|(n, _, _)| n.as_str()).collect();
            tracing::warn!(
                "newly initialized for {task:?} (train them before use): {}",
                names.join(", ")
            );
        }
        let mut rng = StdRng::seed_from_u64(42);
        missing
            .into_iter()
            .map(|(name, shape, init)| {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = match init {
                    Init::Zeros => vec![0.0; n],
                    Init::Ones => vec![1.0; n],
                    Init::Normal => (0..n).map(|_| normal(&mut rng) * std as f32).collect(),
                };
                Ok((name, Tensor::from_vec(values, shape, &Device::Cpu)?))
            })
            .collect()
    }

    /// The config.json of this model trained with the head of `task`: `architectures`
    /// names the trained class (`BertModel` fine-tuned for classification saves as
    /// `BertForSequenceClassification`), so transformers' Auto classes load the head.
    pub fn trained_config(&self, task: Option<EncoderTask>) -> Value {
        const SUFFIXES: &[&str] = &[
            "ForMaskedLM",
            "ForSequenceClassification",
            "ForTokenClassification",
            "ForQuestionAnswering",
            "ForMultipleChoice",
            "ForPreTraining",
            "Model",
        ];
        let mut config = self.json.clone();
        let suffix = match task {
            Some(EncoderTask::MaskedLm) => "ForMaskedLM",
            Some(EncoderTask::SequenceClassification) => "ForSequenceClassification",
            Some(EncoderTask::TokenClassification) => "ForTokenClassification",
            Some(EncoderTask::QuestionAnswering) => "ForQuestionAnswering",
            Some(EncoderTask::MultipleChoice) => "ForMultipleChoice",
            _ => return config,
        };
        if let Some(class) = config["architectures"][0].as_str() {
            let base = SUFFIXES
                .iter()
                .find_map(|s| class.strip_suffix(s))
                .unwrap_or(class);
            config["architectures"] = serde_json::json!([format!("{base}{suffix}")]);
        }
        config
    }

    /// Loads the model for training: every weight a trainable `Var` in `opts.dtype` (f32
    /// by default; GGUF weights dequantized), so the layers take their differentiable
    /// path. A causal LM trains with its next-token loss; an encoder with the head of
    /// `task` (`None`: the checkpoint's own).
    pub fn load_trainable(
        &self,
        task: Option<EncoderTask>,
        opts: &LoadOptions,
    ) -> Result<Trainable> {
        self.load_trainable_with(task, opts, None)
    }

    /// [`Self::load_trainable`] with LoRA adapters as PEFT puts them on the linear layers
    /// `lora` targets: only the adapters train (they are the returned parameters, under
    /// PEFT's names). `start_from` (PEFT's adapter weights by name) continues an adapter.
    pub fn load_trainable_lora(
        &self,
        task: Option<EncoderTask>,
        opts: &LoadOptions,
        lora: LoraConfig,
        start_from: BTreeMap<String, Tensor>,
    ) -> Result<Trainable> {
        self.load_trainable_with(task, opts, Some((lora, start_from)))
    }

    fn load_trainable_with(
        &self,
        task: Option<EncoderTask>,
        opts: &LoadOptions,
        lora: Option<(LoraConfig, BTreeMap<String, Tensor>)>,
    ) -> Result<Trainable> {
        opts.validate()?;
        if opts.adapter.is_some() {
            return Err(Error::config(
                "adapter",
                "merging an adapter is for inference; train one with load_trainable_lora",
            ));
        }
        let mut source = self.source()?;
        if !self.architecture.is_causal_lm() {
            let added = self.new_head_tensors(task, source.as_ref())?;
            if !added.is_empty() {
                source = Box::new(WithAdded { source, added });
            }
        }
        let mut vb = self.weights_over(source, opts, true)?;
        let targets = lora.as_ref().map(|(c, _)| c.target_modules.clone());
        if let Some((config, start)) = lora {
            vb = vb.with_lora(config, LoraMode::Train, start)?;
        }
        let model = if self.architecture.is_causal_lm() {
            let model = self
                .architecture
                .causal_lm(&self.json, &vb, &opts.runtime())?;
            vb.finish(self.architecture.ignored_tensors())?;
            TaskModel::CausalLm(model)
        } else {
            TaskModel::Encoder {
                model: Box::new(self.build_encoder(task, &vb)?),
                problem_type: self
                    .json
                    .get("problem_type")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }
        };
        if let Some(targets) = targets {
            if vb.lora_targets().is_empty() {
                return Err(Error::config(
                    "target_modules",
                    format!("{targets:?} match no linear layer of this model"),
                ));
            }
        }
        Ok(Trainable {
            model,
            parameters: vb.parameters()?,
        })
    }
}

/// config.json's `model_type`; `file` names it in the error.
fn config_model_type<'a>(json: &'a Value, file: &str) -> Result<&'a str> {
    json.get("model_type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::config("model_type", format!("missing from {file}")))
}

/// Reads a model's configuration.
pub struct AutoConfig;

impl AutoConfig {
    /// `path` is a checkpoint directory (with config.json) or a `.gguf` file.
    pub fn from_pretrained(path: impl AsRef<Path>) -> Result<ModelConfig> {
        let path = path.as_ref();
        if checkpoint_kind(path)? == CheckpointKind::Gguf {
            return ModelConfig::from_gguf(Arc::new(GgufFile::open(path)?));
        }
        let config_path = path.join("config.json");
        let json = config::read_json(&config_path)?;
        let model_type = config_model_type(&json, &config_path.display().to_string())?;
        Ok(ModelConfig {
            architecture: registry::by_model_type(model_type)?,
            json,
            files: Files::Dir(path.to_path_buf()),
        })
    }
}

/// Loads the base model of a decoder (hidden states, no head).
pub struct AutoModel;

impl AutoModel {
    /// Loads the base model from a checkpoint directory or GGUF file. Accepts checkpoints
    /// saved from the base model or from a model with a head (whose head is skipped, as
    /// transformers does).
    pub fn from_pretrained(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<DecoderModel> {
        let config = AutoConfig::from_pretrained(path)?;
        let spec = config.decoder_spec()?;
        let vb = config.weights(opts, false)?;
        let with_head = vb.contains("model.embed_tokens.weight");
        let model = DecoderModel::new(
            &spec,
            &if with_head {
                vb.pp("model")
            } else {
                vb.clone()
            },
        )?;
        let mut ignored = config.architecture.ignored_tensors().to_vec();
        if with_head {
            ignored.push("lm_head.weight");
        }
        vb.finish(&ignored)?;
        Ok(model)
    }
}

/// Loads a model with its language-modelling head: any architecture of a causal kind
/// (decoders today; state-space models share the same seam).
pub struct AutoModelForCausalLM;

impl AutoModelForCausalLM {
    /// Loads a causal LM from a checkpoint directory or GGUF file.
    pub fn from_pretrained(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<Box<dyn CausalLM>> {
        opts.validate()?;
        let model = AutoConfig::from_pretrained(path)?.load_causal_lm(opts)?;
        // A GGUF file's parsed metadata (its whole vocabulary) has just been freed.
        release_free_memory();
        Ok(model)
    }

    /// Loads the weights for an already-read config.
    pub fn from_config(config: &ModelConfig, opts: &LoadOptions) -> Result<Box<dyn CausalLM>> {
        config.load_causal_lm(opts)
    }
}

/// Loads an encoder-decoder with its language-modelling head (T5, BART, Marian, Pegasus):
/// transformers' `AutoModelForSeq2SeqLM`.
pub struct AutoModelForSeq2SeqLM;

impl AutoModelForSeq2SeqLM {
    /// Loads an encoder-decoder from a checkpoint directory.
    pub fn from_pretrained(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
    ) -> Result<Box<dyn EncoderDecoderLM>> {
        opts.validate()?;
        AutoConfig::from_pretrained(path)?.load_seq2seq_lm(opts)
    }
}
