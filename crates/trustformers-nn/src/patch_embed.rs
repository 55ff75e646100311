//! Patch embedding: torch's `nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)` over
//! an image, which is a matrix product once the image is cut into non-overlapping patches
//! (each flattened channel-major, as the convolution's weight is laid out).

use crate::Linear;
use candle_core::Tensor;
use trustformers_core::{Error, Result, Weight, Weights};

/// The patches of an image projected to the hidden size.
pub struct PatchEmbedding {
    projection: Linear,
    patch: usize,
    channels: usize,
}

impl PatchEmbedding {
    /// Loads the convolution `weight` `[hidden, channels, patch, patch]` (and `bias`
    /// `[hidden]` when `bias`) under `vb`.
    pub fn new(
        vb: &Weights,
        channels: usize,
        hidden: usize,
        patch: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = vb
            .get((hidden, channels, patch, patch), "weight")?
            .reshape((hidden, channels * patch * patch))?;
        let bias = bias.then(|| vb.get(hidden, "bias")).transpose()?;
        Ok(Self {
            projection: Linear::from_weight(Weight::Dense(weight), bias)?,
            patch,
            channels,
        })
    }

    /// # Shapes
    /// `pixel_values`: `[batch, channels, height, width]`, both sides multiples of the patch
    /// -> `[batch, (height / patch) * (width / patch), hidden]`, patches in row-major order
    /// (the convolution's output flattened).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = pixel_values.dims4().map_err(|_| {
            Error::InvalidInput(format!(
                "pixel_values have shape {:?}, expected [batch, channels, height, width]",
                pixel_values.dims()
            ))
        })?;
        let p = self.patch;
        if c != self.channels || h % p != 0 || w % p != 0 || h == 0 || w == 0 {
            return Err(Error::InvalidInput(format!(
                "pixel_values of {c} channels, {h}x{w}: the model takes {} channels and sides \
                 that are multiples of its patch size {p}",
                self.channels
            )));
        }
        let (gh, gw) = (h / p, w / p);
        let patches = pixel_values
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b, gh * gw, c * p * p))?;
        self.projection.forward(&patches)
    }

    /// Patches along each side of a `height` x `width` image.
    pub fn grid(&self, height: usize, width: usize) -> (usize, usize) {
        (height / self.patch, width / self.patch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Module, D};

    /// The projection equals candle's convolution with stride = kernel.
    #[test]
    fn equals_a_strided_convolution() {
        let dev = Device::Cpu;
        let weight = Tensor::randn(0f32, 1.0, (5, 3, 4, 4), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 5, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 8, 12), &dev).unwrap();
        let conv = candle_nn::Conv2d::new(
            weight.clone(),
            Some(bias.clone()),
            candle_nn::Conv2dConfig {
                stride: 4,
                ..Default::default()
            },
        );
        let want = conv
            .forward(&x)
            .unwrap()
            .flatten_from(2)
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        let pe = PatchEmbedding {
            projection: Linear::from_weight(
                Weight::Dense(weight.reshape((5, 48)).unwrap()),
                Some(bias),
            )
            .unwrap(),
            patch: 4,
            channels: 3,
        };
        let got = pe.forward(&x).unwrap();
        assert_eq!(got.dims(), &[2, 6, 5]);
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
        assert!(pe.forward(&x.narrow(D::Minus1, 0, 10).unwrap()).is_err());
    }
}
