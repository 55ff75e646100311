//! One config-driven pre-norm decoder for the LLaMA family (LLaMA, Mistral, Qwen2, Qwen3) and
//! its relatives with sandwich norms (Gemma 3). Mirrors
//! `transformers/models/llama/modeling_llama.py`; the presets state each model's diff.
//!
//! ```text
//! x = embed_tokens(ids) [* embed_scale]
//! for each layer:  x = x + self_attn(input_layernorm(x))
//!                  x = x + mlp(post_attention_layernorm(x))
//!   sandwich norms: x = x + post_attention_layernorm(self_attn(input_layernorm(x)))
//!                   x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))
//! logits = lm_head(norm(x)) [soft-capped]
//! ```

pub mod presets;
mod spec;

pub use spec::{DecoderSpec, Positions, Residual};

use crate::traits::{CausalLM, CausalLmOutput, ForwardOptions, RuntimeOptions};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::attention::{causal_mask, chunked_causal_mask};
use trustformers_nn::checkpoint;
use trustformers_nn::positions::alibi_mask;
use trustformers_nn::profile::{self, Part};
use trustformers_nn::{
    Attention, Cache, Dropout, Embedding, GatedMlp, KvCache, LatentAttention, Linear, Mlp, Norm,
    RotaryEmbedding, SparseMoe,
};

/// Checkpoint buffers transformers itself ignores when loading this family.
pub const IGNORED_TENSORS: &[&str] = &[
    "rotary_emb.inv_freq",
    // GPT-NeoX and GPT-J checkpoints saved by transformers 4 carry their causal-mask buffers.
    "attention.bias",
    "attention.masked_bias",
    "attn.bias",
    "attn.masked_bias",
];

struct DecoderLayer {
    /// `None` with norms after the sublayers only.
    input_layernorm: Option<Norm>,
    self_attn: SelfAttention,
    /// `None` with a parallel residual.
    post_attention_layernorm: Option<Norm>,
    /// Sandwich norms only.
    pre_feedforward_layernorm: Option<Norm>,
    post_feedforward_layernorm: Option<Norm>,
    mlp: FeedForward,
    residual: Residual,
    /// On the attention and MLP outputs before the residual add, in training.
    attn_dropout: Dropout,
    mlp_dropout: Dropout,
    dropout_branch_sum: bool,
    /// Multiplies the sublayers' outputs before the residual add.
    residual_scale: Option<f64>,
}

/// The attention of a layer.
enum SelfAttention {
    Standard(Attention),
    /// Multi-head latent attention (DeepSeek).
    Latent(LatentAttention),
}

/// Cos/sin of the rotary embedding for one call.
type Rotary<'a> = Option<(&'a RotaryEmbedding, &'a (Tensor, Tensor))>;

impl SelfAttention {
    fn forward(
        &self,
        xs: &Tensor,
        rotary: Rotary<'_>,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        match self {
            Self::Standard(a) => a.forward(xs, rotary, mask, cache, layer),
            Self::Latent(a) => a.forward(xs, rotary, mask, cache, layer),
        }
    }

    fn forward_rows(
        &self,
        xs: &Tensor,
        rotary: Rotary<'_>,
        masks: &[Option<Tensor>],
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        match self {
            Self::Standard(a) => a.forward_rows(xs, rotary, masks, caches, layer),
            Self::Latent(a) => a.forward_rows(xs, rotary, masks, caches, layer),
        }
    }

    fn is_quantized(&self) -> bool {
        match self {
            Self::Standard(a) => a.is_quantized(),
            Self::Latent(a) => a.is_quantized(),
        }
    }
}

/// The feed-forward half of a layer.
enum FeedForward {
    Dense(GatedMlp),
    Plain(Mlp),
    Moe(Box<SparseMoe>),
}

impl FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(mlp) => mlp.forward(xs),
            Self::Plain(mlp) => mlp.forward(xs),
            Self::Moe(moe) => moe.forward(xs),
        }
    }
}

