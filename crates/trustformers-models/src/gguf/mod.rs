//! The tables that map GGUF metadata to HF config fields and GGUF tensor names to the names
//! the model asks for (the decoder's LLaMA-style names, BERT's own names for encoders), so
//! the same model code runs safetensors checkpoints and GGUF files. What differs per
//! architecture lives in its [`GgufDialect`].

mod hyperparams;
mod tensors;

pub use hyperparams::{ConfigKeys, GgufHyperparams, FALCON_KEYS, GPT2_KEYS, HF_KEYS};
pub use tensors::{
    canonical_name, gguf_source, has_block_tensor, names, GgufNames, BERT_NAMES, DECODER_NAMES,
    MAMBA2_NAMES, MAMBA_NAMES, NOMIC_BERT_NAMES, NO_NAMES,
};

use crate::registry::{self, Architecture, ModelKind};
use candle_core::quantized::GgmlDType;
use serde_json::{Map, Number, Value};
use trustformers_core::gguf::{GgufDType, GgufFile, GgufValue};
use trustformers_core::{Error, Result};

/// The values of a small f32 vector tensor, as a JSON list.
fn f32_list(file: &GgufFile, name: &str) -> Result<Value> {
    let bad = |reason: String| Error::UnsupportedTensor {
        name: name.to_string(),
        reason,
    };
    let info = file.tensor_info(name).ok_or_else(|| Error::MissingTensor {
        name: name.to_string(),
    })?;
    if info.dtype != GgufDType::Ggml(GgmlDType::F32) || info.shape.len() != 1 {
        return Err(bad(format!(
            "expected a 1-D f32 tensor, got {:?} {:?}",
            info.dtype, info.shape
        )));
    }
    file.tensor_bytes(info)
        .chunks_exact(4)
        .map(|b| {
            let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            Number::from_f64(f64::from(x))
                .map(Value::Number)
                .ok_or_else(|| bad(format!("holds {x}")))
        })
        .collect()
}

/// `rope_scaling` from the metadata, or from the frequency-factor tensors llama.cpp writes
/// instead (Phi-3's LongRoPE factors; LLaMA 3.1's `rope_freqs`, one factor for short and
/// long sequences alike).
fn rope_scaling(file: &GgufFile, hp: &GgufHyperparams) -> Result<Option<Value>> {
    let float = |x: Option<f64>| x.and_then(Number::from_f64).map(Value::Number);
    let mut scaling = Map::new();
    let (long, short) = ("rope_factors_long.weight", "rope_factors_short.weight");
    if file.tensor_info(long).is_some() || file.tensor_info(short).is_some() {
        scaling.insert("rope_type".into(), Value::from("longrope"));
        scaling.insert("long_factor".into(), f32_list(file, long)?);
        scaling.insert("short_factor".into(), f32_list(file, short)?);
    } else if file.tensor_info("rope_freqs.weight").is_some() {
        let factors = f32_list(file, "rope_freqs.weight")?;
        scaling.insert("rope_type".into(), Value::from("longrope"));
        scaling.insert("long_factor".into(), factors.clone());
        scaling.insert("short_factor".into(), factors);
        scaling.insert("attention_factor".into(), Value::from(1.0));
    } else {
        match hp.rope_scaling_type.as_deref() {
            Some(kind) if kind != "none" => {
                scaling.insert("rope_type".into(), Value::from(kind));
            }
            _ => return Ok(None),
        }
        if let Some(f) = float(hp.rope_scaling_factor) {
            scaling.insert("factor".into(), f);
        }
        for (key, field) in [
            ("yarn_beta_fast", "beta_fast"),
            ("yarn_beta_slow", "beta_slow"),
        ] {
            if let Some((name, v)) = arch_value(file, &format!("rope.scaling.{key}")) {
                let beta = float(v.as_f64()).ok_or_else(|| {
                    Error::config(name, format!("must be a finite number, got {v:?}"))
                })?;
                scaling.insert(field.into(), beta);
            }
        }
    }
    if let Some(n) = hp.rope_scaling_original_context_length {
        scaling.insert("original_max_position_embeddings".into(), Value::from(n));
    }
    if let Some(a) = float(hp.rope_scaling_attn_factor) {
        scaling.entry("attention_factor").or_insert(a);
    }
    Ok(Some(Value::Object(scaling)))
}

