//! The image pipelines against transformers' on the tiny fixtures
//! (`tools/gen_vision_model_fixtures.py` writes `vision_pipelines.json`): labels exact, scores
//! and features within 1e-4.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fixture;
use serde_json::Value;
use std::path::PathBuf;
use trustformers::pipelines::{
    ImageClassificationParams, ImageClassificationPipeline, ImageFeatureExtractionPipeline,
    ImageFeatureParams, LabelScore, ZeroShotImageClassificationPipeline, ZeroShotImageParams,
};
use trustformers::{ImageInput, LoadOptions};

const ATOL: f32 = 1e-4;

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("vision_pipelines.json")).unwrap())
        .unwrap()
}

fn images(r: &Value) -> Vec<PathBuf> {
    r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| fixture("images").join(n.as_str().unwrap()))
        .collect()
}

/// Labels in the same order and scores within 1e-4; JPEG files within 2e-3, as the JPEG
/// decoders differ (libjpeg-turbo in Pillow, zune-jpeg here: up to 5 levels on the test
/// images, the largest score difference that makes 1.7e-3).
fn same(got: &[Vec<LabelScore>], want: &Value, what: &str, paths: &[PathBuf]) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    for ((g, w), path) in got.iter().zip(want).zip(paths) {
        let w = w.as_array().unwrap();
        assert_eq!(g.len(), w.len(), "{what}");
        let jpeg = path.extension().is_some_and(|e| e == "jpg");
        for (g, w) in g.iter().zip(w) {
            assert_eq!(g.label, w["label"].as_str().unwrap(), "{what} {path:?}");
            let diff = (g.score - w["score"].as_f64().unwrap() as f32).abs();
            let atol = if jpeg { 2e-3 } else { ATOL };
            assert!(
                diff <= atol,
                "{what} {path:?}: {} vs {}",
                g.score,
                w["score"]
            );
        }
    }
}

fn inputs(paths: &[PathBuf]) -> Vec<ImageInput<'_>> {
    paths.iter().map(|p| ImageInput::Path(p)).collect()
}

#[test]
fn image_classification() {
    let r = reference();
    let paths = images(&r);
    for name in ["vit_classifier", "deit_teacher"] {
        let p =
            ImageClassificationPipeline::from_pretrained(fixture(name), &LoadOptions::default())
                .unwrap();
        let got = p.run(&inputs(&paths), &Default::default()).unwrap();
        same(&got, &r[name]["default"], name, &paths);
        let params = ImageClassificationParams {
            top_k: 2,
            batch_size: 2,
            ..Default::default()
        };
        let got = p.run(&inputs(&paths), &params).unwrap();
        same(&got, &r[name]["top_k_2"], name, &paths);
    }
}

#[test]
fn zero_shot_image_classification() {
    let r = reference();
    let paths = images(&r);
    for name in ["clip", "siglip"] {
        let p = ZeroShotImageClassificationPipeline::from_pretrained(
            fixture(name),
            &LoadOptions::default(),
        )
        .unwrap();
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        let params = ZeroShotImageParams {
            candidate_labels: labels(&["cat", "dog", "bird"]),
            ..Default::default()
        };
        let got = p.run(&inputs(&paths), &params).unwrap();
        same(&got, &r[name]["default"], name, &paths);
        let params = ZeroShotImageParams {
            candidate_labels: labels(&["dog", "cat"]),
            hypothesis_template: "a picture of the {}".into(),
            batch_size: 1,
        };
        let got = p.run(&inputs(&paths), &params).unwrap();
        same(&got, &r[name]["template"], name, &paths);
        let err = p
            .run(&inputs(&paths), &ZeroShotImageParams::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("candidate label"), "{err}");
    }
}

#[test]
fn image_feature_extraction() {
    let r = reference();
    let paths = images(&r);
    let p = ImageFeatureExtractionPipeline::from_pretrained(
        fixture("vit_base"),
        &LoadOptions::default(),
    )
    .unwrap();
    for (pool, key) in [(false, "features"), (true, "pooled")] {
        let got = p
            .run(
                &inputs(&paths[..1]),
                &ImageFeatureParams {
                    pool,
                    batch_size: 1,
                },
            )
            .unwrap();
        // transformers gives [images][1][tokens][hidden], pooled [images][1][hidden].
        let want = &r["vit_base"][key][0];
        let want: Vec<Vec<f32>> = if pool {
            vec![serde_json::from_value(want[0].clone()).unwrap()]
        } else {
            serde_json::from_value(want[0].clone()).unwrap()
        };
        assert_eq!(got[0].len(), want.len(), "{key}");
        for (g, w) in got[0].iter().zip(&want) {
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() <= ATOL, "{key}: {a} vs {b}");
            }
        }
    }
}
