use super::{Context, LogitsProcessor};
use trustformers_core::numeric::log_softmax;

/// Scores replaced by their log-softmax (`LogitNormalization`, `renormalize_logits`): the
/// last processor, so that what the others left is a distribution again.
pub struct LogNormalize;

impl LogitsProcessor for LogNormalize {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let normalized = log_softmax(scores);
        scores.copy_from_slice(&normalized);
    }
}

/// NaN becomes 0, infinities the largest finite values (`InfNanRemoveLogitsProcessor`,
/// `remove_invalid_values`), so that sampling never meets them.
pub struct InfNanRemove;

impl LogitsProcessor for InfNanRemove {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        for s in scores.iter_mut() {
            if s.is_nan() {
                *s = 0.0;
            } else if *s == f32::INFINITY {
                *s = f32::MAX;
            } else if *s == f32::NEG_INFINITY {
                *s = f32::MIN;
            }
        }
    }
}
