//! ALBERT (`modeling_albert.py`): factorized embeddings (`embedding_size`, projected up by
//! `encoder.embedding_hidden_mapping_in`) and `num_hidden_groups` layers shared by all
//! `num_hidden_layers`, under its own tensor names (`albert_layer_groups.{g}.albert_layers.0`,
//! `ffn`, `ffn_output`, `full_layer_layer_norm`); the pooler is a bare linear layer.

use super::{plain, rename_layer, split_base};
use crate::encoder::heads::{EncoderTask, HeadInput, HeadLayout, HeadOut};
use crate::encoder::{EncoderSpec, HeadDropouts};
use crate::hf_config::{dropout, limits, Dropouts};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, StoredName};
use trustformers_nn::Activation;

/// Builds the spec from an `albert` config.json.
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = EncoderSpec::bert_like(&f, "albert")?;
    spec.hidden_act = Activation::from_hf(f.opt_str("hidden_act")?.unwrap_or("gelu_new"))?;
    spec.embedding_size = f
        .opt_usize("embedding_size", limits::HIDDEN)?
        .unwrap_or(128);
    spec.num_hidden_groups = f
        .opt_usize("num_hidden_groups", limits::LAYERS)?
        .unwrap_or(1);
    let inner = f.opt_usize("inner_group_num", limits::LAYERS)?.unwrap_or(1);
    if inner != 1 {
        return Err(Error::config(
            "inner_group_num",
            format!("only 1 layer per group is supported, got {inner}"),
        ));
    }
    // ALBERT's dropouts default to 0, its classifiers' to 0.1 (`classifier_dropout_prob`;
    // the token classifier falls back to `hidden_dropout_prob` when that is null).
    let hidden = dropout(&f, &["hidden_dropout_prob"], 0.0)?;
    spec.dropout = Dropouts {
        embedding: hidden,
        attention: dropout(&f, &["attention_probs_dropout_prob"], 0.0)?,
        attention_output: hidden,
        mlp_output: hidden,
        mlp_activation: 0.0,
    };
    let classifier = match f.raw("classifier_dropout_prob") {
        Some(_) => dropout(&f, &["classifier_dropout_prob"], 0.1)?,
        None if config.get("classifier_dropout_prob").is_some() => hidden,
        None => 0.1,
    };
    spec.head_dropout = HeadDropouts {
        sequence_classification: (classifier, 0.0),
        multiple_choice: (classifier, 0.0),
        token_classification: (classifier, 0.0),
        question_answering: (0.0, 0.0),
    };
    Ok(spec)
}

/// ALBERT's heads (`predictions`, `classifier` on the pooler, `qa_outputs`).
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    Some(match task {
        EncoderTask::MaskedLm => HeadLayout {
            input: HeadInput::EveryToken,
            dense: Some((
                "predictions.dense",
                spec.embedding_size,
                spec.hidden_act,
                true,
            )),
            norm: Some(("predictions.LayerNorm", spec.layer_norm_eps, true)),
            out: HeadOut::TiedEmbeddings {
                bias: "predictions.bias",
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

/// BERT-layout names -> ALBERT checkpoint names.
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    let (base, rest) = split_base(canonical, "albert")?;
    let stored = if let Some(r) = rest.strip_prefix("pooler.dense.") {
        Some(format!("pooler.{r}"))
    } else if let Some(r) = rest.strip_prefix("embeddings_project.") {
        Some(format!("encoder.embedding_hidden_mapping_in.{r}"))
    } else {
        rename_layer(
            rest,
            "encoder.albert_layer_groups.{i}.albert_layers.0",
            &[
                ("attention.self.query.", "attention.query."),
                ("attention.self.key.", "attention.key."),
                ("attention.self.value.", "attention.value."),
                ("attention.output.dense.", "attention.dense."),
                ("attention.output.LayerNorm.", "attention.LayerNorm."),
                ("intermediate.dense.", "ffn."),
                ("output.dense.", "ffn_output."),
                ("output.LayerNorm.", "full_layer_layer_norm."),
            ],
        )
    };
    plain(stored.map(|n| format!("{base}{n}")))
}