impl DecoderLayer {
    /// Layer `index` of a model with `spec`, from `vb`.
    fn new(spec: &DecoderSpec, index: usize, vb: &Weights) -> Result<Self> {
        let h = spec.hidden_size;
        let norm = |name: &str| Norm::load(&vb.pp(name), h, spec.norm);
        let norm_if = |cond: bool, name: &str| cond.then(|| norm(name)).transpose();
        let (sandwich, post_norms) = (
            spec.residual == Residual::Sandwich,
            spec.residual == Residual::PostNorms,
        );
        let d = &spec.dropout;
        let mlp = match spec.moe {
            Some(moe) if !spec.dense_layers.contains(&index) => {
                FeedForward::Moe(Box::new(SparseMoe::load(vb, moe, h, spec.hidden_act)?))
            }
            _ if !spec.gated_mlp => FeedForward::Plain(Mlp::new(
                &vb.pp("mlp"),
                h,
                spec.intermediate_size,
                spec.mlp_bias,
                spec.hidden_act,
            )?),
            _ if spec.fused_gate_up => FeedForward::Dense(GatedMlp::fused(
                &vb.pp("mlp"),
                h,
                spec.intermediate_size,
                spec.mlp_bias,
                spec.hidden_act,
            )?),
            _ => FeedForward::Dense(GatedMlp::new(
                &vb.pp("mlp"),
                h,
                spec.intermediate_size,
                spec.mlp_bias,
                spec.hidden_act,
            )?),
        };
        Ok(Self {
            input_layernorm: norm_if(!post_norms, "input_layernorm")?,
            self_attn: {
                let dropout = Dropout::new(d.attention, "attention_dropout")?;
                match &spec.latent_attention {
                    Some(latent) => SelfAttention::Latent(
                        LatentAttention::new(latent, &vb.pp("self_attn"))?.with_dropout(dropout),
                    ),
                    None => {
                        let attention = match &spec.nope_attention {
                            Some(a) if spec.nope_layers.contains(&index) => a,
                            _ => &spec.attention,
                        };
                        SelfAttention::Standard(
                            Attention::new(attention, &vb.pp("self_attn"))?.with_dropout(dropout),
                        )
                    }
                }
            },
            attn_dropout: Dropout::new(d.attention_output, "resid_pdrop")?,
            mlp_dropout: Dropout::new(d.mlp_output, "resid_pdrop")?,
            dropout_branch_sum: spec.dropout_branch_sum,
            post_attention_layernorm: norm_if(
                spec.residual != Residual::Parallel,
                "post_attention_layernorm",
            )?,
            residual: spec.residual,
            pre_feedforward_layernorm: norm_if(sandwich, "pre_feedforward_layernorm")?,
            post_feedforward_layernorm: norm_if(
                sandwich || post_norms,
                "post_feedforward_layernorm",
            )?,
            mlp,
            residual_scale: spec.residual_scale,
        })
    }

    /// A sublayer's output as it joins the residual stream: scaled (Granite), then dropped
    /// out in training.
    fn branch(&self, xs: Tensor, dropout: Dropout) -> Result<Tensor> {
        let xs = match self.residual_scale {
            // transformers multiplies by the Python float: the weights' dtype.
            Some(scale) => xs.affine(scale, 0.0)?,
            None => xs,
        };
        dropout.forward(&xs)
    }

