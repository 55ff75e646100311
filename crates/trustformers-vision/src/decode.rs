//! Image files to RGB pixels, as transformers' `load_image` reads them: decode, apply the EXIF
//! orientation (`ImageOps.exif_transpose`), convert to RGB (`Image.convert("RGB")`: alpha
//! dropped, palettes expanded, gray replicated). Dimensions are checked against a pixel limit
//! before any pixel is decoded, so a small file cannot ask for gigabytes.

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;
use trustformers_core::{Error, Result};

/// Pillow's `Image.MAX_IMAGE_PIXELS` (about 89 megapixels), past which Pillow warns of a
/// decompression bomb; refused here.
pub const MAX_PIXELS: u64 = 1024 * 1024 * 1024 / 4 / 3;

/// What a decoder may allocate beyond the pixels themselves (its own buffers), in bytes.
const DECODER_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes a PNG, JPEG or WebP file held in `bytes` to 8-bit RGB. `name` (a path or a label)
/// is what errors name.
///
/// Conversions: 16-bit samples become 8-bit by rounding (`v * 255 / 65535`; Pillow clips
/// them at 255 instead), CMYK JPEGs are converted by the decoder, alpha is dropped, images
/// larger than [`MAX_PIXELS`] are refused before decoding.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    decode_image_limited(bytes, name, MAX_PIXELS)
}

/// [`decode_image`] with a limit on width x height of its own.
pub fn decode_image_limited(bytes: &[u8], name: &str, max_pixels: u64) -> Result<RgbImage> {
    let fail = |reason: String| Error::Image {
        image: name.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| fail(format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(fail(
            "not an image this build decodes (PNG, JPEG or WebP)".into(),
        ));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| fail(format!("cannot decode the image: {e}")))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(fail(format!(
            "the image is {width}x{height}: it has no pixels"
        )));
    }
    if pixels > max_pixels {
        return Err(fail(format!(
            "the image is {width}x{height} ({pixels} pixels), over the limit of {max_pixels} \
             pixels (a decompression bomb?)"
        )));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // The decoded pixels (up to 16-bit RGBA) plus the decoder's own buffers.
    limits.max_alloc = Some(pixels * 8 + DECODER_ALLOC);
    decoder
        .set_limits(limits)
        .map_err(|e| fail(format!("cannot decode the image: {e}")))?;
    let orientation = decoder
        .orientation()
        .map_err(|e| fail(format!("cannot read the image's orientation: {e}")))?;
    let mut image = DynamicImage::from_decoder(decoder)
        .map_err(|e| fail(format!("cannot decode the image: {e}")))?;
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

/// Reads and decodes the image file at `path` (see [`decode_image`]).
pub fn open_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(width, height, image::Rgb([1, 2, 3]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decodes_and_limits_pixels() {
        let bytes = png(30, 20);
        let img = decode_image(&bytes, "a.png").unwrap();
        assert_eq!(img.dimensions(), (30, 20));
        assert_eq!(img.get_pixel(3, 4).0, [1, 2, 3]);
        let err = decode_image_limited(&bytes, "a.png", 599).unwrap_err();
        assert!(err.to_string().contains("30x20"), "{err}");
    }

    /// 16-bit samples are rounded to 8 bits (documented: Pillow clips them instead).
    #[test]
    fn sixteen_bit_images_are_rounded_to_eight() {
        let img = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(3, 1, |x, _| {
            image::Luma([[0u16, 32896, 65535][x as usize]])
        });
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        let rgb = decode_image(&bytes, "gray16.png").unwrap();
        let px: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
        assert_eq!(px, [[0, 0, 0], [128, 128, 128], [255, 255, 255]]);
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        for (bytes, what) in [
            (&b""[..], "empty"),
            (b"hello, world", "PNG, JPEG or WebP"),
            (&png(4, 4)[..40], "decode"),
        ] {
            let err = decode_image(bytes, "x").unwrap_err().to_string();
            assert!(err.starts_with("x: ") && err.contains(what), "{err}");
        }
    }
}
