use super::{Context, LogitsProcessor};
use std::collections::HashMap;

/// OpenAI's additive penalties over the generated tokens:
/// `score -= count * frequency + (count > 0) * presence`.
pub struct FrequencyPresencePenalty {
    pub frequency: f32,
    pub presence: f32,
}

impl LogitsProcessor for FrequencyPresencePenalty {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &id in ctx.generated() {
            *counts.entry(id).or_insert(0) += 1;
        }
        for (id, n) in counts {
            if let Some(s) = scores.get_mut(id as usize) {
                *s -= n as f32 * self.frequency + self.presence;
            }
        }
    }
}
