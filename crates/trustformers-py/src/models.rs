//! Models: a causal language model (forward and generate) and an encoder with the head of a
//! task. `trustformers/modeling.py` builds transformers' `AutoModel*` classes and output
//! objects on them.

use crate::arrays::{output_dict, HostArray, IdArray};
use crate::errors::{detach, invalid, Failure};
use numpy::PyReadonlyArray2;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trustformers::generation::{
    beam_search_batch, generate_batch_with, generate_seq2seq_with, GenerationConfig, StepScores,
    TokenOutput,
};
use trustformers::models::decoder::default_positions;
use trustformers::models::encoder::heads::EncoderTask;
use trustformers::models::ForwardOptions;
use trustformers::{
    resolve_model, AutoConfig, CausalLM, DType, EncoderDecoderLM, EncoderForTask, Error,
    LoadOptions, ModelConfig, ModelKind, Tensor,
};

/// Load options from the Python side's `dtype` (`None` or "auto": the checkpoint's own way
/// of loading; GGUF weights stay quantized; "q8": int8 weights and activations, encoders
/// only).
pub fn load_options(dtype: Option<&str>) -> Result<LoadOptions, Error> {
    let (dtype, quantize) = match dtype {
        None | Some("auto") => (None, None),
        Some(name) => trustformers::parse_load_dtype(name)?,
    };
    Ok(LoadOptions {
        dtype,
        quantize,
        ..Default::default()
    })
}

/// Resolves `name` (the CLI's resolution) and parses its configuration.
pub(crate) fn open(name: &str) -> Result<(PathBuf, ModelConfig), Error> {
    let path = resolve_model(Some(name))?;
    let config = AutoConfig::from_pretrained(&path)?;
    Ok((path, config))
}

/// What a loaded checkpoint says about itself, for the Python side: where it was found,
/// its config.json (for GGUF, the equivalent built from its metadata) and what it says
/// about generation (see [`generation_json`]), as JSON text.
#[pyclass(
    name = "Checkpoint",
    module = "trustformers._trustformers",
    frozen,
    get_all
)]
#[derive(Clone)]
pub struct PyCheckpoint {
    path: String,
    config_json: String,
    generation_json: String,
}

impl PyCheckpoint {
    pub(crate) fn new(path: &Path, config: &ModelConfig) -> Result<Self, Error> {
        Ok(Self {
            path: path.display().to_string(),
            config_json: json_text(&config.json),
            generation_json: json_text(&generation_json(path, config)?),
        })
    }
}

