//! DeepSeek-V2 and V3 (`modeling_deepseek_v2.py`, `modeling_deepseek_v3.py`): LLaMA's layout
//! with multi-head latent attention (low-rank queries and key/value latents, a rotary part
//! of `qk_rope_head_dim` per head, rotated in interleaved pairs; the score scale grows with
//! YaRN's `mscale_all_dim`), dense MLPs in the first `first_k_dense_replace` layers, and a
//! mixture of `n_routed_experts` experts plus `n_shared_experts` always-on experts elsewhere.
//! V2 routes by softmax scores (`topk_method` `greedy`, or `group_limited_greedy` over the
//! groups' best scores); V3 by sigmoid scores with `e_score_correction_bias`, always group
//! limited (groups scored by their two best), renormalised when `norm_topk_prob`. Both scale
//! the routed weights by `routed_scaling_factor`.

use crate::gguf::{arch_value, copy_metadata};
use crate::hf_config::{self, limits};
use crate::DecoderSpec;
use serde_json::{Map, Number, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result};
use trustformers_nn::{
    GroupRouting, GroupScore, LatentAttentionSpec, MoeSpec, RouterScoring, SharedExpert,
};

/// llama.cpp's `deepseek2` files, which hold V2 and V3 alike: V3 when the experts are gated
/// by sigmoid (`expert_gating_func` 2), V2 otherwise, as llama.cpp reads them. llama.cpp
/// stores latent attention as multi-query attention over the latent (`head_count_kv` 1,
/// `key_length` the rank plus the rotary part): the per-head widths come from the `_mla`
/// keys and the rotary part from `rope.dimension_count`. YaRN's `mscale_all_dim` is
/// `rope.scaling.yarn_log_multiplier` over 0.1 (DeepSeek's configs set `mscale` to the same).
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    copy_metadata(
        file,
        config,
        &[
            ("leading_dense_block_count", "first_k_dense_replace"),
            ("expert_feed_forward_length", "moe_intermediate_size"),
            ("expert_count", "n_routed_experts"),
            ("expert_shared_count", "n_shared_experts"),
            ("expert_weights_scale", "routed_scaling_factor"),
            ("expert_group_count", "n_group"),
            ("expert_group_used_count", "topk_group"),
            ("attention.q_lora_rank", "q_lora_rank"),
            ("attention.kv_lora_rank", "kv_lora_rank"),
            ("attention.value_length_mla", "v_head_dim"),
            ("rope.dimension_count", "qk_rope_head_dim"),
        ],
    )?;
    let count = |key: &str| -> Result<Option<u64>> {
        arch_value(file, key)
            .map(|(name, v)| {
                v.as_u64()
                    .ok_or_else(|| Error::config(name, format!("must be a count, got {v:?}")))
            })
            .transpose()
    };
    let v3 = match count("expert_gating_func")? {
        None | Some(1) => false,
        Some(2) => true,
        Some(other) => {
            return Err(Error::config(
                "expert_gating_func",
                format!("gating {other} is not DeepSeek's (1 softmax, 2 sigmoid)"),
            ))
        }
    };
    if v3 {
        config.insert("model_type".into(), Value::from("deepseek_v3"));
    }
    if !config.contains_key("q_lora_rank") {
        config.insert("q_lora_rank".into(), Value::Null);
    }
    let rope = count("rope.dimension_count")?;
    match (count("attention.key_length_mla")?, rope) {
        (Some(k), Some(r)) if k >= r => {
            config.insert("qk_nope_head_dim".into(), Value::from(k - r));
        }
        (Some(k), _) => {
            return Err(Error::config(
                "attention.key_length_mla",
                format!("{k} is narrower than the rotary part ({rope:?})"),
            ))
        }
        (None, _) => {
            return Err(Error::config(
                "attention.key_length_mla",
                "missing: files converted before llama.cpp split kv_b_proj are not supported",
            ))
        }
    }
    // The multi-query view's fields do not describe the model's heads.
    for field in ["head_dim", "rotary_dim", "partial_rotary_factor"] {
        config.remove(field);
    }
    if let Some(heads) = config.get("num_attention_heads").cloned() {
        config.insert("num_key_value_heads".into(), heads);
    }
    let norm =
        arch_value(file, "expert_weights_norm").is_some_and(|(_, v)| v.as_bool() == Some(true));
    config.insert("norm_topk_prob".into(), Value::from(norm));
    let groups = config.get("n_group").and_then(Value::as_u64).unwrap_or(1);
    if !v3 {
        let method = if groups > 1 {
            "group_limited_greedy"
        } else {
            "greedy"
        };
        config.insert("topk_method".into(), Value::from(method));
    }
    let log_mul = arch_value(file, "rope.scaling.yarn_log_multiplier");
    if let (Some((name, v)), Some(Value::Object(scaling))) =
        (log_mul, config.get_mut("rope_scaling"))
    {
        let m = v
            .as_f64()
            .and_then(|m| Number::from_f64(m / 0.1))
            .ok_or_else(|| Error::config(name, format!("must be a finite number, got {v:?}")))?;
        scaling.insert("mscale_all_dim".into(), Value::Number(m.clone()));
        scaling.insert("mscale".into(), Value::Number(m));
    }
    Ok(())
}

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
