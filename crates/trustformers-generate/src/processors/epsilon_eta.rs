use super::{softmax, Context, LogitsProcessor};

/// Truncation sampling by a fixed probability floor (`EpsilonLogitsWarper`): tokens less
/// likely than `epsilon` are dropped, but never the `min_tokens_to_keep` best.
pub struct EpsilonCutoff {
    pub epsilon: f32,
    pub min_tokens_to_keep: usize,
}

impl LogitsProcessor for EpsilonCutoff {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let probs = softmax(scores);
        cut_below(scores, &probs, self.epsilon, self.min_tokens_to_keep);
    }
}

/// Eta sampling (`EtaLogitsWarper`): the floor is `min(eta, sqrt(eta) * exp(-entropy))`, so
/// a flat distribution keeps more tokens than a peaked one.
pub struct EtaCutoff {
    pub eta: f32,
    pub min_tokens_to_keep: usize,
}

impl LogitsProcessor for EtaCutoff {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let probs = softmax(scores);
        // torch's Categorical entropy: log-probabilities clamped to the lowest finite value,
        // so impossible tokens add nothing.
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = max + scores.iter().map(|s| (s - max).exp()).sum::<f32>().ln();
        let entropy: f32 = -scores
            .iter()
            .zip(&probs)
            .map(|(s, p)| (s - log_sum).max(f32::MIN) * p)
            .sum::<f32>();
        let floor = self.eta.min(self.eta.sqrt() * (-entropy).exp());
        cut_below(scores, &probs, floor, self.min_tokens_to_keep);
    }
}

/// `-inf` for tokens whose probability is below `floor` and whose score is below the
/// `keep`-th best score.
fn cut_below(scores: &mut [f32], probs: &[f32], floor: f32, keep: usize) {
    let keep = keep.clamp(1, scores.len().max(1));
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let Some(&kth) = sorted.get(keep - 1) else {
        return;
    };
    for (s, &p) in scores.iter_mut().zip(probs) {
        if p < floor && *s < kth {
            *s = f32::NEG_INFINITY;
        }
    }
}