/// `Err` naming `name` when `other` (a mask, positions, types) is not shaped as `ids`.
fn same_shape(py: Python<'_>, name: &str, other: Option<&IdArray>, ids: &IdArray) -> PyResult<()> {
    match other {
        Some(o) if (o.rows, o.cols) != (ids.rows, ids.cols) => Err(invalid(
            py,
            format!(
                "`{name}` has shape [{}, {}], input_ids [{}, {}]",
                o.rows, o.cols, ids.rows, ids.cols
            ),
        )),
        _ => Ok(()),
    }
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

/// What a checkpoint says about generation besides config.json: its directory's
/// generation_config.json as is, or for a GGUF file the special token ids its tokenizer
/// metadata names.
fn generation_json(path: &Path, config: &ModelConfig) -> Result<Value, Error> {
    if let Some(file) = config.gguf() {
        let mut out = Map::new();
        for (key, field) in [
            ("tokenizer.ggml.eos_token_id", "eos_token_id"),
            ("tokenizer.ggml.bos_token_id", "bos_token_id"),
            ("tokenizer.ggml.padding_token_id", "pad_token_id"),
        ] {
            if let Some(id) = file.get(key).and_then(|v| v.as_u64()) {
                out.insert(field.into(), Value::from(id));
            }
        }
        return Ok(Value::Object(out));
    }
    let file = path.join("generation_config.json");
    match file.is_file() {
        true => trustformers::core::config::read_json(&file),
        false => Ok(Value::Object(Map::new())),
    }
}

/// A [`GenerationConfig`] from the Python side's resolved settings (transformers' field
/// names, `max_new_tokens` always given), with the extensions `seed`,
/// `frequency_penalty` and `presence_penalty`.
pub(crate) fn generation_config(py: Python<'_>, json: &str) -> PyResult<GenerationConfig> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| invalid(py, format!("generation settings: {e}")))?;
    let mut config = GenerationConfig::default();
    config
        .apply_json(&value)
        .map_err(|e| crate::errors::to_py(py, e))?;
    let number = |key: &str| value.get(key).and_then(Value::as_f64);
    if let Some(seed) = value.get("seed").and_then(Value::as_u64) {
        config.seed = seed;
    }
    if let Some(x) = number("frequency_penalty") {
        config.frequency_penalty = x as f32;
    }
    if let Some(x) = number("presence_penalty") {
        config.presence_penalty = x as f32;
    }
    Ok(config)
}

/// A causal language model (decoders, Mixture-of-Experts, state-space models) loaded from
/// safetensors or GGUF.
#[pyclass(name = "CausalLM", module = "trustformers._trustformers", frozen)]
pub struct PyCausalLM {
    model: Arc<dyn CausalLM>,
    checkpoint: PyCheckpoint,
}

#[pymethods]
impl PyCausalLM {
    /// Loads the causal LM at `name` (directory, `.gguf` file, Hub id or known model).
    #[staticmethod]
    #[pyo3(signature = (name, dtype=None))]
    fn from_pretrained(py: Python<'_>, name: String, dtype: Option<String>) -> PyResult<Self> {
        detach(py, move || {
            let opts = load_options(dtype.as_deref())?;
            let (path, config) = open(&name)?;
            if !config.architecture.is_causal_lm() {
                return Err(config
                    .architecture
                    .wrong_kind("a causal language model (AutoModelForCausalLM)")
                    .into());
            }
            let checkpoint = PyCheckpoint::new(&path, &config)?;
            Ok(Self {
                model: Arc::from(config.load_causal_lm(&opts)?),
                checkpoint,
            })
        })
    }

    #[getter]
    fn checkpoint(&self) -> PyCheckpoint {
        self.checkpoint.clone()
    }

    #[getter]
    fn model_type(&self) -> String {
        self.model.model_type().to_owned()
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    #[getter]
    fn num_hidden_layers(&self) -> usize {
        self.model.num_hidden_layers()
    }

    #[getter]
    fn max_position_embeddings(&self) -> usize {
        self.model.max_position_embeddings()
    }

    /// One forward pass over `[batch, seq]` ids: `logits` (of the last `logits_to_keep`
    /// positions when given), `last_hidden_state`, and with `output_hidden_states` the
    /// `hidden_states` list. Positions default to 0..seq, as transformers' are without a
    /// cache.
    #[pyo3(signature = (input_ids, attention_mask=None, position_ids=None, output_hidden_states=false, logits_to_keep=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        position_ids: Option<PyReadonlyArray2<'py, i64>>,
        output_hidden_states: bool,
        logits_to_keep: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let vocab = self.model.vocab_size() as u64;
        let ids = IdArray::read(&input_ids, "input_ids", vocab).map_err(|e| to_py(py, e))?;
        let mask = attention_mask
            .map(|m| IdArray::read(&m, "attention_mask", 2))
            .transpose()
            .map_err(|e| to_py(py, e))?;
        let positions = position_ids
            .map(|p| IdArray::read(&p, "position_ids", u32::MAX as u64))
            .transpose()
            .map_err(|e| to_py(py, e))?;
        same_shape(py, "attention_mask", mask.as_ref(), &ids)?;
        same_shape(py, "position_ids", positions.as_ref(), &ids)?;
        if logits_to_keep == Some(0) {
            return Err(invalid(py, "logits_to_keep must be at least 1"));
        }
        let model = self.model.clone();
        let (logits, last, hidden) = detach(py, move || {
            let device = model.device().clone();
            let positions = match &positions {
                Some(p) => p.tensor(&device)?.to_dtype(DType::I64)?,
                None => default_positions(ids.rows, 0, ids.cols, &device)?,
            };
            let opts = ForwardOptions {
                attention_mask: mask.as_ref().map(|m| m.tensor(&device)).transpose()?,
                output_hidden_states,
                logits_to_keep,
            };
            let out = model.forward_with(
                &ids.tensor(&device)?,
                &positions,
                &opts,
                &mut model.new_cache(),
            )?;
            let hidden = out
                .hidden_states
                .iter()
                .map(HostArray::from_tensor)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                HostArray::from_tensor(&out.logits)?,
                HostArray::from_tensor(&out.last_hidden_state)?,
                hidden,
            ))
        })?;
        output_dict(
            py,
            vec![("logits", logits), ("last_hidden_state", last)],
            output_hidden_states.then_some(hidden),
        )
    }

    /// Generates after each prompt (lists of ids, unpadded) with the resolved settings
    /// `config` (JSON text): a list of `(generated ids, beam score or None, steps or None)`
    /// (see [`generated`]), `num_return_sequences` per prompt. `on_token(row, id)`, when given, sees each new
    /// token of greedy and sampled search as it comes (a streamer, stop strings) and
    /// returns `False` to end that row; in beam search `stops(ids)`, when given, sees each
    /// candidate's generated ids and returns `True` when they end it (stop strings). Ctrl-C
    /// stops the generation with `KeyboardInterrupt`.
    #[pyo3(signature = (prompts, config, on_token=None, stops=None))]
    fn generate(
        &self,
        py: Python<'_>,
        prompts: Vec<Vec<u32>>,
        config: &str,
        on_token: Option<Py<PyAny>>,
        stops: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Generated>> {
        let config = generation_config(py, config)?;
        let vocab = self.model.vocab_size() as u32;
        if prompts.is_empty() {
            return Err(invalid(py, "no prompts to generate from"));
        }
        for p in &prompts {
            if p.is_empty() {
                return Err(invalid(py, "a prompt holds no tokens"));
            }
            if let Some(bad) = p.iter().find(|&&id| id >= vocab) {
                return Err(invalid(
                    py,
                    format!("input_ids holds {bad}, outside the vocabulary of {vocab} tokens"),
                ));
            }
        }
        let model = self.model.clone();
        let outputs = detach(py, move || {
            let mut hook = PyHook::default();
            if config.num_beams > 1 {
                // The hook checks for Ctrl-C at every candidate, stop strings or not.
                let result = beam_search_batch(&*model, &prompts, &config, |tokens| match &stops {
                    Some(s) => hook.call(Some(s), (tokens.to_vec(),)),
                    None => hook.call(None, ()).map(|_| false),
                });
                return hook.finish(result);
            }
            let result = generate_batch_with(&*model, &prompts, &config, |row, id| {
                hook.call(on_token.as_ref(), (row, id))
            });
            hook.finish(result)
        })?;
        generated(py, outputs)
    }
}

