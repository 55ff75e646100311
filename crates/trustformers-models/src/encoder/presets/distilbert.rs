//! DistilBERT (`modeling_distilbert.py`): BERT without token types or pooler, under its own
//! config names (`dim`, `n_layers`, `n_heads`, `hidden_dim`, `activation`) and tensor names
//! (`transformer.layer.{i}.attention.q_lin`, `sa_layer_norm`, `ffn.lin1`, ...); a ReLU
//! `pre_classifier` on the first token for classification.

use super::{plain, rename_layer, split_base};
use crate::encoder::heads::{EncoderTask, HeadInput, HeadLayout, HeadOut};
use crate::encoder::{pad_token_id, EncoderLayout, EncoderSpec, HeadDropouts};
use crate::hf_config::{dropout, limits, Dropouts};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, StoredName};
use trustformers_nn::Activation;

/// Builds the spec from a `distilbert` config.json.
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    // `sinusoidal_pos_embds` needs nothing: the table is computed at init and saved like a
    // learned one.
    let f = Fields::new(config, "")?;
    let hidden_size = f.opt_usize("dim", limits::HIDDEN)?.unwrap_or(768);
    let heads = f.opt_usize("n_heads", limits::HEADS)?.unwrap_or(12);
    if heads == 0 || hidden_size % heads != 0 {
        return Err(Error::config(
            "n_heads",
            format!("{heads} heads do not divide dim {hidden_size}"),
        ));
    }
    Ok(EncoderSpec {
        vocab_size: f.opt_usize("vocab_size", limits::VOCAB)?.unwrap_or(30522),
        hidden_size,
        num_hidden_layers: f.opt_usize("n_layers", limits::LAYERS)?.unwrap_or(6),
        num_attention_heads: heads,
        intermediate_size: f
            .opt_usize("hidden_dim", limits::INTERMEDIATE)?
            .unwrap_or(3072),
        hidden_act: Activation::from_hf(f.opt_str("activation")?.unwrap_or("gelu"))?,
        layer_norm_eps: 1e-12,
        max_position_embeddings: f
            .opt_usize("max_position_embeddings", limits::POSITIONS)?
            .unwrap_or(512),
        type_vocab_size: 0,
        embedding_size: hidden_size,
        num_hidden_groups: f.opt_usize("n_layers", limits::LAYERS)?.unwrap_or(6),
        position_padding_idx: None,
        pad_token_id: pad_token_id(&f)?,
        base_prefix: "distilbert",
        layout: EncoderLayout::Bert,
        // `dropout` on the embeddings and the FFN's output, none after the attention's
        // `out_lin`; the classifiers' after `pre_classifier`.
        dropout: {
            let p = dropout(&f, &["dropout"], 0.1)?;
            Dropouts {
                embedding: p,
                attention: dropout(&f, &["attention_dropout"], 0.1)?,
                attention_output: 0.0,
                mlp_output: p,
                mlp_activation: 0.0,
            }
        },
        head_dropout: {
            let seq = dropout(&f, &["seq_classif_dropout"], 0.2)?;
            HeadDropouts {
                sequence_classification: (0.0, seq),
                multiple_choice: (0.0, seq),
                token_classification: (dropout(&f, &["dropout"], 0.1)?, 0.0),
                question_answering: (dropout(&f, &["qa_dropout"], 0.1)?, 0.0),
            }
        },
    })
}

/// DistilBERT's heads (`vocab_transform`, `pre_classifier`, `qa_outputs`).
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    let classifier = HeadLayout {
        input: HeadInput::FirstToken,
        dense: Some(("pre_classifier", spec.hidden_size, Activation::Relu, true)),
        norm: None,
        out: HeadOut::Linear("classifier"),
    };
    Some(match task {
        EncoderTask::MaskedLm => HeadLayout {
            input: HeadInput::EveryToken,
            dense: Some(("vocab_transform", spec.hidden_size, spec.hidden_act, true)),
            norm: Some(("vocab_layer_norm", 1e-12, true)),
            out: HeadOut::TiedEmbeddings {
                bias: "vocab_projector.bias",
            },
        },
        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice => classifier,
        EncoderTask::TokenClassification => HeadLayout::linear(HeadInput::EveryToken, "classifier"),
        EncoderTask::QuestionAnswering => HeadLayout::linear(HeadInput::EveryToken, "qa_outputs"),
        EncoderTask::Base | EncoderTask::PreTraining => return None,
    })
}

/// BERT-layout names -> DistilBERT checkpoint names.
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    let (base, rest) = split_base(canonical, "distilbert")?;
    plain(
        rename_layer(
            rest,
            "transformer.layer.{i}",
            &[
                ("attention.self.query.", "attention.q_lin."),
                ("attention.self.key.", "attention.k_lin."),
                ("attention.self.value.", "attention.v_lin."),
                ("attention.output.dense.", "attention.out_lin."),
                ("attention.output.LayerNorm.", "sa_layer_norm."),
                ("intermediate.dense.", "ffn.lin1."),
                ("output.dense.", "ffn.lin2."),
                ("output.LayerNorm.", "output_layer_norm."),
            ],
        )
        .map(|n| format!("{base}{n}")),
    )
}
