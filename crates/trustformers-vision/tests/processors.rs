//! Image processors against transformers (`tools/gen_vision_fixtures.py`): decoding against
//! Pillow's, and `pixel_values` against each processor class under both of transformers'
//! backends, on images of varied sizes, modes and formats.

#![allow(clippy::unwrap_used)]

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use trustformers_vision::{decode_image, Backend, ImageProcessor, RgbImage};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images")
}

fn expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("expected.safetensors"), &Device::Cpu).unwrap()
}

fn images(expected: &HashMap<String, Tensor>) -> Vec<String> {
    let mut names: Vec<String> = expected
        .keys()
        .filter_map(|k| k.strip_prefix("decoded/").map(str::to_string))
        .collect();
    names.sort();
    names
}

fn pil_decoded(expected: &HashMap<String, Tensor>, name: &str) -> RgbImage {
    let t = &expected[&format!("decoded/{name}")];
    let (h, w, _) = t.dims3().unwrap();
    let data = t.flatten_all().unwrap().to_vec1::<u8>().unwrap();
    RgbImage::from_raw(w as u32, h as u32, data).unwrap()
}

/// Files whose decoders are specified to the bit (lossless formats).
fn lossless(name: &str) -> bool {
    name.ends_with(".png") || name.starts_with("lossless")
}

#[test]
fn decoding_matches_pillow() {
    let expected = expected();
    for name in images(&expected) {
        let ours = decode_image(&std::fs::read(dir().join(&name)).unwrap(), &name).unwrap();
        let pil = pil_decoded(&expected, &name);
        assert_eq!(ours.dimensions(), pil.dimensions(), "{name}");
        let max = ours
            .as_raw()
            .iter()
            .zip(pil.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        println!("{name}: max |ours - Pillow| = {max} levels");
        if lossless(&name) {
            assert_eq!(max, 0, "{name}");
        } else {
            // JPEG and lossy WebP decoders (libjpeg-turbo / libwebp vs zune-jpeg /
            // image-webp) differ in the IDCT, chroma upsampling and YUV conversion.
            assert!(max <= 8, "{name}: {max}");
        }
    }
}

fn processor(name: &str) -> ImageProcessor {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap())
            .unwrap();
    ImageProcessor::from_config(&json).unwrap()
}

fn check_processor(name: &str) {
    let expected = expected();
    for (backend, label) in [(Backend::Torchvision, "torchvision"), (Backend::Pil, "pil")] {
        let p = processor(name).with_backend(backend);
        for image in images(&expected) {
            let want = &expected[&format!("{name}/{label}/{image}")];
            let got = p
                .preprocess(&[pil_decoded(&expected, &image)], &Device::Cpu)
                .unwrap();
            assert_eq!(got.dims(), want.dims(), "{name} {label} {image}");
            let diff = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff <= 1e-4, "{name} {label} {image}: {diff}");
        }
    }
}

macro_rules! processor_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            check_processor(stringify!($name));
        }
    )*};
}

processor_tests!(vit, deit, clip, siglip, blip, clip_pad, vit_rescale_only);
