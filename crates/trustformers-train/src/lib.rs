//! Fine-tuning on candle's autograd, through the same model code that runs inference (the
//! layers switch to their differentiable path when their weights are trainable). So far:
//! the losses transformers' heads compute ([`loss`]), equal to torch's in value and
//! gradient; a model with its head's loss ([`task`]); transformers' deterministic data
//! collators and `group_texts` ([`collate`]); datasets from JSON Lines, CSV and text files
//! ([`dataset`]). The Trainer and LoRA build on them.

pub mod args;
pub mod checkpoint;
pub mod collate;
pub mod dataset;
pub mod loss;
pub mod prepare;
pub mod task;
pub mod trainer;

pub use args::{Strategy, TrainingArguments};
pub use checkpoint::{SaveSpec, TrainerState};
pub use loss::{
    bce_with_logits, causal_lm_loss, cross_entropy, per_token_loss, question_answering_loss,
    sequence_classification_loss, ClassLabels, ProblemType, IGNORE_INDEX,
};
pub use task::{Labels, TaskModel, TrainBatch, Trainable};
pub use trainer::{Collator, StepReport, Trainer};
