//! Parity against transformers on the tiny vision and image-text fixtures written by
//! `tools/gen_vision_model_fixtures.py`: every output field, the padded text row included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::Tensor;
use common::{expected, fixture, max_abs_diff};
use trustformers::models::vision::VisionTask;
use trustformers::{AutoConfig, LoadOptions};

const ATOL: f32 = 1e-4;

fn close(name: &str, field: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{name} {field}");
    let diff = max_abs_diff(got, want);
    assert!(diff <= ATOL, "{name} {field}: max |diff| {diff}");
}

fn check_image(name: &str, task: VisionTask) {
    let want = expected(name);
    let config = AutoConfig::from_pretrained(fixture(name)).unwrap();
    let model = config
        .load_image_model(task, &LoadOptions::default())
        .unwrap();
    let out = model.forward(&want["pixel_values"], true).unwrap();
    close(
        name,
        "last_hidden_state",
        &out.last_hidden_state,
        &want["last_hidden_state"],
    );
    match (&out.logits, want.get("logits")) {
        (Some(got), Some(w)) => close(name, "logits", got, w),
        (None, None) => {}
        _ => panic!("{name}: logits present on one side only"),
    }
    match (&out.pooler_output, want.get("pooler_output")) {
        (Some(got), Some(w)) => close(name, "pooler_output", got, w),
        (None, None) => {}
        _ => panic!("{name}: pooler_output present on one side only"),
    }
    let layers = want
        .keys()
        .filter(|k| k.starts_with("hidden_states."))
        .count();
    assert_eq!(out.hidden_states.len(), layers, "{name}");
    for (i, h) in out.hidden_states.iter().enumerate() {
        close(
            name,
            &format!("hidden_states.{i}"),
            h,
            &want[&format!("hidden_states.{i}")],
        );
    }
}

fn check_image_text(name: &str) {
    let want = expected(name);
    let config = AutoConfig::from_pretrained(fixture(name)).unwrap();
    let model = config
        .load_image_text_model(&LoadOptions::default())
        .unwrap();
    let (ids, mask, pixels) = (
        &want["input_ids"],
        &want["attention_mask"],
        &want["pixel_values"],
    );
    let out = model.forward(ids, Some(mask), pixels).unwrap();
    for (field, got) in [
        ("logits_per_image", &out.logits_per_image),
        ("logits_per_text", &out.logits_per_text),
        ("text_embeds", &out.text_embeds),
        ("image_embeds", &out.image_embeds),
        ("vision_last_hidden_state", &out.vision_last_hidden_state),
    ] {
        close(name, field, got, &want[field]);
    }
    // Padding positions of the padded row carry no meaning: compare the real tokens.
    let real = 5;
    close(
        name,
        "text_last_hidden_state (row 0)",
        &out.text_last_hidden_state.get(0).unwrap(),
        &want["text_last_hidden_state"].get(0).unwrap(),
    );
    close(
        name,
        "text_last_hidden_state (row 1)",
        &out.text_last_hidden_state
            .get(1)
            .unwrap()
            .narrow(0, 0, real)
            .unwrap(),
        &want["text_last_hidden_state"]
            .get(1)
            .unwrap()
            .narrow(0, 0, real)
            .unwrap(),
    );
    close(
        name,
        "image_features",
        &model.image_features(pixels).unwrap(),
        &want["image_features"],
    );
    close(
        name,
        "text_features",
        &model.text_features(ids, Some(mask)).unwrap(),
        &want["text_features"],
    );
    // The vision tower alone, as `AutoModel` on an image loads it.
    let vision = config
        .load_image_model(VisionTask::Base, &LoadOptions::default())
        .unwrap();
    let v = vision.forward(pixels, false).unwrap();
    close(
        name,
        "vision tower last_hidden_state",
        &v.last_hidden_state,
        &want["vision_last_hidden_state"],
    );
    close(
        name,
        "vision tower pooler_output",
        v.pooler_output.as_ref().unwrap(),
        &want["vision_pooler_output"],
    );
}

#[test]
fn vit_base() {
    check_image("vit_base", VisionTask::Base);
}

#[test]
fn vit_classifier() {
    check_image("vit_classifier", VisionTask::ImageClassification);
}

#[test]
fn deit_teacher() {
    check_image("deit_teacher", VisionTask::ImageClassification);
}

#[test]
fn clip() {
    check_image_text("clip");
}

#[test]
fn siglip() {
    check_image_text("siglip");
}

/// A classifier checkpoint loads as the base model (its head skipped), and the wrong kind of
/// use is named.
#[test]
fn heads_and_kinds() {
    let config = AutoConfig::from_pretrained(fixture("vit_classifier")).unwrap();
    let base = config
        .load_image_model(VisionTask::Base, &LoadOptions::default())
        .unwrap();
    let want = expected("vit_classifier");
    let out = base.forward(&want["pixel_values"], false).unwrap();
    close(
        "vit_classifier as base",
        "last_hidden_state",
        &out.last_hidden_state,
        &want["last_hidden_state"],
    );
    let err = config
        .load_image_text_model(&LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("a vision model") && err.contains("image-text"),
        "{err}"
    );
    let err = AutoConfig::from_pretrained(fixture("clip"))
        .unwrap()
        .load_image_model(VisionTask::ImageClassification, &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no image classification head"), "{err}");
    let wrong = Tensor::zeros(
        (1, 3, 16, 16),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let err = base.forward(&wrong, false).err().unwrap().to_string();
    assert!(err.contains("[batch, 3, 32, 32]"), "{err}");
}