    /// The layer on `xs`, with `attend` running its attention on the normed input (over one
    /// shared cache, or a cache per row).
    fn forward(
        &self,
        xs: &Tensor,
        attend: impl FnOnce(&SelfAttention, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let normed = match &self.input_layernorm {
            Some(norm) => norm.forward(xs)?,
            None => xs.clone(),
        };
        let h = attend(&self.self_attn, &normed)?;
        // Parallel residuals: attention and MLP read the one normed input, or two norms of
        // the same input.
        let parallel = match (&self.post_attention_layernorm, self.residual) {
            (None, _) => Some(self.mlp.forward(&normed)?),
            (Some(norm), Residual::ParallelTwoNorms) => Some(self.mlp.forward(&norm.forward(xs)?)?),
            _ => None,
        };
        if let Some(m) = parallel {
            if self.dropout_branch_sum {
                return Ok((self.branch((m + h)?, self.mlp_dropout)? + xs)?);
            }
            let (h, m) = (
                self.branch(h, self.attn_dropout)?,
                self.branch(m, self.mlp_dropout)?,
            );
            return Ok(((m + h)? + xs)?);
        }
        let Some(post_attn) = &self.post_attention_layernorm else {
            return Err(Error::InvalidInput(
                "a sequential layer without its norm".into(),
            ));
        };
        match (
            &self.pre_feedforward_layernorm,
            &self.post_feedforward_layernorm,
        ) {
            (pre, Some(post)) => {
                // Sandwich norms, or (without the pre-norms) norms after the sublayers.
                let xs = (xs + self.branch(post_attn.forward(&h)?, self.attn_dropout)?)?;
                let input = match pre {
                    Some(pre) => pre.forward(&xs)?,
                    None => xs.clone(),
                };
                let h = post.forward(&self.mlp.forward(&input)?)?;
                Ok((xs + self.branch(h, self.mlp_dropout)?)?)
            }
            _ => {
                let xs = (xs + self.branch(h, self.attn_dropout)?)?;
                let h = self.mlp.forward(&post_attn.forward(&xs)?)?;
                Ok((xs + self.branch(h, self.mlp_dropout)?)?)
            }
        }
    }
}

/// The attention mask a layer uses: causal with an optional sliding window, or chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaskKey {
    Window(Option<usize>),
    Chunked(usize),
}

/// The base model: embeddings, layers, final norm (HF `LlamaModel`, prefix `model`).
pub struct DecoderModel {
    spec: DecoderSpec,
    embed_tokens: Embedding,
    /// Learned absolute positions (GPT-2, GPT-Neo).
    embed_positions: Option<Embedding>,
    /// Shared, so a checkpointed layer can be rerun in backward.
    layers: Vec<Arc<DecoderLayer>>,
    norm: Norm,
    rope: RotaryEmbedding,
    /// RoPE of the sliding-window layers, when it differs.
    sliding_rope: Option<RotaryEmbedding>,
    /// What [`Self::new_cache`] keeps keys and values as.
    kv_cache_dtype: DType,
    /// On the embeddings, in training.
    embed_dropout: Dropout,
}

/// Hidden states of the base model.
pub struct DecoderOutput {
    /// `[batch, seq, hidden]` after the final norm.
    pub last_hidden_state: Tensor,
    /// With `output_hidden_states`: the embeddings, then each layer's output, the last one
    /// after the final norm (transformers' `hidden_states` tuple), `num_layers + 1` tensors.
    pub hidden_states: Vec<Tensor>,
}

