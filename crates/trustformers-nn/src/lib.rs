//! Transformer building blocks, one file per algorithm. Every block is built from HF tensor
//! names through the strict [`trustformers_core::Weights`] loader and works with dense and
//! quantized weights alike.

pub mod activation;
pub mod attention;
pub mod autograd;
pub mod cache;
pub mod checkpoint;
pub mod dropout;
pub mod embedding;
pub mod kernels;
pub mod linear;
pub mod mlp;
pub mod moe;
pub mod norm;
pub mod patch_embed;
pub mod positions;
pub mod profile;
pub mod ssm;

pub use activation::Activation;

/// Whether any of `ts` is in an autograd graph (a trainable weight, or computed from one).
/// Layers then take their differentiable path, candle's ops, instead of the CPU kernels,
/// which read and write plain buffers: training and inference share the layer code and the
/// choice is made here, not per model.
pub(crate) fn differentiable(ts: &[&candle_core::Tensor]) -> bool {
    ts.iter().any(|t| t.track_op())
}
pub use attention::{
    Attention, AttentionSpec, BidirectionalAttention, CrossAttention, CrossAttentionSpec,
    LatentAttention, LatentAttentionSpec, LatentPath, QkNorm, QkvLayout, TemperatureTuning,
};
pub use cache::{Cache, EncoderDecoderCache, KvCache, RecurrentState};
pub use dropout::{Dropout, DropoutRng};
pub use embedding::Embedding;
pub use linear::Linear;
pub use mlp::{GatedMlp, Mlp};
pub use moe::{
    ExpertKind, GroupRouting, GroupScore, MoeSpec, RouterScoring, SharedExpert, SparseMoe,
};
pub use norm::{LayerNorm, Norm, NormKind, RmsNorm};
pub use patch_embed::PatchEmbedding;
pub use positions::{RopeScaling, RopeSpec, RotaryEmbedding};
pub use ssm::{selective_scan, CausalConv1d, ScanInputs};
