//! RoBERTa and XLM-RoBERTa (`modeling_roberta.py`, `modeling_xlm_roberta.py`): BERT with
//! positions counted from `padding_idx + 1` over non-padding tokens, one token type, an
//! `lm_head` with GeLU, and a classification head on the first token (`dense`, `tanh`,
//! `out_proj`).

use crate::encoder::heads::{EncoderTask, HeadInput, HeadLayout, HeadOut};
use crate::encoder::EncoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::Activation;

/// Builds the spec from a `roberta` / `xlm-roberta` config.json.
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    let mut spec = EncoderSpec::bert_like(&Fields::new(config, "")?, "roberta")?;
    let pad = *spec.pad_token_id.get_or_insert(1);
    spec.position_padding_idx = Some(pad);
    // `RobertaClassificationHead`: dropout before the dense and before `out_proj`.
    let (classifier, _) = spec.head_dropout.sequence_classification;
    spec.head_dropout.sequence_classification = (classifier, classifier);
    Ok(spec)
}

/// RoBERTa's heads (`lm_head`, `classifier.dense` / `classifier.out_proj`).
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    Some(match task {
        EncoderTask::MaskedLm => HeadLayout {
            input: HeadInput::EveryToken,
            dense: Some(("lm_head.dense", spec.hidden_size, Activation::GeluErf, true)),
            norm: Some(("lm_head.layer_norm", spec.layer_norm_eps, true)),
            out: HeadOut::TiedEmbeddings {
                bias: "lm_head.bias",
            },
        },
        EncoderTask::SequenceClassification => HeadLayout {
            input: HeadInput::FirstToken,
            dense: Some(("classifier.dense", spec.hidden_size, Activation::Tanh, true)),
            norm: None,
            out: HeadOut::Linear("classifier.out_proj"),
        },
        EncoderTask::MultipleChoice => HeadLayout::linear(HeadInput::Pooled, "classifier"),
        EncoderTask::TokenClassification => HeadLayout::linear(HeadInput::EveryToken, "classifier"),
        EncoderTask::QuestionAnswering => HeadLayout::linear(HeadInput::EveryToken, "qa_outputs"),
        EncoderTask::Base | EncoderTask::PreTraining => return None,
    })
}
