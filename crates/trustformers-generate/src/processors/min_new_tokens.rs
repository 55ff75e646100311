use super::{Context, LogitsProcessor};

/// Forbids the end-of-sequence tokens until `min_new_tokens` tokens were generated
/// (`MinNewTokensLengthLogitsProcessor`).
pub struct MinNewTokens {
    pub min_new_tokens: usize,
    pub eos: Vec<u32>,
}

impl LogitsProcessor for MinNewTokens {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        if ctx.generated().len() < self.min_new_tokens {
            for &id in &self.eos {
                if let Some(s) = scores.get_mut(id as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}
