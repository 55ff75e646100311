//! Text generation with transformers' semantics: logits processors (one file each), greedy
//! and seeded multinomial sampling, stopping criteria (EOS ids, max new tokens, stop strings,
//! max time), and streaming text.

pub mod config;
pub mod generate;
pub mod processors;

pub use config::GenerationConfig;
pub use generate::{generate_ids, generate_text, FinishReason, TextOutput, TokenOutput};
pub use processors::{Context, LogitsProcessor, LogitsProcessorList};
