use super::{Context, LogitsProcessor};

/// Raises the end-of-sequence scores exponentially once the sequence is long enough
/// (`ExponentialDecayLengthPenalty`): past `start` tokens after the prompt, each EOS score
/// gains `|score| * (factor ^ (len - prompt - start) - 1)`, where `len` counts the prompt.
pub struct ExponentialDecayLengthPenalty {
    pub start: usize,
    pub factor: f32,
    pub eos: Vec<u32>,
}

impl LogitsProcessor for ExponentialDecayLengthPenalty {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let regulation_start = self.start + ctx.prompt_len;
        let len = ctx.ids.len();
        if len <= regulation_start {
            return;
        }
        // Python's float power, then one f32 multiply, as transformers computes it.
        let growth = ((self.factor as f64).powi((len - regulation_start) as i32) - 1.0) as f32;
        let old: Vec<Option<f32>> = self
            .eos
            .iter()
            .map(|&id| scores.get(id as usize).copied())
            .collect();
        for (&id, old) in self.eos.iter().zip(old) {
            if let (Some(s), Some(o)) = (scores.get_mut(id as usize), old) {
                if o.is_finite() {
                    *s = o + o.abs() * growth;
                }
            }
        }
    }
}
