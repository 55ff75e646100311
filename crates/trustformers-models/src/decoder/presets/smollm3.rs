//! SmolLM3 (`modeling_smollm3.py`): LLaMA where some layers have no positions at all
//! (`no_rope_layers[i] == 0`; by default every `no_rope_layer_interval`-th layer), and, with
//! `use_sliding_window`, those layers attend through a sliding window (`layer_types`).

use super::llama;
use crate::hf_config::{self, limits};
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result};

/// llama.cpp's `smollm3` files: every fourth layer without rotary (its fixed step), no
/// sliding window.
pub fn from_gguf(_file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    config.insert("no_rope_layer_interval".into(), Value::from(4));
    config.insert("use_sliding_window".into(), Value::from(false));
    Ok(())
}

/// Builds the spec from a `smollm3` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let mut spec = llama::spec(config)?;
    let f = Fields::new(config, "")?;
    let n = spec.num_hidden_layers;
    let has_rope: Vec<bool> = match f.raw("no_rope_layers") {
        None | Some(Value::Null) => {
            let interval = f
                .opt_usize("no_rope_layer_interval", limits::LAYERS)?
                .unwrap_or(4);
            if interval == 0 {
                return Err(Error::config(
                    "no_rope_layer_interval",
                    "must be at least 1",
                ));
            }
            (0..n).map(|i| (i + 1) % interval != 0).collect()
        }
        Some(v) => {
            let flags = v
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x != 0)).collect())
                .ok_or_else(|| Error::config("no_rope_layers", "must be a list of 0 and 1"))?;
            let flags: Vec<bool> = flags;
            if flags.len() != n {
                return Err(Error::config(
                    "no_rope_layers",
                    format!("has {} entries for {n} layers", flags.len()),
                ));
            }
            flags
        }
    };
    spec.nope_layers = (0..n).filter(|&i| !has_rope[i]).collect();
    let window = match f.opt_bool("use_sliding_window")?.unwrap_or(false) {
        true => DecoderSpec::sliding_window(&f)?,
        false => None,
    };
    spec.layer_windows = match hf_config::layer_types_windows(&f, n, window)? {
        // transformers applies a window only with `use_sliding_window`.
        Some(w) if window.is_some() => w,
        Some(_) => vec![None; n],
        None => (0..n).map(|i| window.filter(|_| !has_rope[i])).collect(),
    };
    Ok(spec)
}
