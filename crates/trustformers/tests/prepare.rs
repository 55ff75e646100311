//! Data preparation against transformers' example scripts (`tools/gen_prepare_fixtures.py`):
//! token classification as `run_ner.py`'s `tokenize_and_align_labels` (the label list from
//! the data's names, sorted; each word's label on its first token) and question answering
//! as `run_qa.py`'s `prepare_train_features` (overlapping windows, the answer span or the
//! CLS position); then a few steps of training on each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fixture;
use serde_json::Value;
use trustformers::train::dataset::Dataset;
use trustformers::train::prepare::{self, Columns, Task};
use trustformers::AutoTokenizer;

fn reference() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture("train").join("prepare_reference.json")).unwrap(),
    )
    .unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn token_classification_aligns_labels_as_run_ner() {
    let r = &reference()["ner"];
    let tokenizer = AutoTokenizer::from_pretrained(fixture("bert_tokcls")).unwrap();
    let data = Dataset::from_file(fixture("train").join("ner_train.jsonl")).unwrap();
    let names = data.word_label_names("ner_tags").unwrap().unwrap();
    let want: Vec<String> = r["label_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, want);
    let columns = Columns {
        text: "tokens",
        label: "ner_tags",
        max_length: r["max_length"].as_u64().unwrap() as usize,
        num_labels: names.len(),
        label_names: &names,
        doc_stride: 0,
    };
    let examples =
        prepare::examples(Task::TokenClassification, &data, &tokenizer, &columns).unwrap();
    let features = r["features"].as_array().unwrap();
    assert_eq!(examples.len(), features.len());
    for (i, (e, f)) in examples.iter().zip(features).enumerate() {
        let got: Vec<i64> = e.input_ids.iter().map(|&t| i64::from(t)).collect();
        assert_eq!(got, ids(&f["input_ids"]), "example {i}: input_ids");
        assert_eq!(
            e.labels.clone().unwrap(),
            ids(&f["labels"]),
            "example {i}: labels"
        );
    }
}

#[test]
fn question_answering_windows_as_run_qa() {
    let r = &reference()["qa"];
    let tokenizer = AutoTokenizer::from_pretrained(fixture("bert_qa")).unwrap();
    let data = Dataset::from_file(fixture("train").join("qa_train.jsonl")).unwrap();
    let columns = Columns {
        text: "context",
        label: "answers",
        max_length: r["max_length"].as_u64().unwrap() as usize,
        num_labels: 0,
        label_names: &[],
        doc_stride: r["doc_stride"].as_u64().unwrap() as usize,
    };
    let examples = prepare::examples(Task::QuestionAnswering, &data, &tokenizer, &columns).unwrap();
    let features = r["features"].as_array().unwrap();
    assert_eq!(examples.len(), features.len(), "windows");
    for (i, (e, f)) in examples.iter().zip(features).enumerate() {
        let got: Vec<i64> = e.input_ids.iter().map(|&t| i64::from(t)).collect();
        assert_eq!(got, ids(&f["input_ids"]), "window {i}: input_ids");
        let types: Vec<i64> = e
            .token_type_ids
            .as_ref()
            .unwrap()
            .iter()
            .map(|&t| i64::from(t))
            .collect();
        assert_eq!(
            types,
            ids(&f["token_type_ids"]),
            "window {i}: token_type_ids"
        );
        let want = vec![f["start"].as_i64().unwrap(), f["end"].as_i64().unwrap()];
        assert_eq!(e.labels.clone().unwrap(), want, "window {i}: answer span");
    }
    // A stride that would not advance is refused, naming the argument.
    let stuck = Columns {
        doc_stride: columns.max_length,
        ..columns
    };
    let err = prepare::examples(Task::QuestionAnswering, &data, &tokenizer, &stuck)
        .unwrap_err()
        .to_string();
    assert!(err.contains("doc_stride"), "{err}");
}

#[test]
fn mismatched_words_and_labels_name_the_example() {
    let tokenizer = AutoTokenizer::from_pretrained(fixture("bert_tokcls")).unwrap();
    let data = Dataset::parse(
        std::path::Path::new("bad.jsonl"),
        "{\"tokens\": [\"a\", \"b\"], \"ner_tags\": [0]}\n",
    )
    .unwrap();
    let columns = Columns {
        text: "tokens",
        label: "ner_tags",
        max_length: 16,
        num_labels: 2,
        label_names: &[],
        doc_stride: 0,
    };
    let err = prepare::examples(Task::TokenClassification, &data, &tokenizer, &columns)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.jsonl") && err.contains("example 1"),
        "{err}"
    );
    let data = Dataset::parse(
        std::path::Path::new("bad.jsonl"),
        "{\"tokens\": [\"a\"], \"ner_tags\": [5]}\n",
    )
    .unwrap();
    let err = prepare::examples(Task::TokenClassification, &data, &tokenizer, &columns)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not one of the 2 classes"), "{err}");
}

/// Parquet files as `datasets` saves them (pyarrow: snappy and zstd, lists, a struct
/// column) read into the same rows as the JSON Lines files they were written from.
#[test]
fn parquet_reads_as_json_lines() {
    for name in ["sentiment_train", "ner_train", "qa_train"] {
        let dir = fixture("train");
        let parquet = Dataset::from_file(dir.join(format!("{name}.parquet"))).unwrap();
        let jsonl = Dataset::from_file(dir.join(format!("{name}.jsonl"))).unwrap();
        assert_eq!(parquet.rows, jsonl.rows, "{name}");
    }
}

/// Malformed Parquet files get an error naming the file, never a crash: garbage, every
/// truncation of a real file, a corrupted footer length and corrupted metadata.
#[test]
fn malformed_parquet_is_an_error() {
    let good = std::fs::read(fixture("train").join("qa_train.parquet")).unwrap();
    let path = std::path::Path::new("bad.parquet");
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        (
            "garbage".into(),
            b"PAR1 this is not a parquet file PAR1".to_vec(),
        ),
    ];
    for cut in (0..good.len()).step_by(97) {
        cases.push((format!("truncated at {cut}"), good[..cut].to_vec()));
    }
    let n = good.len();
    let mut huge_footer = good.clone();
    huge_footer[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("footer length past the file".into(), huge_footer));
    for at in (n.saturating_sub(400)..n - 8).step_by(13) {
        let mut flipped = good.clone();
        flipped[at] ^= 0xA5;
        cases.push((format!("metadata byte {at} flipped"), flipped));
    }
    // Found by the dataset_file fuzz target: metadata the parquet crate panics on
    // (contained by the reader's catch_unwind): in its thrift decoder, and a schema whose
    // child count overflows a capacity; and a schema list declaring ~100 million elements
    // in a few bytes, which parquet 57 reserved 10 GB for (an abort, not a panic; parquet 60
    // bounds the count by the bytes left).
    for file in [
        "malformed_thrift.parquet",
        "malformed_schema.parquet",
        "malformed_list_size.parquet",
    ] {
        cases.push((
            file.into(),
            std::fs::read(fixture("train").join(file)).unwrap(),
        ));
    }
    for (what, bytes) in cases {
        let start = std::time::Instant::now();
        match Dataset::from_bytes(path, bytes) {
            // A flipped byte may leave a readable file; then it still has rows.
            Ok(d) => assert!(!d.rows.is_empty(), "{what}"),
            Err(e) => assert!(e.to_string().contains("bad.parquet"), "{what}: {e}"),
        }
        assert!(start.elapsed().as_secs() < 2, "{what}: too slow");
    }
}
