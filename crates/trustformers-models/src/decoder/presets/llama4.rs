//! Llama 4 text (`modeling_llama4.py`, `Llama4ForCausalLM`, `model_type` `llama4_text`):
//! LLaMA with rotary on interleaved pairs and, every `no_rope_layer_interval`-th layer (or as
//! `no_rope_layers` says), a layer without positions. Rotary layers attend within chunks of
//! `attention_chunk_size` positions and L2-normalise q and k per head (`use_qk_norm`);
//! position-free layers attend causally over everything, with queries scaled by position
//! (`attn_temperature_tuning`). The feed-forward (`feed_forward`) is a mixture of
//! `num_local_experts` experts on `moe_layers` (every `interleave_moe_layer_step`-th layer)
//! and a dense MLP of `intermediate_size_mlp` elsewhere: the router's top
//! `num_experts_per_tok` experts run on the input scaled by the sigmoid of their logits, and
//! a shared expert runs on every token.

use super::names::{plain, rename};
use crate::gguf::{arch_value, copy_metadata};
use crate::hf_config::{self, limits};
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result, StoredName};

/// llama.cpp's `llama4` files: the dense MLP's width is `feed_forward_length` and the
/// experts' `expert_feed_forward_length`; `interleave_moe_layer_step`; and what llama.cpp
/// fixes rather than stores: chunks of 8192, every fourth layer without rotary and
/// unchunked, temperature tuning with floor scale 8192 and scale 0.1, q/k norms unless the model has 128 experts. A `sliding_window` of 0 (MobileLLM)
/// turns the chunks off and keeps rotary everywhere but the last layer, as llama.cpp does.
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    if let Some(dense) = config.remove("intermediate_size") {
        config.insert("intermediate_size_mlp".into(), dense);
    }
    copy_metadata(
        file,
        config,
        &[
            ("expert_feed_forward_length", "intermediate_size"),
            ("interleave_moe_layer_step", "interleave_moe_layer_step"),
        ],
    )?;
    let experts = config.get("num_local_experts").and_then(Value::as_u64);
    config.insert("use_qk_norm".into(), Value::from(experts != Some(128)));
    let no_chunks = matches!(
        arch_value(file, "attention.sliding_window"),
        Some((_, v)) if v.as_u64() == Some(0)
    );
    config.remove("sliding_window");
    if no_chunks {
        config.insert("attention_chunk_size".into(), Value::Null);
        if let Some(n) = config.get("num_hidden_layers").cloned() {
            config.insert("no_rope_layer_interval".into(), n);
        }
    } else {
        config.insert("attention_chunk_size".into(), Value::from(8192));
    }
    config
        .entry("no_rope_layer_interval")
        .or_insert(Value::from(4));
    config.insert("floor_scale".into(), Value::from(8192));
    config.insert("attn_scale".into(), Value::from(0.1));
    config.insert("attn_temperature_tuning".into(), Value::from(true));
    Ok(())
}
use trustformers_nn::{MoeSpec, QkNorm, RouterScoring, SharedExpert, TemperatureTuning};

/// Builds the spec from a `llama4_text` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, Some(128))?;
    let n = spec.num_hidden_layers;
    let eps = f.opt_f64("rms_norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = trustformers_nn::NormKind::Rms {
        eps,
        unit_offset: false,
    };
    spec.attention_bias(&f, false)?;
    spec.rope.interleaved = true;
    let moe_width = spec.intermediate_size;
    spec.intermediate_size = f
        .opt_usize("intermediate_size_mlp", limits::INTERMEDIATE)?
        .unwrap_or(16384);

    let has_rope = layer_flags(&f, "no_rope_layers", n)?.unwrap_or_else(|| {
        let interval = f
            .opt_usize("no_rope_layer_interval", limits::LAYERS)
            .ok()
            .flatten()
            .unwrap_or(4);
        (0..n).map(|i| (i + 1) % interval != 0).collect()
    });
    spec.nope_layers = (0..n).filter(|&i| !has_rope[i]).collect();
    let mut nope = spec.attention.clone();
    if f.opt_bool("use_qk_norm")?.unwrap_or(true) {
        spec.attention.qk_norm = Some(QkNorm::Weightless { eps });
    }
    if f.opt_bool("attn_temperature_tuning")?.unwrap_or(true) {
        nope.temperature_tuning = Some(TemperatureTuning {
            floor_scale: f.opt_f64("floor_scale", 1e-9..=1e12)?.unwrap_or(8192.0),
            attn_scale: f.opt_f64("attn_scale", -1e6..=1e6)?.unwrap_or(0.1),
        });
    }
    spec.nope_attention = Some(nope);

    spec.attention_chunk_size = match f.is_null("attention_chunk_size") {
        true => None,
        false => Some(
            f.opt_usize("attention_chunk_size", limits::POSITIONS)?
                .unwrap_or(8192),
        ),
    };
    spec.chunked_layers = match f.raw("layer_types") {
        Some(types) => {
            let types = types.as_array().filter(|t| t.len() == n).ok_or_else(|| {
                Error::config("layer_types", format!("must list one type per layer ({n})"))
            })?;
            let mut chunked = Vec::new();
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    Some("chunked_attention") => chunked.push(i),
                    Some("full_attention") => {}
                    _ => {
                        return Err(Error::config(
                            "layer_types",
                            format!("unsupported layer type {t} (supported: chunked_attention, full_attention)"),
                        ))
                    }
                }
            }
            chunked
        }
        None => (0..n).filter(|&i| has_rope[i]).collect(),
    };
    if !spec.chunked_layers.is_empty() && spec.attention_chunk_size.is_none() {
        return Err(Error::config(
            "attention_chunk_size",
            "is required by chunked_attention layers",
        ));
    }

    let moe_layers: Vec<usize> = match hf_config::layer_indices(&f, "moe_layers")? {
        Some(layers) => layers,
        None => {
            let step = f
                .opt_usize("interleave_moe_layer_step", limits::LAYERS)?
                .unwrap_or(1);
            (step - 1..n).step_by(step).collect()
        }
    };
    spec.dense_layers = (0..n).filter(|i| !moe_layers.contains(i)).collect();
    let moe = MoeSpec {
        shared_expert: Some(SharedExpert {
            intermediate_size: moe_width,
            gated: false,
        }),
        scoring: RouterScoring::Sigmoid,
        weight_inputs: true,
        stacked_in_out: true,
        ..MoeSpec::new(
            f.opt_usize("num_local_experts", limits::EXPERTS)?
                .unwrap_or(16),
            f.opt_usize("num_experts_per_tok", limits::EXPERTS)?
                .unwrap_or(1),
            moe_width,
        )
    };
    moe.validate()?;
    spec.moe = Some(moe);
    Ok(spec)
}

/// A per-layer list of 0/1 flags (`no_rope_layers`), `None` when absent or empty.
fn layer_flags(f: &Fields<'_>, name: &str, n: usize) -> Result<Option<Vec<bool>>> {
    let Some(v) = f.raw(name) else {
        return Ok(None);
    };
    let flags: Vec<bool> = v
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x != 0)).collect())
        .ok_or_else(|| Error::config(name, "must be a list of 0 and 1"))?;
    if flags.is_empty() {
        return Ok(None);
    }
    if flags.len() != n {
        return Err(Error::config(
            name,
            format!("has {} entries for {n} layers", flags.len()),
        ));
    }
    Ok(Some(flags))
}

/// LLaMA-style canonical names -> Llama 4 checkpoint names (`feed_forward` for `mlp`).
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    plain(rename(
        canonical,
        &[],
        "model.layers",
        &[("mlp.", "feed_forward.")],
    ))
}
