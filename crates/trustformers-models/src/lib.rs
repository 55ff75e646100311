//! Model architectures and the registry that maps a config's `model_type` (or a GGUF file's
//! `general.architecture`) to the code that builds it.

pub mod decoder;
pub mod encoder;
pub mod gguf;
pub mod hf_config;
pub mod multimodal;
pub mod registry;
pub mod seq2seq;
pub mod ssm;
pub mod traits;
pub mod vision;

pub use decoder::{DecoderForCausalLM, DecoderModel, DecoderSpec, Positions, Residual};
pub use encoder::heads::{EncoderForTask, EncoderTask, EncoderTaskOutput};
pub use encoder::{EncoderLayout, EncoderModel, EncoderOutput, EncoderSpec};
pub use registry::{Architecture, ModelKind, ARCHITECTURES};
pub use traits::{
    CausalLM, CausalLmOutput, EncoderDecoderLM, ForwardOptions, RuntimeOptions, Seq2SeqOutput,
    DEFAULT_PREFILL_CHUNK,
};
pub use trustformers_nn::Cache;
