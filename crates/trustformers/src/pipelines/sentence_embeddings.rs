//! Sentence embeddings the way sentence-transformers computes them: the modules listed in
//! `modules.json` (Transformer, Pooling, Dense, Normalize), with `max_seq_length` and
//! `do_lower_case` from `sentence_bert_config.json` and the pooling modes of
//! `1_Pooling/config.json` (legacy `pooling_mode_*_tokens` flags or `pooling_mode`).
//! A plain transformers checkpoint gets mean pooling, as sentence-transformers gives it; a
//! GGUF file (llama.cpp's `bert` embedding models) the pooling its converter recorded.

use super::pipeline::Pipeline;
use super::{max_input_tokens, tokenize, Batch};
use crate::auto::{AutoConfig, LoadOptions, ModelConfig};
use crate::memory::MemoryCheckpoint;
use candle_core::{DType, Tensor, D};
use serde_json::Value;
use std::path::{Path, PathBuf};
use trustformers_core::config::{checkpoint_kind, CheckpointKind};
use trustformers_core::gguf::{GgufFile, GgufValue};
use trustformers_core::weights::TensorSource;
use trustformers_core::{config, Error, Result, Weights};
use trustformers_models::{EncoderForTask, EncoderTask, EncoderTaskOutput};
use trustformers_nn::{Activation, Linear};
use trustformers_tokenizers::{
    AutoTokenizer, EncodeOptions, Padding, TextInput, Tokenizer, Truncation,
};

/// One pooling mode of sentence-transformers' `Pooling` module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first unmasked token.
    Cls,
    /// Elementwise maximum over unmasked tokens.
    Max,
    /// Mean over unmasked tokens.
    Mean,
    /// Sum over unmasked tokens divided by the square root of their count.
    MeanSqrtLen,
    /// Mean weighted by position (1, 2, ... from the first unmasked token).
    WeightedMean,
    /// The last unmasked token.
    LastToken,
}

