//! ELECTRA (`modeling_electra.py`): BERT with embeddings of `embedding_size` projected up to
//! `hidden_size` (`embeddings_project`), no pooler, a GeLU classification head on the first
//! token, the discriminator's per-token head and the generator's masked-LM head.

use crate::encoder::heads::{EncoderTask, HeadInput, HeadLayout, HeadOut};
use crate::encoder::EncoderSpec;
use crate::hf_config::limits;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::Activation;

/// Builds the spec from an `electra` config.json.
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = EncoderSpec::bert_like(&f, "electra")?;
    spec.embedding_size = f
        .opt_usize("embedding_size", limits::HIDDEN)?
        .unwrap_or(128);
    // `ElectraClassificationHead`: dropout before the dense and before `out_proj`.
    let (classifier, _) = spec.head_dropout.sequence_classification;
    spec.head_dropout.sequence_classification = (classifier, classifier);
    Ok(spec)
}

/// ELECTRA's heads.
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    Some(match task {
        EncoderTask::MaskedLm => HeadLayout {
            input: HeadInput::EveryToken,
            dense: Some((
                "generator_predictions.dense",
                spec.embedding_size,
                Activation::GeluErf,
                true,
            )),
            norm: Some(("generator_predictions.LayerNorm", spec.layer_norm_eps, true)),
            out: HeadOut::TiedEmbeddings {
                bias: "generator_lm_head.bias",
            },
        },
        EncoderTask::SequenceClassification => HeadLayout {
            input: HeadInput::FirstToken,
            dense: Some((
                "classifier.dense",
                spec.hidden_size,
                Activation::GeluErf,
                true,
            )),
            norm: None,
            out: HeadOut::Linear("classifier.out_proj"),
        },
        EncoderTask::PreTraining => HeadLayout {
            input: HeadInput::EveryToken,
            dense: Some((
                "discriminator_predictions.dense",
                spec.hidden_size,
                spec.hidden_act,
                true,
            )),
            norm: None,
            out: HeadOut::Linear("discriminator_predictions.dense_prediction"),
        },
        EncoderTask::TokenClassification => HeadLayout::linear(HeadInput::EveryToken, "classifier"),
        EncoderTask::QuestionAnswering => HeadLayout::linear(HeadInput::EveryToken, "qa_outputs"),
        EncoderTask::Base | EncoderTask::MultipleChoice => return None,
    })
}
