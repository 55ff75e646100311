//! Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B; `modeling_qwen2_moe.py`): Qwen2's attention (q/k/v
//! biases) with a mixture of `num_experts` experts of width `moe_intermediate_size`, top-k
//! routing without renormalisation (`norm_topk_prob`, default off), and a shared expert of
//! width `shared_expert_intermediate_size` scaled by a sigmoid gate. Layers listed in
//! `mlp_only_layers`, and those not on the `decoder_sparse_step` grid, keep a dense MLP.

use crate::gguf::{copy_metadata, has_block_tensor};
use crate::hf_config::{self, limits};
use crate::DecoderSpec;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result};
use trustformers_nn::{MoeSpec, SharedExpert};

/// The config fields of llama.cpp's `qwen2moe` and `qwen3moe` files beyond the common ones:
/// the experts' widths, the q/k/v biases its tensors show, and the routing its graphs use
/// (`qwen2moe` keeps the top-k softmax weights as they are, `qwen3moe` renormalises them).
/// Every layer of these files is a mixture-of-experts layer.
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    copy_metadata(
        file,
        config,
        &[
            ("expert_feed_forward_length", "moe_intermediate_size"),
            (
                "expert_shared_feed_forward_length",
                "shared_expert_intermediate_size",
            ),
        ],
    )?;
    let qwen3 = config.get("model_type").and_then(Value::as_str) == Some("qwen3_moe");
    config.insert("norm_topk_prob".into(), Value::from(qwen3));
    config.insert(
        "qkv_bias".into(),
        Value::from(has_block_tensor(file, "attn_q.bias")),
    );
    Ok(())
}

/// Builds the spec from a `qwen2_moe` config.json.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = DecoderSpec::llama_like(&f, None)?;
    spec.attention.qkv_bias = f.opt_bool("qkv_bias")?.unwrap_or(true);
    // transformers 5's rule when the config has no `layer_types`: with `use_sliding_window`,
    // the even-numbered layers below `max_window_layers` slide.
    let n = spec.num_hidden_layers;
    let window = f
        .opt_bool("use_sliding_window")?
        .unwrap_or(false)
        .then(|| DecoderSpec::sliding_window(&f))
        .transpose()?
        .map(|w| w.unwrap_or(4096));
    spec.layer_windows = match hf_config::layer_types_windows(&f, n, window)? {
        Some(w) => w,
        None => {
            let below = f
                .opt_usize("max_window_layers", limits::LAYERS)?
                .unwrap_or(28);
            (0..n)
                .map(|i| window.filter(|_| (i + 1) % 2 == 1 && i < below))
                .collect()
        }
    };
    let shared = f
        .opt_usize("shared_expert_intermediate_size", limits::INTERMEDIATE)?
        .unwrap_or(5632);
    qwen_moe(
        &f,
        &mut spec,
        MoeDefaults {
            experts: 60,
            top_k: 4,
            intermediate: 1408,
        },
        Some(SharedExpert {
            intermediate_size: shared,
            gated: true,
        }),
    )?;
    Ok(spec)
}

/// transformers' defaults of the Qwen-MoE expert fields.
pub(crate) struct MoeDefaults {
    pub experts: usize,
    pub top_k: usize,
    pub intermediate: usize,
}

/// The experts of Qwen2-MoE and Qwen3-MoE: `num_experts` (or `num_local_experts`), `num_experts_per_tok`,
/// `norm_topk_prob`, `moe_intermediate_size`; `mlp_only_layers` and `decoder_sparse_step`
/// say which layers keep the dense MLP.
pub(crate) fn qwen_moe(
    f: &Fields<'_>,
    spec: &mut DecoderSpec,
    defaults: MoeDefaults,
    shared_expert: Option<SharedExpert>,
) -> Result<()> {
    // transformers 5 saves Qwen3-MoE's count as `num_local_experts` (`num_experts` is an
    // alias of it there).
    let num_experts = match f.opt_usize("num_experts", limits::EXPERTS)? {
        Some(n) => n,
        None => f
            .opt_usize("num_local_experts", limits::EXPERTS)?
            .unwrap_or(defaults.experts),
    };
    let n = spec.num_hidden_layers;
    if num_experts == 0 {
        // transformers builds dense layers everywhere.
        return Ok(());
    }
    let step = f
        .opt_usize("decoder_sparse_step", limits::LAYERS)?
        .unwrap_or(1);
    if step == 0 {
        return Err(Error::config(
            "decoder_sparse_step",
            "must be at least 1, got 0",
        ));
    }
    let mlp_only = hf_config::layer_indices(f, "mlp_only_layers")?.unwrap_or_default();
    spec.dense_layers = (0..n)
        .filter(|i| mlp_only.contains(i) || (i + 1) % step != 0)
        .collect();
    let moe = MoeSpec {
        norm_topk_prob: f.opt_bool("norm_topk_prob")?.unwrap_or(false),
        shared_expert,
        ..MoeSpec::new(
            num_experts,
            f.opt_usize("num_experts_per_tok", limits::EXPERTS)?
                .unwrap_or(defaults.top_k),
            f.opt_usize("moe_intermediate_size", limits::INTERMEDIATE)?
                .unwrap_or(defaults.intermediate),
        )
    };
    moe.validate()?;
    spec.moe = Some(moe);
    Ok(())
}
