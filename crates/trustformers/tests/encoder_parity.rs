//! Parity against transformers on the tiny encoder fixtures written by
//! `tools/gen_encoder_fixtures.py`: every output field of every head, the right-padded row
//! included (padding positions of per-token outputs excluded, as they are meaningless).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::Tensor;
use common::{expected, fixture, max_abs_diff};
use trustformers::encoders::load_encoder;
use trustformers::{EncoderTask, LoadOptions};

const ATOL: f32 = 1e-4;

const FIXTURES: &[(&str, EncoderTask)] = &[
    ("bert_base", EncoderTask::Base),
    ("bert_mlm", EncoderTask::MaskedLm),
    ("bert_seqcls", EncoderTask::SequenceClassification),
    ("bert_tokcls", EncoderTask::TokenClassification),
    ("bert_qa", EncoderTask::QuestionAnswering),
    ("bert_mc", EncoderTask::MultipleChoice),
    ("roberta_base", EncoderTask::Base),
    ("roberta_mlm", EncoderTask::MaskedLm),
    ("roberta_seqcls", EncoderTask::SequenceClassification),
    ("roberta_tokcls", EncoderTask::TokenClassification),
    ("roberta_qa", EncoderTask::QuestionAnswering),
    ("xlm_roberta_seqcls", EncoderTask::SequenceClassification),
    ("distilbert_base", EncoderTask::Base),
    ("distilbert_mlm", EncoderTask::MaskedLm),
    ("distilbert_seqcls", EncoderTask::SequenceClassification),
    ("distilbert_tokcls", EncoderTask::TokenClassification),
    ("distilbert_qa", EncoderTask::QuestionAnswering),
    ("electra_base", EncoderTask::Base),
    ("electra_pretraining", EncoderTask::PreTraining),
    ("electra_mlm", EncoderTask::MaskedLm),
    ("electra_seqcls", EncoderTask::SequenceClassification),
    ("albert_base", EncoderTask::Base),
    ("albert_mlm", EncoderTask::MaskedLm),
    ("albert_seqcls", EncoderTask::SequenceClassification),
    ("bert_nli", EncoderTask::SequenceClassification),
    ("modernbert_base", EncoderTask::Base),
    ("modernbert_mlm", EncoderTask::MaskedLm),
    ("modernbert_seqcls", EncoderTask::SequenceClassification),
    ("modernbert_tokcls", EncoderTask::TokenClassification),
    ("deberta_v3_base", EncoderTask::Base),
    ("deberta_v3_mlm", EncoderTask::MaskedLm),
    ("deberta_v3_seqcls", EncoderTask::SequenceClassification),
    ("deberta_v2_seqcls", EncoderTask::SequenceClassification),
    ("deberta_v2_qa", EncoderTask::QuestionAnswering),
    ("deberta_v2_conv_base", EncoderTask::Base),
];

/// Per-token outputs with padding positions zeroed, so that only real tokens count.
fn unpadded(t: &Tensor, mask: &Tensor) -> Tensor {
    let mut m = mask.to_dtype(candle_core::DType::F32).unwrap();
    while m.rank() < t.rank() {
        m = m.unsqueeze(m.rank()).unwrap();
    }
    t.broadcast_mul(&m).unwrap()
}

fn check(name: &str, task: EncoderTask) {
    let model = load_encoder(fixture(name), None, &LoadOptions::default()).unwrap();
    assert_eq!(model.task(), task, "{name}: task from config.architectures");
    let exp = expected(name);
    let (ids, mask, types) = (
        &exp["input_ids"],
        &exp["attention_mask"],
        &exp["token_type_ids"],
    );
    let mc = task == EncoderTask::MultipleChoice;
    let lift = |t: &Tensor| {
        if mc {
            t.unsqueeze(0).unwrap()
        } else {
            t.clone()
        }
    };
    let out = model
        .forward(&lift(ids), Some(&lift(types)), Some(&lift(mask)), !mc)
        .unwrap();
    let sequence_level = matches!(
        task,
        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice
    );
    let per_token = |key: &str| key != "pooler_output" && (key != "logits" || !sequence_level);
    let mut fields: Vec<(String, Tensor)> =
        vec![("last_hidden_state".into(), out.last_hidden_state.clone())];
    fields.extend(out.pooler_output.map(|t| ("pooler_output".into(), t)));
    fields.extend(out.logits.map(|t| ("logits".into(), t)));
    fields.extend(out.start_logits.map(|t| ("start_logits".into(), t)));
    fields.extend(out.end_logits.map(|t| ("end_logits".into(), t)));
    for (i, h) in out.hidden_states.iter().enumerate() {
        fields.push((format!("hidden_states.{i}"), h.clone()));
    }
    for key in exp
        .keys()
        .filter(|k| !k.starts_with("input") && !k.ends_with("_ids") && *k != "attention_mask")
    {
        assert!(
            fields.iter().any(|(k, _)| k == key),
            "{name}: transformers gives `{key}`, we do not"
        );
    }
    let mut compared = 0;
    for (key, got) in &fields {
        if mc && key != "logits" {
            continue;
        }
        // Heads' outputs hold no hidden states in transformers unless asked; compare what
        // both have (every transformers field is required above).
        let Some(want) = exp.get(key) else {
            continue;
        };
        assert_eq!(got.dims(), want.dims(), "{name} {key}");
        // DeBERTa's embeddings are zero at padding in transformers, and so in ours.
        let whole = name.starts_with("deberta") && key == "hidden_states.0";
        let d = if per_token(key) && !mc && !whole {
            max_abs_diff(&unpadded(got, mask), &unpadded(want, mask))
        } else {
            max_abs_diff(got, want)
        };
        assert!(d <= ATOL, "{name} {key}: max diff {d}");
        compared += 1;
    }
    // The head's output, and for the others every hidden state too.
    let want = if mc {
        1
    } else {
        2 + model.model().spec().num_hidden_layers
    };
    assert!(compared >= want, "{name}: compared only {compared} fields");
}

#[test]
fn encoders_match_transformers() {
    for (name, task) in FIXTURES {
        check(name, *task);
    }
}
