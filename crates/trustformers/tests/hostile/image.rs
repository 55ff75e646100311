//! Image files and image-processor configs that are truncated, empty, not images, or claim
//! absurd sizes (decompression bombs: a few bytes declaring gigapixels). Each image is run
//! through the image-classification pipeline's preprocessing (decode, then the ViT fixture's
//! processor); each config is read as `preprocessor_config.json` and run on a small image.

use super::{fixture, Case};
use crate::expect;
use serde_json::{json, Value};
use std::path::Path;
use trustformers::{AutoImageProcessor, Device, Error, ImageInput, Result};

fn preprocess(path: &Path) -> Result<()> {
    let image = ImageInput::Path(path).load()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/vit_base");
    AutoImageProcessor::from_pretrained(dir)?.preprocess(&[image], &Device::Cpu)?;
    Ok(())
}

fn with_processor(dir: &Path) -> Result<()> {
    let image = ImageInput::Path(&dir.join("image.png")).load()?;
    AutoImageProcessor::from_pretrained(dir)?.preprocess(&[image], &Device::Cpu)?;
    Ok(())
}

/// The bitwise CRC-32 of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header (with a valid CRC) declares `width` x `height`, followed by `rest`.
fn png_header(width: u32, height: u32, rest: &[u8]) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc32(&ihdr).to_be_bytes());
    out.extend(rest);
    out
}

/// A baseline JPEG start (SOI, SOF0 for 3 components) declaring `width` x `height`.
fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    out.extend(height.to_be_bytes());
    out.extend(width.to_be_bytes());
    out.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    out.extend([0xFF, 0xD9]);
    out
}

/// A lossless WebP (VP8L) header declaring `width` x `height` (each at most 16384).
fn webp_header(width: u32, height: u32) -> Vec<u8> {
    let bits = (width - 1) | ((height - 1) << 14);
    let mut vp8l = vec![0x2F];
    vp8l.extend(bits.to_le_bytes());
    vp8l.extend([0u8; 16]);
    let mut out = b"RIFF".to_vec();
    out.extend((4 + 8 + vp8l.len() as u32).to_le_bytes());
    out.extend(b"WEBPVP8L");
    out.extend((vp8l.len() as u32).to_le_bytes());
    out.extend(vp8l);
    out
}

fn image(name: &str, file: &str, bytes: Vec<u8>) -> Case {
    Case::file(
        "image",
        name,
        file,
        bytes,
        preprocess,
        expect!(Error::Image { .. }),
    )
}

fn processor(name: &str, edit: impl FnOnce(&mut Value)) -> Case {
    let mut config: Value =
        serde_json::from_slice(&fixture("vit_base/preprocessor_config.json")).unwrap();
    edit(&mut config);
    Case::dir(
        "preprocessor_config.json",
        name,
        vec![
            (
                "preprocessor_config.json",
                serde_json::to_vec(&config).unwrap(),
            ),
            ("image.png", fixture("images/rgb_7x5.png")),
        ],
        with_processor,
        expect!(Error::Json { .. }),
    )
}

pub fn cases() -> Vec<Case> {
    let png = fixture("images/rgb_320x240.png");
    let jpg = fixture("images/rgb_160x120.jpg");
    let webp = fixture("images/lossless_96x72.webp");
    let mut cases = vec![
        image("empty file", "a.png", Vec::new()),
        image("text, not an image", "a.png", b"hello, world\n".to_vec()),
        image("PNG magic only", "a.png", png[..8].to_vec()),
        image("PNG cut in its header", "a.png", png[..20].to_vec()),
        image(
            "PNG cut in its data",
            "a.png",
            png[..png.len() / 2].to_vec(),
        ),
        image(
            "PNG without its end",
            "a.png",
            png[..png.len() - 12].to_vec(),
        ),
        image("PNG 0 x 0", "a.png", png_header(0, 0, &png[33..])),
        image("PNG 0 wide", "a.png", png_header(0, 240, &png[33..])),
        image(
            "PNG claiming 100000 x 100000 (bomb)",
            "a.png",
            png_header(100_000, 100_000, &png[33..]),
        ),
        image(
            "PNG claiming 2^31 - 1 x 2 (bomb)",
            "a.png",
            png_header(i32::MAX as u32, 2, &png[33..]),
        ),
        image("JPEG magic only", "a.jpg", jpg[..4].to_vec()),
        image("JPEG cut in its header", "a.jpg", jpg[..100].to_vec()),
        image(
            "JPEG claiming 65000 x 65000 (bomb)",
            "a.jpg",
            jpeg_header(65_000, 65_000),
        ),
        image("JPEG 0 x 0", "a.jpg", jpeg_header(0, 0)),
        image("WebP cut in its header", "a.webp", webp[..20].to_vec()),
        image(
            "WebP cut in its data",
            "a.webp",
            webp[..webp.len() / 2].to_vec(),
        ),
        image(
            "WebP claiming 16384 x 16384 (bomb)",
            "a.webp",
            webp_header(16384, 16384),
        ),
        image(
            "GIF (not decoded)",
            "a.gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
        ),
        image("BMP (not decoded)", "a.bmp", b"BM\x3a\x00\x00\x00".to_vec()),
    ];
    for (name, field, value) in [
        ("size 0", "size", json!({"height": 0, "width": 32})),
        (
            "size 10^9",
            "size",
            json!({"height": 1_000_000_000u64, "width": 32}),
        ),
        ("size a string", "size", json!("large")),
        (
            "size with longest_edge",
            "size",
            json!({"shortest_edge": 8, "longest_edge": 16}),
        ),
        (
            "crop_size negative",
            "crop_size",
            json!({"height": -1, "width": 4}),
        ),
        ("resample 99", "resample", json!(99)),
        ("image_std zero", "image_std", json!([0.5, 0.0, 0.5])),
        ("image_mean of 2", "image_mean", json!([0.5, 0.5])),
        ("image_mean NaN-like", "image_mean", json!("nan")),
        ("rescale_factor 1e9", "rescale_factor", json!(1e9)),
        (
            "unknown processor",
            "image_processor_type",
            json!("EvilImageProcessor"),
        ),
        ("do_pad", "do_pad", json!(true)),
    ] {
        let value = value.clone();
        cases.push(processor(name, move |c| c[field] = value));
    }
    cases.push(processor("do_center_crop without crop_size", |c| {
        c["do_center_crop"] = json!(true);
        c.as_object_mut().unwrap().remove("crop_size");
        c["image_processor_type"] = json!("SiglipImageProcessor");
    }));
    cases
}
