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

mod llava {
    use super::*;
    use trustformers::models::multimodal::{VisionLanguageModel, WithImages};
    use trustformers::models::ForwardOptions;
    use trustformers::CausalLM;
    use trustformers::{image_message, ImageInput, VisionLanguageModelSession};

    fn load(name: &str) -> Box<dyn VisionLanguageModel> {
        AutoConfig::from_pretrained(fixture(name))
            .unwrap()
            .load_vision_language_model(&LoadOptions::default())
            .unwrap()
    }

    fn logits(model: &dyn VisionLanguageModel, ids: &Tensor, pixels: &Tensor) -> Tensor {
        let features = model.image_features(pixels).unwrap();
        let (_, seq) = ids.dims2().unwrap();
        let positions = Tensor::arange(0i64, seq as i64, ids.device())
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mut cache = model.new_cache();
        WithImages::new(model, &features)
            .unwrap()
            .forward_with(ids, &positions, &ForwardOptions::default(), &mut cache)
            .unwrap()
            .logits
    }

    /// Both checkpoint layouts: image features, the logits of a prompt with one image and of
    /// one with two.
    #[test]
    fn logits_and_image_features() {
        let want = expected("llava");
        for name in ["llava", "llava_legacy", "llava_v4"] {
            let model = load(name);
            let features = model.image_features(&want["pixel_values"]).unwrap();
            close(name, "image_features", &features, &want["image_features"]);
            let got = logits(model.as_ref(), &want["input_ids"], &want["pixel_values"]);
            close(name, "logits", &got, &want["logits"]);
            let got = logits(
                model.as_ref(),
                &want["two_images_input_ids"],
                &want["two_images_pixel_values"],
            );
            close(name, "two_images_logits", &got, &want["two_images_logits"]);
        }
    }

    /// The processor's prompt (chat template, image tokens, special tokens) and pixel values,
    /// and greedy generation, as transformers gives them; the image-text-to-text pipeline's
    /// text.
    #[test]
    fn prompt_and_greedy_generation() {
        let want = expected("llava");
        let session =
            VisionLanguageModelSession::from_pretrained(fixture("llava"), &LoadOptions::default())
                .unwrap();
        let ids = session
            .prompt_ids(&[image_message(1, "what is this ?")], 1)
            .unwrap();
        let want_ids: Vec<i64> = want["input_ids"].get(0).unwrap().to_vec1().unwrap();
        assert_eq!(
            ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
            want_ids
        );
        let path = fixture("images").join("rgb_37x53.png");
        let image = ImageInput::Path(&path);
        let pixels = session
            .processor
            .preprocess(&[image.load().unwrap()], &candle_core::Device::Cpu)
            .unwrap();
        close("llava", "pixel_values", &pixels, &want["pixel_values"]);
        let mut config = session.generation.clone();
        config.max_new_tokens = 10;
        config.do_sample = false;
        let out = session.generate(&ids, &[image], &config, |_| true).unwrap();
        let generated: Vec<i64> = want["generated"].get(0).unwrap().to_vec1().unwrap();
        let new: Vec<i64> = generated[want_ids.len()..].to_vec();
        assert_eq!(
            out.tokens
                .ids
                .iter()
                .map(|&i| i64::from(i))
                .collect::<Vec<_>>(),
            new
        );
        let pipeline: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture("llava").join("pipeline.json")).unwrap(),
        )
        .unwrap();
        let pipe = trustformers::pipelines::ImageTextToTextPipeline::from_pretrained(
            fixture("llava"),
            &LoadOptions::default(),
        )
        .unwrap();
        let params = trustformers::pipelines::ImageTextToTextParams {
            max_new_tokens: Some(10),
            ..Default::default()
        };
        let text = pipe
            .run(&[image_message(1, "what is this ?")], &[image], &params)
            .unwrap();
        assert_eq!(
            text,
            pipeline["result"][0]["generated_text"].as_str().unwrap()
        );
        assert_eq!(out.text, text.trim_start());
        // A prompt whose image tokens do not match the images is refused, naming the token.
        let err = session
            .generate(&ids, &[], &config, |_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("<image>"), "{err}");
    }
}

