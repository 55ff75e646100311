use super::{softmax, sorted_desc, Context, LogitsProcessor};

/// Drops tokens less likely than `min_p` times the most likely one (`MinPLogitsWarper`).
pub struct MinP {
    pub min_p: f32,
    pub min_tokens_to_keep: usize,
}

impl LogitsProcessor for MinP {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let probs = softmax(scores);
        let top = probs.iter().copied().fold(0.0f32, f32::max);
        let threshold = self.min_p * top;
        let order = sorted_desc(scores);
        for (rank, &i) in order.iter().enumerate() {
            if rank >= self.min_tokens_to_keep && probs[i] < threshold {
                scores[i] = f32::NEG_INFINITY;
            }
        }
    }
}
