//! Parity of the encoder-decoders against transformers on the tiny fixtures written by
//! `tools/gen_seq2seq_fixtures.py`: encoder output, decoder hidden state and logits over a
//! batch with a right-padded source row, decoding step by step through the cache against
//! one pass over the whole target, and `generate()`'s greedy and beam-search ids.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixture, max_abs_diff};
use trustformers::generation::generate_seq2seq;
use trustformers::models::ForwardOptions;
use trustformers::{AutoModelForSeq2SeqLM, EncoderDecoderLM, GenerationConfig, LoadOptions};

const ATOL: f32 = 1e-4;

/// One test module per fixture, one test per check.
macro_rules! fixture_tests {
    ($($name:ident: $($check:ident),+;)+) => {$(
        mod $name {
            $(
                #[test]
                fn $check() {
                    super::$check(stringify!($name));
                }
            )+
        }
    )+};
}

fixture_tests! {
    t5: check_forward, check_cache, check_greedy, check_beam;
    t5_v1_1: check_forward, check_cache, check_greedy, check_beam;
    mt5: check_forward, check_cache, check_greedy, check_beam;
    umt5: check_forward, check_cache, check_greedy, check_beam;
    bart: check_forward, check_cache, check_greedy, check_beam;
    mbart: check_forward, check_cache, check_greedy, check_beam;
    marian: check_forward, check_cache, check_greedy, check_beam;
    pegasus: check_forward, check_cache, check_greedy, check_beam;
    // A T5 v1.1 written as llama.cpp's converter writes it (`t5` architecture, f32).
    t5_gguf: check_forward, check_cache, check_greedy, check_beam;
}

/// The fixture's checkpoint: its directory, or the GGUF file in it.
fn load(name: &str) -> Box<dyn EncoderDecoderLM> {
    let dir = fixture(name);
    let path = match name.strip_suffix("_gguf") {
        Some(stem) => dir.join(format!("tiny-{stem}.gguf")),
        None => dir,
    };
    AutoModelForSeq2SeqLM::from_pretrained(path, &LoadOptions::default()).unwrap()
}

