//! Fine-tuning on candle's autograd. So far: the losses transformers' heads compute
//! ([`loss`]), equal to torch's in value and gradient, and transformers' deterministic data
//! collators and `group_texts` ([`collate`]), and datasets from JSON Lines, CSV and
//! text files ([`dataset`]). The rest of the fine-tuning issue
//! (training mode through the models, collators, the Trainer, LoRA) builds on them.

pub mod collate;
pub mod dataset;
pub mod loss;

pub use loss::{
    bce_with_logits, causal_lm_loss, cross_entropy, per_token_loss, question_answering_loss,
    sequence_classification_loss, ClassLabels, ProblemType, IGNORE_INDEX,
};
