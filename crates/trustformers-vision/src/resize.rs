//! Resizing 8-bit images to the bit as transformers' two image-processor backends do:
//!
//! - the default, `torchvision`: `torchvision.transforms.v2.functional.resize(antialias=True)`
//!   on a `uint8` tensor, which runs torch's Pillow-SIMD port (`UpSampleKernel.cpp`): Pillow's
//!   filters and windows, with the weights as `int16` at the highest precision that fits;
//! - `pil`: Pillow's `Image.resize` (`libImaging/Resample.c`), weights as `int32` with 22
//!   fractional bits.
//!
//! Both resize horizontally then vertically through an 8-bit intermediate, widen the filter's
//! support by the scale when shrinking (antialiasing), and round by adding half before the
//! shift. Only the weights' precision differs, which moves some pixels by one level.

use crate::Backend;
use image::RgbImage;
use trustformers_core::{Error, Result};

/// Pillow's resampling filters (`PIL.Image.Resampling`), by the number configs store in
/// `resample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// 0: the nearest source pixel, no filtering.
    Nearest,
    /// 1: a 3-lobed Lanczos (truncated sinc) window.
    Lanczos,
    /// 2: the triangle filter.
    Bilinear,
    /// 3: Keys' cubic with a = -0.5.
    Bicubic,
    /// 4: the box filter (area average when shrinking).
    Box,
    /// 5: the Hamming-windowed sinc.
    Hamming,
}

impl Resample {
    /// The filter of Pillow's number for it, as `resample` holds it in
    /// preprocessor_config.json.
    pub fn from_pil(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::Nearest,
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            _ => return None,
        })
    }

    /// Half the width of the filter's window, in source pixels at scale 1.
    fn support(self) -> f64 {
        match self {
            Self::Nearest => 0.0,
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        use std::f64::consts::PI;
        let sinc = |x: f64| {
            if x == 0.0 {
                1.0
            } else {
                (x * PI).sin() / (x * PI)
            }
        };
        match self {
            Self::Nearest => 0.0,
            Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let t = x * PI;
                    // Pillow's constants are C floats.
                    t.sin() / t * (f64::from(0.54f32) + f64::from(0.46f32) * t.cos())
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Bits after the point of Pillow's fixed-point coefficients (`PRECISION_BITS`).
const PILLOW_PRECISION: u32 = 32 - 8 - 2;

/// The source window and fixed-point weights of each output pixel along one axis.
struct Coefficients {
    /// Per output pixel: the first source pixel and how many follow.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output pixel.
    weights: Vec<i32>,
    ksize: usize,
    /// Fractional bits of the weights.
    precision: u32,
}

/// The weights of `in_size` source pixels onto `out_size`: Pillow's `precompute_coeffs`
/// (torch's `_compute_indices_min_size_weights_aa` computes the same doubles), then fixed
/// point as `backend` rounds them: Pillow's `normalize_coeffs_8bpc`, or torch's
/// `_compute_indices_int16_weights_aa`.
fn coefficients(
    in_size: usize,
    out_size: usize,
    filter: Resample,
    backend: Backend,
) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    // Pillow multiplies by the reciprocal (which can differ from a division in the last bit).
    let inverse = 1.0 / filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut exact = vec![0f64; out_size * ksize];
    for (xx, k) in exact.chunks_exact_mut(ksize).enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        // C's `(int)` truncates toward zero; the clamps follow.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin).min(ksize);
        let mut total = 0.0;
        for (x, w) in k.iter_mut().enumerate().take(count) {
            *w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * inverse);
            total += *w;
        }
        if total != 0.0 {
            for w in k.iter_mut().take(count) {
                *w /= total;
            }
        }
        bounds.push((xmin, count));
    }
    let precision = match backend {
        Backend::Pil => PILLOW_PRECISION,
        Backend::Torchvision => {
            // The most fractional bits that keep the largest weight within int16.
            let max = exact.iter().copied().fold(exact[0], f64::max);
            (0..22)
                .find(|&p| (0.5 + max * f64::from(1u32 << (p + 1))) as i32 >= 1 << 15)
                .unwrap_or(22)
        }
    };
    let one = f64::from(1u32 << precision);
    let weights = exact
        .iter()
        .map(|&w| {
            if w < 0.0 {
                (w * one - 0.5) as i32
            } else {
                (w * one + 0.5) as i32
            }
        })
        .collect();
    Coefficients {
        bounds,
        weights,
        ksize,
        precision,
    }
}

/// Pillow's `clip8`: drops the fraction (rounding was added up front) and clamps.
fn clip8(acc: i32, precision: u32) -> u8 {
    (acc >> precision).clamp(0, 255) as u8
}

