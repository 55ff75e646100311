//! Training through the same model code: on the tiny fixtures, one forward and backward
//! pass of each head's loss gives torch's loss (within 1e-5) and torch's gradient for every
//! parameter (within 1e-4), dropout off. References: `tools/gen_grad_fixtures.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device};
use common::{fixture, max_abs_diff};
use std::collections::BTreeSet;
use trustformers::train::TrainBatch;
use trustformers::{AutoConfig, LoadOptions};

const LOSS_ATOL: f32 = 1e-5;
const GRAD_ATOL: f32 = 1e-4;

fn check_gradients(name: &str) {
    let reference = candle_core::safetensors::load(
        fixture("train/grads").join(format!("{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let trainable = AutoConfig::from_pretrained(fixture(name))
        .unwrap()
        .load_trainable(None, &LoadOptions::default())
        .unwrap();
    let batch = TrainBatch::from_named(&trainable.model, &reference).unwrap();
    let (loss, grads) = trainable.loss_and_gradients(&batch).unwrap();

    let loss = loss
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let expected_loss = reference["loss"].to_scalar::<f32>().unwrap();
    assert!(
        (loss - expected_loss).abs() <= LOSS_ATOL,
        "{name}: loss {loss} vs torch {expected_loss}"
    );

    let expected: BTreeSet<&str> = reference
        .keys()
        .filter_map(|k| k.strip_prefix("grad."))
        .collect();
    let actual: BTreeSet<&str> = grads.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(actual, expected, "{name}: which parameters get a gradient");
    for (param, grad) in &grads {
        let want = &reference[&format!("grad.{param}")];
        assert_eq!(
            grad.dims(),
            want.dims(),
            "{name}: shape of {param}'s gradient"
        );
        let diff = max_abs_diff(grad, want);
        assert!(
            diff <= GRAD_ATOL,
            "{name}: {param}'s gradient off by {diff}"
        );
    }
}

/// One test per fixture: a failure in one hides none of the others.
macro_rules! gradient_tests {
    ($($name:ident),+ $(,)?) => {$(
        #[test]
        fn $name() {
            check_gradients(stringify!($name));
        }
    )+};
}

// Decoders: one checkpoint per layer layout (see the generator for what each covers).
gradient_tests!(
    llama,
    mistral,
    qwen2,
    qwen3,
    gemma,
    gemma2,
    gemma3,
    phi3,
    stablelm,
    mixtral,
    gpt_neox,
    phi,
    gptj,
    gpt2,
    gpt_neo,
    falcon,
    falcon_new,
    falcon_alibi,
);

// Encoders: every head, and each family once.
gradient_tests!(
    bert_seqcls,
    bert_tokcls,
    bert_qa,
    bert_mlm,
    bert_mc,
    roberta_seqcls,
    distilbert_seqcls,
    albert_seqcls,
    electra_seqcls,
    deberta_v3_seqcls,
    modernbert_seqcls,
    nomic_bert_seqcls,
);
