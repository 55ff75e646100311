use super::{Context, LogitsProcessor};

/// Never completes a banned token sequence: a one-token entry is always banned, a longer one
/// bans its last token when the sequence ends with the rest (`NoBadWordsLogitsProcessor`).
pub struct BadWords(pub Vec<Vec<u32>>);

impl LogitsProcessor for BadWords {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        for words in &self.0 {
            let Some((&last, prefix)) = words.split_last() else {
                continue;
            };
            if ctx.ids.ends_with(prefix) {
                if let Some(s) = scores.get_mut(last as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}
