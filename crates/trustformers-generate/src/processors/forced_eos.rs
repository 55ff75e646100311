use super::{Context, LogitsProcessor};

/// At the last allowed position only end-of-sequence tokens remain
/// (`ForcedEOSTokenLogitsProcessor`: they get 0, everything else `-inf`).
pub struct ForcedEos {
    /// Total length (prompt + generated) the sequence may reach.
    pub max_length: usize,
    pub eos: Vec<u32>,
}

impl LogitsProcessor for ForcedEos {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        if ctx.ids.len() + 1 == self.max_length {
            scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
            for &id in &self.eos {
                if let Some(s) = scores.get_mut(id as usize) {
                    *s = 0.0;
                }
            }
        }
    }
}
