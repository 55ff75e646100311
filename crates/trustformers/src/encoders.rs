//! `AutoModelForMaskedLM`, `AutoModelForSequenceClassification`, ...: encoder checkpoints
//! (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT, DeBERTa, ModernBERT) with the
//! head of a task, through the one load path of [`crate::AutoConfig`].

use crate::auto::{AutoConfig, LoadOptions};
use std::path::Path;
use trustformers_core::Result;
use trustformers_models::encoder::heads::EncoderTask;
use trustformers_models::EncoderForTask;

/// Loads an encoder with the head of `task` (`None`: the checkpoint's own); see
/// [`crate::ModelConfig::load_encoder`].
pub fn load_encoder(
    path: impl AsRef<Path>,
    task: Option<EncoderTask>,
    opts: &LoadOptions,
) -> Result<EncoderForTask> {
    AutoConfig::from_pretrained(path)?.load_encoder(task, opts)
}

macro_rules! auto_task {
    ($(#[$doc:meta])* $name:ident, $task:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            /// Loads the checkpoint at `path` with this task's head.
            pub fn from_pretrained(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<EncoderForTask> {
                load_encoder(path, Some($task), opts)
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
