use super::{softmax, Context, LogitsProcessor};

/// Entropy-bounded truncation (`TopHLogitsWarper`, `top_h`): among the 100 best tokens, in
/// order, keep adding tokens while their summed entropy terms `-p ln p` stay within `top_h`
/// times the entropy of those 100 (the best is always kept).
pub struct TopH(pub f32);

/// How many of the best tokens the distribution is taken over (transformers' `top_n`).
const TOP_N: usize = 100;

impl LogitsProcessor for TopH {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(TOP_N);
        let top: Vec<f32> = order.iter().map(|&i| scores[i]).collect();
        let probs = softmax(&top);
        // torch's Categorical entropy (normalized logits clamped to the lowest finite value)
        // for the threshold; each token's own term from log(p), as transformers takes it.
        let max = top.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = max + top.iter().map(|s| (s - max).exp()).sum::<f32>().ln();
        let entropy: f32 = -top
            .iter()
            .zip(&probs)
            .map(|(s, p)| (s - log_sum).max(f32::MIN) * p)
            .sum::<f32>();
        let tau = entropy * self.0;
        let mut keep = vec![false; scores.len()];
        let mut cumulative = 0.0f32;
        for (rank, (&i, &p)) in order.iter().zip(&probs).enumerate() {
            cumulative += -p * p.ln();
            keep[i] = rank == 0 || cumulative <= tau;
        }
        for (s, k) in scores.iter_mut().zip(keep) {
            if !k {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}
