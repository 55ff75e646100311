//! The BERT-style encoder family (`modeling_bert.py` and the models built like it): token,
//! position and token-type embeddings, then post-LayerNorm layers of bidirectional
//! self-attention and a plain MLP, and an optional pooler (`tanh(dense(h[:, 0]))`).
//!
//! ```text
//! h = LN(x + attn(x))          attention.output.LayerNorm
//! x = LN(h + down(act(up(h)))) output.LayerNorm
//! ```
//!
//! One config-driven [`EncoderModel`] covers BERT, RoBERTa / XLM-RoBERTa (positions offset by
//! the padding index), DistilBERT (no token types), ELECTRA (a narrower embedding projected
//! up) and ALBERT (factorized embeddings, layers shared in groups). Checkpoint names are
//! BERT's; the presets map the others to them. Task heads live in [`heads`].

pub mod deberta;
pub mod heads;
pub mod modernbert;
pub mod nomic_bert;
pub mod presets;

use crate::hf_config::{self, limits, Dropouts};
use candle_core::{DType, Device, Tensor, D};
use std::sync::Arc;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::attention::padding_mask;
use trustformers_nn::checkpoint;
use trustformers_nn::{Activation, BidirectionalAttention, Dropout, Embedding, LayerNorm, Linear};

/// Checkpoint buffers transformers itself ignores, and tied output projections that some
/// checkpoints store (the embedding table is used).
pub const IGNORED_TENSORS: &[&str] = &[
    "embeddings.position_ids",
    "predictions.decoder.weight",
    "predictions.decoder.bias",
    "lm_head.decoder.weight",
    "lm_head.decoder.bias",
    "vocab_projector.weight",
    "generator_lm_head.weight",
];

/// Everything that shapes an encoder, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    /// Token-type (segment) vocabulary; 0 for none (DistilBERT).
    pub type_vocab_size: usize,
    /// Width of the embeddings; projected to `hidden_size` by `embeddings_project` when it
    /// differs (ALBERT, ELECTRA).
    pub embedding_size: usize,
    /// Distinct layers: layer `i` runs group `i * groups / layers` (ALBERT shares weights).
    pub num_hidden_groups: usize,
    /// Position ids count from `padding_idx + 1` over non-padding tokens (RoBERTa).
    pub position_padding_idx: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// Where the base model sits in a checkpoint with a head (`bert`, `roberta`, ...).
    pub base_prefix: &'static str,
    /// Which layers the encoder is built from.
    pub layout: EncoderLayout,
    /// Dropout in the layers, in training.
    pub dropout: Dropouts,
    /// Dropout in the task heads, in training.
    pub head_dropout: HeadDropouts,
}

/// Dropout of the task heads in training, per task: `(on the head's input, between its dense
/// projection and its output)` (the second only for heads with a dense projection).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HeadDropouts {
    pub sequence_classification: (f64, f64),
    pub multiple_choice: (f64, f64),
    pub token_classification: (f64, f64),
    pub question_answering: (f64, f64),
}

impl HeadDropouts {
    /// BERT's heads: `classifier_dropout` (else `hidden_dropout_prob`) on the classifiers'
    /// input, `hidden_dropout_prob` on multiple choice's, none for question answering.
    pub fn bert(f: &Fields<'_>) -> Result<Self> {
        let hidden = hf_config::dropout(f, &["hidden_dropout_prob"], 0.1)?;
        let classifier = hf_config::dropout(f, &["classifier_dropout"], hidden)?;
        Ok(Self {
            sequence_classification: (classifier, 0.0),
            multiple_choice: (hidden, 0.0),
            token_classification: (classifier, 0.0),
            question_answering: (0.0, 0.0),
        })
    }

    /// The pair for `task` (none for heads without dropout).
    pub fn for_task(&self, task: heads::EncoderTask) -> (f64, f64) {
        use heads::EncoderTask as T;
        match task {
            T::SequenceClassification => self.sequence_classification,
            T::MultipleChoice => self.multiple_choice,
            T::TokenClassification => self.token_classification,
            T::QuestionAnswering => self.question_answering,
            T::Base | T::MaskedLm | T::PreTraining => (0.0, 0.0),
        }
    }
}

