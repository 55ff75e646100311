//! Every loss against transformers' loss functions (`tools/gen_train_fixtures.py`): the
//! value within 1e-6 and the gradient of every logit within 1e-6.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use trustformers_train::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/train")
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn floats(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    floats(a)
        .iter()
        .zip(floats(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn losses_and_gradients_equal_transformers() {
    let t: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixtures().join("losses.safetensors"), &Device::Cpu)
            .unwrap();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("losses.json")).unwrap())
            .unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let get = |k: &str| t[&format!("{name}.{k}")].clone();
        let inputs: Vec<String> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let vars: Vec<Var> = inputs
            .iter()
            .map(|k| Var::from_tensor(&get(k)).unwrap())
            .collect();
        let items = case["num_items_in_batch"].as_f64();
        let loss = match case["kind"].as_str().unwrap() {
            "causal_lm" => causal_lm_loss(&vars[0], &ints(&get("labels")), items),
            "masked_lm" | "token_classification" => {
                per_token_loss(&vars[0], &ints(&get("labels")), items)
            }
            "sequence_classification" => {
                let problem = ProblemType::resolve(
                    case["problem_type"].as_str(),
                    case["num_labels"].as_u64().unwrap() as usize,
                    false,
                )
                .unwrap();
                let labels = get("labels");
                let labels = if labels.dtype() == DType::I64 {
                    ClassLabels::Indices(ints(&labels))
                } else {
                    ClassLabels::Values(floats(&labels))
                };
                sequence_classification_loss(&vars[0], &labels, problem, items)
            }
            "question_answering" => question_answering_loss(
                &vars[1],
                &vars[0],
                &ints(&get("start_positions")),
                &ints(&get("end_positions")),
            ),
            other => panic!("unknown kind {other}"),
        }
        .unwrap();
        let want = floats(&get("loss"))[0];
        let got = loss.to_scalar::<f32>().unwrap();
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{name}: loss {got} vs {want}"
        );
        let grads = loss.backward().unwrap();
        for (k, var) in inputs.iter().zip(&vars) {
            let grad = grads.get(var.as_tensor()).expect("a gradient");
            let diff = max_diff(grad, &get(&format!("{k}.grad")));
            assert!(diff <= 1e-6, "{name}: d loss / d {k} differs by {diff}");
        }
    }
}

#[test]
fn the_problem_type_is_inferred_as_transformers_does() {
    assert_eq!(
        ProblemType::resolve(None, 1, true).unwrap(),
        ProblemType::Regression
    );
    assert_eq!(
        ProblemType::resolve(None, 3, true).unwrap(),
        ProblemType::SingleLabel
    );
    assert_eq!(
        ProblemType::resolve(None, 3, false).unwrap(),
        ProblemType::MultiLabel
    );
    let e = ProblemType::resolve(Some("ranking"), 3, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("problem_type") && e.contains("ranking"), "{e}");
}

#[test]
fn bad_labels_are_errors_naming_them() {
    let logits = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let e = cross_entropy(&logits, &[0, 3], IGNORE_INDEX, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 3") && e.contains("3 classes"), "{e}");
    assert!(cross_entropy(&logits, &[0], IGNORE_INDEX, None).is_err());
    // Every label ignored: NaN, as torch's mean over nothing.
    let all = cross_entropy(&logits, &[IGNORE_INDEX; 2], IGNORE_INDEX, None).unwrap();
    assert!(all.to_scalar::<f32>().unwrap().is_nan());
    let e = sequence_classification_loss(
        &logits,
        &ClassLabels::Values(vec![1.0]),
        ProblemType::MultiLabel,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("1 label values"), "{e}");
}