/// Copies scalar metadata into config.json fields: each `(key, field)` pair names the key
/// after `{general.architecture}.` (`"logit_scale"` is `granite.logit_scale` in a Granite
/// file). Integers stay integers; a key that is not a number is an error naming it; absent
/// keys are skipped.
pub fn copy_metadata(
    file: &GgufFile,
    config: &mut Map<String, Value>,
    pairs: &[(&str, &str)],
) -> Result<()> {
    let arch = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or_default();
    for (key, field) in pairs {
        let key = format!("{arch}.{key}");
        let Some(v) = file.get(&key) else {
            continue;
        };
        let value = match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => Value::from(n),
            (None, Some(x)) => Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| Error::config(&key, format!("must be a finite number, got {x}")))?,
            _ => return Err(Error::config(&key, format!("must be a number, got {v:?}"))),
        };
        config.insert((*field).into(), value);
    }
    Ok(())
}

/// The metadata value `{general.architecture}.{key}`.
pub fn arch_value<'a>(file: &'a GgufFile, key: &str) -> Option<(String, &'a GgufValue)> {
    let arch = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)?;
    let key = format!("{arch}.{key}");
    file.get(&key).map(|v| (key, v))
}

/// Builds the HF config.json equivalent of a GGUF file's metadata.
pub fn config_from_gguf(file: &GgufFile) -> Result<(&'static Architecture, Value)> {
    let name = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .ok_or_else(|| Error::config("general.architecture", "missing from the GGUF metadata"))?;
    let experts = file
        .get(&format!("{name}.expert_count"))
        .and_then(GgufValue::as_u64)
        .is_some_and(|n| n > 0);
    let arch = registry::by_gguf_architecture(name, experts)?;
    let mut config = Map::new();
    config.insert("model_type".into(), Value::from(arch.model_type));
    let keys = arch.gguf.map_or(&HF_KEYS, |d| d.keys);
    let hp = GgufHyperparams::read(file, name)?;
    hp.write(keys, &mut config);
    if !config.contains_key("vocab_size") {
        let from_tokens = match file.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(tokens)) => Some(tokens.len()),
            _ => None,
        };
        let from_embedding = file
            .tensor_info("token_embd.weight")
            .and_then(|t| t.shape.first().copied());
        if let Some(n) = from_embedding.or(from_tokens) {
            config.insert("vocab_size".into(), Value::from(n));
        }
    }
    if arch.kind() == ModelKind::Decoder {
        decoder_config(file, &hp, &mut config)?;
    }
    if let Some(hook) = arch.gguf.and_then(|g| g.config) {
        hook(file, &mut config)?;
    }
    // A hook may name the model more closely than the file's architecture does (llama.cpp's
    // `deepseek2` holds DeepSeek-V2 and V3).
    let arch = match config.get("model_type").and_then(Value::as_str) {
        Some(t) if t != arch.model_type => registry::by_model_type(t)?,
        _ => arch,
    };
    Ok((arch, Value::Object(config)))
}

/// The decoder fields GGUF states by tensors or derived keys: rotary dimensions and scaling,
/// biases, tied embeddings.
fn decoder_config(
    file: &GgufFile,
    hp: &GgufHyperparams,
    config: &mut Map<String, Value>,
) -> Result<()> {
    if let Some(dims) = hp.rope_dimension_count {
        config.insert("rotary_dim".into(), Value::from(dims));
        if let Some(factor) = hp.head_dim().and_then(|d| partial_rotary_factor(d, dims)) {
            config.insert("partial_rotary_factor".into(), factor);
        }
    }
    if let Some(scaling) = rope_scaling(file, hp)? {
        config.insert("rope_scaling".into(), scaling);
    }
    let bias = has_block_tensor(file, "attn_q.bias") || has_block_tensor(file, "attn_qkv.bias");
    config.insert("attention_bias".into(), Value::from(bias));
    let mlp_bias = has_block_tensor(file, "ffn_up.bias");
    config.insert("mlp_bias".into(), Value::from(mlp_bias));
    let tied = file.tensor_info("output.weight").is_none();
    config.insert("tie_word_embeddings".into(), Value::from(tied));
    Ok(())
}

/// `dims / head_dim`, nudged up where the division rounds down so that transformers' rule
/// `int(head_dim * partial_rotary_factor)` gives `dims` back.
fn partial_rotary_factor(head_dim: u64, dims: u64) -> Option<Value> {
    if head_dim == 0 || dims > head_dim {
        return None;
    }
    let mut factor = dims as f64 / head_dim as f64;
    if ((head_dim as f64 * factor) as u64) < dims {
        // The next f64 up (factor is positive and finite here).
        factor = f64::from_bits(factor.to_bits() + 1);
    }
    Number::from_f64(factor).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_rotary_factor_round_trips() {
        for (head_dim, dims) in [(80u64, 32u64), (64, 16), (96, 24), (80, 24), (256, 256)] {
            let f = partial_rotary_factor(head_dim, dims)
                .unwrap()
                .as_f64()
                .unwrap();
            assert_eq!((head_dim as f64 * f) as u64, dims, "{head_dim} {dims}");
        }
    }
}
