use super::{Context, LogitsProcessor};

/// These tokens are never generated (`SuppressTokensLogitsProcessor`: `-inf`); ids outside
/// the vocabulary are ignored, as `torch.isin` ignores them.
pub struct SuppressTokens(pub Vec<u32>);

impl LogitsProcessor for SuppressTokens {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        suppress(&self.0, scores);
    }
}

/// These tokens are not generated first (`SuppressTokensAtBeginLogitsProcessor`): they get
/// `-inf` for the first token after the prompt (or after a one-token decoder start), or for
/// the second when the first is forced (`forced_bos_token_id` after a one-token start).
pub struct SuppressTokensAtBegin {
    pub tokens: Vec<u32>,
    pub after_forced_bos: bool,
}

impl LogitsProcessor for SuppressTokensAtBegin {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let skip = usize::from(self.after_forced_bos && ctx.prompt_len == 1);
        if ctx.ids.len() == ctx.prompt_len + skip {
            suppress(&self.tokens, scores);
        }
    }
}

fn suppress(tokens: &[u32], scores: &mut [f32]) {
    for &id in tokens {
        if let Some(s) = scores.get_mut(id as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}
