//! Phi (phi-1, phi-1.5, phi-2; `modeling_phi.py`, `PhiForCausalLM`): one LayerNorm feeding a
//! parallel attention + MLP block (`x + attn(ln(x)) + mlp(ln(x))`), biases everywhere
//! (the head included), partial rotary (0.5 by default), a plain GeLU MLP (`fc1`, `fc2`), and
//! an optional LayerNorm of q and k heads (`qk_layernorm`).

use super::names::{plain, rename, with_partial_rotary_default};
use crate::decoder::Residual;
use crate::hf_config::{dropout, Dropouts};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_core::StoredName;
use trustformers_nn::{Activation, NormKind, QkNorm};

/// Builds the spec from a `phi` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let config = with_partial_rotary_default(config, Value::from(0.5));
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let eps = f.opt_f64("layer_norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    spec.hidden_act = Activation::from_hf(f.opt_str("hidden_act")?.unwrap_or("gelu_new"))?;
    spec.attention.qkv_bias = true;
    spec.attention.o_bias = true;
    if f.opt_bool("qk_layernorm")?.unwrap_or(false) {
        spec.attention.qk_norm = Some(QkNorm::LayerShared { eps });
    }
    spec.gated_mlp = false;
    spec.mlp_bias = true;
    spec.residual = Residual::Parallel;
    spec.lm_head_bias = true;
    let resid = dropout(&f, &["resid_pdrop"], 0.0)?;
    spec.dropout = Dropouts {
        embedding: dropout(&f, &["embd_pdrop"], 0.0)?,
        attention_output: resid,
        mlp_output: resid,
        ..spec.dropout
    };
    Ok(spec)
}

/// LLaMA-style canonical names -> Phi checkpoint names.
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    plain(stored(canonical))
}

fn stored(canonical: &str) -> Option<String> {
    rename(
        canonical,
        &[("norm.", "model.final_layernorm.")],
        "model.layers",
        &[
            ("self_attn.o_proj.", "self_attn.dense."),
            ("mlp.up_proj.", "mlp.fc1."),
            ("mlp.down_proj.", "mlp.fc2."),
        ],
    )
}
