//! The hyperparameters llama.cpp writes for every architecture, and the config.json keys
//! each family reads them into.

use serde_json::{Map, Number, Value};
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result};

/// The hyperparameters llama.cpp writes under `{arch}.` for every architecture, read with
/// their types (a count that is not an unsigned integer, or an epsilon that is not a
/// finite number, is an error that names the key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufHyperparams {
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
    pub feed_forward_length: Option<u64>,
    pub block_count: Option<u64>,
    pub head_count: Option<u64>,
    pub head_count_kv: Option<u64>,
    /// The head dimension (`attention.key_length`).
    pub key_length: Option<u64>,
    /// `attention.sliding_window`; 0 means none (Phi-3).
    pub sliding_window: Option<u64>,
    pub vocab_size: Option<u64>,
    pub expert_count: Option<u64>,
    pub expert_used_count: Option<u64>,
    /// `attention.layer_norm_rms_epsilon`.
    pub rms_norm_eps: Option<f64>,
    /// `attention.layer_norm_epsilon`.
    pub layer_norm_eps: Option<f64>,
    /// `rope.freq_base`.
    pub rope_theta: Option<f64>,
    pub final_logit_softcapping: Option<f64>,
    pub attn_logit_softcapping: Option<f64>,
    pub use_parallel_residual: Option<bool>,
    /// Rotated dimensions per head (`rope.dimension_count`).
    pub rope_dimension_count: Option<u64>,
    /// `rope.scaling.type` (`linear`, `yarn`, `none`, ...).
    pub rope_scaling_type: Option<String>,
    pub rope_scaling_factor: Option<f64>,
    pub rope_scaling_original_context_length: Option<u64>,
    pub rope_scaling_attn_factor: Option<f64>,
}

