//! Pipelines against transformers' pipelines on the tiny BERT fixtures
//! (`tools/gen_pipeline_fixtures.py` -> tests/fixtures/pipelines.json): labels, tokens and
//! text exact, scores within 1e-4.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fixture;
use serde_json::Value;
use trustformers::pipelines::*;
use trustformers::tokenizers::TextInput;
use trustformers::LoadOptions;

const ATOL: f64 = 1e-4;

fn cases(task: &str) -> Vec<Value> {
    let all: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("pipelines.json")).unwrap()).unwrap();
    let out: Vec<Value> = all.into_iter().filter(|c| c["task"] == task).collect();
    assert!(!out.is_empty(), "no {task} cases");
    out
}

/// One output per input: transformers returns a bare result for a single input.
fn per_input(output: &Value, single: bool) -> Vec<Value> {
    match output {
        Value::Array(items) if !single => items.clone(),
        other => vec![other.clone()],
    }
}

fn texts(inputs: &Value) -> Vec<String> {
    match inputs {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        other => panic!("unexpected inputs {other}"),
    }
}

fn close(a: f64, b: &Value, what: &str) {
    let b = b.as_f64().unwrap();
    assert!((a - b).abs() <= ATOL, "{what}: {a} vs transformers {b}");
}

#[test]
fn fill_mask_matches_transformers() {
    let pipe =
        FillMaskPipeline::from_pretrained(fixture("bert_mlm"), &LoadOptions::default()).unwrap();
    for case in cases("fill-mask") {
        let inputs = texts(&case["inputs"]);
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let params = FillMaskParams {
            top_k: case["params"]["top_k"].as_u64().map_or(5, |k| k as usize),
            targets: case["params"]["targets"]
                .as_array()
                .map(|t| t.iter().map(|v| v.as_str().unwrap().to_string()).collect()),
            ..Default::default()
        };
        let got = pipe.run(&refs, &params).unwrap();
        let want = per_input(&case["output"], case["inputs"].is_string());
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            let w = w.as_array().unwrap();
            assert_eq!(g.len(), w.len(), "{case}");
            for (p, q) in g.iter().zip(w) {
                assert_eq!(u64::from(p.token), q["token"].as_u64().unwrap(), "{case}");
                assert_eq!(p.token_str, q["token_str"].as_str().unwrap());
                assert_eq!(p.sequence, q["sequence"].as_str().unwrap());
                close(f64::from(p.score), &q["score"], "fill-mask score");
            }
        }
    }
    // One mask exactly.
    for bad in ["no mask here", "[MASK] and [MASK]"] {
        let err = pipe.run(&[bad], &FillMaskParams::default()).unwrap_err();
        assert!(err.to_string().contains("mask"), "{err}");
    }
    assert!(pipe.run(&[], &FillMaskParams::default()).is_err());
}

