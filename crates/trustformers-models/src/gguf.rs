//! The one table that maps GGUF metadata and tensor names to HF config fields and tensor
//! names, so the same model code runs safetensors checkpoints and GGUF files.

use crate::registry::{self, Architecture, GgufNorms, GgufQkLayout};
use serde_json::{Map, Number, Value};
use std::sync::Arc;
use trustformers_core::gguf::{GgufFile, GgufValue};
use trustformers_core::weights::{GgufSource, Renamed};
use trustformers_core::{Error, Result};

/// `<arch>.<key>` metadata -> config.json field.
const CONFIG_KEYS: &[(&str, &str)] = &[
    ("context_length", "max_position_embeddings"),
    ("embedding_length", "hidden_size"),
    ("feed_forward_length", "intermediate_size"),
    ("block_count", "num_hidden_layers"),
    ("attention.head_count", "num_attention_heads"),
    ("attention.head_count_kv", "num_key_value_heads"),
    ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
    ("attention.key_length", "head_dim"),
    ("attention.sliding_window", "sliding_window"),
    ("rope.freq_base", "rope_theta"),
    ("vocab_size", "vocab_size"),
    ("final_logit_softcapping", "final_logit_softcapping"),
    ("attn_logit_softcapping", "attn_logit_softcapping"),
];

/// GGUF tensor name (per block: after `blk.{i}.`) -> HF tensor name (after `model.layers.{i}.`).
const BLOCK_TENSORS: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Block tensors of architectures with sandwich norms, looked up before [`BLOCK_TENSORS`].
const SANDWICH_BLOCK_TENSORS: &[(&str, &str)] = &[
    ("post_attention_norm", "post_attention_layernorm"),
    ("ffn_norm", "pre_feedforward_layernorm"),
    ("post_ffw_norm", "post_feedforward_layernorm"),
];

/// Top-level GGUF tensor name -> HF tensor name.
const GLOBAL_TENSORS: &[(&str, &str)] = &[
    ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"),
    ("output", "lm_head"),
];

fn to_json(v: &GgufValue) -> Option<Value> {
    Some(match v {
        GgufValue::String(s) => Value::from(s.as_str()),
        GgufValue::Bool(b) => Value::from(*b),
        // NaN and infinities have no JSON form: refused rather than read as null.
        GgufValue::F32(_) | GgufValue::F64(_) => Value::Number(Number::from_f64(v.as_f64()?)?),
        GgufValue::Array(_) => return None,
        _ => Value::from(v.as_u64()?),
    })
}

/// Builds the HF config.json equivalent of a GGUF file's metadata.
pub fn config_from_gguf(file: &GgufFile) -> Result<(&'static Architecture, Value)> {
    let name = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .ok_or_else(|| Error::config("general.architecture", "missing from the GGUF metadata"))?;
    let arch = registry::by_gguf_architecture(name)?;
    let mut config = Map::new();
    config.insert("model_type".into(), Value::from(arch.model_type));
    for (gguf_key, hf_key) in CONFIG_KEYS {
        let key = format!("{name}.{gguf_key}");
        if let Some(v) = file.get(&key) {
            let json = to_json(v)
                .ok_or_else(|| Error::config(key.clone(), format!("unexpected value {v:?}")))?;
            config.insert((*hf_key).into(), json);
        }
    }
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
    if let Some(kind) = file
        .get(&format!("{name}.rope.scaling.type"))
        .and_then(GgufValue::as_str)
    {
        if kind != "none" {
            let mut scaling = Map::new();
            scaling.insert("rope_type".into(), Value::from(kind));
            if let Some(f) = file
                .get(&format!("{name}.rope.scaling.factor"))
                .and_then(to_json)
            {
                scaling.insert("factor".into(), f);
            }
            if let Some(n) = file
                .get(&format!("{name}.rope.scaling.original_context_length"))
                .and_then(to_json)
            {
                scaling.insert("original_max_position_embeddings".into(), n);
            }
            config.insert("rope_scaling".into(), Value::Object(scaling));
        }
    }
    // llama.cpp scales Gemma 3 scores by 1/sqrt(key_length) (transformers:
    // query_pre_attn_scalar, equal to head_dim for every size but 27B).
    if let (Some(GgufNorms::UnitOffsetSandwich), Some(d)) =
        (arch.gguf.map(|g| g.norms), config.get("head_dim").cloned())
    {
        config.insert("query_pre_attn_scalar".into(), d);
    }
    // GGUF has no flag for attention biases: their tensors say it.
    if file.tensor_info("blk.0.attn_q.bias").is_some() {
        config.insert("attention_bias".into(), Value::from(true));
    }
    let tied = file.tensor_info("output.weight").is_none();
    config.insert("tie_word_embeddings".into(), Value::from(tied));
    Ok((arch, Value::Object(config)))
}

