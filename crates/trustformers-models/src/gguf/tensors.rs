//! GGUF tensor names -> the names the model asks for (the decoder's LLaMA-style names,
//! BERT's own for encoders), and the transforms the converter applied that loading undoes
//! (llama.cpp's Q/K permutation, fused and stacked projections).

use super::GgufHyperparams;
use crate::registry::{Architecture, GgufDialect, GgufNorms, GgufQkLayout, GgufQkvLayout};
use serde_json::Value;
use std::sync::Arc;
use trustformers_core::gguf::{GgufFile, TensorPart};
use trustformers_core::weights::{GgufSource, Renamed};
use trustformers_core::{Error, Result};

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

/// No names to translate: families whose model asks for the GGUF names itself (see
/// [`crate::registry::GgufDialect::renamed`]: T5's `enc.blk.{i}` / `dec.blk.{i}`).
pub const NO_NAMES: GgufNames = GgufNames {
    global: &[],
    layers: "",
    block: &[],
};

/// llama.cpp's `mamba` architecture: `MambaForCausalLM`'s names. `ssm_a` holds `A` itself
/// (`-exp(A_log)`, which the model takes under the name `A`), `ssm_d` is `D`, both without
/// a suffix; `ssm_conv1d.weight` is squeezed to `[channels, kernel]`.
pub const MAMBA_NAMES: GgufNames = GgufNames {
    global: &[
        ("token_embd", "backbone.embeddings"),
        ("output_norm", "backbone.norm_f"),
        ("output", "lm_head"),
    ],
    layers: "backbone.layers",
    block: &[
        ("attn_norm", "norm"),
        ("ssm_in", "mixer.in_proj"),
        ("ssm_conv1d", "mixer.conv1d"),
        ("ssm_x", "mixer.x_proj"),
        ("ssm_dt", "mixer.dt_proj"),
        ("ssm_a", "mixer.A"),
        ("ssm_d", "mixer.D"),
        ("ssm_out", "mixer.out_proj"),
    ],
};

/// llama.cpp's `mamba2` architecture: Mamba's names, with `dt_bias` as `ssm_dt.bias`, the
/// gated norm as `ssm_norm`, `A` and `D` stored `[heads, 1]` and the norm's weight
/// `[groups, inner / groups]` (the model reads either shape).
pub const MAMBA2_NAMES: GgufNames = GgufNames {
    global: MAMBA_NAMES.global,
    layers: "backbone.layers",
    block: &[
        ("attn_norm", "norm"),
        ("ssm_in", "mixer.in_proj"),
        ("ssm_conv1d", "mixer.conv1d"),
        ("ssm_dt.bias", "mixer.dt_bias"),
        ("ssm_a", "mixer.A"),
        ("ssm_d", "mixer.D"),
        ("ssm_norm", "mixer.norm"),
        ("ssm_out", "mixer.out_proj"),
    ],
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
    /// Qwen2-MoE, Qwen3-MoE and Llama 4: the router, the stacked experts and the shared
    /// expert (with its gate), under `mlp`.
    pub const QWEN_MOE: &[(&str, &str)] = &[
        ("ffn_gate_inp", "mlp.gate"),
        ("ffn_gate_exps", "mlp.experts.{}.gate_proj"),
        ("ffn_up_exps", "mlp.experts.{}.up_proj"),
        ("ffn_down_exps", "mlp.experts.{}.down_proj"),
        ("ffn_gate_inp_shexp", "mlp.shared_expert_gate"),
        ("ffn_gate_shexp", "mlp.shared_expert.gate_proj"),
        ("ffn_up_shexp", "mlp.shared_expert.up_proj"),
        ("ffn_down_shexp", "mlp.shared_expert.down_proj"),
    ];
    /// DeepSeek-V2/V3 (`deepseek2`): latent attention's projections (`kv_b_proj` whole in
    /// older files, its halves `k_b_proj` / `v_b_proj` in newer ones), the router with its
    /// correction bias, and the experts as Qwen-MoE's.
    pub const DEEPSEEK2: &[(&str, &str)] = &[
        ("attn_q_a", "self_attn.q_a_proj"),
        ("attn_q_a_norm", "self_attn.q_a_layernorm"),
        ("attn_q_b", "self_attn.q_b_proj"),
        ("attn_kv_a_mqa", "self_attn.kv_a_proj_with_mqa"),
        ("attn_kv_a_norm", "self_attn.kv_a_layernorm"),
        ("attn_kv_b", "self_attn.kv_b_proj"),
        ("attn_k_b", "self_attn.k_b_proj"),
        ("attn_v_b", "self_attn.v_b_proj"),
        ("exp_probs_b", "mlp.gate.e_score_correction"),
        ("ffn_gate_inp", "mlp.gate"),
        ("ffn_gate_exps", "mlp.experts.{}.gate_proj"),
        ("ffn_up_exps", "mlp.experts.{}.up_proj"),
        ("ffn_down_exps", "mlp.experts.{}.down_proj"),
        ("ffn_gate_shexp", "mlp.shared_experts.gate_proj"),
        ("ffn_up_shexp", "mlp.shared_experts.up_proj"),
        ("ffn_down_shexp", "mlp.shared_experts.down_proj"),
    ];
    /// gpt-oss: the sinks (stored with a `.weight` the HF tensor lacks), the router with its
    /// bias, the experts' gate and up halves apart (each with its bias), and the pre-MLP norm
    /// under its HF name.
    pub const GPT_OSS: &[(&str, &str)] = &[
        ("attn_sinks.weight", "self_attn.sinks"),
        ("post_attention_norm", "post_attention_layernorm"),
        ("ffn_gate_inp", "mlp.router"),
        ("ffn_gate_exps", "mlp.experts.gate_proj"),
        ("ffn_up_exps", "mlp.experts.up_proj"),
        ("ffn_down_exps", "mlp.experts.down_proj"),
    ];
    /// OLMo 2: norms after attention and after the MLP.
    pub const OLMO2: &[(&str, &str)] = &[
        ("post_attention_norm", "post_attention_layernorm"),
        ("post_ffw_norm", "post_feedforward_layernorm"),
    ];
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

/// The name template the model asks for of a GGUF tensor (see [`GgufDialect::block`]) for a
/// model with `config`, or `None` if the tables do not know it.
pub fn canonical_name(gguf_name: &str, dialect: &GgufDialect, config: &Value) -> Option<String> {
    if let Some(rest) = gguf_name.strip_prefix("blk.") {
        let (layer, name) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        let conditional = match dialect.block_if {
            Some((flag, table)) if config.get(flag) == Some(&Value::Bool(true)) => table,
            _ => &[],
        };
        let table = || {
            conditional
                .iter()
                .chain(dialect.block)
                .chain(dialect.names.block)
        };
        // An entry keyed by the whole name names a tensor with no suffix on the HF side
        // (gpt-oss's `attn_sinks.weight` -> `self_attn.sinks`), or on neither (Mamba's
        // `ssm_d` -> `mixer.D`).
        if let Some((_, hf)) = table().find(|(g, _)| *g == name) {
            return Some(format!("{}.{layer}.{hf}", dialect.names.layers));
        }
        let (tensor, suffix) = name.rsplit_once('.')?;
        let hf = match table().find(|(g, _)| *g == tensor) {
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
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
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
    use crate::registry;

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
