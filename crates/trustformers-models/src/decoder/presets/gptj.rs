//! GPT-J (`modeling_gptj.py`, `GPTJForCausalLM`): one LayerNorm feeding a parallel attention +
//! MLP block, rotary on the first `rotary_dim` dimensions with adjacent pairs rotated
//! (`rotate_every_two`), no attention biases, a plain gelu_new MLP with biases and a biased
//! head. Config fields use GPT-2 names (`n_embd`, `n_head`, `n_layer`, `n_positions`,
//! `n_inner`).

use super::names::{gpt2_style_names, plain, rename};
use crate::decoder::Residual;
use crate::hf_config::{dropout, Dropouts};
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::StoredName;
use trustformers_core::{Error, Result};
use trustformers_nn::{Activation, NormKind};

/// Builds the spec from a `gptj` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let config = gpt2_style_names(config)?;
    let f = Fields::new(&config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    // Its embedding has no padding_idx.
    spec.padding_idx = None;
    let head_dim = spec.attention.head_dim;
    let rotary_dim = match f.opt_usize("rotary_dim", head_dim)? {
        Some(d) => d,
        None => head_dim,
    };
    if rotary_dim % 2 != 0 || rotary_dim == 0 {
        return Err(Error::config(
            "rotary_dim",
            format!("must be even and positive, got {rotary_dim}"),
        ));
    }
    spec.rope.rotary_dim = rotary_dim;
    spec.rope.interleaved = true;
    let eps = f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Layer { eps, bias: true };
    spec.hidden_act = Activation::from_hf(f.opt_str("activation_function")?.unwrap_or("gelu_new"))?;
    spec.gated_mlp = false;
    spec.mlp_bias = true;
    spec.residual = Residual::Parallel;
    spec.lm_head_bias = true;
    let resid = dropout(&f, &["resid_pdrop"], 0.0)?;
    spec.dropout = Dropouts {
        embedding: dropout(&f, &["embd_pdrop"], 0.0)?,
        attention: dropout(&f, &["attn_pdrop"], 0.0)?,
        attention_output: resid,
        mlp_output: resid,
        mlp_activation: 0.0,
    };
    Ok(spec)
}

/// LLaMA-style canonical names -> GPT-J checkpoint names.
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    plain(stored(canonical))
}

fn stored(canonical: &str) -> Option<String> {
    rename(
        canonical,
        &[
            ("embed_tokens.", "transformer.wte."),
            ("norm.", "transformer.ln_f."),
        ],
        "transformer.h",
        &[
            ("input_layernorm.", "ln_1."),
            ("self_attn.o_proj.", "attn.out_proj."),
            ("self_attn.", "attn."),
            ("mlp.up_proj.", "mlp.fc_in."),
            ("mlp.down_proj.", "mlp.fc_out."),
        ],
    )
}
