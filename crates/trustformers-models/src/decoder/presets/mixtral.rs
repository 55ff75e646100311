//! Mixtral (`modeling_mixtral.py`, `MixtralForCausalLM`): Mistral with a sparse mixture of
//! experts in place of the MLP: `num_local_experts` SwiGLU experts, `num_experts_per_tok` of
//! them per token, weights renormalised over the chosen ones.

use crate::hf_config::limits;
use crate::DecoderSpec;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::Result;
use trustformers_nn::MoeSpec;

/// Builds the spec from a `mixtral` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let window = DecoderSpec::sliding_window(&f)?;
    spec.layer_windows = vec![window; spec.num_hidden_layers];
    spec.moe = Some(MoeSpec {
        norm_topk_prob: true,
        ..MoeSpec::new(
            f.opt_usize("num_local_experts", limits::EXPERTS)?
                .unwrap_or(8),
            f.opt_usize("num_experts_per_tok", limits::EXPERTS)?
                .unwrap_or(2),
            spec.intermediate_size,
        )
    });
    Ok(spec)
}
