//! LoRA as PEFT defines it (`peft/tuners/lora`): `LoraConfig` with PEFT's field names, which
//! modules it targets, the adapters' names in `adapter_model.safetensors`, and
//! `adapter_config.json`. The layer side (an adapter wrapping a linear layer) is in
//! trustformers-nn; the loader ([`crate::Weights`]) hands adapters to the layers it builds.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// PEFT's `LoraConfig` fields that change the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// The adapters' rank.
    pub r: usize,
    pub lora_alpha: f64,
    /// Dropout on the adapter's input (training only; not applied yet, see the issue).
    pub lora_dropout: f64,
    /// Module names (the last components of their paths, `q_proj`) or full paths.
    pub target_modules: Vec<String>,
    /// `none` only: biases stay frozen.
    pub bias: String,
    /// Scale by `lora_alpha / sqrt(r)` instead of `lora_alpha / r`.
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: Vec::new(),
            bias: "none".into(),
            use_rslora: false,
        }
    }
}

impl LoraConfig {
    /// Refuses settings PEFT refuses or that are not supported, naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(Error::config("r", "the LoRA rank must be at least 1"));
        }
        if self.target_modules.is_empty() {
            return Err(Error::config("target_modules", "name at least one module"));
        }
        if self.bias != "none" {
            return Err(Error::config(
                "bias",
                format!("`{}`: only `none` is supported", self.bias),
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(Error::config("lora_dropout", "must lie in [0, 1)"));
        }
        Ok(())
    }

    /// The factor on `B A x`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Whether the module at `path` gets an adapter: its path equals a target or ends with
    /// `.{target}`, as PEFT matches a list of names.
    pub fn targets(&self, path: &str) -> bool {
        self.target_modules
            .iter()
            .any(|t| path == t || path.ends_with(&format!(".{t}")))
    }

    /// `adapter_config.json` as PEFT writes it.
    pub fn to_peft_json(&self, task_type: &str, base_model: &str) -> Value {
        json!({
            "peft_type": "LORA",
            "task_type": task_type,
            "base_model_name_or_path": base_model,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": self.target_modules,
            "bias": self.bias,
            "use_rslora": self.use_rslora,
            "fan_in_fan_out": false,
            "modules_to_save": null,
            "init_lora_weights": true,
            "inference_mode": true,
        })
    }

    /// Reads `adapter_config.json` (PEFT's); other PEFT types and unsupported options are
    /// errors naming the field.
    pub fn from_peft_json(path: &std::path::Path, v: &Value) -> Result<Self> {
        let bad = |field: &str, reason: String| Error::Json {
            path: path.to_path_buf(),
            reason: format!("`{field}`: {reason}"),
        };
        match v.get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            other => return Err(bad("peft_type", format!("{other:?} is not LORA"))),
        }
        if v.get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
            return Err(bad(
                "fan_in_fan_out",
                "Conv1D adapters are not supported".into(),
            ));
        }
        if v.get("modules_to_save").is_some_and(|m| !m.is_null()) {
            return Err(bad("modules_to_save", "is not supported yet".into()));
        }
        for field in ["rank_pattern", "alpha_pattern"] {
            if v.get(field)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(field, "per-module ranks are not supported yet".into()));
            }
        }
        let target_modules = match v.get("target_modules") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("target_modules", "must hold names".into()))
                })
                .collect::<Result<_>>()?,
            _ => return Err(bad("target_modules", "missing".into())),
        };
        let num = |field: &str| v.get(field).and_then(Value::as_f64);
        let config = Self {
            r: v.get("r")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("r", "missing or not a count".into()))? as usize,
            lora_alpha: num("lora_alpha").unwrap_or(8.0),
            lora_dropout: num("lora_dropout").unwrap_or(0.0),
            target_modules,
            bias: v
                .get("bias")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string(),
            use_rslora: v
                .get("use_rslora")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        config
            .validate()
            .map_err(|e| bad("config", e.to_string()))?;
        Ok(config)
    }
}

/// The name PEFT saves the `part` (`lora_A` or `lora_B`) of the adapter on `module` under.
pub fn peft_name(module: &str, part: &str) -> String {
    format!("base_model.model.{module}.{part}.weight")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_match_as_peft_matches_names() {
        let c = LoraConfig {
            target_modules: vec!["q_proj".into(), "v_proj".into()],
            ..Default::default()
        };
        assert!(c.targets("model.layers.0.self_attn.q_proj"));
        assert!(!c.targets("model.layers.0.self_attn.qq_proj"));
        assert!(!c.targets("model.layers.0.self_attn.o_proj"));
        assert_eq!(c.scale(), 1.0);
    }

    #[test]
    fn peft_config_round_trips_and_refuses_other_types() {
        let c = LoraConfig {
            r: 4,
            lora_alpha: 16.0,
            target_modules: vec!["q_proj".into()],
            ..Default::default()
        };
        let p = std::path::Path::new("adapter_config.json");
        let back = LoraConfig::from_peft_json(p, &c.to_peft_json("CAUSAL_LM", "base")).unwrap();
        assert_eq!(back, c);
        let err = LoraConfig::from_peft_json(p, &json!({"peft_type": "IA3"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("peft_type"), "{err}");
    }
}