/// An encoder-decoder (T5, BART, Marian, Pegasus, mBART) with its language-model head.
#[pyclass(name = "Seq2SeqLM", module = "trustformers._trustformers", frozen)]
pub struct PySeq2SeqLM {
    model: Arc<dyn EncoderDecoderLM>,
    checkpoint: PyCheckpoint,
}

#[pymethods]
impl PySeq2SeqLM {
    /// Loads the encoder-decoder at `name` (directory, `.gguf` file, Hub id or known model).
    #[staticmethod]
    #[pyo3(signature = (name, dtype=None))]
    fn from_pretrained(py: Python<'_>, name: String, dtype: Option<String>) -> PyResult<Self> {
        detach(py, move || {
            let opts = load_options(dtype.as_deref())?;
            let (path, config) = open(&name)?;
            let checkpoint = PyCheckpoint::new(&path, &config)?;
            Ok(Self {
                model: Arc::from(config.load_seq2seq_lm(&opts)?),
                checkpoint,
            })
        })
    }

    #[getter]
    fn checkpoint(&self) -> PyCheckpoint {
        self.checkpoint.clone()
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    #[getter]
    fn decoder_start_token_id(&self) -> u32 {
        self.model.decoder_start_token_id()
    }

    /// Encodes the `[batch, source]` ids and decodes `decoder_input_ids` against them:
    /// `logits`, the decoder's `last_hidden_state`, `encoder_last_hidden_state`.
    #[pyo3(signature = (input_ids, decoder_input_ids, attention_mask=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        decoder_input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let vocab = self.model.vocab_size() as u64;
        let ids = IdArray::read(&input_ids, "input_ids", vocab).map_err(|e| to_py(py, e))?;
        let target = IdArray::read(&decoder_input_ids, "decoder_input_ids", vocab)
            .map_err(|e| to_py(py, e))?;
        let mask = attention_mask
            .map(|m| IdArray::read(&m, "attention_mask", 2))
            .transpose()
            .map_err(|e| to_py(py, e))?;
        same_shape(py, "attention_mask", mask.as_ref(), &ids)?;
        if target.rows != ids.rows {
            return Err(invalid(
                py,
                format!(
                    "decoder_input_ids has {} rows, input_ids {}",
                    target.rows, ids.rows
                ),
            ));
        }
        let model = self.model.clone();
        let arrays = detach(py, move || {
            let device = model.device().clone();
            let mask = mask.as_ref().map(|m| m.tensor(&device)).transpose()?;
            let encoded = model.encode(&ids.tensor(&device)?, mask.as_ref())?;
            let encoder_out = HostArray::from_tensor(&encoded)?;
            let mut cache = model.new_cache(encoded, mask)?;
            let out = model.decode(
                &target.tensor(&device)?,
                &ForwardOptions::default(),
                &mut cache,
            )?;
            Ok([
                ("logits", HostArray::from_tensor(&out.logits)?),
                (
                    "last_hidden_state",
                    HostArray::from_tensor(&out.last_hidden_state)?,
                ),
                ("encoder_last_hidden_state", encoder_out),
            ])
        })?;
        output_dict(py, arrays.into(), None)
    }

