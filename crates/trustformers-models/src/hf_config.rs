//! Normalising transformers config.json fields into typed specs, once. Handles configs written
//! by transformers 4 (`rope_theta` + `rope_scaling`) and 5 (`rope_parameters`) alike.

use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result};
use trustformers_nn::{RopeScaling, RopeSpec};

/// Upper bounds that keep a hostile config from asking for absurd allocations.
pub mod limits {
    pub const VOCAB: usize = 1 << 22;
    pub const HIDDEN: usize = 1 << 16;
    pub const INTERMEDIATE: usize = 1 << 20;
    pub const LAYERS: usize = 1 << 10;
    pub const HEADS: usize = 1 << 10;
    pub const HEAD_DIM: usize = 1 << 11;
    pub const POSITIONS: usize = 1 << 24;
    pub const EXPERTS: usize = 1 << 10;
}

/// A token id field (`pad_token_id`, `decoder_start_token_id`), which may be 0; null or
/// absent is `None`.
pub fn token_id(f: &Fields<'_>, field: &str) -> Result<Option<u32>> {
    match f.raw(field) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&p| p < limits::VOCAB as u64)
            .map(|p| Some(p as u32))
            .ok_or_else(|| Error::config(field, format!("must be a token id, got {v}"))),
    }
}

/// Where a model applies dropout in training and with what probability: transformers'
/// config fields, with each family's defaults, read by the presets. Inference ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Dropouts {
    /// On the embeddings (`embd_pdrop`; `hidden_dropout_prob` in BERT).
    pub embedding: f64,
    /// On the attention probabilities (`attention_dropout`, `attn_pdrop`,
    /// `attention_probs_dropout_prob`).
    pub attention: f64,
    /// On the attention block's output before it joins the residual (`resid_pdrop`,
    /// `hidden_dropout`; `hidden_dropout_prob` in BERT).
    pub attention_output: f64,
    /// On the MLP's output before it joins the residual.
    pub mlp_output: f64,
    /// On the MLP's activations, before its output projection (`activation_dropout`;
    /// ModernBERT's `mlp_dropout`).
    pub mlp_activation: f64,
}

/// A dropout probability: the first of `names` the config sets (a null counts as unset),
/// else `default`.
pub fn dropout(f: &Fields<'_>, names: &[&str], default: f64) -> Result<f64> {
    for name in names {
        if let Some(p) = f.opt_f64(name, 0.0..=1.0)? {
            return Ok(p);
        }
    }
    Ok(default)
}

/// transformers' default `rope_theta` for the LLaMA family.
pub const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// Reads the RoPE settings: `rope_parameters` (transformers 5) or `rope_theta` +
/// `rope_scaling` (transformers 4).
pub fn rope_spec(
    f: &Fields<'_>,
    head_dim: usize,
    max_position_embeddings: usize,
) -> Result<RopeSpec> {
    let (params, prefix) = match (f.raw("rope_parameters"), f.raw("rope_scaling")) {
        (Some(p), _) => (Some(p), "rope_parameters."),
        (None, Some(s)) => (Some(s), "rope_scaling."),
        (None, None) => (None, ""),
    };
    let theta = f
        .opt_f64("rope_theta", 1.0..=1e12)?
        .unwrap_or(DEFAULT_ROPE_THETA);
    rope_from_params(f, params, prefix, theta, head_dim, max_position_embeddings)
}

