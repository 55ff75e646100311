//! Training through the same model code: on the tiny fixtures, one forward and backward
//! pass of each head's loss gives torch's loss (within 1e-5) and torch's gradient for every
//! parameter (within 1e-4), dropout off. References: `tools/gen_grad_fixtures.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device};
use common::{fixture, max_abs_diff};
use std::collections::BTreeSet;
use trustformers::nn::checkpoint;
use trustformers::train::TrainBatch;
use trustformers::{AutoConfig, LoadOptions};

const LOSS_ATOL: f32 = 1e-5;
const GRAD_ATOL: f32 = 1e-4;

fn check_gradients(name: &str) {
    check_gradients_with(name, false);
}

/// With `checkpointed`, under gradient checkpointing: each layer recomputed in backward.
fn check_gradients_with(name: &str, checkpointed: bool) {
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
    let (loss, grads) = if checkpointed {
        let (loss, grads) =
            checkpoint::checkpointing(|| trainable.loss_and_gradients(&batch)).unwrap();
        // The layers' activations are not in the graph: each layer is one node.
        let (plain, _) = trainable.loss_and_gradients(&batch).unwrap();
        let nodes = |t: &candle_core::Tensor| t.sorted_nodes().len();
        if !name.starts_with("deberta") {
            assert!(
                nodes(&loss) < nodes(&plain),
                "{name}: checkpointing kept the graph ({} nodes, {} without)",
                nodes(&loss),
                nodes(&plain)
            );
        }
        (loss, grads)
    } else {
        trainable.loss_and_gradients(&batch).unwrap()
    };

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
    // An expert no token chose is outside our graph (no gradient); torch, which stacks the
    // experts into one parameter, gives it zeros.
    let unused: BTreeSet<&str> = expected
        .difference(&actual)
        .copied()
        .filter(|p| {
            let g = &reference[&format!("grad.{p}")];
            g.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                == 0.0
        })
        .collect();
    let expected: BTreeSet<&str> = expected.difference(&unused).copied().collect();
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

/// The same gradients with every layer checkpointed (recomputed in backward): decoders of
/// each residual layout, an MoE, shared ALBERT layers, and DeBERTa (not checkpointed: its
/// relative table is computed from weights).
mod checkpointed {
    macro_rules! checkpointed_tests {
        ($($name:ident),+ $(,)?) => {$(
            #[test]
            fn $name() {
                super::check_gradients_with(stringify!($name), true);
            }
        )+};
    }
    checkpointed_tests!(
        llama,
        gemma3,
        gpt2,
        gpt_neox,
        phi,
        falcon,
        mixtral,
        bert_seqcls,
        bert_mlm,
        albert_seqcls,
        distilbert_seqcls,
        deberta_v3_seqcls,
    );
}

// Decoders: one checkpoint per layer layout (see the generator for what each covers).
gradient_tests!(
    qwen2_moe,
    qwen3_moe,
    olmo2,
    granite,
    granitemoe,
    starcoder2,
    smollm3,
    cohere,
    cohere2,
    gpt_oss,
    deepseek_v2,
    deepseek_v3,
    llama4_text,
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

/// Batches that cannot be trained on get errors naming the tensor, before any forward.
#[test]
fn bad_batches_are_refused_by_name() {
    use candle_core::Tensor;
    use std::collections::HashMap;
    let trainable = AutoConfig::from_pretrained(fixture("bert_seqcls"))
        .unwrap()
        .load_trainable(None, &LoadOptions::default())
        .unwrap();
    let ids = Tensor::new(&[[5i64, 6, 7]], &Device::Cpu).unwrap();
    let cases: Vec<(Vec<(&str, Tensor)>, &str)> = vec![
        (vec![("input_ids", ids.clone())], "labels"),
        (
            vec![("labels", Tensor::new(&[1i64], &Device::Cpu).unwrap())],
            "input_ids",
        ),
        (
            vec![
                ("input_ids", ids.to_dtype(DType::F32).unwrap()),
                ("labels", Tensor::new(&[1i64], &Device::Cpu).unwrap()),
            ],
            "input_ids",
        ),
        (
            vec![
                ("input_ids", ids.clone()),
                (
                    "attention_mask",
                    Tensor::new(&[[1i64, 1]], &Device::Cpu).unwrap(),
                ),
                ("labels", Tensor::new(&[1i64], &Device::Cpu).unwrap()),
            ],
            "attention_mask",
        ),
    ];
    for (tensors, name) in cases {
        let map: HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let err = TrainBatch::from_named(&trainable.model, &map)
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "expected an error naming {name}: {err}");
    }
    // A label outside the classes: an error from the loss, not a crash.
    let map: HashMap<String, Tensor> = [
        ("input_ids".to_string(), ids),
        (
            "labels".to_string(),
            Tensor::new(&[7i64], &Device::Cpu).unwrap(),
        ),
    ]
    .into_iter()
    .collect();
    let batch = TrainBatch::from_named(&trainable.model, &map).unwrap();
    assert!(trainable.model.loss(&batch, None).is_err());
}