    /// Generates from each source (lists of ids, unpadded) with the resolved settings
    /// `config` (JSON text): `(ids after the decoder start token, beam score or None, steps
    /// or None)`, `num_return_sequences` per source; `on_token` and `stops` as for a causal
    /// LM.
    #[pyo3(signature = (sources, config, on_token=None, stops=None))]
    fn generate(
        &self,
        py: Python<'_>,
        sources: Vec<Vec<u32>>,
        config: &str,
        on_token: Option<Py<PyAny>>,
        stops: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Generated>> {
        let config = generation_config(py, config)?;
        let vocab = self.model.vocab_size() as u32;
        if sources.is_empty() || sources.iter().any(Vec::is_empty) {
            return Err(invalid(py, "every source must hold at least one token"));
        }
        if let Some(bad) = sources.iter().flatten().find(|&&id| id >= vocab) {
            return Err(invalid(
                py,
                format!("input_ids holds {bad}, outside the vocabulary of {vocab} tokens"),
            ));
        }
        let model = self.model.clone();
        let outputs = detach(py, move || {
            interrupted()?;
            // One hook for both callbacks: greedy search and sampling call only the first,
            // beam search only the second.
            let hook = std::cell::RefCell::new(PyHook::default());
            let result = generate_seq2seq_with(
                &*model,
                &sources,
                &config,
                |row, id| hook.borrow_mut().call(on_token.as_ref(), (row, id)),
                |tokens| match &stops {
                    Some(s) => hook.borrow_mut().call(Some(s), (tokens.to_vec(),)),
                    None => Ok(false),
                },
            );
            hook.into_inner().finish(result)
        })?;
        generated(py, outputs)
    }
}

/// One output of `generate` as the Python side takes it: the new ids, the beam score, and
/// with `output_scores` / `output_logits` a dict of `beam_indices` and, on the first output
/// of each search (beam search's outputs share theirs), `scores` and `logits` as
/// `[steps, rows, vocab]` arrays.
pub(crate) type Generated = (Vec<u32>, Option<f32>, Option<Py<PyAny>>);

pub(crate) fn generated(py: Python<'_>, outputs: Vec<TokenOutput>) -> PyResult<Vec<Generated>> {
    let mut previous: Option<Arc<StepScores>> = None;
    let stacked = |steps: &[Vec<f32>], rows: usize| -> PyResult<Option<Py<PyAny>>> {
        let Some(first) = steps.first() else {
            return Ok(None);
        };
        let vocab = first.len() / rows.max(1);
        let data: Vec<f32> = steps.iter().flatten().copied().collect();
        let host = HostArray {
            shape: vec![steps.len(), rows, vocab],
            data,
        };
        Ok(Some(host.into_py(py)?.into_any().unbind()))
    };
    outputs
        .into_iter()
        .map(|o| {
            let Some(steps) = &o.steps else {
                return Ok((o.ids, o.score, None));
            };
            let extra = PyDict::new(py);
            extra.set_item("beam_indices", &o.beam_indices)?;
            if !previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, steps)) {
                extra.set_item("scores", stacked(&steps.scores, steps.rows)?)?;
                extra.set_item("logits", stacked(&steps.logits, steps.rows)?)?;
                if !steps.hidden_states.is_empty() {
                    let mut per_step = Vec::with_capacity(steps.hidden_states.len());
                    for layers in &steps.hidden_states {
                        let mut arrays = Vec::with_capacity(layers.len());
                        for t in layers {
                            let host = HostArray::from_tensor(t).map_err(|e| match e {
                                Failure::Rust(e) => to_py(py, e),
                                Failure::Python(e) => e,
                            })?;
                            arrays.push(host.into_py(py)?);
                        }
                        per_step.push(arrays);
                    }
                    extra.set_item("hidden_states", per_step)?;
                }
                previous = Some(steps.clone());
            }
            Ok((o.ids, o.score, Some(extra.into_any().unbind())))
        })
        .collect()
}