/// Inputs of different lengths padded together give what each gives alone.
#[test]
fn fill_mask_batches_equal_single_texts() {
    let pipe =
        FillMaskPipeline::from_pretrained(fixture("bert_mlm"), &LoadOptions::default()).unwrap();
    let texts: Vec<String> = cases("fill-mask")
        .iter()
        .flat_map(|c| texts(&c["inputs"]))
        .chain(
            [
                "[MASK]",
                "the weather is sunny and the [MASK] is warm in the south",
            ]
            .map(String::from),
        )
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for targets in [None, Some(vec!["the".to_string(), "sunny".to_string()])] {
        let params = FillMaskParams {
            top_k: 4,
            targets,
            batch_size: 2,
            ..Default::default()
        };
        let batched = pipe.run(&refs, &params).unwrap();
        assert_eq!(batched.len(), refs.len());
        for (text, got) in refs.iter().zip(&batched) {
            let alone = pipe.run(&[text], &params).unwrap().remove(0);
            assert!(!alone.is_empty(), "{text}: nothing to compare");
            assert_eq!(got.len(), alone.len(), "{text}");
            for (g, a) in got.iter().zip(&alone) {
                assert_eq!((g.token, &g.sequence), (a.token, &a.sequence), "{text}");
                assert!((g.score - a.score).abs() < 1e-5, "{text}");
            }
        }
    }
    // The error names the input, counted over all batches.
    let err = pipe
        .run(
            &["[MASK] one", "[MASK] two", "no mask"],
            &FillMaskParams {
                batch_size: 2,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("input 2 holds 0 mask tokens"),
        "{err}"
    );
    let zero = FillMaskParams {
        batch_size: 0,
        ..Default::default()
    };
    assert!(pipe.run(&refs, &zero).is_err());
}

#[test]
fn text_classification_matches_transformers() {
    let pipe = TextClassificationPipeline::from_pretrained(
        fixture("bert_seqcls"),
        &LoadOptions::default(),
    )
    .unwrap();
    for case in cases("text-classification") {
        let p = &case["params"];
        let params = TextClassificationParams {
            top_k: match p.get("top_k") {
                None => Some(1),
                Some(Value::Null) => None,
                Some(k) => Some(k.as_u64().unwrap() as usize),
            },
            function_to_apply: p["function_to_apply"]
                .as_str()
                .map(|f| ClassificationFunction::from_name(f).unwrap()),
            ..Default::default()
        };
        let inputs = &case["inputs"];
        let (owned, pair): (Vec<String>, Option<(String, String)>) = match inputs {
            Value::Object(o) => (
                vec![],
                Some((
                    o["text"].as_str().unwrap().to_string(),
                    o["text_pair"].as_str().unwrap().to_string(),
                )),
            ),
            other => (texts(other), None),
        };
        let batch: Vec<TextInput<'_>> = match &pair {
            Some((a, b)) => vec![TextInput::Pair(a, b)],
            None => owned.iter().map(|t| TextInput::Single(t)).collect(),
        };
        let got = pipe.run(&batch, &params).unwrap();
        let single = !inputs.is_array();
        let want: Vec<Vec<Value>> = per_input(&case["output"], single)
            .into_iter()
            .map(|o| match o {
                Value::Array(items) => items,
                one => vec![one],
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{case}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.len(), w.len(), "{case}");
            for (a, b) in g.iter().zip(w) {
                assert_eq!(a.label, b["label"].as_str().unwrap(), "{case}");
                close(f64::from(a.score), &b["score"], "text-classification score");
            }
        }
    }
    assert!(pipe.run(&[], &TextClassificationParams::default()).is_err());
}

