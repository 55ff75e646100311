//! transformers' image processors, read from `preprocessor_config.json`: resize, center crop,
//! rescale, normalize, channels first. One [`ImageProcessor`] covers ViT's, DeiT's, CLIP's,
//! SigLIP's, BLIP's and LLaVA's: they differ only in their defaults (the class attributes
//! of each `image_processing_*.py`), which a config's own fields override.

use crate::resize::{resize, Resample};
use crate::Backend;
use candle_core::{Device, Tensor};
use image::RgbImage;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result};

/// `IMAGENET_STANDARD_MEAN` / `_STD`.
const IMAGENET_STANDARD: ([f64; 3], [f64; 3]) = ([0.5; 3], [0.5; 3]);
/// `OPENAI_CLIP_MEAN` / `_STD`.
const OPENAI_CLIP: ([f64; 3], [f64; 3]) = (
    [0.48145466, 0.4578275, 0.40821073],
    [0.26862954, 0.26130258, 0.27577711],
);

/// The largest side a config may ask images to be resized or cropped to (a 4096 x 4096 image
/// is 200 MB of f32 pixel values).
const MAX_SIDE: usize = 4096;

/// How `size` says to resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// To exactly `height` x `width`.
    Exact { height: u32, width: u32 },
    /// The shorter side to `shortest_edge`, keeping the aspect ratio (the longer side
    /// truncated, as transformers' `get_resize_output_image_size` does).
    ShortestEdge(u32),
}

impl Size {
    /// The `(height, width)` an image of `height` x `width` is resized to.
    pub fn output(self, height: u32, width: u32) -> (u32, u32) {
        match self {
            Self::Exact { height, width } => (height, width),
            Self::ShortestEdge(short) => {
                let (s, l) = (height.min(width), height.max(width));
                // `int(short * long / short_side)` in Python floats.
                let long = (f64::from(short) * f64::from(l) / f64::from(s)) as u32;
                if width <= height {
                    (long.max(1), short)
                } else {
                    (short, long.max(1))
                }
            }
        }
    }
}

/// An image processor: what it does to each image, in transformers' order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    /// `image_processor_type` (`ViTImageProcessor`, `CLIPImageProcessor`, ...).
    pub kind: String,
    /// `None` when `do_resize` is false.
    pub size: Option<Size>,
    pub resample: Resample,
    /// `(height, width)`; `None` when `do_center_crop` is false.
    pub crop_size: Option<(u32, u32)>,
    /// `None` when `do_rescale` is false.
    pub rescale_factor: Option<f64>,
    /// `(image_mean, image_std)`; `None` when `do_normalize` is false.
    pub normalize: Option<([f64; 3], [f64; 3])>,
    /// Whose arithmetic to reproduce.
    pub backend: Backend,
}

/// One processor class's defaults.
struct Defaults {
    size: Option<Size>,
    /// How a bare number in `size` is read.
    default_to_square: bool,
    resample: Resample,
    crop_size: Option<(u32, u32)>,
    mean_std: ([f64; 3], [f64; 3]),
}

fn defaults(kind: &str) -> Result<Defaults> {
    let square = |n| {
        Some(Size::Exact {
            height: n,
            width: n,
        })
    };
    Ok(
        match kind.trim_end_matches("Fast").trim_end_matches("Pil") {
            "ViTImageProcessor" => Defaults {
                size: square(224),
                default_to_square: true,
                resample: Resample::Bilinear,
                crop_size: None,
                mean_std: IMAGENET_STANDARD,
            },
            "DeiTImageProcessor" => Defaults {
                size: square(256),
                default_to_square: true,
                resample: Resample::Bicubic,
                crop_size: Some((224, 224)),
                mean_std: IMAGENET_STANDARD,
            },
            "SiglipImageProcessor" => Defaults {
                size: square(224),
                default_to_square: false,
                resample: Resample::Bicubic,
                crop_size: None,
                mean_std: IMAGENET_STANDARD,
            },
            "BlipImageProcessor" => Defaults {
                size: square(384),
                default_to_square: true,
                resample: Resample::Bicubic,
                crop_size: None,
                mean_std: OPENAI_CLIP,
            },
            "CLIPImageProcessor" | "LlavaImageProcessor" => Defaults {
                size: Some(Size::ShortestEdge(224)),
                default_to_square: false,
                resample: Resample::Bicubic,
                crop_size: Some((224, 224)),
                mean_std: OPENAI_CLIP,
            },
            other => {
                return Err(Error::config(
                    "image_processor_type",
                    format!(
                        "`{other}` is not supported (supported: ViTImageProcessor, \
                     DeiTImageProcessor, CLIPImageProcessor, SiglipImageProcessor, \
                     BlipImageProcessor, LlavaImageProcessor)"
                    ),
                ))
            }
        },
    )
}

