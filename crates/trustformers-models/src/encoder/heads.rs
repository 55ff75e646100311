//! Task heads on the encoder (transformers' `BertForMaskedLM`, `...ForSequenceClassification`,
//! ...). Every head is the same shape, laid out per architecture by a [`HeadLayout`]:
//!
//! ```text
//! input (pooled | first token | every token) -> [dense -> act] -> [LayerNorm] -> out
//! ```

use super::{EncoderModel, EncoderSpec};
use candle_core::Tensor;
use serde_json::Value;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{Activation, Dropout, LayerNorm, Linear};

/// A task, as transformers' class-name suffix says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderTask {
    /// The base model (`BertModel`): hidden states and pooler output.
    Base,
    /// `ForMaskedLM`: vocabulary logits per token.
    MaskedLm,
    /// `ForSequenceClassification`: one row of label logits per sequence.
    SequenceClassification,
    /// `ForTokenClassification`: label logits per token.
    TokenClassification,
    /// `ForQuestionAnswering`: start and end logits per token.
    QuestionAnswering,
    /// `ForMultipleChoice`: one logit per choice.
    MultipleChoice,
    /// ELECTRA's `ForPreTraining`: a replaced-token logit per token.
    PreTraining,
}

impl EncoderTask {
    const SUFFIXES: &'static [(&'static str, EncoderTask)] = &[
        ("ForMaskedLM", Self::MaskedLm),
        ("ForSequenceClassification", Self::SequenceClassification),
        ("ForTokenClassification", Self::TokenClassification),
        ("ForQuestionAnswering", Self::QuestionAnswering),
        ("ForMultipleChoice", Self::MultipleChoice),
        ("ForPreTraining", Self::PreTraining),
        ("Model", Self::Base),
    ];

    /// The task of a transformers class name (`RobertaForMaskedLM` -> `MaskedLm`).
    pub fn from_class_name(name: &str) -> Option<Self> {
        Self::SUFFIXES
            .iter()
            .find(|(suffix, _)| name.ends_with(suffix))
            .map(|(_, t)| *t)
    }

    /// The task of a config.json: its first `architectures` entry, else the base model.
    pub fn from_config(config: &Value) -> Self {
        config
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .and_then(Self::from_class_name)
            .unwrap_or(Self::Base)
    }
}

/// Which hidden state a head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadInput {
    /// The pooler output (BERT, ALBERT classification).
    Pooled,
    /// The first token's hidden state (RoBERTa, ELECTRA, DistilBERT classification).
    FirstToken,
    /// The mean over unpadded tokens (ModernBERT's `classifier_pooling: mean`).
    MeanPooled,
    /// Every token's hidden state.
    EveryToken,
}

