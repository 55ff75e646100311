//! TrustformeRS: Hugging Face Transformers in Rust.
//!
//! Load a checkpoint the way the Hub ships it (a directory with config.json + safetensors,
//! sharded or not, or a single GGUF file) and run it with transformers' numbers:
//!
//! ```no_run
//! use trustformers::{AutoModelForCausalLM, CausalLM, LoadOptions};
//! use trustformers::models::decoder::default_positions;
//! # fn main() -> trustformers::Result<()> {
//! let model = AutoModelForCausalLM::from_pretrained("path/to/checkpoint", &LoadOptions::default())?;
//! let ids = trustformers::Tensor::new(&[[1u32, 2, 3]], model.device())?;
//! let positions = default_positions(1, 0, 3, model.device())?;
//! let logits = model.forward(&ids, &positions, &mut model.new_cache())?; // [1, 3, vocab]
//! # Ok(()) }
//! ```

pub mod auto;
pub mod encoders;
mod fetch;
pub mod hub;
pub mod memory;
pub mod pipelines;
pub mod resolve;
pub mod session;
pub mod vision;

pub use auto::{
    parse_load_dtype, read_adapter, AutoConfig, AutoModel, AutoModelForCausalLM,
    AutoModelForSeq2SeqLM, LoadOptions, ModelConfig, Quantization,
};
pub use encoders::{
    AutoEncoderModel, AutoModelForMaskedLM, AutoModelForMultipleChoice, AutoModelForPreTraining,
    AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
};
pub use memory::MemoryCheckpoint;
pub use resolve::{resolve_model, DEFAULT_MODEL};
pub use session::{ChatSession, LoadedModel};
pub use trustformers_core::{self as core, DType, Device, Error, Result, Tensor};
pub use trustformers_generate::{self as generation, GenerationConfig};
pub use trustformers_models::{
    self as models, CausalLM, DecoderForCausalLM, DecoderModel, EncoderDecoderLM, EncoderForTask,
    EncoderTask, ModelKind,
};
pub use trustformers_nn::{self as nn, Cache, KvCache};
pub use trustformers_optim as optim;
pub use trustformers_tokenizers::{self as tokenizers, AutoTokenizer, Tokenizer};
pub use trustformers_train as train;
pub use trustformers_vision as image;
pub use vision::{
    check_image_tokens, image_message, AutoImageModel, AutoImageProcessor, AutoImageTextModel,
    AutoModelForImageClassification, ImageInput, VisionLanguageModelSession,
    VisionLanguageProcessor,
};