fn side(v: &Value, field: &str) -> Result<u32> {
    v.as_u64()
        .filter(|&n| n >= 1 && n <= MAX_SIDE as u64)
        .map(|n| n as u32)
        .ok_or_else(|| {
            Error::config(
                field,
                format!("must be an integer between 1 and {MAX_SIDE}, got {v}"),
            )
        })
}

/// `size` or `crop_size`: `{"height", "width"}`, `{"shortest_edge"}`, or a bare number
/// (square, or the shortest edge where the class does not default to square).
fn parse_size(v: &Value, field: &str, default_to_square: bool) -> Result<Size> {
    if v.is_number() {
        let n = side(v, field)?;
        return Ok(if default_to_square {
            Size::Exact {
                height: n,
                width: n,
            }
        } else {
            Size::ShortestEdge(n)
        });
    }
    let f = Fields::new(v, "")
        .map_err(|_| Error::config(field, format!("must be a number or an object, got {v}")))?;
    match (f.raw("height"), f.raw("width"), f.raw("shortest_edge")) {
        (Some(h), Some(w), None) => Ok(Size::Exact {
            height: side(h, &format!("{field}.height"))?,
            width: side(w, &format!("{field}.width"))?,
        }),
        (None, None, Some(s)) if f.raw("longest_edge").is_none() => Ok(Size::ShortestEdge(side(
            s,
            &format!("{field}.shortest_edge"),
        )?)),
        _ => Err(Error::config(
            field,
            format!(
                "{v} is not supported (use {{\"height\", \"width\"}} or {{\"shortest_edge\"}})"
            ),
        )),
    }
}

fn triple(f: &Fields<'_>, field: &str, default: [f64; 3]) -> Result<[f64; 3]> {
    let Some(v) = f.raw(field) else {
        return Ok(default);
    };
    let bad = || Error::config(field, format!("must be a number or 3 numbers, got {v}"));
    let values: Vec<f64> = match v {
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_f64().ok_or_else(bad))
            .collect::<Result<_>>()?,
        other => vec![other.as_f64().ok_or_else(bad)?; 3],
    };
    let [a, b, c] = values[..] else {
        return Err(bad());
    };
    if [a, b, c].iter().any(|x| !x.is_finite()) {
        return Err(bad());
    }
    Ok([a, b, c])
}

