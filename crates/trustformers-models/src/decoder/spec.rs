//! The typed spec that drives [`super::DecoderModel`], and the config fields every
//! LLaMA-family preset shares.

use crate::hf_config::{self, limits, Dropouts};
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result};
use trustformers_nn::{
    Activation, AttentionSpec, LatentAttentionSpec, MoeSpec, NormKind, QkvLayout, RopeSpec,
};

/// How a layer adds attention and MLP to the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// `x = x + attn(ln1(x)); x = x + mlp(ln2(x))` (LLaMA).
    Sequential,
    /// `x = x + attn(ln1(x)) + mlp(ln1(x))`: one norm (GPT-J, StableLM, Phi).
    Parallel,
    /// `x = x + attn(ln1(x)) + mlp(ln2(x))`: two norms of the same input (GPT-NeoX).
    ParallelTwoNorms,
    /// Sandwich norms: `x = x + ln2(attn(ln1(x))); x = x + ln4(mlp(ln3(x)))`, the outputs
    /// normed before the residual add (`input_layernorm`, `post_attention_layernorm`,
    /// `pre_feedforward_layernorm`, `post_feedforward_layernorm`: Gemma 2 and 3).
    Sandwich,
    /// Norms after each sublayer only: `x = x + ln1(attn(x)); x = x + ln2(mlp(x))`
    /// (`post_attention_layernorm`, `post_feedforward_layernorm`: OLMo 2).
    PostNorms,
}

/// How the model knows where each token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// q and k are rotated by position (RoPE: `rope`, and `sliding_rope` for the
    /// sliding-window layers).
    Rotary,
    /// Learned absolute position embeddings (`embed_positions`, `[max_positions, hidden]`)
    /// are added to the token embeddings (GPT-2, GPT-Neo).
    Learned,
    /// ALiBi: a per-head linear bias on attention scores (Falcon-RW).
    Alibi,
}

/// Every knob of the decoder, with all defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub max_position_embeddings: usize,
    pub attention: AttentionSpec,
    /// Multi-head latent attention replaces `attention` in every layer (DeepSeek-V2/V3).
    pub latent_attention: Option<LatentAttentionSpec>,
    /// How positions enter the model.
    pub positions: Positions,
    /// With learned positions: the table row of position 0 (OPT's 2).
    pub learned_position_offset: usize,
    /// The rotary embedding, for [`Positions::Rotary`].
    pub rope: RopeSpec,
    /// Every norm of the model: RMSNorm (LLaMA; Gemma's scales by `1 + w`) or LayerNorm
    /// (GPT-2, StableLM, Phi).
    pub norm: NormKind,
    pub hidden_act: Activation,
    /// Bias on the MLP projections.
    pub mlp_bias: bool,
    /// The MLP's gate and up projections are one `gate_up_proj` (Phi-3).
    pub fused_gate_up: bool,
    /// A sparse mixture of experts replaces the MLP (Mixtral), in every layer but
    /// `dense_layers`.
    pub moe: Option<MoeSpec>,
    /// Layers that keep the dense MLP (`intermediate_size` wide) although `moe` is set
    /// (Qwen-MoE's `mlp_only_layers` and `decoder_sparse_step`).
    pub dense_layers: Vec<usize>,
    /// Layers without positions: no rotary on q and k (SmolLM3's `no_rope_layers` zeros,
    /// Cohere 2's global layers).
    pub nope_layers: Vec<usize>,
    /// The attention of `nope_layers` when it differs from `attention` (Llama 4: no q/k
    /// norm, temperature tuning).
    pub nope_attention: Option<AttentionSpec>,
    /// Layers whose queries see only keys in their own chunk of `attention_chunk_size`
    /// positions (Llama 4's `chunked_attention` layers).
    pub chunked_layers: Vec<usize>,
    pub attention_chunk_size: Option<usize>,
    /// Attention and MLP outputs are multiplied by this before the residual add (Granite's
    /// `residual_multiplier`).
    pub residual_scale: Option<f64>,
    /// The logits are multiplied by this (Cohere's `logit_scale`; Granite divides by
    /// `logits_scaling`).
    pub logit_scale: Option<f64>,
    /// Sliding attention window per layer (`None` = full causal attention).
    pub layer_windows: Vec<Option<usize>>,
    /// The output projection reuses the input embedding table.
    pub tie_word_embeddings: bool,
    /// The output projection has a bias (Phi).
    pub lm_head_bias: bool,
    /// Embeddings are multiplied by this (Gemma: `sqrt(hidden_size)`).
    pub embed_scale: Option<f64>,
    /// How attention and MLP are added to the residual stream.
    pub residual: Residual,
    /// The MLP is gated (`gate_proj`, `up_proj`, `down_proj`); otherwise plain
    /// `down(act(up(x)))` (GPT-NeoX, GPT-2, Phi).
    pub gated_mlp: bool,
    /// RoPE of the sliding-window layers when it differs from `rope` (Gemma 3's local base).
    pub sliding_rope: Option<RopeSpec>,
    /// `tanh` soft-capping of the final logits (Gemma 2).
    pub final_logit_softcapping: Option<f64>,
    /// The token whose embedding row never gets a gradient (`nn.Embedding(padding_idx=)`,
    /// `pad_token_id` in the LLaMA family; GPT-2, GPT-J, GPT-Neo(X) and Falcon have none).
    pub padding_idx: Option<u32>,
    /// Dropout in training (the LLaMA family has only `attention_dropout`).
    pub dropout: Dropouts,
    /// With a parallel residual, one dropout (`mlp_output`'s) on the sum of the attention
    /// and MLP outputs instead of one per branch (Falcon's `dropout_add`).
    pub dropout_branch_sum: bool,
}