fn ids(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

/// The encoder's output, the decoder's last hidden state and the logits of one pass over
/// the whole target.
fn check_forward(name: &str) {
    let model = load(name);
    let want = expected(name);
    let input_ids = ids(&want["input_ids"]);
    let mask = ids(&want["attention_mask"]);
    let encoded = model.encode(&input_ids, Some(&mask)).unwrap();
    let d = max_abs_diff(&encoded, &want["encoder_last_hidden_state"]);
    assert!(d < ATOL, "{name}: encoder output differs by {d}");

    let mut cache = model.new_cache(encoded, Some(mask)).unwrap();
    let out = model
        .decode(
            &ids(&want["decoder_input_ids"]),
            &ForwardOptions::default(),
            &mut cache,
        )
        .unwrap();
    let d = max_abs_diff(&out.last_hidden_state, &want["last_hidden_state"]);
    assert!(d < ATOL, "{name}: decoder hidden state differs by {d}");
    let d = max_abs_diff(&out.logits, &want["logits"]);
    assert!(d < ATOL, "{name}: logits differ by {d}");
}

/// Decoding one token at a time (after a first chunk of 2) gives the logits of the whole
/// pass; `logits_to_keep` keeps the last ones.
fn check_cache(name: &str) {
    let model = load(name);
    let want = expected(name);
    let input_ids = ids(&want["input_ids"]);
    let mask = ids(&want["attention_mask"]);
    let target = ids(&want["decoder_input_ids"]);
    let encoded = model.encode(&input_ids, Some(&mask)).unwrap();
    let mut cache = model.new_cache(encoded, Some(mask)).unwrap();
    let len = target.dim(1).unwrap();
    let mut steps = vec![
        model
            .decode(
                &target.narrow(1, 0, 2).unwrap(),
                &ForwardOptions::default(),
                &mut cache,
            )
            .unwrap()
            .logits,
    ];
    let last = ForwardOptions {
        logits_to_keep: Some(1),
        ..Default::default()
    };
    for i in 2..len {
        let step = model
            .decode(&target.narrow(1, i, 1).unwrap(), &last, &mut cache)
            .unwrap();
        assert_eq!(step.logits.dim(1).unwrap(), 1);
        steps.push(step.logits);
    }
    assert_eq!(cache.seq_len(), len);
    let stepped = Tensor::cat(&steps, 1).unwrap();
    let d = max_abs_diff(&stepped, &want["logits"]);
    assert!(d < ATOL, "{name}: cached decoding differs by {d}");
    assert!(model.device().same_device(&Device::Cpu));
}

/// The fixture's sources as token lists, padding dropped.
fn sources(want: &std::collections::HashMap<String, Tensor>) -> Vec<Vec<u32>> {
    let ids: Vec<Vec<u32>> = ids_of(&want["input_ids"]);
    let mask: Vec<Vec<u32>> = ids_of(&want["attention_mask"]);
    ids.into_iter()
        .zip(mask)
        .map(|(row, m)| {
            row.into_iter()
                .zip(m)
                .filter(|&(_, k)| k == 1)
                .map(|(t, _)| t)
                .collect()
        })
        .collect()
}

fn ids_of(t: &Tensor) -> Vec<Vec<u32>> {
    ids(t).to_vec2().unwrap()
}

/// `generate()`'s settings for the fixture: its generation_config.json, 8 new tokens.
fn config(name: &str) -> GenerationConfig {
    let mut config = GenerationConfig::from_dir(&fixture(name)).unwrap();
    config.max_new_tokens = 8;
    config
}

/// Rows of ids as transformers padded them (-1 after a row's end), padding dropped.
fn expected_rows(t: &Tensor) -> Vec<Vec<i64>> {
    let rows: Vec<Vec<i64>> = t.to_dtype(DType::I64).unwrap().to_vec2().unwrap();
    rows.into_iter()
        .map(|r| r.into_iter().filter(|&x| x >= 0).collect())
        .collect()
}

/// Greedy search on the batch (the second source padded) gives transformers' ids.
fn check_greedy(name: &str) {
    let model = load(name);
    let want = expected(name);
    let out = generate_seq2seq(model.as_ref(), &sources(&want), &config(name)).unwrap();
    let got: Vec<Vec<i64>> = out
        .iter()
        .map(|o| o.ids.iter().map(|&i| i as i64).collect())
        .collect();
    // transformers pads a finished row with pad ids up to the batch's length.
    let pad = config(name).pad_token_id.unwrap_or(0) as i64;
    let want_rows: Vec<Vec<i64>> = expected_rows(&want["greedy_ids"]);
    for (g, w) in got.iter().zip(&want_rows) {
        assert_eq!(g.as_slice(), &w[..g.len()], "{name}: greedy ids");
        assert!(
            w[g.len()..].iter().all(|&x| x == pad),
            "{name}: greedy stopped early"
        );
    }
}

/// Beam search (3 beams) on each source alone gives transformers' best sequence.
fn check_beam(name: &str) {
    let model = load(name);
    let want = expected(name);
    let mut config = config(name);
    config.num_beams = 3;
    let want_rows = expected_rows(&want["beam_ids"]);
    for (source, w) in sources(&want).into_iter().zip(want_rows) {
        let out = generate_seq2seq(model.as_ref(), &[source], &config).unwrap();
        let got: Vec<i64> = out[0].ids.iter().map(|&i| i as i64).collect();
        assert_eq!(got, w, "{name}: beam ids");
    }
}

/// The text-to-text pipelines give what transformers 4's did on the fixtures with a
/// tokenizer (`pipelines.json`): T5's task prefixes, summarization, translation and
/// text2text-generation, exact text under transformers' keys.
fn check_pipelines(name: &str) {
    use trustformers::pipelines::pipeline::Pipeline;
    use trustformers::pipelines::*;
    fn run<P>(name: &str, inputs: &[&str], params: &Text2TextParams) -> Vec<String>
    where
        for<'a> P: Pipeline<Input<'a> = &'a str, Params = Text2TextParams, Output = String>,
    {
        P::from_pretrained(&fixture(name), &LoadOptions::default())
            .unwrap()
            .call(inputs, params)
            .unwrap()
    }
    let cases: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("pipelines.json")).unwrap(),
    )
    .unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let task = case["task"].as_str().unwrap();
        let inputs: Vec<&str> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let params = Text2TextParams {
            max_new_tokens: Some(case["max_new_tokens"].as_u64().unwrap() as usize),
            ..Default::default()
        };
        let (key, got) = match task {
            "summarization" => (
                SummarizationPipeline::OUTPUT_KEY,
                run::<SummarizationPipeline>(name, &inputs, &params),
            ),
            "text2text-generation" => (
                Text2TextGenerationPipeline::OUTPUT_KEY,
                run::<Text2TextGenerationPipeline>(name, &inputs, &params),
            ),
            t => {
                let (src, tgt) = t
                    .strip_prefix("translation_")
                    .and_then(|l| l.split_once("_to_"))
                    .unwrap();
                let params = Text2TextParams {
                    src_lang: Some(src.into()),
                    tgt_lang: Some(tgt.into()),
                    ..params
                };
                (
                    TranslationPipeline::OUTPUT_KEY,
                    run::<TranslationPipeline>(name, &inputs, &params),
                )
            }
        };
        let want: Vec<&str> = case["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[key].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{name}: {task}");
    }
}

