//! Cohere (Command-R; `modeling_cohere.py`) and Cohere 2 (Command-R7B, Command A;
//! `modeling_cohere2.py`): a parallel block (`x + attn(ln(x)) + mlp(ln(x))`) off one
//! bias-free LayerNorm, rotary on interleaved pairs, logits times `logit_scale`, a tied head;
//! Command-R+ adds per-head q/k LayerNorms (`use_qk_norm`). Cohere 2 alternates sliding
//! layers with rotary and global layers without positions (`layer_types`, or
//! `sliding_window_pattern`, default 4).

use crate::decoder::Residual;
use crate::gguf::{arch_value, copy_metadata, has_block_tensor};
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::{GgufFile, GgufValue};
use trustformers_core::{Error, Result};
use trustformers_nn::{NormKind, QkNorm};

/// llama.cpp's `command-r` and `cohere2` files: `logit_scale` (absent: no scaling, as
/// llama.cpp does), q/k norms when the tensors are there, and Cohere 2's sliding-window
/// pattern (a list of flags, or every n-th layer global; default 4).
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    copy_metadata(file, config, &[("logit_scale", "logit_scale")])?;
    config.entry("logit_scale").or_insert(Value::from(1.0));
    config.insert(
        "use_qk_norm".into(),
        Value::from(has_block_tensor(file, "attn_q_norm.weight")),
    );
    let Some((key, pattern)) = arch_value(file, "attention.sliding_window_pattern") else {
        return Ok(());
    };
    match pattern {
        GgufValue::Array(flags) => {
            let types = flags
                .iter()
                .map(|f| match f.as_bool() {
                    Some(true) => Ok(Value::from("sliding_attention")),
                    Some(false) => Ok(Value::from("full_attention")),
                    None => Err(Error::config(&key, "must hold booleans")),
                })
                .collect::<Result<Vec<_>>>()?;
            config.insert("layer_types".into(), Value::Array(types));
        }
        v => {
            let n = v
                .as_u64()
                .ok_or_else(|| Error::config(&key, "must be a count or a list of booleans"))?;
            config.insert("sliding_window_pattern".into(), Value::from(n));
        }
    }
    Ok(())
}

/// Builds the spec from a `cohere` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let eps = f.opt_f64("layer_norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: false };
    spec.attention_bias(&f, false)?;
    if f.opt_bool("use_qk_norm")?.unwrap_or(false) {
        spec.attention.qk_norm = Some(QkNorm::LayerPerHeadStacked { eps });
    }
    spec.rope.interleaved = true;
    spec.residual = Residual::Parallel;
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    spec.logit_scale = Some(f.opt_f64("logit_scale", -1e9..=1e9)?.unwrap_or(0.0625));
    Ok(spec)
}

/// Builds the spec from a `cohere2` config.json.
pub fn spec2(config: &Value) -> Result<DecoderSpec> {
    // Cohere 2 sizes its heads as hidden_size / num_attention_heads whatever `head_dim` says.
    let mut config = config.clone();
    if let Some(obj) = config.as_object_mut() {
        obj.remove("head_dim");
        obj.remove("use_qk_norm");
    }
    let mut spec = spec(&config)?;
    let f = Fields::new(&config, "")?;
    let window = DecoderSpec::sliding_window(&f)?.unwrap_or(4096);
    spec.pattern_windows(&f, window, 4)?;
    let n = spec.num_hidden_layers;
    // Only the sliding layers rotate q and k.
    spec.nope_layers = (0..n)
        .filter(|&i| spec.layer_windows[i].is_none())
        .collect();
    Ok(spec)
}