/// The layers of an encoder, with what each kind needs beyond the shared fields.
#[derive(Debug, Clone, PartialEq)]
pub enum EncoderLayout {
    /// BERT's post-norm layers over absolute positions (BERT, RoBERTa, DistilBERT, ELECTRA,
    /// ALBERT).
    Bert,
    /// BERT's layers with DeBERTa's disentangled attention over relative positions (see
    /// [`deberta`]).
    Deberta(deberta::DebertaSpec),
    /// ModernBERT's pre-norm rotary layers (see [`modernbert`]).
    ModernBert(modernbert::ModernBertSpec),
    /// BERT's post-norm layers with rotary positions and SwiGLU (see [`nomic_bert`]).
    NomicBert(nomic_bert::NomicBertSpec),
}

impl EncoderSpec {
    /// The word embedding row that gets no gradient (`padding_idx=pad_token_id` in every
    /// encoder family), when the pad token is in the vocabulary.
    pub fn embedding_padding_idx(&self) -> Option<u32> {
        self.pad_token_id
            .filter(|&p| (p as usize) < self.vocab_size)
    }

    /// Reads BERT's config fields (`hidden_size`, `num_hidden_layers`, ...).
    pub fn bert_like(f: &Fields<'_>, base_prefix: &'static str) -> Result<Self> {
        let hidden_size = f.usize("hidden_size", limits::HIDDEN)?;
        let num_attention_heads = f.usize("num_attention_heads", limits::HEADS)?;
        let position_type = f.opt_str("position_embedding_type")?.unwrap_or("absolute");
        if position_type != "absolute" {
            return Err(Error::config(
                "position_embedding_type",
                format!("`{position_type}` is not supported (only `absolute`)"),
            ));
        }
        let spec = Self {
            vocab_size: f.usize("vocab_size", limits::VOCAB)?,
            hidden_size,
            num_hidden_layers: f.usize("num_hidden_layers", limits::LAYERS)?,
            num_attention_heads,
            intermediate_size: f.usize("intermediate_size", limits::INTERMEDIATE)?,
            hidden_act: Activation::from_hf(f.opt_str("hidden_act")?.unwrap_or("gelu"))?,
            layer_norm_eps: f.opt_f64("layer_norm_eps", 0.0..=1.0)?.unwrap_or(1e-12),
            max_position_embeddings: f
                .opt_usize("max_position_embeddings", limits::POSITIONS)?
                .unwrap_or(512),
            // 0 means no token types (DeBERTa-v3).
            type_vocab_size: match f.raw("type_vocab_size") {
                None => 2,
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n <= limits::VOCAB as u64)
                    .ok_or_else(|| {
                        Error::config("type_vocab_size", format!("must be a count, got {v}"))
                    })? as usize,
            },
            embedding_size: hidden_size,
            num_hidden_groups: 1,
            position_padding_idx: None,
            pad_token_id: pad_token_id(f)?,
            base_prefix,
            layout: EncoderLayout::Bert,
            dropout: {
                let hidden = hf_config::dropout(f, &["hidden_dropout_prob"], 0.1)?;
                Dropouts {
                    embedding: hidden,
                    attention: hf_config::dropout(f, &["attention_probs_dropout_prob"], 0.1)?,
                    attention_output: hidden,
                    mlp_output: hidden,
                    mlp_activation: 0.0,
                }
            },
            head_dropout: HeadDropouts::bert(f)?,
        };
        Ok(Self {
            num_hidden_groups: spec.num_hidden_layers,
            ..spec
        })
    }

    /// Checks the shape fields against each other.
    pub fn validate(&self) -> Result<()> {
        let zero = [
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_hidden_layers", self.num_hidden_layers),
            ("vocab_size", self.vocab_size),
            ("embedding_size", self.embedding_size),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(Error::config(*field, "must be positive"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::config(
                "num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if self.num_hidden_groups == 0 || self.num_hidden_groups > self.num_hidden_layers {
            return Err(Error::config(
                "num_hidden_groups",
                format!(
                    "must be between 1 and the {} layers, got {}",
                    self.num_hidden_layers, self.num_hidden_groups
                ),
            ));
        }
        if let Some(p) = self.position_padding_idx {
            if p as usize + 1 >= self.max_position_embeddings {
                return Err(Error::config(
                    "pad_token_id",
                    format!(
                        "positions start after the padding index {p}, past max_position_embeddings {}",
                        self.max_position_embeddings
                    ),
                ));
            }
        }
        Ok(())
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// DeBERTa's part of the spec, for [`EncoderLayout::Deberta`].
    pub fn deberta(&self) -> Option<&deberta::DebertaSpec> {
        match &self.layout {
            EncoderLayout::Deberta(d) => Some(d),
            _ => None,
        }
    }

    /// ModernBERT's part of the spec, for [`EncoderLayout::ModernBert`].
    pub fn modern_bert(&self) -> Option<&modernbert::ModernBertSpec> {
        match &self.layout {
            EncoderLayout::ModernBert(m) => Some(m),
            _ => None,
        }
    }
}

/// `pad_token_id`, which may be 0 (BERT); null or absent is `None`.
pub fn pad_token_id(f: &Fields<'_>) -> Result<Option<u32>> {
    hf_config::token_id(f, "pad_token_id")
}

struct Embeddings {
    word: Embedding,
    /// Absent without `position_biased_input` (DeBERTa-v3).
    position: Option<Embedding>,
    token_type: Option<Embedding>,
    norm: LayerNorm,
    /// `embeddings_project` when `embedding_size != hidden_size`.
    project: Option<Linear>,
    /// After the norm, in training.
    dropout: Dropout,
}

impl Embeddings {
    fn new(spec: &EncoderSpec, vb: &Weights) -> Result<Self> {
        let e = spec.embedding_size;
        let emb = vb.pp("embeddings");
        Ok(Self {
            word: Embedding::new(&emb.pp("word_embeddings"), spec.vocab_size, e)?
                .with_padding_idx(spec.embedding_padding_idx()),
            position: spec
                .deberta()
                .is_none_or(|d| d.position_biased_input)
                .then(|| {
                    // RoBERTa's position table has the padding index too.
                    Ok::<_, trustformers_core::Error>(
                        Embedding::new(
                            &emb.pp("position_embeddings"),
                            spec.max_position_embeddings,
                            e,
                        )?
                        .with_padding_idx(spec.position_padding_idx),
                    )
                })
                .transpose()?,
            token_type: (spec.type_vocab_size > 0)
                .then(|| Embedding::new(&emb.pp("token_type_embeddings"), spec.type_vocab_size, e))
                .transpose()?,
            // DeBERTa projects before the norm, ELECTRA and ALBERT after it.
            norm: LayerNorm::new(
                &emb.pp("LayerNorm"),
                if spec.deberta().is_some() {
                    spec.hidden_size
                } else {
                    e
                },
                spec.layer_norm_eps,
                true,
            )?,
            project: (e != spec.hidden_size)
                .then(|| {
                    // DeBERTa's `embed_proj` has no bias.
                    let bias = spec.deberta().is_none();
                    Linear::new(&vb.pp("embeddings_project"), e, spec.hidden_size, bias)
                })
                .transpose()?,
            dropout: Dropout::new(spec.dropout.embedding, "hidden_dropout_prob")?,
        })
    }

    /// # Shapes
    /// `input_ids`, `token_type_ids`: `[batch, seq]` -> `[batch, seq, hidden]`.
    fn forward(
        &self,
        spec: &EncoderSpec,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (batch, seq) = input_ids.dims2()?;
        let mut xs = self.word.forward(input_ids)?;
        if let Some(table) = &self.position {
            xs = (xs + table.forward(&position_ids(spec, input_ids)?)?)?;
        }
        if let Some(table) = &self.token_type {
            let types = match token_type_ids {
                Some(t) if t.dims() != [batch, seq] => {
                    return Err(Error::InvalidInput(format!(
                        "token_type_ids have shape {:?}, expected [{batch}, {seq}] like input_ids",
                        t.dims()
                    )))
                }
                Some(t) => t.clone(),
                None => Tensor::zeros((batch, seq), DType::U32, input_ids.device())?,
            };
            xs = (xs + table.forward(&types)?)?;
        }
        let project = |xs: Tensor| match &self.project {
            Some(p) => p.forward(&xs),
            None => Ok(xs),
        };
        if spec.deberta().is_some() {
            self.dropout.forward(&self.norm.forward(&project(xs)?)?)
        } else {
            project(self.dropout.forward(&self.norm.forward(&xs)?)?)
        }
    }
}

/// Absolute positions `0..seq`, or RoBERTa's: `padding_idx + cumsum(ids != pad)` on
/// non-padding tokens and `padding_idx` on padding.
fn position_ids(spec: &EncoderSpec, input_ids: &Tensor) -> Result<Tensor> {
    let (batch, seq) = input_ids.dims2()?;
    if seq > spec.max_position_embeddings
        || spec
            .position_padding_idx
            .is_some_and(|p| p as usize + 1 + seq > spec.max_position_embeddings)
    {
        return Err(Error::InvalidInput(format!(
            "{seq} tokens do not fit max_position_embeddings {} (truncate the input)",
            spec.max_position_embeddings
        )));
    }
    let device = input_ids.device();
    let Some(pad) = spec.position_padding_idx else {
        return Ok(Tensor::arange(0u32, seq as u32, device)?
            .unsqueeze(0)?
            .repeat((batch, 1))?);
    };
    let rows = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    let mut out = Vec::with_capacity(batch * seq);
    for row in rows {
        let mut count = 0;
        out.extend(row.iter().map(|&id| {
            if id == pad {
                pad
            } else {
                count += 1;
                pad + count
            }
        }));
    }
    Ok(Tensor::from_vec(out, (batch, seq), device)?)
}

struct EncoderLayer {
    attention: BidirectionalAttention,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
    act: Activation,
    /// DeBERTa's own position projections.
    rel: Option<deberta::RelProjections>,
    /// On the attention's and the MLP's outputs before their residual norms, in training.
    attn_dropout: Dropout,
    mlp_dropout: Dropout,
}

impl EncoderLayer {
    fn new(spec: &EncoderSpec, vb: &Weights) -> Result<Self> {
        let (h, i) = (spec.hidden_size, spec.intermediate_size);
        let att = vb.pp("attention");
        let lin = |vb: Weights, inp: usize, out: usize| Linear::new(&vb, inp, out, true);
        // DeBERTa's position terms use the query and key projections on their own.
        let stack = !matches!(spec.layout, EncoderLayout::Deberta(_));
        Ok(Self {
            attention: BidirectionalAttention::new(
                &att.pp("self"),
                ["query", "key", "value"],
                h,
                spec.num_attention_heads,
                spec.head_dim(),
                true,
                stack,
            )?
            .with_dropout(Dropout::new(
                spec.dropout.attention,
                "attention_probs_dropout_prob",
            )?),
            attn_dropout: Dropout::new(spec.dropout.attention_output, "hidden_dropout_prob")?,
            mlp_dropout: Dropout::new(spec.dropout.mlp_output, "hidden_dropout_prob")?,
            attn_out: lin(att.pp("output").pp("dense"), h, h)?,
            attn_norm: LayerNorm::new(
                &att.pp("output").pp("LayerNorm"),
                h,
                spec.layer_norm_eps,
                true,
            )?,
            up: lin(vb.pp("intermediate").pp("dense"), h, i)?,
            down: lin(vb.pp("output").pp("dense"), i, h)?,
            out_norm: LayerNorm::new(
                &vb.pp("output").pp("LayerNorm"),
                h,
                spec.layer_norm_eps,
                true,
            )?,
            act: spec.hidden_act,
            rel: spec
                .deberta()
                .map(|d| deberta::RelProjections::new(spec, d, &att.pp("self")))
                .transpose()?,
        })
    }

    /// # Shapes
    /// `xs`: `[batch, seq, hidden]`, `mask`: additive `[batch, 1, 1, seq]` -> as `xs`.
    fn forward(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
        rel: Option<&deberta::RelContext>,
    ) -> Result<Tensor> {
        let ctx = match (rel, &self.rel) {
            (Some(rel), Some(own)) => {
                let Some((query, key)) = self.attention.query_key() else {
                    return Err(Error::InvalidInput(
                        "DeBERTa's position terms need separate query and key projections".into(),
                    ));
                };
                let (q, k, v) = self.attention.project_heads(xs)?;
                // The position terms ride in the additive mask of the content scores.
                let (bias, scale) = deberta::position_bias(&q, &k, rel, query, key, own)?;
                let bias = match mask {
                    Some(m) => bias.broadcast_add(m)?,
                    None => bias,
                };
                self.attention.attend(&q, &k, &v, Some(&bias), scale)?
            }
            _ => self.attention.forward(xs, mask)?,
        };
        self.feed_forward(xs, &ctx)
    }

    /// The output projection, residual norm and MLP after attention.
    fn feed_forward(&self, xs: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let a = self.attn_dropout.forward(&self.attn_out.forward(ctx)?)?;
        let h = self.attn_norm.forward_residual(&a, xs)?;
        let m = self
            .down
            .forward(&self.up.forward_activated(&h, self.act)?)?;
        self.out_norm
            .forward_residual(&self.mlp_dropout.forward(&m)?, &h)
    }
}

/// Hidden states of the base model (transformers' `BaseModelOutputWithPooling`).
pub struct EncoderOutput {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor,
    /// `[batch, hidden]`: `tanh(dense(h[:, 0]))`, for models with a pooler.
    pub pooler_output: Option<Tensor>,
    /// With `output_hidden_states`: the embeddings, then every layer's output.
    pub hidden_states: Vec<Tensor>,
}

enum Body {
    Bert {
        embeddings: Embeddings,
        /// Shared, so a checkpointed layer can be rerun in backward.
        layers: Vec<Arc<EncoderLayer>>,
        pooler: Option<Linear>,
        rel: Option<deberta::RelTable>,
        conv: Option<deberta::ConvLayer>,
    },
    Modern(modernbert::ModernBertBody),
    Nomic(nomic_bert::NomicBertBody),
}

/// The encoder: embeddings, layers and an optional pooler (HF `BertModel`, `ModernBertModel`).
pub struct EncoderModel {
    spec: EncoderSpec,
    device: Device,
    body: Body,
}

impl EncoderModel {
    /// Loads the base model under `vb` (the checkpoint root, or `bert.` etc. in a checkpoint
    /// with a head); the pooler when `pooler` and the checkpoint has one.
    pub fn new(spec: &EncoderSpec, vb: &Weights, pooler: bool) -> Result<Self> {
        spec.validate()?;
        let body = match &spec.layout {
            EncoderLayout::ModernBert(m) => {
                Body::Modern(modernbert::ModernBertBody::new(spec, m, vb)?)
            }
            EncoderLayout::NomicBert(n) => {
                Body::Nomic(nomic_bert::NomicBertBody::new(spec, n, vb, pooler)?)
            }
            EncoderLayout::Bert | EncoderLayout::Deberta(_) => {
                let layers = (0..spec.num_hidden_groups)
                    .map(|g| {
                        EncoderLayer::new(spec, &vb.pp("encoder").pp("layer").pp(g)).map(Arc::new)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let pooler_vb = vb.pp("pooler").pp("dense");
                let pooler = (pooler && pooler_vb.contains("weight"))
                    .then(|| Linear::new(&pooler_vb, spec.hidden_size, spec.hidden_size, true))
                    .transpose()?;
                Body::Bert {
                    embeddings: Embeddings::new(spec, vb)?,
                    layers,
                    pooler,
                    rel: spec
                        .deberta()
                        .map(|d| deberta::RelTable::new(spec, d, vb))
                        .transpose()?,
                    conv: spec
                        .deberta()
                        .and_then(|d| d.conv.as_ref())
                        .map(|c| deberta::ConvLayer::new(spec, c, &vb.pp("encoder").pp("conv")))
                        .transpose()?,
                }
            }
        };
        Ok(Self {
            spec: spec.clone(),
            device: vb.device().clone(),
            body,
        })
    }

    /// The spec the model was built from.
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The word embedding table (for tied output projections).
    pub fn word_embeddings(&self) -> &Embedding {
        match &self.body {
            Body::Bert { embeddings, .. } => &embeddings.word,
            Body::Modern(m) => m.word_embeddings(),
            Body::Nomic(n) => n.word_embeddings(),
        }
    }

    /// Whether the model has a pooler.
    pub fn has_pooler(&self) -> bool {
        match &self.body {
            Body::Bert { pooler, .. } => pooler.is_some(),
            Body::Nomic(n) => n.pooler.is_some(),
            Body::Modern(_) => false,
        }
    }

    /// # Shapes
    /// `input_ids`, `token_type_ids`, `attention_mask`: `[batch, seq]` -> see
    /// [`EncoderOutput`].
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: Option<&Tensor>,
        output_hidden_states: bool,
    ) -> Result<EncoderOutput> {
        let (batch, seq) = input_ids.dims2()?;
        if batch == 0 || seq == 0 {
            return Err(Error::InvalidInput(format!(
                "input_ids must hold at least one token, got shape [{batch}, {seq}]"
            )));
        }
        if seq > self.spec.max_position_embeddings {
            return Err(Error::InvalidInput(format!(
                "{seq} tokens do not fit max_position_embeddings {} (truncate the input)",
                self.spec.max_position_embeddings
            )));
        }
        let mask = padding_mask(attention_mask, batch, seq)?;
        let (embeddings, layers, pooler, rel, conv) = match &self.body {
            Body::Modern(m) => {
                let (last_hidden_state, hidden_states) =
                    m.forward(input_ids, mask.as_ref(), output_hidden_states)?;
                return Ok(EncoderOutput {
                    last_hidden_state,
                    pooler_output: None,
                    hidden_states,
                });
            }
            Body::Nomic(n) => {
                let (last_hidden_state, hidden_states) = n.forward(
                    input_ids,
                    token_type_ids,
                    mask.as_ref(),
                    output_hidden_states,
                )?;
                return Ok(EncoderOutput {
                    pooler_output: n.pool(&last_hidden_state)?,
                    last_hidden_state,
                    hidden_states,
                });
            }
            Body::Bert {
                embeddings,
                layers,
                pooler,
                rel,
                conv,
            } => (embeddings, layers, pooler, rel, conv),
        };
        let rel = rel
            .as_ref()
            .map(|r| r.context(seq, input_ids.device()))
            .transpose()?;
        let mut embedded = embeddings.forward(&self.spec, input_ids, token_type_ids)?;
        if let (Some(_), Some(m)) = (self.spec.deberta(), attention_mask) {
            // DebertaV2Embeddings zeroes padding positions (its convolution reads them).
            embedded = embedded.broadcast_mul(&m.to_dtype(embedded.dtype())?.unsqueeze(2)?)?;
        }
        let mut xs = embedded.clone();
        let mut hidden_states = Vec::new();
        let (n, groups) = (self.spec.num_hidden_layers, layers.len());
        for i in 0..n {
            if output_hidden_states {
                hidden_states.push(xs.clone());
            }
            let layer = &layers[i * groups / n];
            // DeBERTa's relative table comes from trainable weights in each forward pass, so
            // its layers are not checkpointed (only a block's input gets a gradient).
            xs = if checkpoint::is_enabled() && rel.is_none() {
                let (layer, mask) = (layer.clone(), mask.clone());
                let block: checkpoint::Block =
                    Arc::new(move |x: &Tensor| layer.forward(x, mask.as_ref(), None));
                checkpoint::checkpoint(&xs, block)?
            } else {
                layer.forward(&xs, mask.as_ref(), rel.as_ref())?
            };
            if let (0, Some(conv)) = (i, conv) {
                xs = conv.forward(&embedded, &xs, attention_mask)?;
            }
        }
        if output_hidden_states {
            hidden_states.push(xs.clone());
        }
        let pooler_output = pooler
            .as_ref()
            .map(|p| -> Result<Tensor> {
                let first = xs.narrow(1, 0, 1)?.squeeze(1)?;
                Ok(p.forward(&first)?.tanh()?)
            })
            .transpose()?;
        Ok(EncoderOutput {
            last_hidden_state: xs,
            pooler_output,
            hidden_states,
        })
    }
}

/// Mean of `xs` over the positions `attention_mask` keeps (sentence-transformers' mean
/// pooling).
///
/// # Shapes
/// `xs`: `[batch, seq, hidden]`, `attention_mask`: `[batch, seq]` -> `[batch, hidden]`.
pub fn masked_mean(xs: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let m = attention_mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let xs = xs.to_dtype(DType::F32)?;
    let sum = xs.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    Ok(sum.broadcast_div(&count)?)
}