impl Pooling {
    /// Legacy config flag -> mode, in sentence-transformers' order.
    const FLAGS: &'static [(&'static str, Pooling)] = &[
        ("pooling_mode_cls_token", Self::Cls),
        ("pooling_mode_max_tokens", Self::Max),
        ("pooling_mode_mean_tokens", Self::Mean),
        ("pooling_mode_mean_sqrt_len_tokens", Self::MeanSqrtLen),
        ("pooling_mode_weightedmean_tokens", Self::WeightedMean),
        ("pooling_mode_lasttoken", Self::LastToken),
    ];

    fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "cls" => Self::Cls,
            "max" => Self::Max,
            "mean" => Self::Mean,
            "mean_sqrt_len_tokens" => Self::MeanSqrtLen,
            "weightedmean" => Self::WeightedMean,
            "lasttoken" => Self::LastToken,
            other => {
                return Err(Error::config(
                    "pooling_mode",
                    format!("unknown mode `{other}` (cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken)"),
                ))
            }
        })
    }

    /// The pooling llama.cpp's converter recorded in a GGUF file (`{arch}.pooling_type`, from
    /// the model's sentence-transformers Pooling module): mean (1), CLS (2), last token (3).
    /// None (0) or no record gets mean pooling, as a plain transformers checkpoint does.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file
            .get("general.architecture")
            .and_then(GgufValue::as_str)
            .unwrap_or_default();
        let key = format!("{arch}.pooling_type");
        Ok(match file.get(&key).map(|v| (v, v.as_u64())) {
            None | Some((_, Some(0 | 1))) => Self::Mean,
            Some((_, Some(2))) => Self::Cls,
            Some((_, Some(3))) => Self::LastToken,
            Some((_, Some(4))) => {
                return Err(Error::config(
                    key,
                    "says rank: this is a reranker, not an embedding model",
                ))
            }
            Some((v, _)) => {
                return Err(Error::config(
                    key,
                    format!("unknown pooling type {v:?} (0 to 3 are embeddings)"),
                ))
            }
        })
    }

    /// The modes a Pooling config selects, in output order.
    pub fn from_config(config: &Value) -> Result<Vec<Self>> {
        let modes = match config.get("pooling_mode") {
            Some(Value::String(s)) => vec![Self::from_name(s)?],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| Error::config("pooling_mode", "must hold strings"))
                        .and_then(Self::from_name)
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(Error::config("pooling_mode", "must be a string or a list")),
            None => Self::FLAGS
                .iter()
                .filter(|(flag, _)| config.get(*flag).and_then(Value::as_bool) == Some(true))
                .map(|(_, m)| *m)
                .collect(),
        };
        if modes.is_empty() {
            return Err(Error::config("pooling_mode", "selects no pooling mode"));
        }
        Ok(modes)
    }

    /// # Shapes
    /// `xs`: `[batch, seq, hidden]` f32, `mask`: `[batch, seq]` f32 -> `[batch, hidden]`.
    fn pool(self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, seq, _) = xs.dims3()?;
        let m = mask.unsqueeze(D::Minus1)?;
        let first_real = |mask: &Tensor| -> Result<Vec<usize>> {
            Ok(mask
                .to_vec2::<f32>()?
                .iter()
                .map(|row| row.iter().position(|&v| v > 0.0).unwrap_or(0))
                .collect())
        };
        let gather = |idx: Vec<usize>, xs: &Tensor| -> Result<Tensor> {
            let rows = idx
                .iter()
                .enumerate()
                .map(|(b, &i)| xs.get(b)?.get(i))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::stack(&rows, 0)?)
        };
        Ok(match self {
            Self::Cls => gather(first_real(mask)?, xs)?,
            Self::LastToken => {
                let last: Vec<usize> = mask
                    .to_vec2::<f32>()?
                    .iter()
                    .map(|row| row.iter().rposition(|&v| v > 0.0).unwrap_or(seq - 1))
                    .collect();
                gather(last, &xs.broadcast_mul(&m)?)?
            }
            Self::Max => {
                let neg = Tensor::full(f32::NEG_INFINITY, xs.shape(), xs.device())?;
                m.broadcast_as(xs.shape())?
                    .ne(0f32)?
                    .where_cond(xs, &neg)?
                    .max(1)?
            }
            Self::Mean | Self::MeanSqrtLen => {
                let sum = xs.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
                let denom = if self == Self::Mean {
                    count
                } else {
                    count.sqrt()?
                };
                sum.broadcast_div(&denom)?
            }
            Self::WeightedMean => {
                let starts = first_real(mask)?;
                let batch = starts.len();
                let mut w = Vec::with_capacity(batch * seq);
                for &s in &starts {
                    w.extend((0..seq).map(|i| (i as f32 + 1.0) - s as f32));
                }
                let w = Tensor::from_vec(w, (batch, seq, 1), xs.device())?.broadcast_mul(&m)?;
                let sum = xs.broadcast_mul(&w)?.sum(1)?;
                sum.broadcast_div(&w.sum(1)?.clamp(1e-9, f64::INFINITY)?)?
            }
        })
    }
}

/// sentence-transformers' `Dense` module: a linear layer and an activation.
struct Dense {
    linear: Linear,
    act: Option<Activation>,
    out_features: usize,
}