impl DecoderSpec {
    /// Reads the fields shared by LLaMA, Mistral and Qwen configs. `default_head_dim`, when
    /// given, is used if the config has no `head_dim` (Qwen3 defaults to 128); otherwise
    /// `hidden_size / num_attention_heads`. Presets then set their own knobs.
    pub fn llama_like(f: &Fields<'_>, default_head_dim: Option<usize>) -> Result<Self> {
        let vocab_size = f.usize("vocab_size", limits::VOCAB)?;
        let hidden_size = f.usize("hidden_size", limits::HIDDEN)?;
        let intermediate_size = f.usize("intermediate_size", limits::INTERMEDIATE)?;
        let num_hidden_layers = f.usize("num_hidden_layers", limits::LAYERS)?;
        let num_heads = f.usize("num_attention_heads", limits::HEADS)?;
        let num_kv_heads = f
            .opt_usize("num_key_value_heads", limits::HEADS)?
            .unwrap_or(num_heads);
        if num_heads % num_kv_heads != 0 {
            return Err(Error::config(
                "num_key_value_heads",
                format!("{num_kv_heads} does not divide num_attention_heads {num_heads}"),
            ));
        }
        let head_dim = match (f.opt_usize("head_dim", limits::HEAD_DIM)?, default_head_dim) {
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) => {
                if hidden_size % num_heads != 0 {
                    return Err(Error::config(
                        "num_attention_heads",
                        format!("{num_heads} does not divide hidden_size {hidden_size}"),
                    ));
                }
                hidden_size / num_heads
            }
        };
        let max_position_embeddings = f
            .opt_usize("max_position_embeddings", limits::POSITIONS)?
            .unwrap_or(2048);
        let rope = hf_config::rope_spec(f, head_dim, max_position_embeddings)?;
        let rms_norm_eps = f.opt_f64("rms_norm_eps", 0.0..=1.0)?.unwrap_or(1e-6);
        let hidden_act = Activation::from_hf(f.opt_str("hidden_act")?.unwrap_or("silu"))?;
        Ok(Self {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            max_position_embeddings,
            attention: AttentionSpec {
                hidden_size,
                num_heads,
                num_kv_heads,
                head_dim,
                qkv_bias: false,
                o_bias: false,
                qk_norm: None,
                scale: None,
                softcap: None,
                qkv: QkvLayout::Separate,
                sinks: false,
                temperature_tuning: None,
            },
            latent_attention: None,
            positions: Positions::Rotary,
            learned_position_offset: 0,
            rope,
            norm: NormKind::Rms {
                eps: rms_norm_eps,
                unit_offset: false,
            },
            hidden_act,
            mlp_bias: false,
            fused_gate_up: false,
            moe: None,
            dense_layers: Vec::new(),
            nope_layers: Vec::new(),
            nope_attention: None,
            chunked_layers: Vec::new(),
            attention_chunk_size: None,
            residual_scale: None,
            logit_scale: None,
            layer_windows: vec![None; num_hidden_layers],
            tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            lm_head_bias: false,
            embed_scale: None,
            residual: Residual::Sequential,
            gated_mlp: true,
            sliding_rope: None,
            final_logit_softcapping: None,
            padding_idx: crate::encoder::pad_token_id(f)?.filter(|&p| (p as usize) < vocab_size),
            dropout: Dropouts {
                attention: hf_config::dropout(f, &["attention_dropout"], 0.0)?,
                ..Dropouts::default()
            },
            dropout_branch_sum: false,
        })
    }

    /// `attention_bias` (default `default`): biases on the q, k, v and output projections.
    pub fn attention_bias(&mut self, f: &Fields<'_>, default: bool) -> Result<()> {
        let bias = f.opt_bool("attention_bias")?.unwrap_or(default);
        self.attention.qkv_bias = bias;
        self.attention.o_bias = bias;
        Ok(())
    }

    /// Sliding windows from `layer_types`, or else every `pattern`-th layer global and the
    /// others sliding (`sliding_window_pattern`, default `default_pattern`): Gemma 3's and
    /// Cohere 2's rule.
    pub fn pattern_windows(
        &mut self,
        f: &Fields<'_>,
        window: usize,
        default_pattern: usize,
    ) -> Result<()> {
        let n = self.num_hidden_layers;
        self.layer_windows = match hf_config::layer_types_windows(f, n, Some(window))? {
            Some(w) => w,
            None => {
                let pattern = f
                    .opt_usize("sliding_window_pattern", limits::LAYERS)?
                    .unwrap_or(default_pattern)
                    .max(1);
                (0..n)
                    .map(|i| ((i + 1) % pattern != 0).then_some(window))
                    .collect()
            }
        };
        Ok(())
    }

    /// The `sliding_window` field, ignoring a null.
    pub fn sliding_window(f: &Fields<'_>) -> Result<Option<usize>> {
        f.opt_usize("sliding_window", limits::POSITIONS)
    }

    /// The Qwen rule: `layer_types` when present; otherwise, with `use_sliding_window`,
    /// layers from `max_window_layers` on slide.
    pub fn qwen_windows(&mut self, f: &Fields<'_>) -> Result<()> {
        let use_sliding = f.opt_bool("use_sliding_window")?.unwrap_or(false);
        let window = if use_sliding {
            Self::sliding_window(f)?.or(Some(4096))
        } else {
            None
        };
        let n = self.num_hidden_layers;
        self.layer_windows = match hf_config::layer_types_windows(f, n, window)? {
            Some(w) => w,
            None => {
                let first = f
                    .opt_usize("max_window_layers", limits::LAYERS)?
                    .unwrap_or(28);
                (0..n).map(|i| window.filter(|_| i >= first)).collect()
            }
        };
        Ok(())
    }
}
