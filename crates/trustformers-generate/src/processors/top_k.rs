use super::{Context, LogitsProcessor};

/// Keeps the `k` highest scores; ties with the k-th score are kept too (`TopKLogitsWarper`).
pub struct TopK {
    pub k: usize,
    pub min_tokens_to_keep: usize,
}

impl LogitsProcessor for TopK {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let k = self.k.max(self.min_tokens_to_keep).min(scores.len());
        if k == 0 || k == scores.len() {
            return;
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        scores
            .iter_mut()
            .filter(|s| **s < kth)
            .for_each(|s| *s = f32::NEG_INFINITY);
    }
}