#[test]
fn zero_shot_classification_matches_transformers() {
    let pipe = ZeroShotClassificationPipeline::from_pretrained(
        fixture("bert_nli"),
        &LoadOptions::default(),
    )
    .unwrap();
    for case in cases("zero-shot-classification") {
        let p = &case["params"];
        let mut params = ZeroShotParams {
            candidate_labels: p["candidate_labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            multi_label: p["multi_label"].as_bool().unwrap_or(false),
            ..Default::default()
        };
        if let Some(t) = p["hypothesis_template"].as_str() {
            params.hypothesis_template = t.to_string();
        }
        let got = pipe.run(case["inputs"].as_str().unwrap(), &params).unwrap();
        let want = &case["output"];
        assert_eq!(got.sequence, want["sequence"].as_str().unwrap());
        let labels: Vec<&str> = want["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(got.labels, labels, "{case}");
        for (a, b) in got.scores.iter().zip(want["scores"].as_array().unwrap()) {
            close(f64::from(*a), b, "zero-shot score");
        }
    }
    let empty = ZeroShotParams::default();
    assert!(pipe.run("text", &empty).is_err());
}

#[test]
fn zero_shot_batches_equal_single_sequences() {
    let pipe = ZeroShotClassificationPipeline::from_pretrained(
        fixture("bert_nli"),
        &LoadOptions::default(),
    )
    .unwrap();
    let sequences = [
        "the weather is nice",
        "a",
        "the quick brown fox jumps over the lazy dog again and again",
    ];
    for multi_label in [false, true] {
        let params = ZeroShotParams {
            candidate_labels: vec!["sports".into(), "weather".into(), "animals".into()],
            multi_label,
            // Not a multiple of the three labels: batches cut across sequences.
            batch_size: 2,
            ..Default::default()
        };
        let batched = pipe.run_batch(&sequences, &params).unwrap();
        assert_eq!(batched.len(), sequences.len());
        for (sequence, got) in sequences.iter().zip(&batched) {
            let alone = pipe.run(sequence, &params).unwrap();
            assert_eq!(got.sequence, alone.sequence);
            assert_eq!(got.labels, alone.labels, "{sequence}");
            for (a, b) in got.scores.iter().zip(&alone.scores) {
                assert!((a - b).abs() < 1e-5, "{sequence}: {a} vs {b}");
            }
        }
        let zero = ZeroShotParams {
            batch_size: 0,
            ..params.clone()
        };
        assert!(pipe.run_batch(&sequences, &zero).is_err());
        assert!(pipe.run_batch(&[], &params).is_err());
    }
}

#[test]
fn token_classification_matches_transformers() {
    let pipe = TokenClassificationPipeline::from_pretrained(
        fixture("bert_tokcls"),
        &LoadOptions::default(),
    )
    .unwrap();
    for case in cases("token-classification") {
        let params = TokenClassificationParams {
            aggregation: Aggregation::from_name(
                case["params"]["aggregation_strategy"].as_str().unwrap(),
            )
            .unwrap(),
            ..Default::default()
        };
        let got = pipe.run(case["inputs"].as_str().unwrap(), &params).unwrap();
        let want = case["output"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{case}\n{:?}", got);
        for (g, w) in got.iter().zip(want) {
            let j = g.to_json();
            for key in ["entity", "entity_group", "word", "start", "end", "index"] {
                assert_eq!(j.get(key), w.get(key), "{key} in {case}");
            }
            close(
                f64::from(g.score),
                &w["score"],
                "token-classification score",
            );
        }
    }
}

#[test]
fn token_classification_batches_equal_single_texts() {
    let pipe = TokenClassificationPipeline::from_pretrained(
        fixture("bert_tokcls"),
        &LoadOptions::default(),
    )
    .unwrap();
    let texts: Vec<String> = cases("token-classification")
        .iter()
        .map(|c| c["inputs"].as_str().unwrap().to_string())
        .chain(
            [
                "a",
                "the quick brown fox jumps over the lazy dog again and again",
            ]
            .map(String::from),
        )
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for aggregation in ["none", "simple", "first", "average", "max"] {
        let params = TokenClassificationParams {
            aggregation: Aggregation::from_name(aggregation).unwrap(),
            ignore_labels: Vec::new(),
            batch_size: 3,
        };
        let batched = pipe.run_batch(&refs, &params).unwrap();
        assert_eq!(batched.len(), refs.len());
        for (text, got) in refs.iter().zip(&batched) {
            let alone = pipe.run(text, &params).unwrap();
            assert!(!alone.is_empty(), "{text}: nothing to compare");
            assert_eq!(got.len(), alone.len(), "{aggregation}: {text}");
            for (g, a) in got.iter().zip(&alone) {
                assert_eq!(
                    (&g.label, &g.word, g.start, g.end, g.index),
                    (&a.label, &a.word, a.start, a.end, a.index),
                    "{aggregation}: {text}"
                );
                assert!((g.score - a.score).abs() < 1e-5, "{aggregation}: {text}");
            }
        }
    }
    let zero = TokenClassificationParams {
        batch_size: 0,
        ..Default::default()
    };
    assert!(pipe.run_batch(&refs, &zero).is_err());
    assert!(pipe
        .run_batch(&[], &TokenClassificationParams::default())
        .is_err());
}

/// Against transformers 4.57's question-answering pipeline (removed in transformers 5).
#[test]
fn question_answering_matches_transformers_4() {
    let pipe =
        QuestionAnsweringPipeline::from_pretrained(fixture("bert_qa"), &LoadOptions::default())
            .unwrap();
    for case in cases("question-answering") {
        let p = &case["params"];
        let params = QuestionAnsweringParams {
            top_k: p["top_k"].as_u64().map_or(1, |k| k as usize),
            max_answer_len: p["max_answer_len"].as_u64().map_or(15, |k| k as usize),
            max_seq_len: p["max_seq_len"].as_u64().map(|k| k as usize),
            doc_stride: p["doc_stride"].as_u64().map(|k| k as usize),
            handle_impossible_answer: p["handle_impossible_answer"].as_bool().unwrap_or(false),
            ..Default::default()
        };
        let inputs = &case["inputs"];
        let got = pipe
            .run(
                inputs["question"].as_str().unwrap(),
                inputs["context"].as_str().unwrap(),
                &params,
            )
            .unwrap();
        let want = per_input(&case["output"], !case["output"].is_array());
        let want = if case["output"].is_array() {
            case["output"].as_array().unwrap().clone()
        } else {
            want
        };
        assert_eq!(got.len(), want.len(), "{case}\n{got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.answer, w["answer"].as_str().unwrap(), "{case}\n{got:?}");
            assert_eq!(g.start as u64, w["start"].as_u64().unwrap());
            assert_eq!(g.end as u64, w["end"].as_u64().unwrap());
            close(f64::from(g.score), &w["score"], "qa score");
        }
    }
    assert!(pipe
        .run("", "context", &QuestionAnsweringParams::default())
        .is_err());
}

#[test]
fn question_answering_batches_equal_single_pairs() {
    let pipe =
        QuestionAnsweringPipeline::from_pretrained(fixture("bert_qa"), &LoadOptions::default())
            .unwrap();
    let long = ["the weather is nice and the sun is out"; 12].join(" ");
    let owned: Vec<(String, String)> = cases("question-answering")
        .iter()
        .map(|c| {
            let i = &c["inputs"];
            (
                i["question"].as_str().unwrap().to_string(),
                i["context"].as_str().unwrap().to_string(),
            )
        })
        .chain([("is the sun out".to_string(), long)])
        .collect();
    let pairs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(q, c)| (q.as_str(), c.as_str()))
        .collect();
    // Small windows, so the long context spans several in the same batch as the others.
    let params = QuestionAnsweringParams {
        top_k: 3,
        max_seq_len: Some(32),
        doc_stride: Some(8),
        handle_impossible_answer: true,
        batch_size: 3,
        ..Default::default()
    };
    let batched = pipe.run_batch(&pairs, &params).unwrap();
    assert_eq!(batched.len(), pairs.len());
    for (&(q, c), got) in pairs.iter().zip(&batched) {
        let alone = pipe.run(q, c, &params).unwrap();
        assert_eq!(got.len(), alone.len(), "{q}");
        for (g, a) in got.iter().zip(&alone) {
            assert_eq!(
                (&g.answer, g.start, g.end),
                (&a.answer, a.start, a.end),
                "{q}"
            );
            assert!((g.score - a.score).abs() < 1e-5, "{q}");
        }
    }
    let zero = QuestionAnsweringParams {
        batch_size: 0,
        ..Default::default()
    };
    assert!(pipe.run_batch(&pairs, &zero).is_err());
    assert!(pipe
        .run_batch(&[], &QuestionAnsweringParams::default())
        .is_err());
}

/// Inputs past the model's 64 positions: a clear error, or truncation when asked.
#[test]
fn long_inputs_error_unless_truncated() {
    let long = vec!["the weather"; 80].join(" ");
    let pipe = TextClassificationPipeline::from_pretrained(
        fixture("bert_seqcls"),
        &LoadOptions::default(),
    )
    .unwrap();
    let err = pipe
        .run(
            &[TextInput::Single(&long)],
            &TextClassificationParams::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("max_position_embeddings"), "{err}");
    let truncated = TextClassificationParams {
        truncation: true,
        ..Default::default()
    };
    assert_eq!(
        pipe.run(&[TextInput::Single(&long)], &truncated)
            .unwrap()
            .len(),
        1
    );

    let features =
        FeatureExtractionPipeline::from_pretrained(fixture("bert_base"), &LoadOptions::default())
            .unwrap();
    assert!(features
        .run(&[&long], &FeatureExtractionParams::default())
        .is_err());
    let params = FeatureExtractionParams {
        truncation: true,
        ..Default::default()
    };
    let out = features.run(&[&long, "john"], &params).unwrap();
    assert_eq!(out[0].len(), 64);
    // The short input keeps its own length, padding removed: [CLS] john [SEP].
    assert_eq!(out[1].len(), 3);
    assert!(features.run(&[], &params).is_err());
    let zero = FeatureExtractionParams {
        batch_size: 0,
        ..Default::default()
    };
    assert!(features.run(&["john"], &zero).is_err());
    let zero = TextClassificationParams {
        batch_size: 0,
        ..Default::default()
    };
    assert!(pipe.run(&[TextInput::Single("john")], &zero).is_err());

    // fill-mask: a long input is an error unless truncated; a mask cut off is an error.
    let fill =
        FillMaskPipeline::from_pretrained(fixture("bert_mlm"), &LoadOptions::default()).unwrap();
    let early = format!("the [MASK] {long}");
    let late = format!("{long} the [MASK]");
    let err = fill.run(&[&early], &FillMaskParams::default()).unwrap_err();
    assert!(err.to_string().contains("max_position_embeddings"), "{err}");
    let truncated = FillMaskParams {
        truncation: true,
        ..Default::default()
    };
    let out = fill.run(&[&early, "the [MASK]"], &truncated).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].len(), 5);
    let err = fill.run(&[&late], &truncated).unwrap_err();
    assert!(err.to_string().contains("0 mask tokens"), "{err}");
}