/// Reads one RoPE parameter set (`params`, reported under `prefix`), with `default_theta`
/// when it names no `rope_theta`. Fields missing from `params` fall back to the top-level
/// config `f`, as transformers 4 stored them there.
pub fn rope_from_params(
    f: &Fields<'_>,
    params: Option<&Value>,
    prefix: &str,
    default_theta: f64,
    head_dim: usize,
    max_position_embeddings: usize,
) -> Result<RopeSpec> {
    if params.is_some_and(|p| !p.is_object()) {
        return Err(Error::config(
            prefix.trim_end_matches('.'),
            "must be an object",
        ));
    }
    let empty = Value::Object(Default::default());
    let p = Fields::new(params.unwrap_or(&empty), prefix)?;
    let theta = p
        .opt_f64("rope_theta", 1.0..=1e12)?
        .unwrap_or(default_theta);
    let partial = match p.opt_f64("partial_rotary_factor", 0.0..=1.0)? {
        Some(x) => x,
        None => f
            .opt_f64("partial_rotary_factor", 0.0..=1.0)?
            .unwrap_or(1.0),
    };
    let rotary_dim = (head_dim as f64 * partial) as usize;
    let rope_type = match p.opt_str("rope_type")? {
        Some(t) => t,
        None => p.opt_str("type")?.unwrap_or("default"),
    };
    let factor = || {
        p.opt_f64("factor", 1e-3..=1e6)?
            .ok_or_else(|| Error::config(format!("{prefix}factor"), "is required"))
    };
    let original_max = || -> Result<usize> {
        Ok(
            p.opt_usize("original_max_position_embeddings", limits::POSITIONS)?
                .or(f.opt_usize("original_max_position_embeddings", limits::POSITIONS)?)
                .unwrap_or(max_position_embeddings),
        )
    };
    let scaling = match rope_type {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear { factor: factor()? },
        "dynamic" => RopeScaling::Dynamic {
            factor: factor()?,
            max_position_embeddings,
        },
        "yarn" => {
            let original = original_max()?;
            let factor = match p.opt_f64("factor", 1e-3..=1e6)? {
                Some(x) => x,
                None => max_position_embeddings as f64 / original as f64,
            };
            let mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let attention_factor = match p.opt_f64("attention_factor", 0.0..=1e3)? {
                Some(a) => a,
                None => {
                    let m = p.opt_f64("mscale", 0.0..=1e3)?.filter(|&x| x != 0.0);
                    let m_all = p.opt_f64("mscale_all_dim", 0.0..=1e3)?.filter(|&x| x != 0.0);
                    match (m, m_all) {
                        (Some(m), Some(m_all)) => mscale(factor, m) / mscale(factor, m_all),
                        _ => mscale(factor, 1.0),
                    }
                }
            };
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                beta_fast: p.opt_f64("beta_fast", 1e-6..=1e6)?.unwrap_or(32.0),
                beta_slow: p.opt_f64("beta_slow", 1e-6..=1e6)?.unwrap_or(1.0),
                attention_factor,
                truncate: p.opt_bool("truncate")?.unwrap_or(true),
            }
        }
        "longrope" | "su" => {
            let original = original_max()?;
            let factor = match p.opt_f64("factor", 1e-3..=1e6)? {
                Some(x) => x,
                None => max_position_embeddings as f64 / original as f64,
            };
            let attention_factor = match p.opt_f64("attention_factor", 0.0..=1e3)? {
                Some(a) => a,
                None if factor <= 1.0 => 1.0,
                None => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
            };
            let factors = |name: &str| -> Result<Vec<f64>> {
                let field = format!("{prefix}{name}");
                p.raw(name)
                    .and_then(Value::as_array)
                    .ok_or_else(|| Error::config(&field, "must be a list of numbers"))?
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .ok_or_else(|| Error::config(&field, "must be a list of numbers"))
                    })
                    .collect()
            };
            RopeScaling::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                original_max_position_embeddings: original,
                attention_factor,
            }
        }
        "llama3" => RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: p
                .opt_f64("low_freq_factor", 1e-6..=1e6)?
                .ok_or_else(|| Error::config(format!("{prefix}low_freq_factor"), "is required"))?,
            high_freq_factor: p
                .opt_f64("high_freq_factor", 1e-6..=1e6)?
                .ok_or_else(|| Error::config(format!("{prefix}high_freq_factor"), "is required"))?,
            original_max_position_embeddings: original_max()?,
        },
        other => {
            return Err(Error::config(
                format!("{prefix}rope_type"),
                format!("unsupported RoPE type `{other}` (supported: default, linear, dynamic, yarn, longrope, llama3)"),
            ))
        }
    };
    if let RopeScaling::Llama3 {
        low_freq_factor,
        high_freq_factor,
        ..
    } = scaling
    {
        if low_freq_factor >= high_freq_factor {
            return Err(Error::config(
                format!("{prefix}low_freq_factor"),
                "must be smaller than high_freq_factor",
            ));
        }
    }
    Ok(RopeSpec {
        theta,
        rotary_dim,
        scaling,
        interleaved: false,
    })
}

/// A list of layer indices (`mlp_only_layers`, `moe_layers`), `None` when absent or null.
pub fn layer_indices(f: &Fields<'_>, name: &str) -> Result<Option<Vec<usize>>> {
    let Some(v) = f.raw(name) else {
        return Ok(None);
    };
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_u64().map(|x| x as usize))
                .collect::<Option<Vec<_>>>()
        })
        .map(Some)
        .ok_or_else(|| Error::config(name, "must be a list of layer indices"))
}

/// Per-layer sliding windows from `layer_types` (`"sliding_attention"` / `"full_attention"`),
/// or `None` when the config has no `layer_types`.
pub fn layer_types_windows(
    f: &Fields<'_>,
    num_layers: usize,
    window: Option<usize>,
) -> Result<Option<Vec<Option<usize>>>> {
    let Some(types) = f.raw("layer_types") else {
        return Ok(None);
    };
    let types = types
        .as_array()
        .ok_or_else(|| Error::config("layer_types", "must be a list of strings"))?;
    if types.len() != num_layers {
        return Err(Error::config(
            "layer_types",
            format!("has {} entries for {num_layers} layers", types.len()),
        ));
    }
    types
        .iter()
        .map(|t| match t.as_str() {
            Some("full_attention") => Ok(None),
            Some("sliding_attention") => window.map(Some).ok_or_else(|| {
                Error::config("sliding_window", "is required by sliding_attention layers")
            }),
            _ => Err(Error::config(
                "layer_types",
                format!(
                    "unsupported layer type {t} (supported: full_attention, sliding_attention)"
                ),
            )),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}
