//! The task pipelines of the facade, one loaded pipeline per Python `pipeline(...)` object:
//! inputs and parameters come in as JSON, one result per input goes out as JSON (feature
//! extraction as arrays). `trustformers/pipelines.py` shapes the results as transformers
//! does (a dict for one input, a list for several) and runs text generation itself.

use crate::arrays::HostArray;
use crate::errors::{detach, invalid, Failure};
use crate::models::load_options;
use numpy::PyArrayDyn;
use pyo3::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};
use trustformers::pipelines::pipeline::Pipeline;
use trustformers::pipelines::*;
use trustformers::tokenizers::TextInput;
use trustformers::{resolve_model, Error};

enum Loaded {
    FeatureExtraction(FeatureExtractionPipeline),
    FillMask(FillMaskPipeline),
    TextClassification(TextClassificationPipeline),
    TokenClassification(TokenClassificationPipeline),
    QuestionAnswering(QuestionAnsweringPipeline),
    ZeroShot(ZeroShotClassificationPipeline),
    Summarization(SummarizationPipeline),
    Translation(TranslationPipeline, Option<(String, String)>),
    Text2Text(Text2TextGenerationPipeline),
    ImageClassification(ImageClassificationPipeline),
    ZeroShotImage(ZeroShotImageClassificationPipeline),
    ImageFeatures(ImageFeatureExtractionPipeline),
    ImageTextToText(ImageTextToTextPipeline),
}

/// A parameter object's fields, each taken once; what is left at the end is unknown to the
/// task and refused.
struct Params {
    task: &'static str,
    map: Map<String, Value>,
}

impl Params {
    fn new(task: &'static str, json: &str) -> Result<Self, Error> {
        match serde_json::from_str(json) {
            Ok(Value::Object(map)) => Ok(Self { task, map }),
            Ok(other) => Err(Error::InvalidInput(format!(
                "{task}: parameters must be a dict, got {other}"
            ))),
            Err(e) => Err(Error::InvalidInput(format!("{task}: parameters: {e}"))),
        }
    }

    fn bad(&self, key: &str, what: &str, got: &Value) -> Error {
        Error::InvalidInput(format!("{}: `{key}` must be {what}, got {got}", self.task))
    }

