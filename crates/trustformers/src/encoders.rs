//! `AutoModelForMaskedLM`, `AutoModelForSequenceClassification`, ...: encoder checkpoints
//! (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT) with the head of a task.

use crate::auto::LoadOptions;
use serde_json::Value;
use std::path::Path;
use trustformers_core::{config, DType, Error, Result, Weights};
use trustformers_models::encoder::heads::{id2label, EncoderTask};
use trustformers_models::encoder::IGNORED_TENSORS;
use trustformers_models::registry::{self, EncoderArchitecture};
use trustformers_models::{EncoderForTask, EncoderSpec};

/// An encoder checkpoint's config.json and architecture.
pub struct EncoderConfig {
    pub json: Value,
    pub architecture: &'static EncoderArchitecture,
    pub spec: EncoderSpec,
}

impl EncoderConfig {
    /// Reads `dir/config.json`; fails unless its `model_type` is an encoder.
    pub fn from_pretrained(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join("config.json");
        let json = config::read_json(&path)?;
        let model_type = json
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::config("model_type", format!("missing from {}", path.display()))
            })?;
        let architecture =
            registry::encoder_by_model_type(model_type).ok_or_else(|| Error::UnknownModelType {
                model_type: model_type.to_string(),
                known: registry::ENCODERS.iter().map(|a| a.model_type).collect(),
            })?;
        let spec = (architecture.spec)(&json)?;
        Ok(Self {
            json,
            architecture,
            spec,
        })
    }

    /// The task of the checkpoint's head (its `architectures` entry).
    pub fn task(&self) -> EncoderTask {
        EncoderTask::from_config(&self.json)
    }
}

/// Loads an encoder with the head of `task` (`None`: the checkpoint's own, from
/// `architectures`), as transformers' `AutoModelFor<Task>` does. Head tensors of other tasks
/// in the checkpoint are skipped (transformers warns about them); an unused tensor of the
/// base model is an error.
pub fn load_encoder(
    dir: impl AsRef<Path>,
    task: Option<EncoderTask>,
    opts: &LoadOptions,
) -> Result<EncoderForTask> {
    let dir = dir.as_ref();
    EncoderConfig::from_pretrained(dir)?.load(dir, task, opts)
}

impl EncoderConfig {
    /// Loads the weights of `dir` (the directory this config was read from); see
    /// [`load_encoder`].
    pub fn load(
        &self,
        dir: &Path,
        task: Option<EncoderTask>,
        opts: &LoadOptions,
    ) -> Result<EncoderForTask> {
        let task = task.unwrap_or_else(|| self.task());
        let spec = &self.spec;
        let layout = (self.architecture.head)(task, spec);
        if task != EncoderTask::Base && layout.is_none() {
            return Err(Error::InvalidInput(format!(
                "`{}` has no {task:?} head",
                self.architecture.model_type
            )));
        }
        let labels = match task {
            EncoderTask::SequenceClassification | EncoderTask::TokenClassification => {
                id2label(&self.json)?
            }
            _ => Vec::new(),
        };
        let source = trustformers_core::weights::open_dir(dir)?;
        let dtype = opts.dtype.unwrap_or(DType::F32);
        let vb = Weights::new(source, dtype, opts.device.clone(), false);
        let vb = match self.architecture.tensor_names {
            Some(names) => vb.with_names(names)?,
            None => vb,
        };
        let model = EncoderForTask::new(spec, task, layout.as_ref(), labels, &vb)?;
        // Unused base-model tensors are errors, except a pooler the head does not read.
        let base = model.checkpoint_prefix();
        let unused: Vec<String> = vb
            .unused()?
            .into_iter()
            .filter(|n| !IGNORED_TENSORS.iter().any(|s| n.ends_with(s)))
            .filter(|n| {
                let Some(rest) = n.strip_prefix(base) else {
                    return false;
                };
                [
                    "embeddings",
                    "encoder.",
                    "transformer.",
                    "layers.",
                    "final_norm.",
                ]
                .iter()
                .any(|p| rest.starts_with(p))
            })
            .collect();
        if !unused.is_empty() {
            return Err(Error::UnusedTensors { names: unused });
        }
        Ok(model)
    }
}

macro_rules! auto_task {
    ($(#[$doc:meta])* $name:ident, $task:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            /// Loads the checkpoint directory `dir` with this task's head.
            pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<EncoderForTask> {
                load_encoder(dir, Some($task), opts)
            }
        }
    };
}

auto_task!(
    /// An encoder's hidden states and pooler output (transformers' `AutoModel` on BERT & co.).
    AutoEncoderModel,
    EncoderTask::Base
);
auto_task!(
    /// Vocabulary logits per token (`AutoModelForMaskedLM`).
    AutoModelForMaskedLM,
    EncoderTask::MaskedLm
);
auto_task!(
    /// Label logits per sequence (`AutoModelForSequenceClassification`).
    AutoModelForSequenceClassification,
    EncoderTask::SequenceClassification
);
auto_task!(
    /// Label logits per token (`AutoModelForTokenClassification`).
    AutoModelForTokenClassification,
    EncoderTask::TokenClassification
);
auto_task!(
    /// Start and end logits (`AutoModelForQuestionAnswering`).
    AutoModelForQuestionAnswering,
    EncoderTask::QuestionAnswering
);
auto_task!(
    /// One logit per choice (`AutoModelForMultipleChoice`).
    AutoModelForMultipleChoice,
    EncoderTask::MultipleChoice
);
auto_task!(
    /// ELECTRA's replaced-token detection logits (`AutoModelForPreTraining`).
    AutoModelForPreTraining,
    EncoderTask::PreTraining
);
