//! Position encodings in one place: rotary embeddings and their scalings ([`rope`]), ALiBi
//! ([`alibi`]) and relative positions put into buckets ([`relative`]).

pub mod alibi;
pub mod relative;
pub mod rope;

pub use alibi::{alibi_mask, alibi_slopes};
pub use relative::{t5_bucket, t5_buckets};
pub use rope::{RopeScaling, RopeSpec, RotaryEmbedding};
