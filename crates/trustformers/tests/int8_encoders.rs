//! Encoders with int8 weights and activations (`Quantization::DynamicInt8`, `--dtype q8`) on
//! the tiny fixtures of `encoder_parity.rs`: outputs close to transformers' f32 ones (cosine
//! similarity per token, the bound int8 gets instead of f32's 1e-4), yet not equal to ours
//! in f32 (the layers did change); and the loads it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Tensor, D};
use common::{expected, fixture};
use trustformers::encoders::load_encoder;
use trustformers::{LoadOptions, Quantization};

fn int8() -> LoadOptions {
    LoadOptions {
        quantize: Some(Quantization::DynamicInt8),
        ..Default::default()
    }
}

/// Lowest cosine similarity between the rows of `a` and `b` (`[..., dim]`) where `mask`
/// (`[...]`) is set.
fn lowest_cosine(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let dim = a.dim(D::Minus1).unwrap();
    let a = a.reshape(((), dim)).unwrap();
    let b = b.reshape(((), dim)).unwrap();
    let mask: Vec<f32> = mask
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let dot: Vec<f32> = (&a * &b).unwrap().sum(1).unwrap().to_vec1().unwrap();
    let na: Vec<f32> = a
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1()
        .unwrap();
    let nb: Vec<f32> = b
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1()
        .unwrap();
    (0..dot.len())
        .filter(|&i| mask[i] > 0.0)
        .map(|i| dot[i] / (na[i] * nb[i]))
        .fold(1.0, f32::min)
}

macro_rules! int8_tests {
    ($($name:ident;)+) => {$(
        #[test]
        fn $name() {
            check(stringify!($name));
        }
    )+};
}

int8_tests! {
    bert_base;
    roberta_base;
    distilbert_base;
    electra_base;
    albert_base;
    modernbert_base;
    deberta_v3_base;
    deberta_v2_conv_base;
    nomic_bert_base;
    bert_mlm;
    bert_seqcls;
}

fn check(name: &str) {
    let exp = expected(name);
    let (ids, mask, types) = (
        &exp["input_ids"],
        &exp["attention_mask"],
        &exp["token_type_ids"],
    );
    let run = |opts: &LoadOptions| {
        let model = load_encoder(fixture(name), None, opts).unwrap();
        model.forward(ids, Some(types), Some(mask), false).unwrap()
    };
    let (q8, f32) = (run(&int8()), run(&LoadOptions::default()));
    // Heads' fixtures hold the head's output only.
    if let Some(want) = exp.get("last_hidden_state") {
        let cos = lowest_cosine(&q8.last_hidden_state, want, mask);
        eprintln!("{name}: lowest cosine {cos} per token");
        assert!(cos >= 0.999, "{name}: lowest cosine {cos} per token");
    }
    let diff = (&q8.last_hidden_state - &f32.last_hidden_state)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 0.0, "{name}: int8 gave exactly the f32 outputs");
    if let (Some(got), Some(want)) = (&q8.logits, exp.get("logits")) {
        let rows = if got.rank() == 3 {
            mask.clone()
        } else {
            Tensor::ones(got.dim(0).unwrap(), DType::F32, got.device()).unwrap()
        };
        let cos = lowest_cosine(got, want, &rows);
        eprintln!("{name}: lowest cosine {cos} of the logits");
        assert!(cos >= 0.995, "{name}: lowest cosine {cos} of the logits");
    }
}

/// int8 covers encoders only, for inference in f32 on the CPU; anything else is refused
/// by name rather than half-applied.
#[test]
fn int8_refuses_what_it_does_not_cover() {
    let err = |r: Result<_, trustformers::Error>| match r {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    };
    let decoder = err(trustformers::AutoModelForCausalLM::from_pretrained(
        fixture("llama"),
        &int8(),
    )
    .map(drop));
    assert!(
        decoder.contains("encoder models") && decoder.contains("llama"),
        "{decoder}"
    );
    let f16 = LoadOptions {
        dtype: Some(DType::F16),
        ..int8()
    };
    let e = err(load_encoder(fixture("bert_base"), None, &f16).map(drop));
    assert!(e.contains("f32 activations"), "{e}");
    let config = trustformers::AutoConfig::from_pretrained(fixture("bert_seqcls")).unwrap();
    let e = err(config.load_trainable(None, &int8()).map(drop));
    assert!(e.contains("cannot be trained"), "{e}");
    assert!(trustformers::parse_load_dtype("q4").is_err());
    assert_eq!(
        trustformers::parse_load_dtype("Q8").unwrap(),
        (None, Some(Quantization::DynamicInt8))
    );
}

/// A GGUF encoder with Q8_0 linear weights (`bert_base` converted by llama.cpp's
/// `convert_hf_to_gguf.py --outtype q8_0`) runs on the integer kernels as the file holds it:
/// close to transformers' f32 outputs, and the same with or without `q8` (its linear
/// weights are int8 already; nothing is quantized twice).
#[test]
fn q8_0_gguf_encoder_runs_as_shipped() {
    let file = fixture("bert_gguf_q8").join("tiny-bert.gguf");
    let exp = expected("bert_gguf_q8");
    let (ids, mask, types) = (
        &exp["input_ids"],
        &exp["attention_mask"],
        &exp["token_type_ids"],
    );
    let run = |opts: &LoadOptions| {
        let model = load_encoder(&file, None, opts).unwrap();
        model
            .forward(ids, Some(types), Some(mask), false)
            .unwrap()
            .last_hidden_state
    };
    let (plain, q8) = (run(&LoadOptions::default()), run(&int8()));
    let cos = lowest_cosine(&plain, &exp["last_hidden_state"], mask);
    assert!(cos >= 0.999, "lowest cosine {cos} per token");
    let diff = (&plain - &q8)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}
