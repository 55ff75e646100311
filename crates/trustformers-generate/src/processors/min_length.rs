use super::{Context, LogitsProcessor};

/// Forbids the end-of-sequence tokens while the whole sequence (prompt or decoder start
/// included) is shorter than `min_length` (`MinLengthLogitsProcessor`).
pub struct MinLength {
    pub min_length: usize,
    pub eos: Vec<u32>,
}

impl LogitsProcessor for MinLength {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        if ctx.ids.len() < self.min_length {
            for &id in &self.eos {
                if let Some(s) = scores.get_mut(id as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}