impl ImageProcessor {
    /// Reads a `preprocessor_config.json` (its `image_processor_type` picks the defaults).
    pub fn from_config(config: &Value) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let kind = f
            .opt_str("image_processor_type")?
            .ok_or_else(|| Error::config("image_processor_type", "is required"))?;
        let d = defaults(kind)?;
        let flag =
            |field: &str, default: bool| Ok::<_, Error>(f.opt_bool(field)?.unwrap_or(default));
        if flag("do_pad", false)? {
            return Err(Error::config(
                "do_pad",
                "padding images to a square is not supported yet",
            ));
        }
        let size = match f.raw("size") {
            Some(v) => Some(parse_size(v, "size", d.default_to_square)?),
            None => d.size,
        };
        let crop = match f.raw("crop_size") {
            Some(v) => match parse_size(v, "crop_size", true)? {
                Size::Exact { height, width } => Some((height, width)),
                Size::ShortestEdge(_) => {
                    return Err(Error::config("crop_size", "must give a height and a width"))
                }
            },
            None => d.crop_size,
        };
        let resample = match f.raw("resample") {
            Some(v) => v.as_u64().and_then(Resample::from_pil).ok_or_else(|| {
                Error::config(
                    "resample",
                    format!("must be a Pillow filter number 0-5, got {v}"),
                )
            })?,
            None => d.resample,
        };
        let rescale_factor = f
            .opt_f64("rescale_factor", 0.0..=1.0)?
            .unwrap_or(1.0 / 255.0);
        let mean = triple(&f, "image_mean", d.mean_std.0)?;
        let std = triple(&f, "image_std", d.mean_std.1)?;
        if std.contains(&0.0) {
            return Err(Error::config("image_std", "must not be 0"));
        }
        let do_center_crop = flag("do_center_crop", d.crop_size.is_some())?;
        Ok(Self {
            kind: kind.to_string(),
            size: if flag("do_resize", true)? {
                Some(size.ok_or_else(|| Error::config("size", "is required to resize"))?)
            } else {
                None
            },
            resample,
            crop_size: if do_center_crop {
                Some(crop.ok_or_else(|| Error::config("crop_size", "is required to crop"))?)
            } else {
                None
            },
            rescale_factor: flag("do_rescale", true)?.then_some(rescale_factor),
            normalize: flag("do_normalize", true)?.then_some((mean, std)),
            backend: Backend::default(),
        })
    }

    /// The same processor reproducing `backend`'s arithmetic.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The `(height, width)` of the pixel values of an image of `height` x `width`.
    pub fn output_size(&self, height: u32, width: u32) -> (u32, u32) {
        let (h, w) = self
            .size
            .map_or((height, width), |s| s.output(height, width));
        self.crop_size.unwrap_or((h, w))
    }

    /// The resized and cropped image, still 8-bit.
    pub fn resize_and_crop(&self, image: &RgbImage) -> Result<RgbImage> {
        let (height, width) = (image.height(), image.width());
        let resized = match self.size {
            Some(size) => {
                let (h, w) = size.output(height, width);
                resize(image, w, h, self.resample, self.backend)?
            }
            None => image.clone(),
        };
        Ok(match self.crop_size {
            Some((h, w)) => center_crop(&resized, h, w, self.backend),
            None => resized,
        })
    }

    /// One image's pixel values, channels first: `3 * height * width` floats.
    pub fn pixel_values(&self, image: &RgbImage) -> Result<Vec<f32>> {
        let img = self.resize_and_crop(image)?;
        let (w, h) = img.dimensions();
        let plane = (w * h) as usize;
        // Per channel: value = (v * a - b) / c, in the backend's float steps.
        let mut out = vec![0f32; 3 * plane];
        for c in 0..3 {
            let map = self.channel_map(c);
            let lut: Vec<f32> = (0..=255u8).map(map).collect();
            for (o, px) in out[c * plane..][..plane].iter_mut().zip(img.pixels()) {
                *o = lut[usize::from(px.0[c])];
            }
        }
        Ok(out)
    }

    /// The float value of an 8-bit sample of channel `c`, as the backend computes it.
    fn channel_map(&self, c: usize) -> impl Fn(u8) -> f32 {
        let rescale = self.rescale_factor;
        let norm = self.normalize.map(|(m, s)| (m[c], s[c]));
        let backend = self.backend;
        move |v: u8| match (backend, rescale, norm) {
            // torchvision fuses the two: (v - mean / factor) / (std / factor), in f32.
            (Backend::Torchvision, Some(factor), Some((m, s))) => {
                let inv = (1.0 / factor) as f32;
                (f32::from(v) - m as f32 * inv) / (s as f32 * inv)
            }
            // numpy: rescaled in f64 and stored as f32, then normalized in f32.
            (Backend::Pil, Some(factor), Some((m, s))) => {
                ((f64::from(v) * factor) as f32 - m as f32) / s as f32
            }
            (Backend::Torchvision, Some(factor), None) => f32::from(v) * factor as f32,
            (Backend::Pil, Some(factor), None) => (f64::from(v) * factor) as f32,
            (_, None, Some((m, s))) => (f32::from(v) - m as f32) / s as f32,
            (_, None, None) => f32::from(v),
        }
    }

    /// `pixel_values` for a batch: `[images, 3, height, width]` f32 on `device`. Every image
    /// must come out the same size (a processor without a fixed size or crop keeps the aspect
    /// ratio, so images of different shapes cannot share a batch).
    pub fn preprocess(&self, images: &[RgbImage], device: &Device) -> Result<Tensor> {
        let Some(first) = images.first() else {
            return Err(Error::InvalidInput("no images to preprocess".into()));
        };
        let (h, w) = self.output_size(first.height(), first.width());
        let mut data = Vec::new();
        for (i, image) in images.iter().enumerate() {
            let size = self.output_size(image.height(), image.width());
            if size != (h, w) {
                return Err(Error::InvalidInput(format!(
                    "image {i} becomes {}x{} but image 0 becomes {w}x{h}: this processor keeps \
                     the aspect ratio, so images of different shapes cannot share a batch",
                    size.1, size.0
                )));
            }
            data.extend(self.pixel_values(image)?);
        }
        Ok(Tensor::from_vec(
            data,
            (images.len(), 3, h as usize, w as usize),
            device,
        )?)
    }
}