    /// `Some(value)` when given and not null.
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn usize(&mut self, key: &str) -> Result<Option<usize>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| self.bad(key, "a non-negative integer", &v)),
        }
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(key, "True or False", &v)),
        }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.bad(key, "a string", &v)),
        }
    }

    /// A list of strings, or one string (split at commas, as transformers splits
    /// `candidate_labels`).
    fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a list of strings", &Value::Array(items.clone()))),
            Some(v) => Err(self.bad(key, "a list of strings", &v)),
        }
    }

    fn batch_size(&mut self, default: usize) -> Result<usize, Error> {
        Ok(self.usize("batch_size")?.unwrap_or(default))
    }

    /// Fails on any parameter not taken.
    fn done(self) -> Result<(), Error> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(_) => Err(Error::InvalidInput(format!(
                "{}: unknown parameters {}",
                self.task,
                self.map.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

fn to_json<T: Serialize>(results: Vec<T>) -> Result<Value, Error> {
    serde_json::to_value(results).map_err(|e| Error::InvalidInput(format!("results: {e}")))
}

/// The inputs as strings.
fn texts(task: &str, inputs: &Value) -> Result<Vec<String>, Error> {
    inputs
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| Error::InvalidInput(format!("{task}: inputs must be strings")))
}

/// Pairs `{key_a: .., key_b: ..}` (a missing `key_b` is a single text when `optional`).
fn pairs(
    task: &str,
    inputs: &Value,
    (a, b): (&str, &str),
    optional: bool,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let bad = || {
        Error::InvalidInput(format!(
            "{task}: each input is a string or a dict with `{a}` and `{b}`"
        ))
    };
    let items = inputs.as_array().ok_or_else(bad)?;
    items
        .iter()
        .map(|x| match x {
            Value::String(s) if optional => Ok((s.clone(), None)),
            Value::Object(o) => {
                let first = o.get(a).and_then(Value::as_str).ok_or_else(bad)?;
                match o.get(b).and_then(Value::as_str) {
                    Some(second) => Ok((first.to_owned(), Some(second.to_owned()))),
                    None if optional => Ok((first.to_owned(), None)),
                    None => Err(bad()),
                }
            }
            _ => Err(bad()),
        })
        .collect()
}

/// Image file paths, the inputs of the image tasks.
fn image_paths(task: &str, inputs: &Value) -> Result<Vec<std::path::PathBuf>, Error> {
    texts(task, inputs)
        .map_err(|_| Error::InvalidInput(format!("{task}: inputs must be image file paths")))
        .map(|t| t.into_iter().map(std::path::PathBuf::from).collect())
}

fn images(paths: &[std::path::PathBuf]) -> Vec<trustformers::ImageInput<'_>> {
    paths
        .iter()
        .map(|p| trustformers::ImageInput::Path(p))
        .collect()
}

/// A task pipeline loaded once and called many times.
#[pyclass(name = "Pipeline", module = "trustformers._trustformers", frozen)]
pub struct PyPipeline {
    task: String,
    loaded: Loaded,
}

#[pymethods]
impl PyPipeline {
    /// Loads `model` (any name the CLI resolves) for `task`.
    #[new]
    #[pyo3(signature = (task, model, dtype=None))]
    fn new(py: Python<'_>, task: String, model: String, dtype: Option<String>) -> PyResult<Self> {
        detach(py, move || {
            let path = resolve_model(Some(&model))?;
            let opts = load_options(dtype.as_deref())?;
            let loaded = match task.as_str() {
                "feature-extraction" => {
                    Loaded::FeatureExtraction(Pipeline::from_pretrained(&path, &opts)?)
                }
                "fill-mask" => Loaded::FillMask(Pipeline::from_pretrained(&path, &opts)?),
                "text-classification" | "sentiment-analysis" => {
                    Loaded::TextClassification(Pipeline::from_pretrained(&path, &opts)?)
                }
                "token-classification" | "ner" => {
                    Loaded::TokenClassification(Pipeline::from_pretrained(&path, &opts)?)
                }
                "question-answering" => {
                    Loaded::QuestionAnswering(Pipeline::from_pretrained(&path, &opts)?)
                }
                "zero-shot-classification" => {
                    Loaded::ZeroShot(Pipeline::from_pretrained(&path, &opts)?)
                }
                "summarization" => Loaded::Summarization(Pipeline::from_pretrained(&path, &opts)?),
                "text2text-generation" => {
                    Loaded::Text2Text(Pipeline::from_pretrained(&path, &opts)?)
                }
                "image-classification" => {
                    Loaded::ImageClassification(Pipeline::from_pretrained(&path, &opts)?)
                }
                "zero-shot-image-classification" => {
                    Loaded::ZeroShotImage(Pipeline::from_pretrained(&path, &opts)?)
                }
                "image-feature-extraction" => {
                    Loaded::ImageFeatures(Pipeline::from_pretrained(&path, &opts)?)
                }
                "image-text-to-text" => {
                    Loaded::ImageTextToText(ImageTextToTextPipeline::from_pretrained(&path, &opts)?)
                }
                name if name == "translation" || name.starts_with("translation_") => {
                    let langs = name
                        .strip_prefix("translation_")
                        .and_then(|l| l.split_once("_to_"))
                        .map(|(s, t)| (s.to_owned(), t.to_owned()));
                    if name != "translation" && langs.is_none() {
                        return Err(Error::InvalidInput(format!(
                            "unknown task {name:?}: translation tasks are named translation_XX_to_YY"
                        ))
                        .into());
                    }
                    Loaded::Translation(Pipeline::from_pretrained(&path, &opts)?, langs)
                }
                other => {
                    return Err(Error::InvalidInput(format!(
                        "unknown task {other:?}; this pipeline runs feature-extraction, fill-mask, \
                         text-classification (sentiment-analysis), token-classification (ner), \
                         question-answering, zero-shot-classification, summarization, \
                         translation, text2text-generation, image-classification, \
                         zero-shot-image-classification, image-feature-extraction, \
                         image-text-to-text"
                    ))
                    .into())
                }
            };
            Ok(Self { task, loaded })
        })
    }

    #[getter]
    fn task(&self) -> String {
        self.task.clone()
    }

    /// One result per input, as JSON text. `inputs` is a JSON list (strings, or dicts for
    /// pairs and questions); `params` a JSON dict of the task's parameters.
    fn run(&self, py: Python<'_>, inputs: &str, params: &str) -> PyResult<String> {
        let inputs: Value = serde_json::from_str(inputs)
            .map_err(|e| invalid(py, format!("{}: inputs: {e}", self.task)))?;
        if !inputs.is_array() {
            return Err(invalid(py, "inputs must be a list"));
        }
        let out = detach(py, || self.run_json(&inputs, params).map_err(Failure::from))?;
        Ok(out.to_string())
    }

    /// Feature extraction: one `[seq, hidden]` array per text.
    #[pyo3(signature = (texts, truncation=false, batch_size=1))]
    fn features<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        truncation: bool,
        batch_size: usize,
    ) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let Loaded::FeatureExtraction(pipe) = &self.loaded else {
            return Err(invalid(
                py,
                format!("{} does not extract features", self.task),
            ));
        };
        let params = FeatureExtractionParams {
            truncation,
            batch_size,
        };
        let rows = detach(py, || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let rows = pipe.call(&refs, &params)?;
            Ok::<_, Failure>(
                rows.into_iter()
                    .map(|r| {
                        let shape = vec![r.len(), r.first().map_or(0, Vec::len)];
                        let data: Vec<f32> = r.into_iter().flatten().collect();
                        HostArray { shape, data }
                    })
                    .collect::<Vec<_>>(),
            )
        })?;
        rows.into_iter().map(|r| r.into_py(py)).collect()
    }
}

