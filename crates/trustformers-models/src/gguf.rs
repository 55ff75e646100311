//! The tables that map GGUF metadata to HF config fields and GGUF tensor names to the names
//! the model asks for (the decoder's LLaMA-style names, BERT's own names for encoders), so
//! the same model code runs safetensors checkpoints and GGUF files. What differs per
//! architecture lives in its [`GgufDialect`].

use crate::registry::{
    self, Architecture, GgufDialect, GgufNorms, GgufQkLayout, GgufQkvLayout, ModelKind,
};
use candle_core::quantized::GgmlDType;
use serde_json::{Map, Number, Value};
use std::sync::Arc;
use trustformers_core::gguf::{GgufFile, GgufValue, TensorPart};
use trustformers_core::weights::{GgufSource, Renamed};
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
    fn write(&self, keys: &ConfigKeys, config: &mut Map<String, Value>) {
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

/// Where one family's GGUF tensors go: top-level names, the prefix of layer `i`'s tensors
/// (`{layers}.{i}.`), and the names inside a block (after `blk.{i}.`). A [`GgufDialect`]
/// overrides block entries.
#[derive(Debug)]
pub struct GgufNames {
    pub global: &'static [(&'static str, &'static str)],
    pub layers: &'static str,
    pub block: &'static [(&'static str, &'static str)],
}

/// The decoder family: LLaMA's names, which every decoder preset asks for.
pub const DECODER_NAMES: GgufNames = GgufNames {
    global: GLOBAL_TENSORS,
    layers: "model.layers",
    block: BLOCK_TENSORS,
};

/// llama.cpp's `bert` architecture: `BertModel`'s names (the converter drops the pooler and
/// the pre-training heads).
pub const BERT_NAMES: GgufNames = GgufNames {
    global: &[
        ("token_embd", "embeddings.word_embeddings"),
        ("token_types", "embeddings.token_type_embeddings"),
        ("position_embd", "embeddings.position_embeddings"),
        ("token_embd_norm", "embeddings.LayerNorm"),
    ],
    layers: "encoder.layer",
    block: &[
        ("attn_q", "attention.self.query"),
        ("attn_k", "attention.self.key"),
        ("attn_v", "attention.self.value"),
        ("attn_output", "attention.output.dense"),
        ("attn_output_norm", "attention.output.LayerNorm"),
        ("ffn_up", "intermediate.dense"),
        ("ffn_down", "output.dense"),
        ("layer_output_norm", "output.LayerNorm"),
    ],
};

/// llama.cpp's `nomic-bert` architecture: the names of Nomic's original code, which
/// transformers saves too.
pub const NOMIC_BERT_NAMES: GgufNames = GgufNames {
    global: &[
        ("token_embd", "embeddings.word_embeddings"),
        ("token_types", "embeddings.token_type_embeddings"),
        ("token_embd_norm", "emb_ln"),
    ],
    layers: "encoder.layers",
    block: &[
        ("attn_qkv", "attn.Wqkv"),
        ("attn_output", "attn.out_proj"),
        ("attn_output_norm", "norm1"),
        ("ffn_up", "mlp.fc11"),
        ("ffn_gate", "mlp.fc12"),
        ("ffn_down", "mlp.fc2"),
        ("layer_output_norm", "norm2"),
    ],
};

/// GGUF tensor name (per block: after `blk.{i}.`) -> the decoder's name (after
/// `model.layers.{i}.`), for every decoder architecture.
const BLOCK_TENSORS: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_norm_2", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_qkv", "self_attn.qkv_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    // Mixtral, as llama.cpp writes it: the router and the experts stacked in one tensor.
    ("ffn_gate_inp", "block_sparse_moe.gate"),
    ("ffn_gate_exps", "block_sparse_moe.experts.{}.w1"),
    ("ffn_up_exps", "block_sparse_moe.experts.{}.w3"),
    ("ffn_down_exps", "block_sparse_moe.experts.{}.w2"),
];