/// The center `height` x `width` of `image`, padded with black where the image is smaller, as
/// each backend places it.
fn center_crop(image: &RgbImage, height: u32, width: u32, backend: Backend) -> RgbImage {
    let (in_w, in_h) = (i64::from(image.width()), i64::from(image.height()));
    let (h, w) = (i64::from(height), i64::from(width));
    // The top-left corner of the crop in the image's coordinates (negative: padding).
    let corner = |size: i64, crop: i64| match backend {
        // torchvision pads (crop - size) // 2 before, then crops int((padded - crop) / 2).
        Backend::Torchvision if crop > size => -((crop - size) / 2),
        Backend::Torchvision => (size - crop) / 2,
        // numpy: (size - crop) // 2 (floor), the same after its symmetric padding.
        Backend::Pil => (size - crop).div_euclid(2),
    };
    let (top, left) = (corner(in_h, h), corner(in_w, w));
    RgbImage::from_fn(width, height, |x, y| {
        let (sx, sy) = (left + i64::from(x), top + i64::from(y));
        if (0..in_w).contains(&sx) && (0..in_h).contains(&sy) {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shortest_edge_keeps_the_aspect_ratio() {
        let s = Size::ShortestEdge(224);
        assert_eq!(s.output(480, 640), (224, 298));
        assert_eq!(s.output(1000, 300), (746, 224));
        assert_eq!(s.output(224, 224), (224, 224));
    }

    #[test]
    fn config_fields_override_the_class_defaults() {
        let p = ImageProcessor::from_config(&json!({
            "image_processor_type": "CLIPImageProcessor",
            "size": {"shortest_edge": 30},
            "crop_size": 20,
            "image_mean": 0.25,
        }))
        .unwrap();
        assert_eq!(p.size, Some(Size::ShortestEdge(30)));
        assert_eq!(p.crop_size, Some((20, 20)));
        assert_eq!(p.resample, Resample::Bicubic);
        assert_eq!(p.normalize.unwrap().0, [0.25; 3]);
        for (config, field) in [
            (
                json!({"image_processor_type": "NoSuchProcessor"}),
                "image_processor_type",
            ),
            (
                json!({"image_processor_type": "ViTImageProcessor", "size": {"height": 0, "width": 3}}),
                "size.height",
            ),
            (
                json!({"image_processor_type": "ViTImageProcessor", "resample": 9}),
                "resample",
            ),
            (
                json!({"image_processor_type": "ViTImageProcessor", "image_std": [1, 0, 1]}),
                "image_std",
            ),
            (
                json!({"image_processor_type": "ViTImageProcessor", "image_mean": [1, 2]}),
                "image_mean",
            ),
        ] {
            let err = ImageProcessor::from_config(&config)
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn crops_pad_where_the_image_is_smaller() {
        let img = RgbImage::from_pixel(3, 5, image::Rgb([9, 9, 9]));
        for backend in [Backend::Pil, Backend::Torchvision] {
            let out = center_crop(&img, 4, 6, backend);
            assert_eq!(out.dimensions(), (6, 4));
            let lit = out.pixels().filter(|p| p.0 == [9, 9, 9]).count();
            assert_eq!(lit, 12, "{backend:?}");
        }
    }
}