impl DecoderModel {
    /// Loads the base model under `vb` (the `model` prefix of a causal LM checkpoint).
    pub fn new(spec: &DecoderSpec, vb: &Weights) -> Result<Self> {
        let layers = (0..spec.num_hidden_layers)
            .map(|i| DecoderLayer::new(spec, i, &vb.pp("layers").pp(i)).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        // Quantized weights get llama.cpp's f16 cache: their outputs are approximate
        // already. Dense weights keep f32, so they give transformers' numbers.
        let kv_cache_dtype = if layers.iter().any(|l| l.self_attn.is_quantized()) {
            DType::F16
        } else {
            DType::F32
        };
        Ok(Self {
            spec: spec.clone(),
            embed_tokens: Embedding::new(
                &vb.pp("embed_tokens"),
                spec.vocab_size,
                spec.hidden_size,
            )?
            .with_padding_idx(spec.padding_idx),
            embed_positions: (spec.positions == Positions::Learned)
                .then(|| {
                    Embedding::new(
                        &vb.pp("embed_positions"),
                        spec.max_position_embeddings + spec.learned_position_offset,
                        spec.hidden_size,
                    )
                })
                .transpose()?,
            layers,
            norm: Norm::load(&vb.pp("norm"), spec.hidden_size, spec.norm)?,
            rope: RotaryEmbedding::new(&spec.rope)?,
            sliding_rope: spec
                .sliding_rope
                .as_ref()
                .map(RotaryEmbedding::new)
                .transpose()?,
            kv_cache_dtype,
            embed_dropout: Dropout::new(spec.dropout.embedding, "embd_pdrop")?,
        })
    }

    /// The spec this model was built from.
    pub fn spec(&self) -> &DecoderSpec {
        &self.spec
    }

    /// A KV cache sized for this model, keeping keys and values as
    /// [`Self::kv_cache_dtype`].
    pub fn new_cache(&self) -> KvCache {
        let layers = self.layers.len();
        // The dtype was checked when it was set.
        KvCache::with_dtype(layers, self.kv_cache_dtype).unwrap_or_else(|_| KvCache::new(layers))
    }

    /// What new caches keep keys and values as: f16 when the weights are quantized (as
    /// llama.cpp does), f32 otherwise.
    pub fn kv_cache_dtype(&self) -> DType {
        self.kv_cache_dtype
    }

    /// # Shapes
    /// `input_ids`, `positions`: `[batch, seq]` integers -> hidden states `[batch, seq, hidden]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut KvCache,
    ) -> Result<DecoderOutput> {
        let (batch, seq) = input_ids.dims2()?;
        if batch == 0 || seq == 0 {
            return Err(Error::InvalidInput(format!(
                "input_ids must hold at least one token, got shape [{batch}, {seq}]"
            )));
        }
        if positions.dims() != [batch, seq] {
            return Err(Error::InvalidInput(format!(
                "positions have shape {:?}, expected [{batch}, {seq}] like input_ids",
                positions.dims()
            )));
        }
        let xs = self.token_embeddings(input_ids)?;
        self.forward_embeds(&xs, positions, opts, cache)
    }

    /// The token embeddings of `input_ids` as the layers take them (scaled where the model
    /// scales them): transformers' `inputs_embeds`, for models that put other embeddings
    /// (image features) among them.
    ///
    /// # Shapes
    /// `input_ids`: `[batch, seq]` -> `[batch, seq, hidden]`.
    pub fn token_embeddings(&self, input_ids: &Tensor) -> Result<Tensor> {
        let mut xs = self.embed_tokens.forward(input_ids)?;
        if let Some(scale) = self.spec.embed_scale {
            // transformers multiplies by the scale cast to the weights' dtype.
            let scale = Tensor::new(scale as f32, xs.device())?.to_dtype(xs.dtype())?;
            xs = xs.broadcast_mul(&scale)?;
        }
        Ok(xs)
    }

