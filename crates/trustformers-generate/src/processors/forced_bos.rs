use super::{Context, LogitsProcessor};

/// At the first generated position of a sequence that holds one token (an encoder-decoder's
/// decoder start), only `bos` remains (`ForcedBOSTokenLogitsProcessor`: mBART's target
/// language code, BART's `<s>`).
pub struct ForcedBos(pub u32);

impl LogitsProcessor for ForcedBos {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        if ctx.ids.len() == 1 {
            scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
            if let Some(s) = scores.get_mut(self.0 as usize) {
                *s = 0.0;
            }
        }
    }
}