mod pipelines {
    #[test]
    fn t5() {
        super::check_pipelines("t5");
    }

    #[test]
    fn bart() {
        super::check_pipelines("bart");
    }
}

/// BART's task heads: the classifier at each row's last EOS, and the QA head's start and
/// end logits, against transformers (a right-padded row included).
mod bart_heads {
    use super::*;
    use trustformers::AutoConfig;

    #[test]
    fn sequence_classification() {
        let want = expected("bart_seqcls");
        let model = AutoConfig::from_pretrained(fixture("bart_seqcls"))
            .unwrap()
            .load_bart_for_sequence_classification(&LoadOptions::default())
            .unwrap();
        assert_eq!(model.labels(), ["negative", "neutral", "positive"]);
        let mask = ids(&want["attention_mask"]);
        let logits = model
            .forward(&ids(&want["input_ids"]), Some(&mask))
            .unwrap();
        let d = max_abs_diff(&logits, &want["logits"]);
        assert!(d < ATOL, "logits differ by {d}");
        // A row without an end-of-sequence token has no sentence representation.
        let no_eos = Tensor::new(&[[5u32, 6, 7]], &Device::Cpu).unwrap();
        assert!(model.forward(&no_eos, None).is_err());
    }

    #[test]
    fn question_answering() {
        let want = expected("bart_qa");
        let model = AutoConfig::from_pretrained(fixture("bart_qa"))
            .unwrap()
            .load_bart_for_question_answering(&LoadOptions::default())
            .unwrap();
        let mask = ids(&want["attention_mask"]);
        let (start, end) = model
            .forward(&ids(&want["input_ids"]), Some(&mask))
            .unwrap();
        let d = max_abs_diff(&start, &want["start_logits"])
            .max(max_abs_diff(&end, &want["end_logits"]));
        assert!(d < ATOL, "start/end logits differ by {d}");
    }
}

/// `T5EncoderModel` from a whole T5 checkpoint (the decoder skipped) gives transformers'
/// encoder output, padded row included.
#[test]
fn t5_encoder_model() {
    for name in ["t5", "umt5"] {
        let want = expected(name);
        let encoder = trustformers::AutoConfig::from_pretrained(fixture(name))
            .unwrap()
            .load_t5_encoder(&LoadOptions::default())
            .unwrap();
        let mask = ids(&want["attention_mask"]);
        let out = encoder
            .forward(&ids(&want["input_ids"]), Some(&mask))
            .unwrap();
        let d = max_abs_diff(&out, &want["encoder_last_hidden_state"]);
        assert!(d < ATOL, "{name}: encoder output differs by {d}");
    }
    let bart = trustformers::AutoConfig::from_pretrained(fixture("bart")).unwrap();
    assert!(bart.load_t5_encoder(&LoadOptions::default()).is_err());
}

/// generation_config.json's `max_length` bounds an encoder-decoder's output, decoder start
/// included (BART's forced EOS lands on its last position); `max_new_tokens` set after it
/// wins, as in transformers.
#[test]
fn max_length_counts_the_decoder_start() {
    let model = load("bart");
    let want = expected("bart");
    let source = sources(&want).remove(0);
    let mut config = GenerationConfig::from_dir(&fixture("bart")).unwrap();
    config
        .apply_json(&serde_json::json!({"max_length": 4}))
        .unwrap();
    let out = generate_seq2seq(model.as_ref(), std::slice::from_ref(&source), &config).unwrap();
    assert_eq!(out[0].ids.len(), 3);
    assert_eq!(
        out[0].ids.last(),
        Some(&2),
        "forced EOS at the last position"
    );
    config
        .apply_json(&serde_json::json!({"max_new_tokens": 6}))
        .unwrap();
    assert_eq!(config.max_length, None);
    let out = generate_seq2seq(model.as_ref(), &[source], &config).unwrap();
    assert_eq!(out[0].ids.len(), 6);
    config.max_length = Some(1);
    assert!(generate_seq2seq(model.as_ref(), &[vec![5]], &config).is_err());
}

