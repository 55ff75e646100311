//! Gemma 3 text (`modeling_gemma3.py`, `Gemma3ForCausalLM`): unit-offset RMSNorm everywhere
//! (q/k head norms included), sandwich norms, embeddings scaled by `sqrt(hidden_size)`, a
//! GeLU-tanh gated MLP, scores scaled by `query_pre_attn_scalar^-0.5`, and sliding-window
//! layers (every `sliding_window_pattern`-th layer global, or `layer_types`) that use their
//! own RoPE base. Optional soft-capping of the final logits.

use crate::decoder::Residual;
use crate::hf_config::{self, limits};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result};
use trustformers_nn::{Activation, NormKind, QkNorm};

/// transformers' `Gemma3TextConfig.default_theta`.
const GLOBAL_THETA: f64 = 1_000_000.0;
const LOCAL_THETA: f64 = 10_000.0;

/// Builds the spec from a `gemma3_text` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, Some(256))?;
    spec.max_position_embeddings = f
        .opt_usize("max_position_embeddings", limits::POSITIONS)?
        .unwrap_or(131_072);
    let act = match f.opt_str("hidden_activation")? {
        Some(a) => a,
        None => f.opt_str("hidden_act")?.unwrap_or("gelu_pytorch_tanh"),
    };
    spec.hidden_act = Activation::from_hf(act)?;
    let bias = f.opt_bool("attention_bias")?.unwrap_or(false);
    let att = &mut spec.attention;
    att.qkv_bias = bias;
    att.o_bias = bias;
    let norm = NormKind::Rms {
        eps: spec.norm.eps(),
        unit_offset: true,
    };
    att.qk_norm = Some(QkNorm::Rms {
        eps: norm.eps(),
        unit_offset: true,
    });
    let scalar = f
        .opt_f64("query_pre_attn_scalar", 1e-6..=1e9)?
        .unwrap_or(256.0);
    att.scale = Some(scalar.powf(-0.5));
    // transformers reads `attn_logit_softcapping` but its Gemma 3 attention never applies it.
    att.softcap = None;
    spec.final_logit_softcapping = f.opt_f64("final_logit_softcapping", 1e-6..=1e9)?;
    spec.embed_scale = Some((spec.hidden_size as f64).sqrt());
    spec.norm = norm;
    spec.residual = Residual::Sandwich;
    spec.tie_word_embeddings = f.opt_bool("tie_word_embeddings")?.unwrap_or(true);
    if f.opt_bool("use_bidirectional_attention")?.unwrap_or(false) {
        return Err(Error::config(
            "use_bidirectional_attention",
            "bidirectional Gemma 3 (EmbeddingGemma) is not supported by the causal LM",
        ));
    }

    let window = DecoderSpec::sliding_window(&f)?.unwrap_or(4096);
    spec.pattern_windows(&f, window, 6)?;

    // transformers 5: rope_parameters.{full_attention, sliding_attention}; transformers 4:
    // rope_theta + rope_scaling for global layers, rope_local_base_freq for local ones.
    let (head_dim, max_pos) = (spec.attention.head_dim, spec.max_position_embeddings);
    let global_theta = f.opt_f64("rope_theta", 1.0..=1e12)?.unwrap_or(GLOBAL_THETA);
    let local_theta = f
        .opt_f64("rope_local_base_freq", 1.0..=1e12)?
        .unwrap_or(LOCAL_THETA);
    let params = f.raw("rope_parameters");
    let per_type = params
        .is_some_and(|p| p.get("full_attention").is_some() || p.get("sliding_attention").is_some());
    let (full, full_prefix, local, local_prefix) = match params {
        Some(p) if per_type => (
            p.get("full_attention"),
            "rope_parameters.full_attention.",
            p.get("sliding_attention"),
            "rope_parameters.sliding_attention.",
        ),
        Some(p) => (Some(p), "rope_parameters.", None, ""),
        None => (f.raw("rope_scaling"), "rope_scaling.", None, ""),
    };
    spec.rope =
        hf_config::rope_from_params(&f, full, full_prefix, global_theta, head_dim, max_pos)?;
    spec.sliding_rope = Some(hf_config::rope_from_params(
        &f,
        local,
        local_prefix,
        local_theta,
        head_dim,
        max_pos,
    )?);
    Ok(spec)
}
