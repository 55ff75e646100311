use super::{Context, LogitsProcessor};
use std::collections::HashSet;

/// transformers' multiplicative repetition penalty over prompt and generated tokens (not
/// the left padding of a batched prompt): negative scores are multiplied by `penalty`,
/// positive ones divided (`RepetitionPenaltyLogitsProcessor`).
pub struct RepetitionPenalty(pub f32);

impl LogitsProcessor for RepetitionPenalty {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let seen: HashSet<u32> = ctx.ids[ctx.padding.min(ctx.ids.len())..]
            .iter()
            .copied()
            .collect();
        for id in seen {
            if let Some(s) = scores.get_mut(id as usize) {
                *s = if *s < 0.0 { *s * self.0 } else { *s / self.0 };
            }
        }
    }
}