/// `image` resized to `width` x `height` with `filter`, exactly as `backend` resizes an RGB
/// image (see the module's documentation).
pub fn resize(
    image: &RgbImage,
    width: u32,
    height: u32,
    filter: Resample,
    backend: Backend,
) -> Result<RgbImage> {
    let (in_w, in_h) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::InvalidInput(format!(
            "cannot resize a {in_w}x{in_h} image to {width}x{height}"
        )));
    }
    if (in_w, in_h) == (width, height) {
        return Ok(image.clone());
    }
    if filter == Resample::Nearest {
        return Ok(nearest(image, width, height, backend));
    }
    let (in_w, in_h, out_w, out_h) = (
        in_w as usize,
        in_h as usize,
        width as usize,
        height as usize,
    );
    let horizontal = coefficients(in_w, out_w, filter, backend);
    let mut vertical = coefficients(in_h, out_h, filter, backend);
    let src = image.as_raw();
    let (need_h, need_v) = (out_w != in_w, out_h != in_h);
    // Pillow 13 runs the vertical pass first when the height shrinks more than twice as
    // much as the width (to make the horizontal pass cheaper); torch always starts
    // horizontally. The intermediate is 8-bit either way, so the order shows in the result.
    let vertical_first = backend == Backend::Pil
        && in_h > out_h
        && (in_h - out_h) as i64 > (in_w as i64 - out_w as i64) * 2;
    let data = if vertical_first {
        let mid = if need_v {
            vertical_pass(src, in_w, &vertical)
        } else {
            src.clone()
        };
        if need_h {
            horizontal_pass(&mid, in_w, out_h, &horizontal)
        } else {
            mid
        }
    } else {
        // Horizontally over the source rows the vertical pass will read.
        let mid = if need_h {
            let first = vertical.bounds.first().map_or(0, |b| b.0);
            let last = vertical.bounds.last().map_or(0, |b| b.0 + b.1);
            for b in &mut vertical.bounds {
                b.0 -= first;
            }
            horizontal_pass(
                &src[first * in_w * 3..last * in_w * 3],
                in_w,
                last - first,
                &horizontal,
            )
        } else {
            src.clone()
        };
        if need_v {
            vertical_pass(&mid, out_w, &vertical)
        } else {
            mid
        }
    };
    RgbImage::from_raw(width, height, data)
        .ok_or_else(|| Error::InvalidInput("resized image buffer has the wrong size".into()))
}

/// `rows` rows of `in_w` pixels through the horizontal coefficients.
fn horizontal_pass(src: &[u8], in_w: usize, rows: usize, k: &Coefficients) -> Vec<u8> {
    let out_w = k.bounds.len();
    let mut out = vec![0u8; rows * out_w * 3];
    for (y, out_row) in out.chunks_exact_mut(out_w * 3).enumerate() {
        resample_row(&src[y * in_w * 3..][..in_w * 3], out_row, k);
    }
    out
}

/// Rows of `width` pixels through the vertical coefficients.
fn vertical_pass(src: &[u8], width: usize, k: &Coefficients) -> Vec<u8> {
    let mut out = vec![0u8; k.bounds.len() * width * 3];
    for (yy, out_row) in out.chunks_exact_mut(width * 3).enumerate() {
        let (ymin, count) = k.bounds[yy];
        let weights = &k.weights[yy * k.ksize..][..count];
        for (x, px) in out_row.iter_mut().enumerate() {
            let mut acc = 1i32 << (k.precision - 1);
            for (y, &w) in weights.iter().enumerate() {
                acc += i32::from(src[(ymin + y) * width * 3 + x]) * w;
            }
            *px = clip8(acc, k.precision);
        }
    }
    out
}

/// One row through the horizontal coefficients.
fn resample_row(input: &[u8], output: &mut [u8], k: &Coefficients) {
    for (xx, px) in output.chunks_exact_mut(3).enumerate() {
        let (xmin, count) = k.bounds[xx];
        let weights = &k.weights[xx * k.ksize..][..count];
        let mut acc = [1i32 << (k.precision - 1); 3];
        for (x, &w) in weights.iter().enumerate() {
            let s = &input[(xmin + x) * 3..][..3];
            for (a, &v) in acc.iter_mut().zip(s) {
                *a += i32::from(v) * w;
            }
        }
        for (p, a) in px.iter_mut().zip(acc) {
            *p = clip8(a, k.precision);
        }
    }
}

/// Nearest-neighbour resizing: output pixel `x` reads source pixel `floor((x + 0.5) * in /
/// out)` in Pillow (an affine transform sampling pixel centers) and `floor(x * in / out)` in
/// torch's `nearest` mode.
fn nearest(image: &RgbImage, width: u32, height: u32, backend: Backend) -> RgbImage {
    let (in_w, in_h) = image.dimensions();
    let sx = f64::from(in_w) / f64::from(width);
    let sy = f64::from(in_h) / f64::from(height);
    let offset = match backend {
        Backend::Pil => 0.5,
        Backend::Torchvision => 0.0,
    };
    let pick = |i: u32, s: f64, n: u32| (((f64::from(i) + offset) * s).floor() as u32).min(n - 1);
    RgbImage::from_fn(width, height, |x, y| {
        *image.get_pixel(pick(x, sx, in_w), pick(y, sy, in_h))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_each_output_pixel_sum_to_one() {
        for filter in [
            Resample::Bilinear,
            Resample::Bicubic,
            Resample::Lanczos,
            Resample::Box,
            Resample::Hamming,
        ] {
            for (inp, out) in [(7, 3), (3, 7), (640, 224), (5, 5)] {
                for backend in [Backend::Pil, Backend::Torchvision] {
                    let k = coefficients(inp, out, filter, backend);
                    for xx in 0..out {
                        let (_, count) = k.bounds[xx];
                        let sum: i64 = k.weights[xx * k.ksize..][..count]
                            .iter()
                            .map(|&w| i64::from(w))
                            .sum();
                        assert!(
                            (sum - (1 << k.precision)).abs() <= count as i64,
                            "{filter:?} {backend:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let img = RgbImage::from_pixel(13, 9, image::Rgb([200, 17, 90]));
        for filter in [Resample::Bicubic, Resample::Bilinear, Resample::Nearest] {
            let out = resize(&img, 5, 21, filter, Backend::Torchvision).unwrap();
            assert!(out.pixels().all(|p| p.0 == [200, 17, 90]), "{filter:?}");
        }
    }
}
