//! Model architectures and the registry that maps a config's `model_type` (or a GGUF file's
//! `general.architecture`) to the code that builds it.

pub mod decoder;
pub mod encoder;
pub mod gguf;
pub mod hf_config;
pub mod registry;

pub use decoder::{
    CausalLmOutput, DecoderForCausalLM, DecoderModel, DecoderSpec, ForwardOptions,
    DEFAULT_PREFILL_CHUNK,
};
pub use encoder::heads::{EncoderForTask, EncoderTask, EncoderTaskOutput};
pub use encoder::{EncoderModel, EncoderOutput, EncoderSpec};
pub use registry::{Architecture, EncoderArchitecture, ARCHITECTURES, ENCODERS};
