use super::{softmax, Context, LogitsProcessor};

/// Nucleus sampling: keeps the smallest set of most likely tokens whose probability reaches
/// `p` (`TopPLogitsWarper`: tokens whose ascending cumulative probability is `<= 1 - p` go).
pub struct TopP {
    pub p: f32,
    pub min_tokens_to_keep: usize,
}

impl LogitsProcessor for TopP {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let n = scores.len();
        let mut asc: Vec<usize> = (0..n).collect();
        asc.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
        let sorted: Vec<f32> = asc.iter().map(|&i| scores[i]).collect();
        let probs = softmax(&sorted);
        let mut cum = 0.0f32;
        for (rank, &i) in asc.iter().enumerate() {
            cum += probs[rank];
            let keep_tail = rank >= n.saturating_sub(self.min_tokens_to_keep);
            if cum <= 1.0 - self.p && !keep_tail {
                scores[i] = f32::NEG_INFINITY;
            }
        }
    }
}
