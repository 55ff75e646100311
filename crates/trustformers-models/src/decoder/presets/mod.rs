//! One file per `model_type`: each turns an HF config into a [`super::DecoderSpec`] by
//! stating how the model differs from the LLaMA baseline.

pub mod cohere;
pub mod deepseek;
pub mod falcon;
pub mod gemma;
pub mod gemma2;
pub mod gemma3;
pub mod gpt2;
pub mod gpt_neo;
pub mod gpt_neox;
pub mod gpt_oss;
pub mod gptj;
pub mod granite;
pub mod llama;
pub mod llama4;
pub mod mistral;
pub mod mixtral;
mod names;
pub mod olmo2;
pub mod opt;
pub mod phi;
pub mod phi3;
pub mod qwen2;
pub mod qwen2_moe;
pub mod qwen3;
pub mod qwen3_moe;
pub mod smollm3;
pub mod stablelm;
pub mod starcoder2;