    /// [`Self::forward`] from `inputs_embeds` (see [`Self::token_embeddings`]).
    ///
    /// # Shapes
    /// `inputs_embeds`: `[batch, seq, hidden]`, `positions`: `[batch, seq]` -> hidden states
    /// `[batch, seq, hidden]`.
    pub fn forward_embeds(
        &self,
        inputs_embeds: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut KvCache,
    ) -> Result<DecoderOutput> {
        let (batch, seq, _) = inputs_embeds.dims3()?;
        if batch == 0 || seq == 0 || positions.dims() != [batch, seq] {
            return Err(Error::InvalidInput(format!(
                "inputs_embeds {:?} and positions {:?} do not match",
                inputs_embeds.dims(),
                positions.dims()
            )));
        }
        let past = cache.seq_len();
        let device = inputs_embeds.device();
        let (mut xs, cos_sin, sliding_cos_sin) = self.positioned(inputs_embeds, positions)?;
        // One mask per distinct window, shared by the layers that use it.
        let masks = self.masks(opts.attention_mask.as_ref(), batch, past, seq, device)?;
        let mut hidden_states = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if opts.output_hidden_states {
                hidden_states.push(xs.clone());
            }
            let key = self.mask_key(i);
            let mask = masks
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, m)| m.as_ref());
            let rotary = self.rotary_for(i, cos_sin.as_ref(), sliding_cos_sin.as_ref());
            xs = if checkpoint::is_enabled() && cache.seq_len() == 0 {
                // Training without a past: the layer reruns in backward over a cache of its
                // own.
                let (layer, n) = (layer.clone(), self.layers.len());
                let rotary = rotary.map(|(r, cs)| (r.clone(), cs.clone()));
                let mask = mask.cloned();
                let block: checkpoint::Block = Arc::new(move |x: &Tensor| {
                    let mut cache = KvCache::new(n);
                    let rotary = rotary.as_ref().map(|(r, cs)| (r, cs));
                    layer.forward(x, |attn, x| {
                        attn.forward(x, rotary, mask.as_ref(), &mut cache, i)
                    })
                });
                checkpoint::checkpoint(&xs, block)?
            } else {
                layer.forward(&xs, |attn, x| attn.forward(x, rotary, mask, cache, i))?
            };
        }
        let last_hidden_state = self.norm.forward(&xs)?;
        if opts.output_hidden_states {
            hidden_states.push(last_hidden_state.clone());
        }
        Ok(DecoderOutput {
            last_hidden_state,
            hidden_states,
        })
    }

    /// Rows that each continue their own cache, run together: row `i` of `input_ids` and
    /// `positions` (`[rows, seq]`) follows what `caches[i]` holds, with no padding. The
    /// projections and MLPs run once for all rows (their weights read once); each row's
    /// attention reads its own cache. Returns the final hidden states `[rows, seq, hidden]`.
    pub fn forward_rows(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        caches: &mut [&mut KvCache],
    ) -> Result<Tensor> {
        let (rows, seq) = input_ids.dims2()?;
        if rows == 0 || seq == 0 || rows != caches.len() || positions.dims() != [rows, seq] {
            return Err(Error::InvalidInput(format!(
                "forward_rows: input_ids {:?}, positions {:?} and {} caches do not match",
                input_ids.dims(),
                positions.dims(),
                caches.len()
            )));
        }
        let device = input_ids.device();
        let (mut xs, cos_sin, sliding_cos_sin) =
            self.positioned(&self.token_embeddings(input_ids)?, positions)?;
        // Each row's masks after its own past: (kind, one mask per row).
        let mut masks: Vec<(MaskKey, Vec<Option<Tensor>>)> = Vec::new();
        for cache in caches.iter() {
            for (w, m) in self.masks(None, 1, cache.seq_len(), seq, device)? {
                match masks.iter_mut().find(|(mw, _)| *mw == w) {
                    Some((_, per_row)) => per_row.push(m),
                    None => masks.push((w, vec![m])),
                }
            }
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let key = self.mask_key(i);
            let none = vec![None; rows];
            let masks = masks
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(&none, |(_, m)| m);
            let rotary = self.rotary_for(i, cos_sin.as_ref(), sliding_cos_sin.as_ref());
            xs = layer.forward(&xs, |attn, x| {
                attn.forward_rows(x, rotary, masks, caches, i)
            })?;
        }
        self.norm.forward(&xs)
    }

    /// The embeddings plus learned positions (for models with a position table), and the
    /// rotary cos/sin of `positions` for the full and the sliding-window layers.
    #[allow(clippy::type_complexity)]
    fn positioned(
        &self,
        inputs_embeds: &Tensor,
        positions: &Tensor,
    ) -> Result<(Tensor, Option<(Tensor, Tensor)>, Option<(Tensor, Tensor)>)> {
        let mut xs = inputs_embeds.clone();
        if let Some(table) = &self.embed_positions {
            let rows = match self.spec.learned_position_offset {
                0 => table.forward(positions)?,
                offset => {
                    let shift = Tensor::new(offset as i64, positions.device())?;
                    table.forward(&positions.to_dtype(DType::I64)?.broadcast_add(&shift)?)?
                }
            };
            xs = (xs + rows)?;
        }
        xs = self.embed_dropout.forward(&xs)?;
        let rotary = self.spec.positions == Positions::Rotary;
        let cos_sin = rotary
            .then(|| self.rope.cos_sin(positions, xs.dtype()))
            .transpose()?;
        let sliding_cos_sin = match &self.sliding_rope {
            Some(r) if rotary => Some(r.cos_sin(positions, xs.dtype())?),
            _ => None,
        };
        Ok((xs, cos_sin, sliding_cos_sin))
    }

    /// Which mask layer `layer` attends under.
    fn mask_key(&self, layer: usize) -> MaskKey {
        match self.spec.attention_chunk_size {
            Some(chunk) if self.spec.chunked_layers.contains(&layer) => MaskKey::Chunked(chunk),
            _ => MaskKey::Window(self.spec.layer_windows.get(layer).copied().flatten()),
        }
    }

    /// The additive masks, one per distinct attention window or chunk size (ALiBi's biases
    /// when the model has them), after `past` cached positions.
    fn masks(
        &self,
        attention_mask: Option<&Tensor>,
        batch: usize,
        past: usize,
        seq: usize,
        device: &Device,
    ) -> Result<Vec<(MaskKey, Option<Tensor>)>> {
        let mut masks: Vec<(MaskKey, Option<Tensor>)> = Vec::new();
        if self.spec.positions == Positions::Alibi {
            let att = &self.spec.attention;
            let scale = att.scale.unwrap_or(1.0 / (att.head_dim as f64).sqrt());
            let mask = alibi_mask(
                attention_mask,
                batch,
                past,
                seq,
                att.num_heads,
                scale,
                device,
            )?;
            masks.push((MaskKey::Window(None), Some(mask)));
        }
        for layer in 0..self.spec.num_hidden_layers {
            let key = self.mask_key(layer);
            if !masks.iter().any(|(k, _)| *k == key) {
                let m = match key {
                    MaskKey::Window(w) => causal_mask(attention_mask, batch, past, seq, w, device)?,
                    MaskKey::Chunked(c) => Some(chunked_causal_mask(
                        attention_mask,
                        batch,
                        past,
                        seq,
                        c,
                        device,
                    )?),
                };
                masks.push((key, m));
            }
        }
        Ok(masks)
    }

    /// The rotary embedding and cos/sin layer `layer` uses (none for a layer without
    /// positions).
    fn rotary_for<'a>(
        &'a self,
        layer: usize,
        cos_sin: Option<&'a (Tensor, Tensor)>,
        sliding_cos_sin: Option<&'a (Tensor, Tensor)>,
    ) -> Option<(&'a RotaryEmbedding, &'a (Tensor, Tensor))> {
        if self.spec.nope_layers.contains(&layer) {
            return None;
        }
        let window = self.spec.layer_windows.get(layer).copied().flatten();
        match (&self.sliding_rope, sliding_cos_sin, window) {
            (Some(r), Some(cs), Some(_)) => Some((r, cs)),
            _ => cos_sin.map(|cs| (&self.rope, cs)),
        }
    }
}

