//! Logits processors, one file each, with transformers' semantics (`generation/logits_process.py`).
//! Each edits one row of next-token scores in place; masked tokens get `-inf`.

mod bad_words;
mod encoder;
mod epsilon_eta;
mod exponential_decay;
mod forced_bos;
mod forced_eos;
mod frequency_presence;
mod json;
mod logit_bias;
mod min_length;
mod min_new_tokens;
mod min_p;
mod no_repeat_ngram;
mod normalize;
mod repetition_penalty;
mod sequence_bias;
mod suppress_tokens;
mod temperature;
mod top_h;
mod top_k;
mod top_p;
mod typical_p;

pub use bad_words::BadWords;
pub use encoder::{EncoderNoRepeatNGram, EncoderRepetitionPenalty};
pub use epsilon_eta::{EpsilonCutoff, EtaCutoff};
pub use exponential_decay::ExponentialDecayLengthPenalty;
pub use forced_bos::ForcedBos;
pub use forced_eos::ForcedEos;
pub use frequency_presence::FrequencyPresencePenalty;
pub use json::{JsonConstraint, MAX_DEPTH as JSON_MAX_DEPTH};
pub use logit_bias::LogitBias;
pub use min_length::MinLength;
pub use min_new_tokens::MinNewTokens;
pub use min_p::MinP;
pub use no_repeat_ngram::NoRepeatNGram;
pub use normalize::{InfNanRemove, LogNormalize};
pub use repetition_penalty::RepetitionPenalty;
pub use sequence_bias::SequenceBias;
pub use suppress_tokens::{SuppressTokens, SuppressTokensAtBegin};
pub use temperature::Temperature;
pub use top_h::TopH;
pub use top_k::TopK;
pub use top_p::TopP;
pub use typical_p::TypicalP;

/// What a processor may look at besides the scores.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The prompt followed by the tokens generated so far.
    pub ids: &'a [u32],
    /// How many of `ids` are the prompt.
    pub prompt_len: usize,
    /// How many of `ids`, at the start, are left padding of a batched prompt (part of
    /// `prompt_len`).
    pub padding: usize,
    /// What the model was given to continue or translate (transformers'
    /// `encoder_input_ids`): an encoder-decoder's source, a decoder's prompt, each with the
    /// padding of its batch.
    pub source: &'a [u32],
}

impl Context<'_> {
    /// Tokens generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.ids[self.prompt_len.min(self.ids.len())..]
    }
}

/// One step of the logits pipeline.
pub trait LogitsProcessor: Send + Sync {
    /// Edits `scores` (one entry per vocabulary id) for the next token.
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]);
}

/// A processor list applied in order.
#[derive(Default)]
pub struct LogitsProcessorList(pub Vec<Box<dyn LogitsProcessor>>);

impl LogitsProcessorList {
    /// Applies every processor in order.
    pub fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        for p in &self.0 {
            p.process(ctx, scores);
        }
    }
}

pub(crate) use trustformers_core::numeric::softmax;

/// Indices sorted by score, descending (stable: ties keep index order).
pub(crate) fn sorted_desc(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx
}
