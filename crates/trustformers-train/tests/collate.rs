//! The collators against transformers' (`tools/gen_train_fixtures.py`): padding on either
//! side, to the longest and to a multiple of 4.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::PathBuf;
use trustformers_train::collate::*;

fn flat_u32(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
        })
        .collect()
}

fn flat_i64(v: &Value) -> Vec<i64> {
    match v.as_array().unwrap().first() {
        Some(Value::Array(_)) => v
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
            .collect(),
        _ => v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect(),
    }
}

#[test]
fn collators_equal_transformers() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/train/collators.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let examples: Vec<Example> = fixture["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Example {
            input_ids: e["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            token_type_ids: Some(
                e["token_type_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect(),
            ),
            ..Default::default()
        })
        .collect();
    let collated = fixture["collated"].as_object().unwrap();
    assert_eq!(collated.len(), 12);
    for (key, want) in collated {
        let mut parts = key.split('_');
        let (kind, side, multiple) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let padding = Padding {
            pad_token_id: 0,
            side: if side == "left" {
                Side::Left
            } else {
                Side::Right
            },
            multiple_of: (multiple != "1").then(|| multiple.parse().unwrap()),
            ..Padding::default()
        };
        let batch = match kind {
            "padding" => {
                let seq: Vec<Example> = examples
                    .iter()
                    .enumerate()
                    .map(|(i, e)| Example {
                        labels: Some(vec![(i % 2) as i64]),
                        ..e.clone()
                    })
                    .collect();
                with_padding(&seq, &padding).unwrap()
            }
            "token" => {
                let tok: Vec<Example> = examples
                    .iter()
                    .map(|e| Example {
                        labels: Some((0..e.input_ids.len()).map(|j| (j % 3) as i64).collect()),
                        ..e.clone()
                    })
                    .collect();
                for_token_classification(&tok, &padding).unwrap()
            }
            "causal" => {
                let plain: Vec<Example> = examples
                    .iter()
                    .map(|e| Example {
                        input_ids: e.input_ids.clone(),
                        ..Default::default()
                    })
                    .collect();
                causal_lm(&plain, &padding).unwrap()
            }
            other => panic!("unknown collator {other}"),
        };
        assert_eq!(batch.input_ids, flat_u32(&want["input_ids"]), "{key}");
        assert_eq!(
            batch.attention_mask,
            flat_u32(&want["attention_mask"]),
            "{key}"
        );
        assert_eq!(batch.labels.unwrap(), flat_i64(&want["labels"]), "{key}");
        if let Some(types) = want.get("token_type_ids") {
            assert_eq!(batch.token_type_ids.unwrap(), flat_u32(types), "{key}");
        }
        assert_eq!(batch.batch * batch.length, batch.input_ids.len());
    }
}

#[test]
fn group_texts_packs_blocks_and_drops_the_rest() {
    let blocks = group_texts(&[vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9]], 4).unwrap();
    assert_eq!(blocks, vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]]);
    assert!(group_texts(&[vec![1]], 0).is_err());
}

#[test]
fn inconsistent_examples_are_errors_naming_them() {
    let e = |ids: Vec<u32>, labels: Option<Vec<i64>>| Example {
        input_ids: ids,
        labels,
        ..Default::default()
    };
    let p = Padding::default();
    assert!(with_padding(&[], &p).is_err());
    let err = for_token_classification(&[e(vec![1, 2], Some(vec![0]))], &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("example 0") && err.contains("labels"), "{err}");
    let err = with_padding(&[e(vec![1], Some(vec![0])), e(vec![2], None)], &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("example 1"), "{err}");
    let err = with_padding(&[e(vec![1], Some(vec![0, 1]))], &p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one per example"), "{err}");
    let zero = Padding {
        multiple_of: Some(0),
        ..Padding::default()
    };
    assert!(with_padding(&[e(vec![1], None)], &zero).is_err());
}
