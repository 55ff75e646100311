use super::{Context, LogitsProcessor};

/// Bans every token that would repeat an n-gram already in the sequence
/// (`NoRepeatNGramLogitsProcessor`).
pub struct NoRepeatNGram(pub usize);

impl LogitsProcessor for NoRepeatNGram {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let n = self.0;
        let ids = ctx.ids;
        if n == 0 || ids.len() + 1 < n {
            return;
        }
        let prefix = &ids[ids.len() + 1 - n..];
        for window in ids.windows(n) {
            if window[..n - 1] == *prefix {
                if let Some(s) = scores.get_mut(window[n - 1] as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}