/// A decoder with its language-modelling head (HF `LlamaForCausalLM`).
pub struct DecoderForCausalLM {
    model_type: String,
    model: DecoderModel,
    lm_head: Linear,
    prefill_chunk: usize,
}

impl DecoderForCausalLM {
    /// Loads `model.*` and `lm_head` (or ties it to `model.embed_tokens`) from `vb`, for a
    /// checkpoint of `model_type`, to run with `runtime`.
    pub fn new(
        model_type: &str,
        spec: &DecoderSpec,
        vb: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Self> {
        Self::from_parts(
            model_type,
            spec,
            &vb.pp("model"),
            &vb.pp("lm_head"),
            runtime,
        )
    }

    /// [`Self::new`] with the base model under `model` and the head under `lm_head` (a
    /// decoder inside a multimodal checkpoint: `model.language_model` and `lm_head`, or
    /// `language_model.model` and `language_model.lm_head`).
    pub fn from_parts(
        model_type: &str,
        spec: &DecoderSpec,
        model: &Weights,
        lm_head: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Self> {
        runtime.validate()?;
        let head_vb = lm_head;
        let mut model = DecoderModel::new(spec, model)?;
        if let Some(dtype) = runtime.kv_cache_dtype {
            model.kv_cache_dtype = dtype;
        }
        let lm_head = if spec.tie_word_embeddings {
            let bias = spec
                .lm_head_bias
                .then(|| head_vb.get(spec.vocab_size, "bias"))
                .transpose()?;
            model.embed_tokens.tied_linear(bias)?
        } else {
            Linear::new(
                head_vb,
                spec.hidden_size,
                spec.vocab_size,
                spec.lm_head_bias,
            )?
        };
        Ok(Self {
            model_type: model_type.to_owned(),
            model,
            lm_head,
            prefill_chunk: runtime.prefill_chunk,
        })
    }

    /// The base model.
    pub fn model(&self) -> &DecoderModel {
        &self.model
    }

    /// The most tokens one pass through the layers takes ([`RuntimeOptions::prefill_chunk`]):
    /// longer inputs go through in chunks when only the last positions' logits are kept and
    /// no per-layer hidden states are asked for; the results are those of one pass.
    pub fn prefill_chunk(&self) -> usize {
        self.prefill_chunk
    }

    /// Logits and hidden states, with an optional padding mask, through a KV cache.
    fn forward_kv(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut KvCache,
    ) -> Result<CausalLmOutput> {
        let out = self.forward_chunked(input_ids, positions, opts, cache)?;
        let seq = out.last_hidden_state.dim(1)?;
        let kept = match opts.logits_to_keep {
            Some(n) if n < seq => out.last_hidden_state.narrow(1, seq - n, n)?,
            _ => out.last_hidden_state.clone(),
        };
        Ok(CausalLmOutput {
            logits: self.logits(&kept)?,
            last_hidden_state: out.last_hidden_state,
            hidden_states: out.hidden_states,
        })
    }

    /// Logits and hidden states from `inputs_embeds` (transformers' `inputs_embeds`: the
    /// token embeddings of [`DecoderModel::token_embeddings`] with other embeddings put among
    /// them), through the cache, in one pass.
    ///
    /// # Shapes
    /// `inputs_embeds`: `[batch, seq, hidden]`, `positions`: `[batch, seq]`.
    pub fn forward_embeds(
        &self,
        inputs_embeds: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<CausalLmOutput> {
        let cache = cache.kv_mut(&self.model_type)?;
        let out = self
            .model
            .forward_embeds(inputs_embeds, positions, opts, cache)?;
        let seq = out.last_hidden_state.dim(1)?;
        let kept = match opts.logits_to_keep {
            Some(n) if n < seq => out.last_hidden_state.narrow(1, seq - n, n)?,
            _ => out.last_hidden_state.clone(),
        };
        Ok(CausalLmOutput {
            logits: self.logits(&kept)?,
            last_hidden_state: out.last_hidden_state,
            hidden_states: out.hidden_states,
        })
    }

    /// The head on final hidden states: f32 logits, soft-capped when the model does.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Head);
        let mut logits = self.lm_head.forward(hidden)?.to_dtype(DType::F32)?;
        if let Some(scale) = self.model.spec.logit_scale {
            logits = logits.affine(scale, 0.0)?;
        }
        if let Some(c) = self.model.spec.final_logit_softcapping {
            logits = ((logits / c)?.tanh()? * c)?;
        }
        Ok(logits)
    }

    /// The base model's forward, `prefill_chunk` tokens at a time when only the logits of a
    /// last chunk are kept; the chunks' final hidden states are joined again.
    fn forward_chunked(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut KvCache,
    ) -> Result<DecoderOutput> {
        let seq = input_ids.dim(1)?;
        let (chunk, keep) = (self.prefill_chunk, opts.logits_to_keep.unwrap_or(seq));
        let past = cache.seq_len();
        // Inputs of the wrong shape go to one pass, whose checks name the problem.
        let mask_fits = opts
            .attention_mask
            .as_ref()
            .is_none_or(|m| m.dims().get(1) == Some(&(past + seq)));
        if opts.output_hidden_states
            || seq <= chunk
            || positions.dims() != input_ids.dims()
            || !mask_fits
        {
            return self.model.forward(input_ids, positions, opts, cache);
        }
        let mut states = Vec::new();
        let mut start = 0;
        while start < seq {
            // The last chunk holds every position whose logits are kept.
            let end = if seq - start > chunk && seq - (start + chunk) >= keep {
                start + chunk
            } else {
                seq
            };
            let attention_mask = opts
                .attention_mask
                .as_ref()
                .map(|m| m.narrow(1, 0, past + end))
                .transpose()?;
            let part = ForwardOptions {
                attention_mask,
                output_hidden_states: false,
                logits_to_keep: None,
            };
            let out = self.model.forward(
                &input_ids.narrow(1, start, end - start)?,
                &positions.narrow(1, start, end - start)?,
                &part,
                cache,
            )?;
            states.push(out.last_hidden_state);
            start = end;
        }
        let last_hidden_state = if states.len() == 1 {
            states.remove(0)
        } else {
            Tensor::cat(&states, 1)?
        };
        Ok(DecoderOutput {
            last_hidden_state,
            hidden_states: Vec::new(),
        })
    }
}

impl CausalLM for DecoderForCausalLM {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn forward_with(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<CausalLmOutput> {
        let cache = cache.kv_mut(&self.model_type)?;
        self.forward_kv(input_ids, positions, opts, cache)
    }

    /// The rows in one pass through the layers ([`DecoderModel::forward_rows`]).
    fn forward_rows(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        caches: &mut [&mut Cache],
    ) -> Result<Tensor> {
        let mut kv = caches
            .iter_mut()
            .map(|c| c.kv_mut(&self.model_type))
            .collect::<Result<Vec<_>>>()?;
        let hidden = self.model.forward_rows(input_ids, positions, &mut kv)?;
        let seq = hidden.dim(1)?;
        let last = hidden.narrow(1, seq - 1, 1)?.contiguous()?;
        Ok(self.logits(&last)?.squeeze(1)?)
    }

    /// A KV cache keeping keys and values as the model's cache dtype.
    fn new_cache(&self) -> Cache {
        Cache::Kv(self.model.new_cache())
    }

    fn vocab_size(&self) -> usize {
        self.model.spec.vocab_size
    }

    fn max_position_embeddings(&self) -> usize {
        self.model.spec.max_position_embeddings
    }

    fn num_hidden_layers(&self) -> usize {
        self.model.spec.num_hidden_layers
    }

    fn device(&self) -> &Device {
        self.model.embed_tokens.device()
    }

    fn dtype(&self) -> DType {
        self.model.embed_tokens.dtype()
    }
}

/// Position ids the way transformers' `generate()` derives them from a padding mask:
/// `cumsum(mask) - 1`, with padded slots set to 1. Returns the positions of the last `seq`
/// slots.
///
/// # Shapes
/// `attention_mask`: `[batch, total]` -> `[batch, seq]` i64.
pub fn positions_from_mask(attention_mask: &Tensor, seq: usize) -> Result<Tensor> {
    let rows = attention_mask.to_dtype(DType::I64)?.to_vec2::<i64>()?;
    let total = rows.first().map_or(0, Vec::len);
    if seq > total {
        return Err(Error::InvalidInput(format!(
            "asked for {seq} positions from a mask of length {total}"
        )));
    }
    let mut out = Vec::with_capacity(rows.len() * seq);
    for row in &rows {
        let mut count = 0i64;
        let pos: Vec<i64> = row
            .iter()
            .map(|&m| {
                count += m;
                if m == 0 {
                    1
                } else {
                    count - 1
                }
            })
            .collect();
        out.extend_from_slice(&pos[total - seq..]);
    }
    Ok(Tensor::from_vec(
        out,
        (rows.len(), seq),
        attention_mask.device(),
    )?)
}

/// Positions `past..past + seq` for every row.
pub fn default_positions(
    batch: usize,
    past: usize,
    seq: usize,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let row = Tensor::arange(past as i64, (past + seq) as i64, device)?;
    Ok(row.unsqueeze(0)?.repeat((batch, 1))?)
}