impl PyPipeline {
    fn run_json(&self, inputs: &Value, params: &str) -> Result<Value, Error> {
        match &self.loaded {
            Loaded::FeatureExtraction(_) => Err(Error::InvalidInput(
                "feature-extraction results are arrays: call features()".into(),
            )),
            Loaded::FillMask(pipe) => {
                let mut p = Params::new("fill-mask", params)?;
                let params = FillMaskParams {
                    top_k: p.usize("top_k")?.unwrap_or(5),
                    targets: p.strings("targets")?,
                    truncation: p.bool("truncation")?.unwrap_or(false),
                    batch_size: p.batch_size(1)?,
                };
                p.done()?;
                let texts = texts("fill-mask", inputs)?;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                to_json(pipe.call(&refs, &params)?)
            }
            Loaded::TextClassification(pipe) => {
                let mut p = Params::new("text-classification", params)?;
                // A missing `top_k` is transformers' legacy single label; None is all.
                let top_k = match p.map.remove("top_k") {
                    None => Some(1),
                    Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or_else(|| p.bad("top_k", "a positive integer or None", &v))?
                            as usize,
                    ),
                };
                let params = TextClassificationParams {
                    top_k,
                    function_to_apply: p
                        .string("function_to_apply")?
                        .as_deref()
                        .map(ClassificationFunction::from_name)
                        .transpose()?,
                    truncation: p.bool("truncation")?.unwrap_or(false),
                    batch_size: p.batch_size(1)?,
                };
                p.done()?;
                let pairs = pairs("text-classification", inputs, ("text", "text_pair"), true)?;
                let batch: Vec<TextInput<'_>> = pairs
                    .iter()
                    .map(|(a, b)| match b {
                        Some(b) => TextInput::Pair(a, b),
                        None => TextInput::Single(a),
                    })
                    .collect();
                to_json(pipe.call(&batch, &params)?)
            }
            Loaded::TokenClassification(pipe) => {
                let mut p = Params::new("token-classification", params)?;
                let mut params = TokenClassificationParams {
                    aggregation: Aggregation::from_name(
                        &p.string("aggregation_strategy")?
                            .unwrap_or_else(|| "none".into())
                            .to_ascii_lowercase(),
                    )?,
                    batch_size: p.batch_size(1)?,
                    ..Default::default()
                };
                if let Some(labels) = p.strings("ignore_labels")? {
                    params.ignore_labels = labels;
                }
                p.done()?;
                let texts = texts("token-classification", inputs)?;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let results = pipe.call(&refs, &params)?;
                Ok(Value::Array(
                    results
                        .iter()
                        .map(|entities| {
                            Value::Array(entities.iter().map(Entity::to_json).collect())
                        })
                        .collect(),
                ))
            }
            Loaded::QuestionAnswering(pipe) => {
                let mut p = Params::new("question-answering", params)?;
                let defaults = QuestionAnsweringParams::default();
                let params = QuestionAnsweringParams {
                    top_k: p.usize("top_k")?.unwrap_or(defaults.top_k),
                    max_answer_len: p
                        .usize("max_answer_len")?
                        .unwrap_or(defaults.max_answer_len),
                    max_seq_len: p.usize("max_seq_len")?.or(defaults.max_seq_len),
                    doc_stride: p.usize("doc_stride")?.or(defaults.doc_stride),
                    handle_impossible_answer: p
                        .bool("handle_impossible_answer")?
                        .unwrap_or(defaults.handle_impossible_answer),
                    batch_size: p.batch_size(1)?,
                };
                p.done()?;
                let pairs = pairs("question-answering", inputs, ("question", "context"), false)?;
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(q, c)| (q.as_str(), c.as_deref().unwrap_or("")))
                    .collect();
                to_json(pipe.call(&refs, &params)?)
            }
            Loaded::ZeroShot(pipe) => {
                let mut p = Params::new("zero-shot-classification", params)?;
                let mut params = ZeroShotParams {
                    candidate_labels: p.strings("candidate_labels")?.ok_or_else(|| {
                        Error::InvalidInput(
                            "zero-shot-classification needs `candidate_labels`".into(),
                        )
                    })?,
                    multi_label: p.bool("multi_label")?.unwrap_or(false),
                    batch_size: p.batch_size(1)?,
                    ..Default::default()
                };
                if let Some(t) = p.string("hypothesis_template")? {
                    params.hypothesis_template = t;
                }
                p.done()?;
                let texts = texts("zero-shot-classification", inputs)?;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                to_json(pipe.call(&refs, &params)?)
            }
            Loaded::ImageClassification(pipe) => {
                let mut p = Params::new("image-classification", params)?;
                let params = ImageClassificationParams {
                    top_k: p.usize("top_k")?.unwrap_or(5),
                    function_to_apply: p
                        .string("function_to_apply")?
                        .as_deref()
                        .map(ClassificationFunction::from_name)
                        .transpose()?,
                    batch_size: p.batch_size(1)?,
                };
                p.done()?;
                let paths = image_paths("image-classification", inputs)?;
                to_json(pipe.call(&images(&paths), &params)?)
            }
            Loaded::ZeroShotImage(pipe) => {
                let mut p = Params::new("zero-shot-image-classification", params)?;
                let mut params = ZeroShotImageParams {
                    candidate_labels: p.strings("candidate_labels")?.ok_or_else(|| {
                        Error::InvalidInput(
                            "zero-shot-image-classification needs `candidate_labels`".into(),
                        )
                    })?,
                    batch_size: p.batch_size(1)?,
                    ..Default::default()
                };
                if let Some(t) = p.string("hypothesis_template")? {
                    params.hypothesis_template = t;
                }
                p.done()?;
                let paths = image_paths("zero-shot-image-classification", inputs)?;
                to_json(pipe.call(&images(&paths), &params)?)
            }
            Loaded::ImageFeatures(pipe) => {
                let mut p = Params::new("image-feature-extraction", params)?;
                let params = ImageFeatureParams {
                    pool: p.bool("pool")?.unwrap_or(false),
                    batch_size: p.batch_size(1)?,
                };
                p.done()?;
                let paths = image_paths("image-feature-extraction", inputs)?;
                // transformers' nesting: [1][tokens][hidden], pooled [1][hidden].
                let rows = pipe.call(&images(&paths), &params)?;
                Ok(Value::Array(
                    rows.into_iter()
                        .map(|r| {
                            let r = serde_json::json!(r);
                            if params.pool {
                                r
                            } else {
                                Value::Array(vec![r])
                            }
                        })
                        .collect(),
                ))
            }
            Loaded::ImageTextToText(pipe) => {
                let mut p = Params::new("image-text-to-text", params)?;
                let max_new_tokens = p.usize("max_new_tokens")?;
                let return_full_text = p.bool("return_full_text")?;
                p.done()?;
                let items = inputs.as_array().ok_or_else(|| {
                    Error::InvalidInput("image-text-to-text: inputs must be a list".into())
                })?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let paths = image_paths("image-text-to-text", &item["images"])?;
                    let text = &item["text"];
                    let chat = text.is_array();
                    let params = ImageTextToTextParams {
                        max_new_tokens,
                        // transformers returns the prompt with the reply for a text prompt,
                        // the reply alone for chat messages.
                        return_full_text: return_full_text.unwrap_or(!chat),
                        ..Default::default()
                    };
                    let reply = match text {
                        Value::String(prompt) => pipe.run_text(prompt, &images(&paths), &params)?,
                        Value::Array(_) => {
                            let messages: Vec<trustformers::tokenizers::chat::Message> =
                                serde_json::from_value(text.clone()).map_err(|e| {
                                    Error::InvalidInput(format!(
                                        "image-text-to-text: messages are {{\"role\", \"content\"}} objects: {e}"
                                    ))
                                })?;
                            pipe.run(&messages, &images(&paths), &params)?
                        }
                        _ => {
                            return Err(Error::InvalidInput(
                                "image-text-to-text: text is a prompt or a list of chat messages"
                                    .into(),
                            ))
                        }
                    };
                    out.push(serde_json::json!({"generated_text": reply}));
                }
                Ok(Value::Array(out))
            }
            Loaded::Summarization(pipe) => {
                self.text2text(pipe, "summary_text", inputs, params, None)
            }
            Loaded::Text2Text(pipe) => self.text2text(pipe, "generated_text", inputs, params, None),
            Loaded::Translation(pipe, langs) => {
                self.text2text(pipe, "translation_text", inputs, params, langs.as_ref())
            }
        }
    }

    fn text2text<P>(
        &self,
        pipe: &P,
        key: &str,
        inputs: &Value,
        params: &str,
        langs: Option<&(String, String)>,
    ) -> Result<Value, Error>
    where
        P: for<'a> Pipeline<Input<'a> = &'a str, Params = Text2TextParams, Output = String>,
    {
        let mut p = Params::new(P::TASK, params)?;
        let mut params = Text2TextParams {
            max_new_tokens: p.usize("max_new_tokens")?,
            num_beams: p.usize("num_beams")?,
            do_sample: p.bool("do_sample")?,
            src_lang: p.string("src_lang")?,
            tgt_lang: p.string("tgt_lang")?,
            truncation: p.bool("truncation")?.unwrap_or(false),
            batch_size: p.batch_size(1)?,
        };
        if let Some((src, tgt)) = langs {
            params.src_lang.get_or_insert_with(|| src.clone());
            params.tgt_lang.get_or_insert_with(|| tgt.clone());
        }
        p.done()?;
        let texts = texts(P::TASK, inputs)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(Value::Array(
            pipe.call(&refs, &params)?
                .into_iter()
                .map(|t| serde_json::json!({ key: t }))
                .collect(),
        ))
    }
}