/// llama.cpp's `t5encoder` GGUF file (a T5EncoderModel converted) loads as a T5 encoder and
/// gives transformers' encoder output; as an encoder-decoder it is refused, by name.
#[test]
fn t5encoder_gguf() {
    let want = expected("t5_gguf");
    let config =
        trustformers::AutoConfig::from_pretrained(fixture("t5_gguf").join("tiny-t5encoder.gguf"))
            .unwrap();
    let encoder = config.load_t5_encoder(&LoadOptions::default()).unwrap();
    let mask = ids(&want["attention_mask"]);
    let out = encoder
        .forward(&ids(&want["input_ids"]), Some(&mask))
        .unwrap();
    let d = max_abs_diff(&out, &want["encoder_last_hidden_state"]);
    assert!(d < ATOL, "encoder output differs by {d}");
    let err = match config.load_seq2seq_lm(&LoadOptions::default()) {
        Ok(_) => panic!("an encoder-only file loaded as an encoder-decoder"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("t5encoder"), "{err}");
}

/// Zero-shot classification with a BART NLI model (as `facebook/bart-large-mnli`, the
/// task's default in transformers) gives transformers' pipeline output: labels in order,
/// scores within 1e-4 (`tests/fixtures/bart_nli/zero_shot.json`).
#[test]
fn bart_zero_shot_classification() {
    use trustformers::pipelines::{ZeroShotClassificationPipeline, ZeroShotParams};
    let dir = fixture("bart_nli");
    let pipe =
        ZeroShotClassificationPipeline::from_pretrained(&dir, &LoadOptions::default()).unwrap();
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("zero_shot.json")).unwrap())
            .unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let kwargs = &case["kwargs"];
        let mut params = ZeroShotParams {
            candidate_labels: serde_json::from_value(kwargs["candidate_labels"].clone()).unwrap(),
            multi_label: kwargs["multi_label"].as_bool().unwrap_or(false),
            ..Default::default()
        };
        if let Some(t) = kwargs["hypothesis_template"].as_str() {
            params.hypothesis_template = t.to_owned();
        }
        let got = pipe
            .run(case["sequence"].as_str().unwrap(), &params)
            .unwrap();
        let want = &case["output"];
        let labels: Vec<String> = serde_json::from_value(want["labels"].clone()).unwrap();
        assert_eq!(got.labels, labels, "{}", case["sequence"]);
        for (g, w) in got.scores.iter().zip(want["scores"].as_array().unwrap()) {
            assert!(
                (*g as f64 - w.as_f64().unwrap()).abs() < 1e-4,
                "{}: {g} vs {w}",
                case["sequence"]
            );
        }
    }
}

/// Sampling on a batch of sources of different lengths: `num_return_sequences` outputs per
/// source, in source order, the same ids again for the same seed, and ids the greedy search
/// would not all pick once the temperature is high.
#[test]
fn sampling_batches_sources_and_repeats_with_a_seed() {
    let model = load("t5_v1_1");
    let want = expected("t5_v1_1");
    let sources = sources(&want);
    assert_ne!(sources[0].len(), sources[1].len());
    let mut config = config("t5_v1_1");
    config.do_sample = true;
    config.temperature = 5.0;
    config.top_k = 0;
    config.num_return_sequences = 2;
    config.seed = 7;
    let first = generate_seq2seq(model.as_ref(), &sources, &config).unwrap();
    assert_eq!(first.len(), 4);
    let again = generate_seq2seq(model.as_ref(), &sources, &config).unwrap();
    let ids = |outs: &[trustformers::generation::generate::TokenOutput]| {
        outs.iter().map(|o| o.ids.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&again));
    assert!(first
        .iter()
        .all(|o| o.ids.iter().all(|&t| (t as usize) < model.vocab_size())));
    config.do_sample = false;
    config.num_return_sequences = 1;
    let greedy = generate_seq2seq(model.as_ref(), &sources, &config).unwrap();
    assert_ne!(
        ids(&first)[0],
        greedy[0].ids,
        "a temperature of 5 changed nothing"
    );
}