/// Calls into Python from a generation running without the GIL (a streamer, stop strings),
/// checking for Ctrl-C first. A callable's `False` is an answer (end that row, or that
/// beam); anything else (a streamer's `None`) is `true`. An exception raised there
/// (`KeyboardInterrupt`, a streamer's error) ends the generation and is raised again by
/// [`PyHook::finish`].
#[derive(Default)]
pub(crate) struct PyHook {
    raised: Option<PyErr>,
}

impl PyHook {
    pub(crate) fn call<A>(&mut self, callable: Option<&Py<PyAny>>, args: A) -> Result<bool, Error>
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        let result = Python::attach(|py| -> PyResult<bool> {
            py.check_signals()?;
            let Some(callable) = callable else {
                return Ok(true);
            };
            let answer = callable.call1(py, args)?;
            let answer = answer.bind(py);
            Ok(!answer.is_instance_of::<PyBool>() || answer.is_truthy()?)
        });
        result.map_err(|e| {
            self.raised = Some(e);
            Error::InvalidInput("generation was interrupted".into())
        })
    }

    /// The generation's result, or the Python exception that ended it.
    pub(crate) fn finish<T>(self, result: Result<T, Error>) -> Result<T, Failure> {
        match self.raised {
            Some(e) => Err(Failure::Python(e)),
            None => Ok(result?),
        }
    }
}

/// `KeyboardInterrupt` (or whatever the signal handler raised) when Ctrl-C was pressed.
fn interrupted() -> Result<(), Failure> {
    Python::attach(|py| py.check_signals())?;
    Ok(())
}

fn to_py(py: Python<'_>, e: Error) -> PyErr {
    crate::errors::to_py(py, e)
}

/// transformers' names of the encoder heads.
fn task(py: Python<'_>, name: &str) -> PyResult<EncoderTask> {
    Ok(match name {
        "base" => EncoderTask::Base,
        "masked-lm" => EncoderTask::MaskedLm,
        "sequence-classification" => EncoderTask::SequenceClassification,
        "token-classification" => EncoderTask::TokenClassification,
        "question-answering" => EncoderTask::QuestionAnswering,
        "multiple-choice" => EncoderTask::MultipleChoice,
        "pretraining" => EncoderTask::PreTraining,
        other => return Err(invalid(py, format!("unknown encoder head {other:?}"))),
    })
}

/// An encoder (BERT, RoBERTa, DeBERTa, ModernBERT, ...) with the head of one task.
#[pyclass(name = "Encoder", module = "trustformers._trustformers", frozen)]
pub struct PyEncoder {
    model: Arc<EncoderForTask>,
    checkpoint: PyCheckpoint,
}

#[pymethods]
impl PyEncoder {
    /// Loads the encoder at `name` with the head `task` (`base`, `masked-lm`,
    /// `sequence-classification`, `token-classification`, `question-answering`,
    /// `multiple-choice`, `pretraining`).
    #[staticmethod]
    #[pyo3(signature = (name, task, dtype=None))]
    fn from_pretrained(
        py: Python<'_>,
        name: String,
        task: &str,
        dtype: Option<String>,
    ) -> PyResult<Self> {
        let task = self::task(py, task)?;
        detach(py, move || {
            let opts = load_options(dtype.as_deref())?;
            let (path, config) = open(&name)?;
            let checkpoint = PyCheckpoint::new(&path, &config)?;
            Ok(Self {
                model: Arc::new(config.load_encoder(Some(task), &opts)?),
                checkpoint,
            })
        })
    }

