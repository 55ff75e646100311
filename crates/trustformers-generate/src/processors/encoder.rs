use super::{Context, LogitsProcessor};
use std::collections::HashSet;

/// Favours the tokens of the source (`EncoderRepetitionPenaltyLogitsProcessor`,
/// `encoder_repetition_penalty`): each token of [`Context::source`] has its score divided
/// by `1 / penalty` when positive and multiplied by it when negative, so a penalty above 1
/// makes copying from the source likelier.
pub struct EncoderRepetitionPenalty(pub f32);

impl LogitsProcessor for EncoderRepetitionPenalty {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        // transformers keeps `1 / penalty` as a Python float and applies it in f32.
        let inverse = (1.0 / f64::from(self.0)) as f32;
        let seen: HashSet<u32> = ctx.source.iter().copied().collect();
        for id in seen {
            if let Some(s) = scores.get_mut(id as usize) {
                *s = if *s < 0.0 { *s * inverse } else { *s / inverse };
            }
        }
    }
}

/// No n-gram of the source is repeated (`EncoderNoRepeatNGramLogitsProcessor`,
/// `encoder_no_repeat_ngram_size`): a token is banned when it would complete, after the
/// sequence's last `n - 1` tokens, an n-gram that occurs in [`Context::source`].
pub struct EncoderNoRepeatNGram(pub usize);

impl LogitsProcessor for EncoderNoRepeatNGram {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let n = self.0;
        if n == 0 || ctx.ids.len() + 1 < n {
            return;
        }
        let tail = &ctx.ids[ctx.ids.len() + 1 - n..];
        for gram in ctx.source.windows(n) {
            if &gram[..n - 1] == tail {
                if let Some(s) = scores.get_mut(gram[n - 1] as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}
