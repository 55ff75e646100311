//! Attention, in its parts: the decoders' causal self-attention with a KV cache ([`layer`]),
//! the encoders' bidirectional self-attention ([`bidirectional`]), cross-attention over an
//! encoder's output ([`cross`]), the masks ([`mask`]) and scaled dot-product attention
//! itself ([`sdpa`]). Position encodings (rotary, ALiBi, relative buckets) are in
//! [`crate::positions`]; caches in [`crate::cache`].

pub mod bidirectional;
pub mod cross;
pub mod latent;
pub mod layer;
pub mod mask;
pub mod sdpa;

pub use bidirectional::{split_fused_qkv, BidirectionalAttention};
pub use cross::{CrossAttention, CrossAttentionSpec};
pub use latent::{LatentAttention, LatentAttentionSpec, LatentPath};
pub use layer::{Attention, AttentionSpec, QkNorm, QkvLayout, TemperatureTuning};
pub use mask::{causal_mask, chunked_causal_mask, padding_mask};
pub use sdpa::{sdpa, sdpa_sinks};