    #[getter]
    fn checkpoint(&self) -> PyCheckpoint {
        self.checkpoint.clone()
    }

    /// The head's labels in id order (`id2label`).
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.model.labels().to_vec()
    }

    /// One forward pass: `last_hidden_state`, `pooler_output`, `logits` or
    /// `start_logits`/`end_logits` as the head gives them, `hidden_states` when asked.
    /// Multiple choice takes `[batch, choices, seq]` ids flattened to `[batch * choices,
    /// seq]` with `num_choices`.
    #[pyo3(signature = (input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=false, num_choices=None))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        token_type_ids: Option<PyReadonlyArray2<'py, i64>>,
        output_hidden_states: bool,
        num_choices: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let spec = self.model.model().spec();
        let ids = IdArray::read(&input_ids, "input_ids", spec.vocab_size as u64)
            .map_err(|e| to_py(py, e))?;
        let mask = attention_mask
            .map(|m| IdArray::read(&m, "attention_mask", 2))
            .transpose()
            .map_err(|e| to_py(py, e))?;
        let types = match spec.type_vocab_size {
            0 => None,
            n => token_type_ids
                .map(|t| IdArray::read(&t, "token_type_ids", n as u64))
                .transpose()
                .map_err(|e| to_py(py, e))?,
        };
        same_shape(py, "attention_mask", mask.as_ref(), &ids)?;
        same_shape(py, "token_type_ids", types.as_ref(), &ids)?;
        let choices = match (self.model.task(), num_choices) {
            (EncoderTask::MultipleChoice, Some(c)) if c > 0 && ids.rows % c == 0 => Some(c),
            (EncoderTask::MultipleChoice, _) => {
                return Err(invalid(
                    py,
                    "multiple choice takes input_ids of shape [batch, num_choices, seq]",
                ))
            }
            _ => None,
        };
        let model = self.model.clone();
        let outputs = detach(py, move || {
            let device = model.model().device().clone();
            let shaped = |a: &IdArray| -> Result<Tensor, Failure> {
                let t = a.tensor(&device)?;
                Ok(match choices {
                    Some(c) => t.reshape((a.rows / c, c, a.cols))?,
                    None => t,
                })
            };
            let ids_t = shaped(&ids)?;
            let mask_t = mask.as_ref().map(&shaped).transpose()?;
            let types_t = types.as_ref().map(&shaped).transpose()?;
            let out = model.forward(
                &ids_t,
                types_t.as_ref(),
                mask_t.as_ref(),
                output_hidden_states,
            )?;
            let mut arrays: Vec<(&'static str, HostArray)> = vec![(
                "last_hidden_state",
                HostArray::from_tensor(&out.last_hidden_state)?,
            )];
            for (name, t) in [
                ("pooler_output", &out.pooler_output),
                ("logits", &out.logits),
                ("start_logits", &out.start_logits),
                ("end_logits", &out.end_logits),
            ] {
                if let Some(t) = t {
                    arrays.push((name, HostArray::from_tensor(t)?));
                }
            }
            let hidden = out
                .hidden_states
                .iter()
                .map(HostArray::from_tensor)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((arrays, hidden))
        })?;
        let (arrays, hidden) = outputs;
        output_dict(py, arrays, output_hidden_states.then_some(hidden))
    }
}

/// Which kind of model a checkpoint holds: `causal-lm`, `encoder`, `encoder-decoder`,
/// ... (for `AutoModel`'s dispatch), with its config.json as JSON text.
#[pyfunction]
pub fn inspect(py: Python<'_>, name: String) -> PyResult<(String, String, String)> {
    detach(py, move || {
        let (path, config) = open(&name)?;
        let kind = match (config.architecture.is_causal_lm(), config.kind()) {
            (true, _) => "causal-lm",
            (false, ModelKind::Encoder) => "encoder",
            (false, ModelKind::EncoderDecoder) => "encoder-decoder",
            (false, ModelKind::Vision) => "vision",
            (false, ModelKind::Multimodal) => "multimodal",
            (false, ModelKind::Decoder | ModelKind::StateSpace) => "causal-lm",
        };
        Ok((
            kind.to_owned(),
            json_text(&config.json),
            path.display().to_string(),
        ))
    })
}