/// Top-level GGUF tensor name -> the decoder's name.
const GLOBAL_TENSORS: &[(&str, &str)] = &[
    ("token_embd", "model.embed_tokens"),
    ("position_embd", "model.embed_positions"),
    ("output_norm", "model.norm"),
    ("output", "lm_head"),
];

/// Tensors read into the config (RoPE frequency factors), not weights.
const CONFIG_TENSORS: &[&str] = &[
    "rope_factors_long.weight",
    "rope_factors_short.weight",
    "rope_freqs.weight",
];

/// Per-architecture block tensor names ([`GgufDialect::block`]).
pub mod names {
    /// Gemma 2 and 3: sandwich norms around attention and MLP.
    pub const SANDWICH: &[(&str, &str)] = &[
        ("post_attention_norm", "post_attention_layernorm"),
        ("ffn_norm", "pre_feedforward_layernorm"),
        ("post_ffw_norm", "post_feedforward_layernorm"),
    ];
    /// Falcon 40B/180B: `attn_norm` is the MLP's norm (`ln_mlp`), `attn_norm_2` attention's
    /// (`ln_attn`).
    pub const FALCON_NEW: &[(&str, &str)] = &[
        ("attn_norm", "post_attention_layernorm"),
        ("attn_norm_2", "input_layernorm"),
    ];
    /// Phi-2 files converted from the original checkpoints fuse q, k and v (`Wqkv`).
    pub const PHI2: &[(&str, &str)] = &[("attn_qkv", "self_attn.{q,k,v}_proj")];
    /// Phi-3 keeps its fused gate and up projection in `ffn_up`.
    pub const PHI3: &[(&str, &str)] = &[("ffn_up", "mlp.gate_up_proj")];
    /// StableLM's per-head q/k LayerNorms, stacked into one `[heads, head_dim]` tensor.
    pub const STABLELM: &[(&str, &str)] = &[
        ("attn_q_norm", "self_attn.q_layernorm.norms.{}"),
        ("attn_k_norm", "self_attn.k_layernorm.norms.{}"),
    ];
}

/// Whether the file has block 0's tensor `name` (e.g. `attn_q.bias`): GGUF has no flags for
/// optional parts, their tensors say it.
pub fn has_block_tensor(file: &GgufFile, name: &str) -> bool {
    file.tensor_info(&format!("blk.0.{name}")).is_some()
}

/// The values of a small f32 vector tensor, as a JSON list.
fn f32_list(file: &GgufFile, name: &str) -> Result<Value> {
    let bad = |reason: String| Error::UnsupportedTensor {
        name: name.to_string(),
        reason,
    };
    let info = file.tensor_info(name).ok_or_else(|| Error::MissingTensor {
        name: name.to_string(),
    })?;
    if info.dtype != GgmlDType::F32 || info.shape.len() != 1 {
        return Err(bad(format!(
            "expected a 1-D f32 tensor, got {:?} {:?}",
            info.dtype, info.shape
        )));
    }
    file.tensor_bytes(info)
        .chunks_exact(4)
        .map(|b| {
            let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            Number::from_f64(f64::from(x))
                .map(Value::Number)
                .ok_or_else(|| bad(format!("holds {x}")))
        })
        .collect()
}

