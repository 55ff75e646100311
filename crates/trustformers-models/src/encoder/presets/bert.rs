//! BERT (`modeling_bert.py`): the encoder as it is, a pooler, and transformers' heads.

use crate::encoder::heads::{EncoderTask, HeadInput, HeadLayout, HeadOut};
use crate::encoder::EncoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::{GgufFile, GgufValue};
use trustformers_core::Result;

/// Builds the spec from a `bert` config.json.
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    EncoderSpec::bert_like(&Fields::new(config, "")?, "bert")
}

/// The config fields of llama.cpp's `bert` and `nomic-bert` GGUF files beyond the common ones: the token-type
/// vocabulary (the `token_types` tensor's rows; a file without it has no token types) and
/// the padding id.
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    let types = file
        .tensor_info("token_types.weight")
        .and_then(|t| t.shape.first().copied())
        .unwrap_or(0);
    config.insert("type_vocab_size".into(), Value::from(types));
    if let Some(pad) = file
        .get("tokenizer.ggml.padding_token_id")
        .and_then(GgufValue::as_u64)
    {
        config.insert("pad_token_id".into(), Value::from(pad));
    }
    Ok(())
}

/// BERT's heads (`cls.predictions`, `classifier` on the pooler, `qa_outputs`).
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    Some(match task {
        EncoderTask::MaskedLm => HeadLayout {
            input: HeadInput::EveryToken,
            dense: Some((
                "cls.predictions.transform.dense",
                spec.hidden_size,
                spec.hidden_act,
                true,
            )),
            norm: Some((
                "cls.predictions.transform.LayerNorm",
                spec.layer_norm_eps,
                true,
            )),
            out: HeadOut::TiedEmbeddings {
                bias: "cls.predictions.bias",
            },
        },
        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice => {
            HeadLayout::linear(HeadInput::Pooled, "classifier")
        }
        EncoderTask::TokenClassification => HeadLayout::linear(HeadInput::EveryToken, "classifier"),
        EncoderTask::QuestionAnswering => HeadLayout::linear(HeadInput::EveryToken, "qa_outputs"),
        EncoderTask::Base | EncoderTask::PreTraining => return None,
    })
}