/// The output projection of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadOut {
    /// A linear layer under this name, with a bias.
    Linear(&'static str),
    /// The word embedding table (tied, as transformers ties MLM decoders), with the bias
    /// stored under this name.
    TiedEmbeddings { bias: &'static str },
}

/// How an architecture lays out a task head; names are relative to the checkpoint root.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadLayout {
    pub input: HeadInput,
    /// A projection (name, output width, activation, bias) before the output.
    pub dense: Option<(&'static str, usize, Activation, bool)>,
    /// A LayerNorm (name, epsilon, bias) after the dense projection.
    pub norm: Option<(&'static str, f64, bool)>,
    pub out: HeadOut,
}

impl HeadLayout {
    /// A head that is only an output layer.
    pub const fn linear(input: HeadInput, out: &'static str) -> Self {
        Self {
            input,
            dense: None,
            norm: None,
            out: HeadOut::Linear(out),
        }
    }
}

/// The label names of a classification config (`id2label`, else `num_labels` generic names,
/// else transformers' default of two).
pub fn id2label(config: &Value) -> Result<Vec<String>> {
    if let Some(map) = config.get("id2label") {
        let map = map
            .as_object()
            .ok_or_else(|| Error::config("id2label", "must be an object"))?;
        let mut labels = vec![String::new(); map.len()];
        for (k, v) in map {
            let i: usize = k.parse().ok().filter(|&i| i < map.len()).ok_or_else(|| {
                Error::config(
                    "id2label",
                    format!("key `{k}` is not a label id below {}", map.len()),
                )
            })?;
            labels[i] = v
                .as_str()
                .ok_or_else(|| Error::config("id2label", format!("label {k} is not a string")))?
                .to_string();
        }
        return Ok(labels);
    }
    let n = match config.get("num_labels") {
        None => 2,
        Some(v) => v
            .as_u64()
            .filter(|&n| (1..=1 << 20).contains(&n))
            .ok_or_else(|| Error::config("num_labels", "must be a positive integer"))?
            as usize,
    };
    Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
}

struct Head {
    input: HeadInput,
    dense: Option<(Linear, Activation)>,
    norm: Option<LayerNorm>,
    out: Linear,
    /// On the head's input, and between the dense block and the output, in training.
    dropout: (Dropout, Dropout),
}

impl Head {
    fn new(
        layout: &HeadLayout,
        model: &EncoderModel,
        task: EncoderTask,
        out_dim: usize,
        vb: &Weights,
    ) -> Result<Self> {
        let spec = model.spec();
        let mut width = spec.hidden_size;
        let dense = match layout.dense {
            Some((name, dim, act, bias)) => {
                let l = Linear::new(&vb.pp(name), width, dim, bias)?;
                width = dim;
                Some((l, act))
            }
            None => None,
        };
        let norm = layout
            .norm
            .map(|(name, eps, bias)| LayerNorm::new(&vb.pp(name), width, eps, bias))
            .transpose()?;
        let out = match layout.out {
            HeadOut::Linear(name) => Linear::new(&vb.pp(name), width, out_dim, true)?,
            HeadOut::TiedEmbeddings { bias } => {
                let b = vb.get(spec.vocab_size, bias)?;
                let tied = model.word_embeddings().tied_linear(Some(b))?;
                // The tied table stays f32 for the embedding lookup; the head gets its own
                // int8 copy, as onnxruntime quantizes the MatMul reading it.
                match vb.int8_linears() {
                    true => tied.to_int8()?,
                    false => tied,
                }
            }
        };
        if layout.input == HeadInput::Pooled && !model.has_pooler() {
            return Err(Error::MissingTensor {
                name: format!("{}.pooler.dense.weight", spec.base_prefix),
            });
        }
        let (before, after) = spec.head_dropout.for_task(task);
        Ok(Self {
            input: layout.input,
            dense,
            norm,
            out,
            dropout: (
                Dropout::new(before, "classifier_dropout")?,
                Dropout::new(after, "classifier_dropout")?,
            ),
        })
    }

    fn forward(
        &self,
        last: &Tensor,
        pooled: Option<&Tensor>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let xs = match self.input {
            HeadInput::EveryToken => last.clone(),
            HeadInput::MeanPooled => match mask {
                Some(m) => super::masked_mean(last, m)?.to_dtype(last.dtype())?,
                None => last.mean(1)?,
            },
            HeadInput::FirstToken => last.narrow(1, 0, 1)?.squeeze(1)?,
            HeadInput::Pooled => pooled
                .ok_or_else(|| Error::InvalidInput("this head needs the pooler output".into()))?
                .clone(),
        };
        let xs = self.dropout.0.forward(&xs)?;
        let xs = match &self.dense {
            Some((l, act)) => act.forward(&l.forward(&xs)?)?,
            None => xs,
        };
        let xs = match &self.norm {
            Some(n) => n.forward(&xs)?,
            None => xs,
        };
        let xs = self.dropout.1.forward(&xs)?;
        self.out.forward(&xs)
    }
}

/// Outputs of [`EncoderForTask::forward`], under transformers' field names.
pub struct EncoderTaskOutput {
    pub last_hidden_state: Tensor,
    pub pooler_output: Option<Tensor>,
    pub hidden_states: Vec<Tensor>,
    /// `[batch, seq, vocab]` (masked LM), `[batch, labels]` (sequence classification),
    /// `[batch, seq, labels]` (token classification), `[batch, choices]` (multiple choice),
    /// `[batch, seq]` (ELECTRA pre-training).
    pub logits: Option<Tensor>,
    /// `[batch, seq]` (question answering).
    pub start_logits: Option<Tensor>,
    /// `[batch, seq]` (question answering).
    pub end_logits: Option<Tensor>,
}

/// An encoder with the head of one task.
pub struct EncoderForTask {
    model: EncoderModel,
    task: EncoderTask,
    head: Option<Head>,
    labels: Vec<String>,
    /// `bert.` etc. when the checkpoint holds the base model under its prefix, else empty.
    checkpoint_prefix: String,
}

impl EncoderForTask {
    /// Loads the model and the head `layout` for `task` from the checkpoint root `vb`.
    /// `labels` names the classes of classification heads.
    pub fn new(
        spec: &EncoderSpec,
        task: EncoderTask,
        layout: Option<&HeadLayout>,
        labels: Vec<String>,
        vb: &Weights,
    ) -> Result<Self> {
        let prefixed = vb.pp(spec.base_prefix);
        let (base, checkpoint_prefix) = if prefixed.contains("embeddings.word_embeddings.weight")
            || prefixed.contains("embeddings.tok_embeddings.weight")
        {
            (prefixed, format!("{}.", spec.base_prefix))
        } else {
            (vb.clone(), String::new())
        };
        let wants_pooler =
            task == EncoderTask::Base || layout.is_some_and(|l| l.input == HeadInput::Pooled);
        let model = EncoderModel::new(spec, &base, wants_pooler)?;
        let out_dim = match task {
            EncoderTask::Base => 0,
            EncoderTask::MaskedLm => spec.vocab_size,
            EncoderTask::SequenceClassification | EncoderTask::TokenClassification => labels.len(),
            EncoderTask::QuestionAnswering => 2,
            EncoderTask::MultipleChoice | EncoderTask::PreTraining => 1,
        };
        let head = match (task, layout) {
            (EncoderTask::Base, _) => None,
            (_, Some(layout)) => Some(Head::new(layout, &model, task, out_dim, vb)?),
            (_, None) => {
                return Err(Error::InvalidInput(format!(
                    "no {task:?} head for this architecture"
                )))
            }
        };
        Ok(Self {
            model,
            task,
            head,
            labels,
            checkpoint_prefix,
        })
    }

    /// The base model.
    pub fn model(&self) -> &EncoderModel {
        &self.model
    }

    /// Where the base model's tensors sit in the checkpoint: `bert.` etc., or empty.
    pub fn checkpoint_prefix(&self) -> &str {
        &self.checkpoint_prefix
    }

    /// Whether the checkpoint may hold `name` without this model loading it: buffers
    /// transformers itself skips, other tasks' heads (transformers warns about them) and a
    /// pooler the head does not read. An unused tensor of the base model is not allowed.
    pub fn may_skip_tensor(&self, name: &str) -> bool {
        if super::IGNORED_TENSORS.iter().any(|s| name.ends_with(s)) {
            return true;
        }
        let Some(rest) = name.strip_prefix(self.checkpoint_prefix.as_str()) else {
            return true;
        };
        const BASE: &[&str] = &[
            "embeddings",
            "encoder.",
            "transformer.",
            "layers.",
            "final_norm.",
        ];
        !BASE.iter().any(|p| rest.starts_with(p))
    }

    /// The task of the head.
    pub fn task(&self) -> EncoderTask {
        self.task
    }

    /// Class names of a classification head, by label id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// # Shapes
    /// `input_ids`, `token_type_ids`, `attention_mask`: `[batch, seq]`, or
    /// `[batch, choices, seq]` for multiple choice -> see [`EncoderTaskOutput`].
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        output_hidden_states: bool,
    ) -> Result<EncoderTaskOutput> {
        let choices = if self.task == EncoderTask::MultipleChoice {
            let (b, c, s) = input_ids.dims3()?;
            Some((b, c, s))
        } else {
            None
        };
        let flat = |t: &Tensor| -> Result<Tensor> {
            match choices {
                Some((b, c, s)) => Ok(t.reshape((b * c, s))?),
                None => Ok(t.clone()),
            }
        };
        let ids = flat(input_ids)?;
        let types = token_type_ids.map(flat).transpose()?;
        let mask = attention_mask.map(flat).transpose()?;
        let out = self
            .model
            .forward(&ids, types.as_ref(), mask.as_ref(), output_hidden_states)?;
        let logits = self
            .head
            .as_ref()
            .map(|h| {
                h.forward(
                    &out.last_hidden_state,
                    out.pooler_output.as_ref(),
                    mask.as_ref(),
                )
            })
            .transpose()?;
        let (mut logits, mut start_logits, mut end_logits) = (logits, None, None);
        match (self.task, logits.take()) {
            (EncoderTask::QuestionAnswering, Some(l)) => {
                start_logits = Some(l.narrow(2, 0, 1)?.squeeze(2)?);
                end_logits = Some(l.narrow(2, 1, 1)?.squeeze(2)?);
            }
            (EncoderTask::MultipleChoice, Some(l)) => {
                if let Some((b, c, _)) = choices {
                    logits = Some(l.reshape((b, c))?);
                }
            }
            (EncoderTask::PreTraining, Some(l)) => logits = Some(l.squeeze(2)?),
            (_, l) => logits = l,
        }
        Ok(EncoderTaskOutput {
            last_hidden_state: out.last_hidden_state,
            pooler_output: out.pooler_output,
            hidden_states: out.hidden_states,
            logits,
            start_logits,
            end_logits,
        })
    }
}