/// `rope_scaling` from the metadata, or from the frequency-factor tensors llama.cpp writes
/// instead (Phi-3's LongRoPE factors; LLaMA 3.1's `rope_freqs`, one factor for short and
/// long sequences alike).
fn rope_scaling(file: &GgufFile, hp: &GgufHyperparams) -> Result<Option<Value>> {
    let float = |x: Option<f64>| x.and_then(Number::from_f64).map(Value::Number);
    let mut scaling = Map::new();
    let (long, short) = ("rope_factors_long.weight", "rope_factors_short.weight");
    if file.tensor_info(long).is_some() || file.tensor_info(short).is_some() {
        scaling.insert("rope_type".into(), Value::from("longrope"));
        scaling.insert("long_factor".into(), f32_list(file, long)?);
        scaling.insert("short_factor".into(), f32_list(file, short)?);
    } else if file.tensor_info("rope_freqs.weight").is_some() {
        let factors = f32_list(file, "rope_freqs.weight")?;
        scaling.insert("rope_type".into(), Value::from("longrope"));
        scaling.insert("long_factor".into(), factors.clone());
        scaling.insert("short_factor".into(), factors);
        scaling.insert("attention_factor".into(), Value::from(1.0));
    } else {
        match hp.rope_scaling_type.as_deref() {
            Some(kind) if kind != "none" => {
                scaling.insert("rope_type".into(), Value::from(kind));
            }
            _ => return Ok(None),
        }
        if let Some(f) = float(hp.rope_scaling_factor) {
            scaling.insert("factor".into(), f);
        }
    }
    if let Some(n) = hp.rope_scaling_original_context_length {
        scaling.insert("original_max_position_embeddings".into(), Value::from(n));
    }
    if let Some(a) = float(hp.rope_scaling_attn_factor) {
        scaling.entry("attention_factor").or_insert(a);
    }
    Ok(Some(Value::Object(scaling)))
}

/// Builds the HF config.json equivalent of a GGUF file's metadata.
pub fn config_from_gguf(file: &GgufFile) -> Result<(&'static Architecture, Value)> {
    let name = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .ok_or_else(|| Error::config("general.architecture", "missing from the GGUF metadata"))?;
    let experts = file
        .get(&format!("{name}.expert_count"))
        .and_then(GgufValue::as_u64)
        .is_some_and(|n| n > 0);
    let arch = registry::by_gguf_architecture(name, experts)?;
    let mut config = Map::new();
    config.insert("model_type".into(), Value::from(arch.model_type));
    let keys = arch.gguf.map_or(&HF_KEYS, |d| d.keys);
    let hp = GgufHyperparams::read(file, name)?;
    hp.write(keys, &mut config);
    if !config.contains_key("vocab_size") {
        let from_tokens = match file.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(tokens)) => Some(tokens.len()),
            _ => None,
        };
        let from_embedding = file
            .tensor_info("token_embd.weight")
            .and_then(|t| t.shape.first().copied());
        if let Some(n) = from_embedding.or(from_tokens) {
            config.insert("vocab_size".into(), Value::from(n));
        }
    }
    if arch.kind() == ModelKind::Decoder {
        decoder_config(file, &hp, &mut config)?;
    }
    if let Some(hook) = arch.gguf.and_then(|g| g.config) {
        hook(file, &mut config)?;
    }
    Ok((arch, Value::Object(config)))
}

/// The decoder fields GGUF states by tensors or derived keys: rotary dimensions and scaling,
/// biases, tied embeddings.
fn decoder_config(
    file: &GgufFile,
    hp: &GgufHyperparams,
    config: &mut Map<String, Value>,
) -> Result<()> {
    if let Some(dims) = hp.rope_dimension_count {
        config.insert("rotary_dim".into(), Value::from(dims));
        if let Some(factor) = hp.head_dim().and_then(|d| partial_rotary_factor(d, dims)) {
            config.insert("partial_rotary_factor".into(), factor);
        }
    }
    if let Some(scaling) = rope_scaling(file, hp)? {
        config.insert("rope_scaling".into(), scaling);
    }
    let bias = has_block_tensor(file, "attn_q.bias") || has_block_tensor(file, "attn_qkv.bias");
    config.insert("attention_bias".into(), Value::from(bias));
    let mlp_bias = has_block_tensor(file, "ffn_up.bias");
    config.insert("mlp_bias".into(), Value::from(mlp_bias));
    let tied = file.tensor_info("output.weight").is_none();
    config.insert("tie_word_embeddings".into(), Value::from(tied));
    Ok(())
}

/// `dims / head_dim`, nudged up where the division rounds down so that transformers' rule
/// `int(head_dim * partial_rotary_factor)` gives `dims` back.
fn partial_rotary_factor(head_dim: u64, dims: u64) -> Option<Value> {
    if head_dim == 0 || dims > head_dim {
        return None;
    }
    let mut factor = dims as f64 / head_dim as f64;
    if ((head_dim as f64 * factor) as u64) < dims {
        // The next f64 up (factor is positive and finite here).
        factor = f64::from_bits(factor.to_bits() + 1);
    }
    Number::from_f64(factor).map(Value::Number)
}

