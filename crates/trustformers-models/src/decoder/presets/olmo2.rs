//! OLMo 2 (`modeling_olmo2.py`): LLaMA with norms after attention and after the MLP instead
//! of before them (`post_attention_layernorm`, `post_feedforward_layernorm`), and RMSNorms
//! over the whole q and k projections (all heads at once) before RoPE.

use crate::decoder::Residual;
use crate::gguf::arch_value;
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result};
use trustformers_nn::{NormKind, QkNorm};

/// llama.cpp writes OLMo 3 (sliding-window layers) as `olmo2` too: those files are refused
/// rather than run without their windows.
pub fn from_gguf(file: &GgufFile, _config: &mut Map<String, Value>) -> Result<()> {
    match arch_value(file, "attention.sliding_window") {
        Some((key, v)) if v.as_u64() != Some(0) => Err(Error::config(
            key,
            "OLMo 3's sliding-window attention is not supported",
        )),
        _ => Ok(()),
    }
}

/// Builds the spec from an `olmo2` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    let eps = f.opt_f64("rms_norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.norm = NormKind::Rms {
        eps,
        unit_offset: false,
    };
    spec.attention_bias(&f, false)?;
    spec.attention.qk_norm = Some(QkNorm::RmsWhole { eps });
    spec.residual = Residual::PostNorms;
    Ok(spec)
}
