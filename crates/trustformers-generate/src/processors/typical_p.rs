use super::{softmax, Context, LogitsProcessor};

/// Locally typical sampling (`TypicalLogitsWarper`): keeps the tokens whose surprise is
/// closest to the distribution's entropy, up to probability mass `mass`.
pub struct TypicalP {
    pub mass: f32,
    pub min_tokens_to_keep: usize,
}

impl LogitsProcessor for TypicalP {
    fn process(&self, _: &Context<'_>, scores: &mut [f32]) {
        let n = scores.len();
        let probs = softmax(scores);
        let log_probs: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let entropy: f32 = -log_probs
            .iter()
            .zip(&probs)
            .map(|(l, p)| l * p)
            .filter(|x| !x.is_nan())
            .sum::<f32>();
        let shifted: Vec<f32> = log_probs.iter().map(|l| (-l - entropy).abs()).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| shifted[a].total_cmp(&shifted[b]));
        let sorted_scores: Vec<f32> = order.iter().map(|&i| scores[i]).collect();
        let sorted_probs = softmax(&sorted_scores);
        let mut cum = 0.0f32;
        let mut last = 0usize;
        for p in &sorted_probs {
            cum += p;
            if cum < self.mass {
                last += 1;
            }
        }
        let last = last.min(n - 1);
        let cutoff = shifted[order[last]];
        for (rank, &i) in order.iter().enumerate() {
            if rank >= self.min_tokens_to_keep && shifted[i] > cutoff {
                scores[i] = f32::NEG_INFINITY;
            }
        }
    }
}