/// The name template the model asks for of a GGUF tensor (see [`GgufDialect::block`]) for a
/// model with `config`, or `None` if the tables do not know it.
pub fn canonical_name(gguf_name: &str, dialect: &GgufDialect, config: &Value) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if let Some(rest) = stem.strip_prefix("blk.") {
        let (layer, tensor) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        let conditional = match dialect.block_if {
            Some((flag, table)) if config.get(flag) == Some(&Value::Bool(true)) => table,
            _ => &[],
        };
        let hf = match conditional
            .iter()
            .chain(dialect.block)
            .chain(dialect.names.block)
            .find(|(g, _)| *g == tensor)
        {
            Some((_, hf)) => (*hf).to_string(),
            // Mixtral files from before stacked experts: `ffn_gate.{e}` etc.
            None if dialect.experts => {
                let (kind, expert) = tensor.split_once('.')?;
                let expert: usize = expert.parse().ok()?;
                let w = match kind {
                    "ffn_gate" => "w1",
                    "ffn_down" => "w2",
                    "ffn_up" => "w3",
                    _ => return None,
                };
                format!("block_sparse_moe.experts.{expert}.{w}")
            }
            None => return None,
        };
        return Some(format!("{}.{layer}.{hf}.{suffix}", dialect.names.layers));
    }
    let hf = dialect.names.global.iter().find(|(g, _)| *g == stem)?.1;
    Some(format!("{hf}.{suffix}"))
}

/// Attention shape from the hyperparameters.
#[derive(Debug, Clone, Copy)]
struct Heads {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Heads {
    fn new(hp: &GgufHyperparams) -> Self {
        let size = |v: Option<u64>| v.map_or(0, |v| v as usize);
        let heads = size(hp.head_count);
        Self {
            heads,
            kv_heads: hp.head_count_kv.map_or(heads, |v| v as usize),
            head_dim: size(hp.head_dim()),
        }
    }
}

/// The HF tensors one GGUF tensor holds, with the parts and row orders that recover them.
fn expand(
    template: String,
    shape: &[usize],
    dialect: &GgufDialect,
    heads: Heads,
) -> Option<Vec<Renamed>> {
    if template.contains("{}") {
        let n = *shape.first()?;
        return Some(
            (0..n)
                .map(|i| Renamed {
                    name: template.replace("{}", &i.to_string()),
                    part: TensorPart::Index(i),
                    ..Default::default()
                })
                .collect(),
        );
    }
    if template.contains("{q,k,v}") {
        let q = heads.heads * heads.head_dim;
        let kv = heads.kv_heads * heads.head_dim;
        return Some(
            [("q", 0..q), ("k", q..q + kv), ("v", q + kv..q + 2 * kv)]
                .into_iter()
                .map(|(which, rows)| Renamed {
                    name: template.replace("{q,k,v}", which),
                    part: TensorPart::Rows(rows),
                    ..Default::default()
                })
                .collect(),
        );
    }
    let unit_offset = dialect.norms == GgufNorms::UnitOffset;
    let shift = if unit_offset && template.ends_with("norm.weight") {
        -1.0
    } else {
        0.0
    };
    let rows = *shape.first()?;
    let row_order = if template.contains("self_attn.qkv_proj.") {
        match dialect.qkv {
            GgufQkvLayout::Stacked if heads.kv_heads != 1 => {
                stacked_to_grouped_order(rows, heads.heads, heads.kv_heads, heads.head_dim)
            }
            _ => None,
        }
    } else if dialect.qk != GgufQkLayout::Interleaved {
        None
    } else if template.contains("self_attn.q_proj.") {
        unpermute_order(rows, heads.heads)
    } else if template.contains("self_attn.k_proj.") {
        unpermute_order(rows, heads.kv_heads)
    } else {
        None
    };
    Some(vec![Renamed {
        name: template,
        part: TensorPart::Whole,
        row_order,
        shift,
    }])
}

/// Row order that turns a stacked QKV projection (all q heads, all k heads, all v heads)
/// into the grouped one (per key/value head: its query heads, then its key, then its value).
/// `None` if `rows` does not fit the head counts.
fn stacked_to_grouped_order(
    rows: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
) -> Option<Vec<usize>> {
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) || rows != (heads + 2 * kv_heads) * head_dim
    {
        return None;
    }
    let per_group = heads / kv_heads;
    let (k0, v0) = (heads * head_dim, (heads + kv_heads) * head_dim);
    let mut order = Vec::with_capacity(rows);
    for g in 0..kv_heads {
        order.extend((g * per_group * head_dim)..((g + 1) * per_group * head_dim));
        order.extend(k0 + g * head_dim..k0 + (g + 1) * head_dim);
        order.extend(v0 + g * head_dim..v0 + (g + 1) * head_dim);
    }
    Some(order)
}