impl Dense {
    /// The module in the directory `rel` of `files`.
    fn load(files: &mut Files<'_>, rel: &Path, opts: &LoadOptions) -> Result<Self> {
        let cfg = files.required_json(&rel.join("config.json"))?;
        let dir = files.path_of(rel);
        let dim = |k: &str| -> Result<usize> {
            cfg.get(k)
                .and_then(Value::as_u64)
                .filter(|&n| n > 0 && n <= 1 << 20)
                .map(|n| n as usize)
                .ok_or_else(|| Error::config(k, format!("missing or invalid in {}", dir.display())))
        };
        let act = match cfg
            .get("activation_function")
            .and_then(Value::as_str)
            .unwrap_or("torch.nn.modules.linear.Identity")
        {
            a if a.ends_with("Identity") => None,
            a if a.ends_with("Tanh") => Some(Activation::Tanh),
            a if a.ends_with("ReLU") => Some(Activation::Relu),
            a if a.ends_with("GELU") => Some(Activation::GeluErf),
            other => {
                return Err(Error::config(
                    "activation_function",
                    format!("`{other}` is not supported (Identity, Tanh, ReLU, GELU)"),
                ))
            }
        };
        let bias = cfg.get("bias").and_then(Value::as_bool).unwrap_or(true);
        let source = files.tensors(rel)?;
        let mut vb = Weights::new(
            source,
            opts.dtype.unwrap_or(DType::F32),
            opts.device.clone(),
            false,
        );
        if opts.quantize == Some(crate::Quantization::DynamicInt8) {
            vb = vb.with_int8_linears()?;
        }
        let out_features = dim("out_features")?;
        let linear = Linear::new(&vb.pp("linear"), dim("in_features")?, out_features, bias)?;
        vb.finish(&[])?;
        Ok(Self {
            linear,
            act,
            out_features,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let y = self.linear.forward(xs)?;
        match self.act {
            Some(a) => a.forward(&y),
            None => Ok(y),
        }
    }
}

/// Where a sentence-transformers model's files come from.
enum Files<'a> {
    Dir(&'a Path),
    Memory(&'a mut MemoryCheckpoint),
}

impl Files<'_> {
    /// The name messages give the file or directory at `rel`.
    fn path_of(&self, rel: &Path) -> PathBuf {
        match self {
            Files::Dir(dir) => dir.join(rel),
            Files::Memory(files) => files.path_of(rel),
        }
    }

    /// The JSON file at `rel`, `None` when there is none.
    fn json(&self, rel: &Path) -> Result<Option<Value>> {
        match self {
            Files::Dir(dir) => {
                let path = dir.join(rel);
                match path.is_file() {
                    true => Ok(Some(config::read_json(&path)?)),
                    false => Ok(None),
                }
            }
            Files::Memory(files) => files.json(rel),
        }
    }

    /// The JSON file at `rel`, which must be there.
    fn required_json(&self, rel: &Path) -> Result<Value> {
        self.json(rel)?.ok_or_else(|| {
            Error::io(
                self.path_of(rel),
                std::io::Error::new(std::io::ErrorKind::NotFound, "missing"),
            )
        })
    }

    /// The weights in the directory `rel`.
    fn tensors(&mut self, rel: &Path) -> Result<Box<dyn TensorSource>> {
        match self {
            Files::Dir(dir) => trustformers_core::weights::open_dir(&dir.join(rel)),
            Files::Memory(files) => Ok(Box::new(files.take_safetensors(rel)?)),
        }
    }

    /// The encoder checkpoint in the directory `rel`, without a head, and its tokenizer.
    fn encoder(&mut self, rel: &Path, opts: &LoadOptions) -> Result<(EncoderForTask, Tokenizer)> {
        match self {
            Files::Dir(dir) => {
                super::load_encoder_and_tokenizer(&dir.join(rel), EncoderTask::Base, opts)
            }
            Files::Memory(files) => {
                let tokenizer = files.tokenizer(rel)?;
                let model = files
                    .model_config(rel)?
                    .load_encoder(Some(EncoderTask::Base), opts)?;
                Ok((model, tokenizer))
            }
        }
    }
}

enum Module {
    Pooling(Vec<Pooling>),
    Dense(Dense),
    Normalize,
}

/// Options of [`SentenceTransformer::encode`].
#[derive(Debug, Clone)]
pub struct EmbedParams {
    /// Sentences per forward pass.
    pub batch_size: usize,
    /// L2-normalize the embeddings (on top of a `Normalize` module, which always applies).
    pub normalize: bool,
}

impl Default for EmbedParams {
    fn default() -> Self {
        Self {
            batch_size: 32,
            normalize: false,
        }
    }
}

/// A sentence-transformers model.
pub struct SentenceTransformer {
    tokenizer: Tokenizer,
    model: EncoderForTask,
    modules: Vec<Module>,
    max_seq_length: Option<usize>,
    do_lower_case: bool,
}

impl SentenceTransformer {
    /// Loads a sentence-transformers directory (or a plain transformers encoder checkpoint,
    /// which gets mean pooling, or a GGUF file, which gets the pooling it records and, as
    /// llama.cpp gives them, L2-normalized embeddings).
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        if checkpoint_kind(dir)? == CheckpointKind::Gguf {
            return Self::from_gguf(&AutoConfig::from_pretrained(dir)?, opts);
        }
        Self::load(Files::Dir(dir), opts)
    }

    /// Loads a sentence-transformers checkpoint held in memory (its files by their path
    /// inside it: `modules.json`, `config.json`, `model.safetensors`, `tokenizer.json`,
    /// `1_Pooling/config.json`, ...), or a GGUF file held in memory; as
    /// [`Self::from_pretrained`] loads them from a directory or a path.
    pub fn from_memory(mut files: MemoryCheckpoint, opts: &LoadOptions) -> Result<Self> {
        if files.is_gguf() {
            return Self::from_gguf(&files.model_config(Path::new(""))?, opts);
        }
        Self::load(Files::Memory(&mut files), opts)
    }

    /// A GGUF file's model: the pooling it records and, as llama.cpp gives them,
    /// L2-normalized embeddings. One parse of the file serves the pooling, the model and the
    /// tokenizer.
    fn from_gguf(config: &ModelConfig, opts: &LoadOptions) -> Result<Self> {
        let file = config
            .gguf()
            .ok_or_else(|| Error::InvalidInput("not a GGUF file".into()))?;
        let pooling = Pooling::from_gguf(file)?;
        let tokenizer = AutoTokenizer::from_gguf(file)?;
        let model = config.load_encoder(Some(EncoderTask::Base), opts)?;
        Ok(Self {
            tokenizer,
            model,
            // llama.cpp's embeddings are L2-normalized unless asked otherwise; the converter
            // keeps no record of a Normalize module.
            modules: vec![Module::Pooling(vec![pooling]), Module::Normalize],
            max_seq_length: None,
            do_lower_case: false,
        })
    }

    /// The modules `modules.json` lists (a plain transformers checkpoint: the Transformer
    /// alone, with mean pooling).
    fn load(mut files: Files<'_>, opts: &LoadOptions) -> Result<Self> {
        let entries: Vec<(String, PathBuf)> = match files.json(Path::new("modules.json"))? {
            Some(json) => {
                json.as_array()
                    .ok_or_else(|| Error::config("modules.json", "must be a list"))?
                    .iter()
                    .map(|m| -> Result<(String, PathBuf)> {
                        let kind = m.get("type").and_then(Value::as_str).ok_or_else(|| {
                            Error::config("modules.json", "a module has no `type`")
                        })?;
                        let path = m.get("path").and_then(Value::as_str).unwrap_or("");
                        if Path::new(path)
                            .components()
                            .any(|c| !matches!(c, std::path::Component::Normal(_)))
                        {
                            return Err(Error::config(
                                "modules.json",
                                format!("module path `{path}` leaves the model directory"),
                            ));
                        }
                        let short = kind.rsplit('.').next().unwrap_or(kind).to_string();
                        Ok((short, PathBuf::from(path)))
                    })
                    .collect::<Result<_>>()?
            }
            None => vec![("Transformer".into(), PathBuf::new())],
        };
        let mut transformer: Option<PathBuf> = None;
        let mut modules = Vec::new();
        for (kind, path) in entries {
            match kind.as_str() {
                "Transformer" if transformer.is_none() => transformer = Some(path),
                "Pooling" => {
                    let cfg = files.required_json(&path.join("config.json"))?;
                    modules.push(Module::Pooling(Pooling::from_config(&cfg)?));
                }
                "Dense" => modules.push(Module::Dense(Dense::load(&mut files, &path, opts)?)),
                "Normalize" => modules.push(Module::Normalize),
                other => {
                    return Err(Error::config(
                        "modules.json",
                        format!("module `{other}` is not supported (Transformer, Pooling, Dense, Normalize)"),
                    ))
                }
            }
        }
        let transformer = transformer
            .ok_or_else(|| Error::config("modules.json", "lists no Transformer module"))?;
        if !modules.iter().any(|m| matches!(m, Module::Pooling(_))) {
            modules.insert(0, Module::Pooling(vec![Pooling::Mean]));
        }
        let (max_seq_length, do_lower_case) =
            match files.json(&transformer.join("sentence_bert_config.json"))? {
                Some(cfg) => (
                    cfg.get("max_seq_length")
                        .and_then(Value::as_u64)
                        .map(|n| n as usize),
                    cfg.get("do_lower_case")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                ),
                None => (None, false),
            };
        let (model, tokenizer) = files.encoder(&transformer, opts)?;
        Ok(Self {
            tokenizer,
            model,
            modules,
            max_seq_length,
            do_lower_case,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The longest input, in tokens; longer ones are truncated.
    pub fn max_seq_length(&self) -> usize {
        let model_max = max_input_tokens(&self.tokenizer, &self.model);
        self.max_seq_length.map_or(model_max, |m| m.min(model_max))
    }

    /// The size of an embedding (sentence-transformers' `get_sentence_embedding_dimension`):
    /// the hidden size times the pooling modes, or the last Dense module's output.
    pub fn dimension(&self) -> usize {
        let hidden = self.model.model().spec().hidden_size;
        self.modules.iter().fold(hidden, |dim, m| match m {
            Module::Pooling(modes) => hidden * modes.len(),
            Module::Dense(d) => d.out_features,
            Module::Normalize => dim,
        })
    }

    /// One embedding per text (sentence-transformers' `encode`).
    pub fn encode(&self, texts: &[&str], params: &EmbedParams) -> Result<Vec<Vec<f32>>> {
        self.call(texts, params)
    }

    /// `text` as the model reads it (lowercased when the model says so).
    fn prepared<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.do_lower_case {
            text.to_lowercase().into()
        } else {
            text.into()
        }
    }
}

impl Pipeline for SentenceTransformer {
    const TASK: &'static str = "sentence-similarity";
    type Input<'a> = &'a str;
    type Params = EmbedParams;
    /// The text's embedding.
    type Output = Vec<f32>;
    type ModelInputs = Batch;
    type ModelOutputs = EncoderTaskOutput;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    /// As sentence-transformers: longest texts (in characters) first, so that each batch
    /// holds texts of similar length and pads little.
    fn batch_order(&self, texts: &[&str]) -> Option<Vec<usize>> {
        let lengths: Vec<usize> = texts
            .iter()
            .map(|t| self.prepared(t).chars().count())
            .collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        Some(order)
    }

    fn preprocess(&self, texts: &[&str], _: usize, _: &EmbedParams) -> Result<Batch> {
        let opts = EncodeOptions {
            padding: Padding::Longest,
            truncation: Some(Truncation::LongestFirst),
            max_length: Some(self.max_seq_length()),
            ..Default::default()
        };
        let texts: Vec<_> = texts.iter().map(|t| self.prepared(t)).collect();
        let inputs: Vec<TextInput<'_>> = texts.iter().map(|t| TextInput::Single(t)).collect();
        tokenize(&self.tokenizer, &inputs, &opts, self.model.model().device())
    }

    fn forward(&self, batch: &Batch) -> Result<EncoderTaskOutput> {
        batch.run(&self.model)
    }

    /// The modules after the Transformer: pooling, dense layers, normalization.
    fn postprocess(
        &self,
        batch: &Batch,
        out: EncoderTaskOutput,
        params: &EmbedParams,
    ) -> Result<Vec<Vec<f32>>> {
        let mask = batch.attention_mask.to_dtype(DType::F32)?;
        let mut xs = out.last_hidden_state.to_dtype(DType::F32)?;
        let mut pooled = false;
        for module in &self.modules {
            xs = match module {
                Module::Pooling(modes) => {
                    pooled = true;
                    let parts = modes
                        .iter()
                        .map(|m| m.pool(&xs, &mask))
                        .collect::<Result<Vec<_>>>()?;
                    Tensor::cat(&parts, D::Minus1)?
                }
                Module::Dense(d) if pooled => d.forward(&xs)?.to_dtype(DType::F32)?,
                Module::Dense(_) => {
                    return Err(Error::config(
                        "modules.json",
                        "a Dense module before Pooling",
                    ))
                }
                Module::Normalize => l2_normalize(&xs)?,
            };
        }
        if params.normalize {
            xs = l2_normalize(&xs)?;
        }
        Ok(xs.to_vec2::<f32>()?)
    }
}

/// Rows divided by their L2 norm (at least 1e-12, as torch's `normalize`).
fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    let norm = xs
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(xs.broadcast_div(&norm)?)
}