/// RoBERTa's positions start after its padding index: 64 position embeddings hold 62
/// tokens, and that is where truncation cuts when the tokenizer sets no limit.
#[test]
fn truncation_stops_at_the_usable_positions() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("roberta_mlm").join(f), dir.path().join(f)).unwrap();
    }
    // bert_base's vocabulary (128 tokens, as RoBERTa's fixture), without model_max_length.
    for f in ["tokenizer.json", "vocab.txt"] {
        std::fs::copy(fixture("bert_base").join(f), dir.path().join(f)).unwrap();
    }
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("bert_base").join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    config.as_object_mut().unwrap().remove("model_max_length");
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let features =
        FeatureExtractionPipeline::from_pretrained(dir.path(), &LoadOptions::default()).unwrap();
    let long = vec!["the weather"; 80].join(" ");
    let params = FeatureExtractionParams {
        truncation: true,
        ..Default::default()
    };
    let out = features.run(&[&long], &params).unwrap();
    assert_eq!(out[0].len(), 62);
}

/// Sentence embeddings run longest-first, as sentence-transformers does, and come back in
/// input order: batched results equal each text alone.
#[test]
fn sentence_embeddings_return_in_input_order() {
    let model = SentenceTransformer::from_pretrained(fixture("bert_base"), &LoadOptions::default())
        .unwrap();
    let texts = [
        "john",
        "the weather is sunny and warm in the south today",
        "the capital",
        "",
        "i like this movie very much",
    ];
    let params = EmbedParams {
        batch_size: 2,
        ..Default::default()
    };
    let batched = model.encode(&texts, &params).unwrap();
    assert_eq!(batched.len(), texts.len());
    for (text, got) in texts.iter().zip(&batched) {
        let alone = model.encode(&[text], &params).unwrap().remove(0);
        assert_eq!(got.len(), alone.len());
        for (g, a) in got.iter().zip(&alone) {
            assert!((g - a).abs() < 1e-5, "{text:?}: {g} vs {a}");
        }
    }
}
