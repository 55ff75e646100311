//! Text generation with transformers' semantics: logits processors (one file each), greedy
//! search, seeded multinomial sampling, beam search, batched prompts with left padding,
//! stopping criteria (EOS ids, max new tokens, stop strings, max time), per-token logprobs
//! and streaming text.

mod beam;
pub mod config;
pub mod generate;
mod lookup;
pub mod processors;
pub mod seq2seq;
pub mod step;

pub use beam::{beam_search, beam_search_batch, beam_search_with};
pub use config::{EarlyStopping, GenerationConfig};
pub use generate::{
    generate_batch, generate_batch_with, generate_ids, generate_text, FinishReason, StepScores,
    TextOutput, TokenLogprob, TokenOutput,
};
pub use lookup::lookup_candidates;
pub use processors::{Context, LogitsProcessor, LogitsProcessorList};
pub use seq2seq::{generate_seq2seq, generate_seq2seq_with, EncodedDecoder};
pub use step::{step_rows, Sequence, Step, TextStream};
