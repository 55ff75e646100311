use super::{Context, LogitsProcessor};

/// Adds a bias to a token when the tokens before it complete a given sequence
/// (`SequenceBiasLogitsProcessor`): a one-token sequence always gets its bias, a longer one
/// when the sequence so far (padding included, as transformers looks at `input_ids`) ends
/// with all but its last token. Every bias of a token is summed before it is added.
pub struct SequenceBias(pub Vec<(Vec<u32>, f32)>);

impl LogitsProcessor for SequenceBias {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let mut bias: Vec<(usize, f32)> = Vec::new();
        // One-token biases first (transformers assigns them, then adds the longer ones).
        for (seq, b) in self.0.iter().filter(|(s, _)| s.len() == 1) {
            bias.push((seq[0] as usize, *b));
        }
        for (seq, b) in self.0.iter().filter(|(s, _)| s.len() > 1) {
            let (last, prefix) = (seq[seq.len() - 1], &seq[..seq.len() - 1]);
            if ctx.ids.ends_with(prefix) {
                bias.push((last as usize, *b));
            }
        }
        let mut total = vec![0.0f32; scores.len()];
        for (id, b) in bias {
            if let Some(t) = total.get_mut(id) {
                *t += b;
            }
        }
        for (s, t) in scores.iter_mut().zip(total) {
            *s += t;
        }
    }
}
