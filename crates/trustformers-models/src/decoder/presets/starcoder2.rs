//! StarCoder2 (`modeling_starcoder2.py`): LayerNorm with bias (`norm_epsilon`), biases on
//! every projection (`use_bias`), a plain GELU-tanh MLP (`c_fc`, `c_proj`), a sliding window
//! on every layer, a tied head, and dropout on the embeddings (`embedding_dropout`) and on
//! each sublayer's output (`residual_dropout`).

use super::names::{plain, rename};
use crate::gguf::has_block_tensor;
use crate::hf_config::{dropout, Dropouts};
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Result, StoredName};

/// llama.cpp's `starcoder2` files: the LayerNorm epsilon under StarCoder2's name, the biases
/// the tensors show, and no sliding window (llama.cpp runs full attention).
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    if let Some(eps) = config.remove("layer_norm_eps") {
        config.insert("norm_epsilon".into(), eps);
    }
    config.insert(
        "use_bias".into(),
        Value::from(has_block_tensor(file, "attn_q.bias")),
    );
    config.remove("sliding_window");
    Ok(())
}
use trustformers_nn::{Activation, NormKind};

/// Builds the spec from a `starcoder2` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let eps = f.opt_f64("norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    let bias = f.opt_bool("use_bias")?.unwrap_or(true);
    spec.attention.qkv_bias = bias;
    spec.attention.o_bias = bias;
    spec.mlp_bias = bias;
    spec.gated_mlp = false;
    spec.hidden_act = Activation::from_hf(f.opt_str("hidden_act")?.unwrap_or("gelu_pytorch_tanh"))?;
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    spec.layer_windows = vec![DecoderSpec::sliding_window(&f)?; spec.num_hidden_layers];
    let resid = dropout(&f, &["residual_dropout"], 0.0)?;
    spec.dropout = Dropouts {
        embedding: dropout(&f, &["embedding_dropout"], 0.0)?,
        attention_output: resid,
        mlp_output: resid,
        ..spec.dropout
    };
    Ok(spec)
}

/// LLaMA-style canonical names -> StarCoder2 checkpoint names (the MLP's).
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    plain(rename(
        canonical,
        &[],
        "model.layers",
        &[
            ("mlp.up_proj.", "mlp.c_fc."),
            ("mlp.down_proj.", "mlp.c_proj."),
        ],
    ))
}