impl GgufHyperparams {
    /// Reads the `{arch}.*` hyperparameters of `file`.
    pub fn read(file: &GgufFile, arch: &str) -> Result<Self> {
        let get = |key: &str| {
            let full = format!("{arch}.{key}");
            file.get(&full).map(|v| (full, v))
        };
        let count = |key: &str| -> Result<Option<u64>> {
            get(key)
                .map(|(full, v)| {
                    v.as_u64().ok_or_else(|| {
                        Error::config(full, format!("must be an unsigned integer, got {v:?}"))
                    })
                })
                .transpose()
        };
        let float = |key: &str| -> Result<Option<f64>> {
            get(key)
                .map(|(full, v)| {
                    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                        Error::config(full, format!("must be a finite number, got {v:?}"))
                    })
                })
                .transpose()
        };
        let flag = |key: &str| -> Result<Option<bool>> {
            get(key)
                .map(|(full, v)| {
                    v.as_bool()
                        .ok_or_else(|| Error::config(full, format!("must be a boolean, got {v:?}")))
                })
                .transpose()
        };
        let text = |key: &str| -> Result<Option<String>> {
            get(key)
                .map(|(full, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::config(full, format!("must be a string, got {v:?}")))
                })
                .transpose()
        };
        Ok(Self {
            context_length: count("context_length")?,
            embedding_length: count("embedding_length")?,
            feed_forward_length: count("feed_forward_length")?,
            block_count: count("block_count")?,
            head_count: count("attention.head_count")?,
            head_count_kv: count("attention.head_count_kv")?,
            key_length: count("attention.key_length")?,
            sliding_window: count("attention.sliding_window")?,
            vocab_size: count("vocab_size")?,
            expert_count: count("expert_count")?,
            expert_used_count: count("expert_used_count")?,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon")?,
            layer_norm_eps: float("attention.layer_norm_epsilon")?,
            rope_theta: float("rope.freq_base")?,
            final_logit_softcapping: float("final_logit_softcapping")?,
            attn_logit_softcapping: float("attn_logit_softcapping")?,
            use_parallel_residual: flag("use_parallel_residual")?,
            rope_dimension_count: count("rope.dimension_count")?,
            rope_scaling_type: text("rope.scaling.type")?,
            rope_scaling_factor: float("rope.scaling.factor")?,
            rope_scaling_original_context_length: count("rope.scaling.original_context_length")?,
            rope_scaling_attn_factor: float("rope.scaling.attn_factor")?,
        })
    }

    /// The head dimension: `attention.key_length`, else the width over the head count.
    pub fn head_dim(&self) -> Option<u64> {
        self.key_length.or_else(|| {
            self.embedding_length?
                .checked_div(self.head_count?)
                .filter(|&d| d > 0)
        })
    }

    /// The config.json fields these give, under the family's own key names.
    pub(super) fn write(&self, keys: &ConfigKeys, config: &mut Map<String, Value>) {
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                config.insert(key.into(), v);
            }
        };
        let float = |x: Option<f64>| x.and_then(Number::from_f64).map(Value::Number);
        put(keys.context_length, self.context_length.map(Value::from));
        put(
            keys.embedding_length,
            self.embedding_length.map(Value::from),
        );
        put(
            keys.feed_forward_length,
            self.feed_forward_length.map(Value::from),
        );
        put(keys.block_count, self.block_count.map(Value::from));
        put(keys.head_count, self.head_count.map(Value::from));
        put(keys.head_count_kv, self.head_count_kv.map(Value::from));
        put(keys.layer_norm_eps, float(self.layer_norm_eps));
        put("rms_norm_eps", float(self.rms_norm_eps));
        put("head_dim", self.key_length.map(Value::from));
        // Phi-3 writes a window of 0 for "none".
        put(
            "sliding_window",
            self.sliding_window.filter(|&w| w > 0).map(Value::from),
        );
        put("rope_theta", float(self.rope_theta));
        put("vocab_size", self.vocab_size.map(Value::from));
        put(
            "final_logit_softcapping",
            float(self.final_logit_softcapping),
        );
        put("attn_logit_softcapping", float(self.attn_logit_softcapping));
        put(
            "use_parallel_residual",
            self.use_parallel_residual.map(Value::from),
        );
        put("num_local_experts", self.expert_count.map(Value::from));
        put(
            "num_experts_per_tok",
            self.expert_used_count.map(Value::from),
        );
    }
}

/// The config.json key names a family uses for the common hyperparameters.
#[derive(Debug)]
pub struct ConfigKeys {
    pub context_length: &'static str,
    pub embedding_length: &'static str,
    pub feed_forward_length: &'static str,
    pub block_count: &'static str,
    pub head_count: &'static str,
    pub head_count_kv: &'static str,
    pub layer_norm_eps: &'static str,
}

/// The names of LLaMA's config.json, which most families share.
pub const HF_KEYS: ConfigKeys = ConfigKeys {
    context_length: "max_position_embeddings",
    embedding_length: "hidden_size",
    feed_forward_length: "intermediate_size",
    block_count: "num_hidden_layers",
    head_count: "num_attention_heads",
    head_count_kv: "num_key_value_heads",
    layer_norm_eps: "layer_norm_eps",
};

/// GPT-2's and GPT-J's names (`n_embd`, `n_head`, ...).
pub const GPT2_KEYS: ConfigKeys = ConfigKeys {
    context_length: "n_positions",
    embedding_length: "n_embd",
    feed_forward_length: "n_inner",
    block_count: "n_layer",
    head_count: "n_head",
    head_count_kv: "num_key_value_heads",
    layer_norm_eps: "layer_norm_epsilon",
};

/// Falcon's names (`num_kv_heads`, `ffn_hidden_size`, `layer_norm_epsilon`).
pub const FALCON_KEYS: ConfigKeys = ConfigKeys {
    feed_forward_length: "ffn_hidden_size",
    head_count_kv: "num_kv_heads",
    layer_norm_eps: "layer_norm_epsilon",
    ..HF_KEYS
};