/// The HF name of a GGUF tensor, or `None` if the table does not know it.
pub fn hf_tensor_name(gguf_name: &str, norms: GgufNorms) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if let Some(rest) = stem.strip_prefix("blk.") {
        let (layer, tensor) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        let sandwich = match norms {
            GgufNorms::UnitOffsetSandwich => SANDWICH_BLOCK_TENSORS,
            GgufNorms::Plain | GgufNorms::UnitOffset => &[],
        };
        let hf = sandwich
            .iter()
            .chain(BLOCK_TENSORS)
            .find(|(g, _)| *g == tensor)?
            .1;
        return Some(format!("model.layers.{layer}.{hf}.{suffix}"));
    }
    let hf = GLOBAL_TENSORS.iter().find(|(g, _)| *g == stem)?.1;
    Some(format!("{hf}.{suffix}"))
}

/// Row order that undoes llama.cpp's per-head Q/K permutation for `n_heads` heads:
/// HF row `h*d + j*d/2 + i` is GGUF row `h*d + 2*i + j`.
fn unpermute_order(rows: usize, n_heads: usize) -> Option<Vec<usize>> {
    if n_heads == 0 || rows % n_heads != 0 || (rows / n_heads) % 2 != 0 {
        return None;
    }
    let d = rows / n_heads;
    let mut order = Vec::with_capacity(rows);
    for h in 0..n_heads {
        for j in 0..2 {
            for i in 0..d / 2 {
                order.push(h * d + 2 * i + j);
            }
        }
    }
    Some(order)
}

/// Exposes a GGUF file's tensors under HF names, undoing the Q/K permutation where the
/// architecture's converter applied it. `config` is the one from [`config_from_gguf`].
pub fn gguf_source(file: Arc<GgufFile>, arch: &Architecture, config: &Value) -> Result<GgufSource> {
    let heads = config
        .get("num_attention_heads")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let kv_heads = config
        .get("num_key_value_heads")
        .and_then(Value::as_u64)
        .map_or(heads, |v| v as usize);
    let interleaved = arch.gguf.is_some_and(|g| g.qk == GgufQkLayout::Interleaved);
    let norms = arch.gguf.map_or(GgufNorms::Plain, |g| g.norms);
    GgufSource::new(file, |gguf_name, shape| {
        let hf = hf_tensor_name(gguf_name, norms)?;
        let unit_offset = matches!(norms, GgufNorms::UnitOffset | GgufNorms::UnitOffsetSandwich);
        let shift = if unit_offset && hf.ends_with("norm.weight") {
            -1.0
        } else {
            0.0
        };
        let order = if !interleaved {
            None
        } else if hf.contains("self_attn.q_proj.") {
            unpermute_order(*shape.first()?, heads)
        } else if hf.contains("self_attn.k_proj.") {
            unpermute_order(*shape.first()?, kv_heads)
        } else {
            None
        };
        Some(Renamed {
            name: hf,
            row_order: order,
            shift,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_tensor_name("blk.3.attn_q.weight", GgufNorms::Plain).as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_tensor_name("output.weight", GgufNorms::Plain).as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(
            hf_tensor_name("blk.x.attn_q.weight", GgufNorms::Plain),
            None
        );
        // The pre-MLP norm has a different HF name once the model has sandwich norms.
        assert_eq!(
            hf_tensor_name("blk.0.ffn_norm.weight", GgufNorms::Plain).as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        let sandwich = GgufNorms::UnitOffsetSandwich;
        assert_eq!(
            hf_tensor_name("blk.0.ffn_norm.weight", sandwich).as_deref(),
            Some("model.layers.0.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            hf_tensor_name("blk.0.post_attention_norm.weight", sandwich).as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(hf_tensor_name("rope_freqs.weight", GgufNorms::Plain), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: reshape(n_head, 2, d/2).swapaxes(1, 2): gguf[h][i][j] = hf[h][j][i].
        let (heads, d) = (2, 4);
        let hf: Vec<usize> = (0..heads * d).collect();
        let mut gguf = vec![0; heads * d];
        for h in 0..heads {
            for i in 0..d / 2 {
                for j in 0..2 {
                    gguf[h * d + 2 * i + j] = hf[h * d + j * d / 2 + i];
                }
            }
        }
        let order = unpermute_order(heads * d, heads).unwrap();
        let back: Vec<usize> = order.iter().map(|&r| gguf[r]).collect();
        assert_eq!(back, hf);
    }
}
