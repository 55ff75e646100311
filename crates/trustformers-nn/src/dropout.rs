//! Dropout, active only inside a training scope.
//!
//! Layers hold a [`Dropout`] with the probability their config names (`hidden_dropout_prob`,
//! `attention_dropout`, `resid_pdrop`, ...) and call it where transformers' modules call
//! `nn.Dropout`. Outside [`training`] it is the identity, so inference is untouched (torch's
//! `eval()`); inside, each call zeroes elements with probability `p` and scales the rest by
//! `1 / (1 - p)` (torch's inverted dropout), multiplying by a mask so the gradient is
//! `mask * grad`.
//!
//! The masks come from a counter-based generator ([`DropoutRng`]: a seed and the count of
//! values drawn so far, each value `splitmix64(key + index)`), so a training run is
//! reproducible from its seed, resumes bit-identically from the saved offset, and a layer's
//! masks can be drawn again when its activations are recomputed (gradient checkpointing). The
//! bits are not torch's: dropout matches torch in distribution, not mask by mask.

use candle_core::Tensor;
use std::cell::Cell;
use trustformers_core::{Error, Result};

/// Where the next dropout mask is drawn from: the run's seed and the number of values drawn
/// so far. Saved with checkpoints; restoring it restores every later mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropoutRng {
    pub seed: u64,
    pub offset: u64,
}

impl DropoutRng {
    pub fn new(seed: u64) -> Self {
        Self { seed, offset: 0 }
    }

    /// Takes `n` values: the offset of the first, the generator advanced past them.
    fn take(&mut self, n: usize) -> u64 {
        let first = self.offset;
        self.offset = self.offset.wrapping_add(n as u64);
        first
    }
}

thread_local! {
    static TRAINING: Cell<Option<DropoutRng>> = const { Cell::new(None) };
}

/// Runs `f` in training mode (torch's `model.train()` for the duration): every [`Dropout`]
/// inside draws its masks from `rng`, which is advanced past what they drew. Scopes nest (the
/// inner one's generator is used inside it). The scope is per thread: the model's forward
/// and backward run on the calling thread (candle parallelizes inside each op).
pub fn training<T>(rng: &mut DropoutRng, f: impl FnOnce() -> T) -> T {
    /// Puts the outer scope back, also when `f` unwinds.
    struct Restore(Option<DropoutRng>);
    impl Drop for Restore {
        fn drop(&mut self) {
            TRAINING.set(self.0);
        }
    }
    let restore = Restore(TRAINING.replace(Some(*rng)));
    let out = f();
    if let Some(now) = TRAINING.get() {
        *rng = now;
    }
    drop(restore);
    out
}

/// Whether the calling thread is inside [`training`].
pub fn is_training() -> bool {
    TRAINING.get().is_some()
}

/// The generator of the current training scope, to replay later (gradient checkpointing).
pub fn current_rng() -> Option<DropoutRng> {
    TRAINING.get()
}

/// `nn.Dropout(p)`: the identity outside [`training`] or with `p = 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// `p` in `[0, 1]` (torch's range); `name` is the config field it came from, for the
    /// error.
    pub fn new(p: f64, name: &str) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::config(
                name,
                format!("a dropout probability must lie in [0, 1], got {p}"),
            ));
        }
        Ok(Self { p: p as f32 })
    }

    /// No dropout.
    pub const NONE: Self = Self { p: 0.0 };

    pub fn p(&self) -> f32 {
        self.p
    }

    /// Whether [`Self::forward`] would change its input now.
    pub fn is_active(&self) -> bool {
        self.p > 0.0 && is_training()
    }

    /// # Shapes
    /// Any shape -> the same.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(xs.clone());
        }
        let Some(mut rng) = TRAINING.get() else {
            return Ok(xs.clone());
        };
        let n = xs.elem_count();
        let first = rng.take(n);
        TRAINING.set(Some(rng));
        let mask = mask(rng.seed, first, n, self.p);
        let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
        Ok((xs * mask)?)
    }
}

/// `n` mask values from `first` on: 0 with probability `p`, `1 / (1 - p)` otherwise (all 0
/// for `p = 1`, as torch).
fn mask(seed: u64, first: u64, n: usize, p: f32) -> Vec<f32> {
    let keep = if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) };
    let key = splitmix64(seed ^ 0x6A09_E667_F3BC_C908);
    let mut out = vec![0f32; n];
    crate::autograd::par_rows(&mut out, 4096, |row0, values| {
        for (i, v) in values.iter_mut().enumerate() {
            let index = first.wrapping_add((row0 * 4096 + i) as u64);
            let z = splitmix64(key.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            *v = if u < p { 0.0 } else { keep };
        }
    });
    out
}

/// SplitMix64's output function.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Var};

    fn ones(n: usize) -> Tensor {
        Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn outside_training_it_is_the_identity() {
        let d = Dropout::new(0.5, "p").unwrap();
        let x = ones(1000);
        let y = d.forward(&x).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), x.to_vec1::<f32>().unwrap());
        assert!(!d.is_active());
    }

    #[test]
    fn it_zeroes_about_p_and_scales_the_rest() {
        let d = Dropout::new(0.1, "p").unwrap();
        let mut rng = DropoutRng::new(7);
        let y = training(&mut rng, || d.forward(&ones(100_000)))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(rng.offset, 100_000);
        let zeros = y.iter().filter(|&&v| v == 0.0).count();
        // 10% of 100k: the binomial's standard deviation is about 95.
        assert!((9_500..10_500).contains(&zeros), "{zeros}");
        let kept = 1.0 / 0.9;
        assert!(y.iter().all(|&v| v == 0.0 || (v - kept).abs() < 1e-6));
        // The mean is kept in expectation.
        let mean = y.iter().sum::<f32>() / y.len() as f32;
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
    }

    #[test]
    fn the_seed_and_offset_decide_the_mask() {
        let d = Dropout::new(0.5, "p").unwrap();
        let draw = |rng: &mut DropoutRng| {
            training(rng, || d.forward(&ones(256)))
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let (mut a, mut b) = (DropoutRng::new(1), DropoutRng::new(1));
        let first = draw(&mut a);
        assert_eq!(first, draw(&mut b));
        // The next draw continues the stream; replaying from the saved state repeats it.
        let saved = a;
        let second = draw(&mut a);
        assert_ne!(first, second);
        assert_eq!(second, draw(&mut saved.clone()));
        assert_ne!(first, draw(&mut DropoutRng::new(2)));
    }

    #[test]
    fn the_gradient_is_the_mask() {
        let d = Dropout::new(0.3, "p").unwrap();
        let x = Var::from_tensor(&ones(64)).unwrap();
        let mut rng = DropoutRng::new(3);
        let y = training(&mut rng, || d.forward(x.as_tensor())).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, y.to_vec1::<f32>().unwrap());
    }

    #[test]
    fn scopes_nest_and_restore() {
        let mut outer = DropoutRng::new(1);
        training(&mut outer, || {
            let mut inner = DropoutRng::new(9);
            training(&mut inner, || {
                assert_eq!(current_rng(), Some(DropoutRng::new(9)));
            });
            assert_eq!(current_rng(), Some(DropoutRng::new(1)));
        });
        assert!(!is_training());
    }

    #[test]
    fn probabilities_outside_0_1_are_refused() {
        assert!(Dropout::new(1.5, "hidden_dropout_prob").is_err());
        assert!(Dropout::new(-0.1, "hidden_dropout_prob").is_err());
        let all = Dropout::new(1.0, "p").unwrap();
        let y = training(&mut DropoutRng::new(0), || all.forward(&ones(10))).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0.0; 10]);
    }
}
