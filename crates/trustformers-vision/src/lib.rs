//! Image processors as transformers runs them: image files decoded to RGB ([`decode`]),
//! resized with the filters and the fixed-point arithmetic of the backend that transformers
//! uses ([`resize`]), center-cropped, rescaled, normalized and laid out channels first
//! ([`processor`]), so `pixel_values` equal transformers' for the same image.

pub mod decode;
pub mod processor;
pub mod resize;

pub use decode::{decode_image, decode_image_limited, open_image, MAX_PIXELS};
pub use image::RgbImage;
pub use processor::{ImageProcessor, Size};
pub use resize::Resample;

/// Whose arithmetic an image processor reproduces: transformers' `backend` argument of
/// `AutoImageProcessor.from_pretrained`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// torchvision on `uint8` tensors: transformers' default when torchvision is installed.
    #[default]
    Torchvision,
    /// Pillow and numpy: transformers' `backend="pil"` (and its only backend without
    /// torchvision).
    Pil,
}

impl Backend {
    /// Parses transformers' name for it (`torchvision`, `pil`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "torchvision" => Some(Self::Torchvision),
            "pil" => Some(Self::Pil),
            _ => None,
        }
    }
}