/// BLIP-2 with an OPT language model: the vision tower, the Q-Former, the projected queries,
/// the logits of the processor's prompt (image tokens first), greedy ids and the pipeline's
/// text as transformers gives them.
#[test]
fn blip2() {
    use trustformers::models::multimodal::WithImages;
    use trustformers::models::ForwardOptions;
    use trustformers::pipelines::{ImageTextToTextParams, ImageTextToTextPipeline};
    use trustformers::{CausalLM, ImageInput};
    let want = expected("blip2");
    let config = AutoConfig::from_pretrained(fixture("blip2")).unwrap();
    let model = config
        .load_vision_language_model(&LoadOptions::default())
        .unwrap();
    let pixels = &want["pixel_values"];
    close(
        "blip2",
        "image_features",
        &model.image_features(pixels).unwrap(),
        &want["image_features"],
    );
    for name in ["blip2", "blip2_legacy"] {
        let model = AutoConfig::from_pretrained(fixture(name))
            .unwrap()
            .load_vision_language_model(&LoadOptions::default())
            .unwrap();
        let stages = model.image_stages(pixels).unwrap();
        assert_eq!(stages.len(), 2);
        for (field, got) in &stages {
            close(name, field, got, &want[*field]);
        }
        close(
            name,
            "image_features",
            &model.image_features(pixels).unwrap(),
            &want["image_features"],
        );
    }
    let ids = &want["input_ids"];
    let seq = ids.dim(1).unwrap();
    let positions = Tensor::arange(0i64, seq as i64, ids.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let features = model.image_features(pixels).unwrap();
    let logits = WithImages::new(model.as_ref(), &features)
        .unwrap()
        .forward_with(
            ids,
            &positions,
            &ForwardOptions::default(),
            &mut model.new_cache(),
        )
        .unwrap()
        .logits;
    close("blip2", "logits", &logits, &want["logits"]);
    // The processor's prompt, greedy ids and the pipeline's text.
    let pipe = ImageTextToTextPipeline::from_pretrained(fixture("blip2"), &LoadOptions::default())
        .unwrap();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("blip2").join("pipeline.json")).unwrap(),
    )
    .unwrap();
    let prompt = reference["prompt"].as_str().unwrap();
    let got_ids = pipe.session().encode_prompt(prompt, 1).unwrap();
    let want_ids: Vec<i64> = ids.get(0).unwrap().to_vec1().unwrap();
    assert_eq!(
        got_ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
        want_ids
    );
    let path = fixture("images").join("rgb_37x53.png");
    let image = ImageInput::Path(&path);
    let params = ImageTextToTextParams {
        max_new_tokens: Some(10),
        return_full_text: true,
        ..Default::default()
    };
    let text = pipe.run_text(prompt, &[image], &params).unwrap();
    assert_eq!(
        text,
        reference["result"][0]["generated_text"].as_str().unwrap()
    );
    let mut config = pipe.session().generation.clone();
    config.max_new_tokens = 10;
    let out = pipe
        .session()
        .generate(&got_ids, &[image], &config, |_| true)
        .unwrap();
    let generated: Vec<i64> = want["generated"].get(0).unwrap().to_vec1().unwrap();
    assert_eq!(
        out.tokens
            .ids
            .iter()
            .map(|&i| i64::from(i))
            .collect::<Vec<_>>(),
        generated[want_ids.len()..].to_vec()
    );
    assert_eq!(model.image_seq_length(), 4);
}

/// A text tower alone (`CLIPTextModelWithProjection`): its projected text features.
#[test]
fn clip_text_model() {
    let want = candle_core::safetensors::load(
        fixture("clip_text").join("expected_text.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let model = AutoConfig::from_pretrained(fixture("clip_text"))
        .unwrap()
        .load_image_text_model(&LoadOptions::default())
        .unwrap();
    let got = model
        .text_features(&want["input_ids"], Some(&want["attention_mask"]))
        .unwrap();
    close("clip_text", "text_features", &got, &want["text_features"]);
    let err = model
        .image_features(
            &Tensor::zeros(
                (1, 3, 32, 32),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )
            .unwrap(),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no vision tower"), "{err}");
}

/// The processor read without the weights places images as the loaded model does: the same
/// prompt ids as transformers' processor for LLaVA's chat and BLIP-2's prompt.
#[test]
fn vision_language_processor_matches_transformers_without_the_weights() {
    use trustformers::{image_message, VisionLanguageProcessor};
    let llava = VisionLanguageProcessor::from_pretrained(fixture("llava")).unwrap();
    let want = expected("llava");
    let ids = llava
        .prompt_ids(&[image_message(1, "what is this ?")], 1)
        .unwrap();
    let want_ids: Vec<i64> = want["input_ids"].get(0).unwrap().to_vec1().unwrap();
    assert_eq!(
        ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
        want_ids
    );
    assert_eq!(llava.image_token, "<image>");
    let blip = VisionLanguageProcessor::from_pretrained(fixture("blip2")).unwrap();
    let want = expected("blip2");
    let ids = blip.encode_prompt("what is this ? red", 1).unwrap();
    let want_ids: Vec<i64> = want["input_ids"].get(0).unwrap().to_vec1().unwrap();
    assert_eq!(
        ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
        want_ids
    );
    // Not a vision-language checkpoint: said so.
    let err = VisionLanguageProcessor::from_pretrained(fixture("vit_base"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("vision-language"), "{err}");
}