/// sentence-transformers' `SentenceTransformer`: a checkpoint with its pooling (and
/// normalisation) modules.
#[pyclass(
    name = "SentenceTransformer",
    module = "trustformers._trustformers",
    frozen
)]
pub struct PySentenceTransformer {
    model: SentenceTransformer,
    path: String,
}

#[pymethods]
impl PySentenceTransformer {
    #[new]
    #[pyo3(signature = (model, dtype=None))]
    fn new(py: Python<'_>, model: String, dtype: Option<String>) -> PyResult<Self> {
        detach(py, move || {
            let path = resolve_model(Some(&model))?;
            let opts = load_options(dtype.as_deref())?;
            Ok(Self {
                model: SentenceTransformer::from_pretrained(&path, &opts)?,
                path: path.display().to_string(),
            })
        })
    }

    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    /// The size of an embedding.
    #[getter]
    fn dimension(&self) -> usize {
        self.model.dimension()
    }

    /// The longest input, in tokens (longer ones are truncated).
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.model.max_seq_length()
    }

    /// The embeddings of `sentences` as one `[n, dim]` array.
    #[pyo3(signature = (sentences, batch_size=32, normalize_embeddings=false))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        sentences: Vec<String>,
        batch_size: usize,
        normalize_embeddings: bool,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let params = EmbedParams {
            batch_size,
            normalize: normalize_embeddings,
        };
        let out = detach(py, || {
            let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
            let rows = self.model.encode(&refs, &params)?;
            let dim = rows.first().map_or(0, Vec::len);
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Ok::<_, Failure>(HostArray {
                shape: vec![rows.len(), dim],
                data: flat,
            })
        })?;
        out.into_py(py)
    }
}