/// Row order that undoes llama.cpp's per-head Q/K permutation for `n_heads` heads:
/// HF row `h*d + j*d/2 + i` is GGUF row `h*d + 2*i + j`.
fn unpermute_order(rows: usize, n_heads: usize) -> Option<Vec<usize>> {
    if n_heads == 0 || !rows.is_multiple_of(n_heads) || !(rows / n_heads).is_multiple_of(2) {
        return None;
    }
    let d = rows / n_heads;
    let mut order = Vec::with_capacity(rows);
    for h in 0..n_heads {
        for j in 0..2 {
            for i in 0..d / 2 {
                order.push(h * d + 2 * i + j);
            }
        }
    }
    Some(order)
}

/// Exposes a GGUF file's tensors under canonical names, undoing the converter's
/// transforms. `config` is the one from [`config_from_gguf`].
pub fn gguf_source(file: Arc<GgufFile>, arch: &Architecture, config: &Value) -> Result<GgufSource> {
    let dialect = arch
        .gguf
        .ok_or_else(|| Error::InvalidInput(format!("`{}` has no GGUF dialect", arch.model_type)))?;
    let heads = Heads::new(&GgufHyperparams::read(&file, dialect.arch)?);
    GgufSource::new(file, |gguf_name, shape| {
        if CONFIG_TENSORS.contains(&gguf_name) {
            return Some(Vec::new());
        }
        let name = canonical_name(gguf_name, &dialect, config)?;
        expand(name, shape, &dialect, heads)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect(model_type: &str) -> GgufDialect {
        registry::by_model_type(model_type).unwrap().gguf.unwrap()
    }

    #[test]
    fn names_map_to_canonical() {
        let llama = dialect("llama");
        let none = Value::Null;
        let name = |n: &str, d: &GgufDialect| canonical_name(n, d, &none);
        assert_eq!(
            name("blk.3.attn_q.weight", &llama).as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(
            name("output.weight", &llama).as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(name("blk.x.attn_q.weight", &llama), None);
        assert_eq!(name("rope_freqs.weight", &llama), None);
        // The pre-MLP norm has a different name once the model has sandwich norms.
        assert_eq!(
            name("blk.0.ffn_norm.weight", &llama).as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        let gemma2 = dialect("gemma2");
        assert_eq!(
            name("blk.0.ffn_norm.weight", &gemma2).as_deref(),
            Some("model.layers.0.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            name("blk.0.post_attention_norm.weight", &gemma2).as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        // Phi-3's ffn_up is the fused gate and up projection.
        assert_eq!(
            name("blk.1.ffn_up.weight", &dialect("phi3")).as_deref(),
            Some("model.layers.1.mlp.gate_up_proj.weight")
        );
        // Falcon's norms swap roles in the new decoder architecture.
        let falcon = dialect("falcon");
        let new_arch = serde_json::json!({"new_decoder_architecture": true});
        assert_eq!(
            canonical_name("blk.0.attn_norm.weight", &falcon, &new_arch).as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            name("blk.0.attn_norm.weight", &falcon).as_deref(),
            Some("model.layers.0.input_layernorm.weight")
        );
        // Mixtral's experts, stacked or one by one.
        let mixtral = dialect("mixtral");
        assert_eq!(
            name("blk.0.ffn_up_exps.weight", &mixtral).as_deref(),
            Some("model.layers.0.block_sparse_moe.experts.{}.w3.weight")
        );
        assert_eq!(
            name("blk.0.ffn_down.5.weight", &mixtral).as_deref(),
            Some("model.layers.0.block_sparse_moe.experts.5.w2.weight")
        );
        assert_eq!(name("blk.0.ffn_down.5.weight", &llama), None);
        // BERT's own names, not the decoder's.
        let bert = dialect("bert");
        assert_eq!(
            name("blk.1.attn_output_norm.weight", &bert).as_deref(),
            Some("encoder.layer.1.attention.output.LayerNorm.weight")
        );
        assert_eq!(
            name("token_types.weight", &bert).as_deref(),
            Some("embeddings.token_type_embeddings.weight")
        );
        assert_eq!(name("blk.0.attn_norm.weight", &bert), None);
        assert_eq!(name("output_norm.weight", &bert), None);
    }

    #[test]
    fn splits_expand_to_parts() {
        let heads = Heads {
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
        };
        let stablelm = dialect("stablelm");
        let t = canonical_name("blk.0.attn_k_norm.weight", &stablelm, &Value::Null).unwrap();
        let parts = expand(t, &[2, 8], &stablelm, heads).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[1].name,
            "model.layers.0.self_attn.k_layernorm.norms.1.weight"
        );
        assert_eq!(parts[1].part, TensorPart::Index(1));
        let phi = dialect("phi");
        let t = canonical_name("blk.0.attn_qkv.bias", &phi, &Value::Null).unwrap();
        let parts = expand(t, &[64], &phi, heads).unwrap();
        let got: Vec<_> = parts
            .iter()
            .map(|r| (r.name.as_str(), r.part.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "model.layers.0.self_attn.q_proj.bias",
                    TensorPart::Rows(0..32)
                ),
                (
                    "model.layers.0.self_attn.k_proj.bias",
                    TensorPart::Rows(32..48)
                ),
                (
                    "model.layers.0.self_attn.v_proj.bias",
                    TensorPart::Rows(48..64)
                ),
            ]
        );
    }

    #[test]
    fn stacked_qkv_regroups_per_kv_head() {
        // 4 query heads in 2 groups, head_dim 1: stacked rows q0 q1 q2 q3 k0 k1 v0 v1.
        let order = stacked_to_grouped_order(8, 4, 2, 1).unwrap();
        // Grouped: q0 q1 k0 v0 | q2 q3 k1 v1.
        assert_eq!(order, [0, 1, 4, 6, 2, 3, 5, 7]);
        // One kv head: the layouts agree.
        let order = stacked_to_grouped_order(6, 4, 1, 1).unwrap();
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
        assert_eq!(stacked_to_grouped_order(7, 4, 2, 1), None);
    }

    #[test]
    fn partial_rotary_factor_round_trips() {
        for (head_dim, dims) in [(80u64, 32u64), (64, 16), (96, 24), (80, 24), (256, 256)] {
            let f = partial_rotary_factor(head_dim, dims)
                .unwrap()
                .as_f64()
                .unwrap();
            assert_eq!((head_dim as f64 * f) as u64, dims, "{head_dim} {dims}");
        }
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: reshape(n_head, 2, d/2).swapaxes(1, 2): gguf[h][i][j] = hf[h][j][i].
        let (heads, d) = (2, 4);
        let hf: Vec<usize> = (0..heads * d).collect();
        let mut gguf = vec![0; heads * d];
        for h in 0..heads {
            for i in 0..d / 2 {
                for j in 0..2 {
                    gguf[h * d + 2 * i + j] = hf[h * d + j * d / 2 + i];
                }
            }
        }
        let order = unpermute_order(heads * d, heads).unwrap();
        let back: Vec<usize> = order.iter().map(|&r| gguf[r]).collect();
        assert_eq!(back, hf);
    }
}
