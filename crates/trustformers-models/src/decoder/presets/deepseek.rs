//! DeepSeek-V2 and V3 (`modeling_deepseek_v2.py`, `modeling_deepseek_v3.py`): LLaMA's layout
//! with multi-head latent attention (low-rank queries and key/value latents, a rotary part
//! of `qk_rope_head_dim` per head, rotated in interleaved pairs; the score scale grows with
//! YaRN's `mscale_all_dim`), dense MLPs in the first `first_k_dense_replace` layers, and a
//! mixture of `n_routed_experts` experts plus `n_shared_experts` always-on experts elsewhere.
//! V2 routes by softmax scores (`topk_method` `greedy`, or `group_limited_greedy` over the
//! groups' best scores); V3 by sigmoid scores with `e_score_correction_bias`, always group
//! limited (groups scored by their two best), renormalised when `norm_topk_prob`. Both scale
//! the routed weights by `routed_scaling_factor`.

use crate::hf_config::{self, limits};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result};
use trustformers_nn::{
    GroupRouting, GroupScore, LatentAttentionSpec, MoeSpec, RouterScoring, SharedExpert,
};

/// Builds the spec from a `deepseek_v2` config.json.
pub fn spec_v2(config: &Value) -> Result<DecoderSpec> {
    deepseek(config, false)
}

/// Builds the spec from a `deepseek_v3` config.json.
pub fn spec_v3(config: &Value) -> Result<DecoderSpec> {
    deepseek(config, true)
}

fn deepseek(config: &Value, v3: bool) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let dim = |name: &str, default: usize| -> Result<usize> {
        Ok(f.opt_usize(name, limits::HEAD_DIM)?.unwrap_or(default))
    };
    let rope_dim = dim("qk_rope_head_dim", 64)?;
    let nope_dim = dim("qk_nope_head_dim", 128)?;
    let max_pos = spec.max_position_embeddings;
    // Only the rotary part of each head rotates: the rotary embedding spans it whole.
    spec.rope = hf_config::rope_spec(&f, rope_dim, max_pos)?;
    spec.rope.rotary_dim = rope_dim;
    // V2 multiplies complex pairs; V3 rotates pairs too unless `rope_interleave` is false.
    spec.rope.interleaved = !v3 || f.opt_bool("rope_interleave")?.unwrap_or(true);
    let q_lora_rank = match f.is_null("q_lora_rank") {
        true => None,
        false => Some(f.opt_usize("q_lora_rank", limits::HIDDEN)?.unwrap_or(1536)),
    };
    let mut scale = ((nope_dim + rope_dim) as f64).powf(-0.5);
    if let Some(m) = mscale_all_dim(&f)? {
        scale *= m * m;
    }
    let latent = LatentAttentionSpec {
        hidden_size: spec.hidden_size,
        num_heads: spec.attention.num_heads,
        q_lora_rank,
        kv_lora_rank: f.opt_usize("kv_lora_rank", limits::HIDDEN)?.unwrap_or(512),
        qk_nope_head_dim: nope_dim,
        qk_rope_head_dim: rope_dim,
        v_head_dim: dim("v_head_dim", 128)?,
        scale,
        bias: f.opt_bool("attention_bias")?.unwrap_or(false),
        norm_eps: 1e-6,
    };
    latent.validate()?;
    spec.latent_attention = Some(latent);
    if f.opt_bool("mlp_bias")?.unwrap_or(false) {
        return Err(Error::config(
            "mlp_bias",
            "biased MLPs with DeepSeek's shared experts are not supported",
        ));
    }

    let n = spec.num_hidden_layers;
    let dense = f
        .opt_count("first_k_dense_replace", limits::LAYERS)?
        .unwrap_or(if v3 { 3 } else { 0 });
    spec.dense_layers = (0..dense.min(n)).collect();
    let num_experts = f
        .opt_usize("n_routed_experts", limits::EXPERTS)?
        .unwrap_or(if v3 { 256 } else { 64 });
    let top_k = match f.opt_usize("num_experts_per_tok", limits::EXPERTS)? {
        Some(k) => k,
        None if v3 => 8,
        None => return Err(Error::config("num_experts_per_tok", "is required")),
    };
    let inter = f
        .opt_usize("moe_intermediate_size", limits::INTERMEDIATE)?
        .unwrap_or(if v3 { 2048 } else { 1407 });
    let shared = f
        .opt_count("n_shared_experts", limits::EXPERTS)?
        .unwrap_or(if v3 { 1 } else { 2 });
    let group = |name: &str, default: Option<usize>| -> Result<Option<usize>> {
        Ok(match f.is_null(name) {
            true => None,
            false => f.opt_usize(name, limits::EXPERTS)?.or(default),
        })
    };
    let groups = if v3 {
        Some(GroupRouting {
            n_group: group("n_group", Some(8))?.unwrap_or(1),
            topk_group: group("topk_group", Some(4))?.unwrap_or(1),
            group_score: GroupScore::SumTop2,
        })
    } else {
        match f.opt_str("topk_method")?.unwrap_or("greedy") {
            "greedy" => None,
            "group_limited_greedy" => Some(GroupRouting {
                n_group: group("n_group", None)?
                    .ok_or_else(|| Error::config("n_group", "group_limited_greedy needs it"))?,
                topk_group: group("topk_group", None)?
                    .ok_or_else(|| Error::config("topk_group", "group_limited_greedy needs it"))?,
                group_score: GroupScore::Max,
            }),
            other => {
                return Err(Error::config(
                    "topk_method",
                    format!("unknown routing {other:?} (supported: greedy, group_limited_greedy)"),
                ))
            }
        }
    };
    let moe = MoeSpec {
        // V2's router never renormalises, whatever `norm_topk_prob` says.
        norm_topk_prob: v3 && f.opt_bool("norm_topk_prob")?.unwrap_or(true),
        shared_expert: (shared > 0).then_some(SharedExpert {
            intermediate_size: inter * shared,
            gated: false,
        }),
        scoring: if v3 {
            RouterScoring::Sigmoid
        } else {
            RouterScoring::Softmax
        },
        groups,
        correction_bias: v3,
        routed_scaling_factor: f
            .opt_f64("routed_scaling_factor", -1e6..=1e6)?
            .unwrap_or(if v3 { 2.5 } else { 1.0 }),
        ..MoeSpec::new(num_experts, top_k, inter)
    };
    moe.validate()?;
    spec.moe = Some(moe);
    Ok(spec)
}

/// YaRN's `0.1 * mscale_all_dim * ln(factor) + 1` when the rotary embedding is scaled and
/// sets `mscale_all_dim` (transformers' `yarn_apply_mscale`): the score scale is multiplied
/// by its square.
fn mscale_all_dim(f: &Fields<'_>) -> Result<Option<f64>> {
    let params = match f.raw("rope_parameters").or_else(|| f.raw("rope_scaling")) {
        Some(Value::Object(p)) => p,
        _ => return Ok(None),
    };
    let kind = params
        .get("rope_type")
        .or_else(|| params.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let m = params
        .get("mscale_all_dim")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let factor = params.get("factor").and_then(Value::as_f64).unwrap_or(1.0);
    if kind == "default" || m == 0.0 {
        return Ok(None);
    }
    if !(m.is_finite() && factor.is_finite()) {
        return Err(Error::config(
            "rope_parameters.mscale_all_dim",
            "must be a finite number",
        ));
    }
    Ok(Some(if factor <= 1.0 {
        1.0
    } else {
        0.1 * m * factor.ln() + 1.0
    }))
}
