use super::{Context, LogitsProcessor};

/// Divides every score by the temperature (`TemperatureLogitsWarper`).
pub struct Temperature(pub f32);

impl LogitsProcessor for Temperature {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        scores.iter_mut().for_each(|s| *s /= self.0);
    }
}
