use super::{Context, LogitsProcessor};

/// Adds a fixed bias to chosen tokens (OpenAI's `logit_bias`; transformers'
/// `SequenceBiasLogitsProcessor` with one-token sequences).
pub struct LogitBias(pub Vec<(u32, f32)>);

impl LogitsProcessor for LogitBias {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        for &(id, bias) in &self.0 {
            if let Some(s) = scores.get_mut(id as usize) {
                *s += bias;
            }
        }
    }
}
