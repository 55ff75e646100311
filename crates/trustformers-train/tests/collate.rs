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
    // A fixed number of labels per example (question answering's start and end) is kept
    // as it is; a different number in a later example is an error naming it.
    let spans = with_padding(&[e(vec![1], Some(vec![0, 1]))], &p).unwrap();
    assert_eq!(spans.labels, Some(vec![0, 1]));
    let err = with_padding(
        &[e(vec![1], Some(vec![0, 1])), e(vec![2], Some(vec![3]))],
        &p,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("example 1") && err.contains("labels"), "{err}");
    let zero = Padding {
        multiple_of: Some(0),
        ..Padding::default()
    };
    assert!(with_padding(&[e(vec![1], None)], &zero).is_err());
}

/// The 80/10/10 rule over many tokens: about 15% chosen, of those about 80% masked, 10%
/// random, 10% kept; special and padding tokens never; the same seed gives the same batch.
#[test]
fn masked_lm_follows_the_80_10_10_rule() {
    use rand::SeedableRng;
    let examples: Vec<Example> = (0..200)
        .map(|i| Example {
            // 101 and 102 play [CLS] and [SEP]; rows of different lengths get padding (0).
            input_ids: [101]
                .into_iter()
                .chain((0..(50 + i % 50)).map(|j| 1000 + (i * 7 + j) % 500))
                .chain([102])
                .collect(),
            ..Default::default()
        })
        .collect();
    let masking = Masking::new(103, 30000, vec![0, 101, 102, 103]);
    let collate = |seed| {
        masked_lm(
            &examples,
            &Padding::default(),
            &masking,
            &mut rand::rngs::StdRng::seed_from_u64(seed),
        )
        .unwrap()
    };
    let batch = collate(7);
    assert_eq!(batch, collate(7));
    assert_ne!(batch, collate(8));
    let original = with_padding(&examples, &Padding::default()).unwrap();
    let labels = batch.labels.as_ref().unwrap();
    let (mut eligible, mut chosen, mut masked, mut random, mut kept) = (0, 0, 0, 0, 0);
    for ((&before, &after), &label) in original.input_ids.iter().zip(&batch.input_ids).zip(labels) {
        let special = [0, 101, 102].contains(&before);
        if special {
            assert_eq!((after, label), (before, -100), "a special token was chosen");
            continue;
        }
        eligible += 1;
        if label == -100 {
            assert_eq!(after, before);
            continue;
        }
        assert_eq!(label, i64::from(before));
        chosen += 1;
        match after {
            103 => masked += 1,
            a if a == before => kept += 1,
            _ => random += 1,
        }
    }
    let share = |a: i32, b: i32| f64::from(a) / f64::from(b);
    assert!(
        (share(chosen, eligible) - 0.15).abs() < 0.01,
        "{chosen} of {eligible}"
    );
    assert!(
        (share(masked, chosen) - 0.8).abs() < 0.03,
        "{masked} of {chosen} masked"
    );
    // A random token can be the original one (1 in 30000): counted as kept here.
    assert!(
        (share(random, chosen) - 0.1).abs() < 0.02,
        "{random} of {chosen} random"
    );
    assert!(
        (share(kept, chosen) - 0.1).abs() < 0.02,
        "{kept} of {chosen} kept"
    );
    let bad = Masking {
        probability: 1.5,
        ..masking.clone()
    };
    assert!(masked_lm(
        &examples,
        &Padding::default(),
        &bad,
        &mut rand::rngs::StdRng::seed_from_u64(0)
    )
    .is_err());
}
