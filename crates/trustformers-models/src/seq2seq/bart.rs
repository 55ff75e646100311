//! The BART family (`modeling_bart.py` and the models built like it): learned or sinusoidal
//! absolute positions added to (optionally scaled) token embeddings, LayerNorm layers of
//! biased attention and a plain MLP, a head tied to the embeddings plus `final_logits_bias`.
//!
//! ```text
//! post-norm (BART, Marian):     h = LN(h + attn(h))      pre-norm (mBART, Pegasus):
//!                               h = LN(h + cross(h))     h = h + attn(LN(h)), ...
//!                               h = LN(h + fc2(act(fc1(h))))
//! ```
//!
//! | model   | positions                 | embed scale | `layernorm_embedding` | norm |
//! |---------|---------------------------|-------------|-----------------------|------|
//! | BART    | learned, offset 2         | config      | yes                   | post |
//! | mBART   | learned, offset 2         | config      | yes                   | pre, final `layer_norm` |
//! | Marian  | sinusoidal                | config      | no                    | post |
//! | Pegasus | sinusoidal                | config      | no                    | pre, final `layer_norm` |

use super::{
    decoder_mask, decoder_start, encoder_cache, keep_last, residual, self_attention, source_mask,
};
use crate::hf_config::{self, limits};
use crate::traits::{EncoderDecoderLM, ForwardOptions, Seq2SeqOutput};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::attention::causal_mask;
use trustformers_nn::{
    Activation, Cache, CrossAttention, CrossAttentionSpec, Embedding, EncoderDecoderCache,
    LayerNorm, Linear,
};

/// How absolute positions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionKind {
    /// `embed_positions.weight` `[max_position_embeddings + 2, d_model]`, looked up at
    /// position + 2 (BART's offset).
    Learned,
    /// The fixed sinusoidal table of Marian and Pegasus (sines in the first half of the
    /// features, cosines in the second), computed at load.
    Sinusoidal,
}

/// Everything that shapes a BART-family model, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct BartSpec {
    pub vocab_size: usize,
    /// The decoder's (and the head's) vocabulary: Marian's `decoder_vocab_size`.
    pub decoder_vocab_size: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    pub activation_function: Activation,
    pub max_position_embeddings: usize,
    pub positions: PositionKind,
    /// `sqrt(d_model)` with `scale_embedding`, else 1.
    pub embed_scale: f64,
    /// Norms before each sublayer and a final `layer_norm` per stack (mBART, Pegasus).
    pub pre_norm: bool,
    /// A LayerNorm right after the embeddings (BART, mBART).
    pub layernorm_embedding: bool,
    /// The decoder has its own embedding table, `model.decoder.embed_tokens` (Marian with
    /// `share_encoder_decoder_embeddings: false`).
    pub separate_decoder_embeddings: bool,
    pub decoder_start_token_id: u32,
}

impl BartSpec {
    /// Reads a `bart`, `mbart`, `marian` or `pegasus` config.json.
    pub fn from_config(config: &Value, model_type: &str) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let (positions, pre_norm, layernorm_embedding) = match model_type {
            "bart" => (PositionKind::Learned, false, true),
            "mbart" => (PositionKind::Learned, true, true),
            "marian" => (PositionKind::Sinusoidal, false, false),
            "pegasus" => (PositionKind::Sinusoidal, true, false),
            other => {
                return Err(Error::config(
                    "model_type",
                    format!("`{other}` is not of the BART family"),
                ))
            }
        };
        let d_model = f.usize("d_model", limits::HIDDEN)?;
        let heads = |field: &str| -> Result<usize> {
            let h = f.usize(field, limits::HEADS)?;
            if d_model % h != 0 {
                return Err(Error::config(
                    field,
                    format!("{h} heads do not divide d_model {d_model}"),
                ));
            }
            Ok(h)
        };
        let vocab_size = f.usize("vocab_size", limits::VOCAB)?;
        let separate = model_type == "marian"
            && f.opt_bool("share_encoder_decoder_embeddings")? == Some(false);
        let decoder_vocab_size = match separate {
            true => f
                .opt_usize("decoder_vocab_size", limits::VOCAB)?
                .unwrap_or(vocab_size),
            false => vocab_size,
        };
        let act = f.opt_str("activation_function")?.unwrap_or("gelu");
        let default_start = if model_type == "marian" {
            hf_config::token_id(&f, "pad_token_id")?.unwrap_or(0)
        } else {
            2
        };
        Ok(Self {
            vocab_size,
            decoder_vocab_size,
            d_model,
            encoder_layers: f.usize("encoder_layers", limits::LAYERS)?,
            decoder_layers: f.usize("decoder_layers", limits::LAYERS)?,
            encoder_attention_heads: heads("encoder_attention_heads")?,
            decoder_attention_heads: heads("decoder_attention_heads")?,
            encoder_ffn_dim: f.usize("encoder_ffn_dim", limits::INTERMEDIATE)?,
            decoder_ffn_dim: f.usize("decoder_ffn_dim", limits::INTERMEDIATE)?,
            activation_function: Activation::from_hf(act)
                .map_err(|e| Error::config("activation_function", e.to_string()))?,
            max_position_embeddings: f.usize("max_position_embeddings", limits::POSITIONS)?,
            positions,
            embed_scale: match f.opt_bool("scale_embedding")? {
                Some(true) => (d_model as f64).sqrt(),
                _ => 1.0,
            },
            pre_norm,
            layernorm_embedding,
            separate_decoder_embeddings: separate,
            decoder_start_token_id: decoder_start(&f, default_start, decoder_vocab_size)?,
        })
    }

    fn attention(&self, heads: usize) -> CrossAttentionSpec {
        let head_dim = self.d_model / heads;
        CrossAttentionSpec {
            hidden_size: self.d_model,
            source_size: self.d_model,
            num_heads: heads,
            head_dim,
            bias: true,
            scale: (head_dim as f64).powf(-0.5),
            names: ["q_proj", "k_proj", "v_proj", "out_proj"],
        }
    }
}

/// The sinusoidal table of `MarianSinusoidalPositionalEmbedding` (and Pegasus'): row `p`
/// holds `sin(p / 10000^(2i / dim))` in feature `i` of the first half and the cosines in
/// the second, computed in f64 as transformers does.
///
/// # Shapes
/// -> `[positions, dim]` f32.
pub fn sinusoidal_table(positions: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim.div_ceil(2);
    let mut table = vec![0f32; positions * dim];
    for (p, row) in table.chunks_mut(dim.max(1)).enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            // Feature j of the first half is column 2j's angle, of the second column 2j+1's.
            let (col, sin) = if j < half {
                (2 * j, true)
            } else {
                (2 * (j - half) + 1, false)
            };
            let angle = p as f64 / 10000f64.powf((2 * (col / 2)) as f64 / dim as f64);
            *x = if sin { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Ok(Tensor::from_vec(table, (positions, dim), device)?)
}

/// Absolute positions, added to the token embeddings.
enum Positions {
    Learned(Embedding),
    Sinusoidal(Tensor),
}

impl Positions {
    /// # Shapes
    /// -> `[1, seq, d_model]` for positions `past..past + seq`.
    fn forward(&self, past: usize, seq: usize, device: &Device) -> Result<Tensor> {
        match self {
            Self::Learned(table) => {
                let ids = Tensor::arange((past + 2) as u32, (past + seq + 2) as u32, device)?;
                table.forward(&ids.unsqueeze(0)?)
            }
            Self::Sinusoidal(table) => {
                let rows = table.dim(0)?;
                if past + seq > rows {
                    return Err(Error::InvalidInput(format!(
                        "position {} is past max_position_embeddings {rows}",
                        past + seq - 1
                    )));
                }
                Ok(table.narrow(0, past, seq)?.unsqueeze(0)?)
            }
        }
    }
}

/// One encoder or decoder layer.
struct Layer {
    attn: CrossAttention,
    attn_norm: LayerNorm,
    cross: Option<(CrossAttention, LayerNorm)>,
    fc1: Linear,
    fc2: Linear,
    final_norm: LayerNorm,
}

/// The encoder or decoder stack.
struct Stack {
    embed: Embedding,
    positions: Positions,
    layernorm_embedding: Option<LayerNorm>,
    layers: Vec<Layer>,
    final_norm: Option<LayerNorm>,
    embed_scale: f64,
    pre_norm: bool,
    act: Activation,
    max_positions: usize,
}

const EPS: f64 = 1e-5;

impl Stack {
    fn new(spec: &BartSpec, decoder: bool, embed: Embedding, vb: &Weights) -> Result<Self> {
        let d = spec.d_model;
        let (layers, heads, ffn) = match decoder {
            false => (
                spec.encoder_layers,
                spec.encoder_attention_heads,
                spec.encoder_ffn_dim,
            ),
            true => (
                spec.decoder_layers,
                spec.decoder_attention_heads,
                spec.decoder_ffn_dim,
            ),
        };
        let attention = spec.attention(heads);
        let layers = (0..layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                Ok(Layer {
                    attn: CrossAttention::new(&attention, &vb.pp("self_attn"))?,
                    attn_norm: LayerNorm::new(&vb.pp("self_attn_layer_norm"), d, EPS, true)?,
                    cross: match decoder {
                        true => Some((
                            CrossAttention::new(&attention, &vb.pp("encoder_attn"))?,
                            LayerNorm::new(&vb.pp("encoder_attn_layer_norm"), d, EPS, true)?,
                        )),
                        false => None,
                    },
                    fc1: Linear::new(&vb.pp("fc1"), d, ffn, true)?,
                    fc2: Linear::new(&vb.pp("fc2"), ffn, d, true)?,
                    final_norm: LayerNorm::new(&vb.pp("final_layer_norm"), d, EPS, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let max = spec.max_position_embeddings;
        let positions = match spec.positions {
            PositionKind::Learned => {
                Positions::Learned(Embedding::new(&vb.pp("embed_positions"), max + 2, d)?)
            }
            PositionKind::Sinusoidal => {
                Positions::Sinusoidal(sinusoidal_table(max, d, vb.device())?.to_dtype(vb.dtype())?)
            }
        };
        let norm = |name: &str, on: bool| -> Result<Option<LayerNorm>> {
            on.then(|| LayerNorm::new(&vb.pp(name), d, EPS, true))
                .transpose()
        };
        Ok(Self {
            embed,
            positions,
            layernorm_embedding: norm("layernorm_embedding", spec.layernorm_embedding)?,
            layers,
            final_norm: norm("layer_norm", spec.pre_norm)?,
            embed_scale: spec.embed_scale,
            pre_norm: spec.pre_norm,
            act: spec.activation_function,
            max_positions: max,
        })
    }

    /// Embeds `ids` at positions after `past` and runs the layers; `mask` is the
    /// self-attention's additive mask.
    fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        mut cache: Option<&mut EncoderDecoderCache>,
    ) -> Result<Tensor> {
        let seq = ids.dim(1)?;
        let past = cache.as_ref().map_or(0, |c| c.seq_len());
        if past + seq > self.max_positions {
            return Err(Error::InvalidInput(format!(
                "{} positions are more than max_position_embeddings {}",
                past + seq,
                self.max_positions
            )));
        }
        let mut h = self.embed.forward(ids)?;
        if self.embed_scale != 1.0 {
            h = (h * self.embed_scale)?;
        }
        h = h.broadcast_add(&self.positions.forward(past, seq, ids.device())?)?;
        if let Some(norm) = &self.layernorm_embedding {
            h = norm.forward(&h)?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            h = residual(
                &h,
                self.pre_norm,
                |x| layer.attn_norm.forward(x),
                |x| self_attention(&layer.attn, x, mask, cache.as_deref_mut().map(|c| (c, i))),
            )?;
            if let (Some((cross, norm)), Some(c)) = (&layer.cross, cache.as_deref_mut()) {
                h = residual(
                    &h,
                    self.pre_norm,
                    |x| norm.forward(x),
                    |x| cross.forward_cached(x, c, i),
                )?;
            }
            h = residual(
                &h,
                self.pre_norm,
                |x| layer.final_norm.forward(x),
                |x| {
                    layer
                        .fc2
                        .forward(&self.act.forward(&layer.fc1.forward(x)?)?)
                },
            )?;
        }
        match &self.final_norm {
            Some(norm) => norm.forward(&h),
            None => Ok(h),
        }
    }
}

/// `BartModel`: the encoder and decoder, without a head.
pub struct BartModel {
    encoder: Stack,
    decoder: Stack,
    spec: BartSpec,
}

impl BartModel {
    /// Loads the stacks under `vb` (`model` in a checkpoint with a head).
    pub fn new(spec: &BartSpec, vb: &Weights) -> Result<Self> {
        let d = spec.d_model;
        let shared = Embedding::new(&vb.pp("shared"), spec.vocab_size, d)?;
        let decoder_embed = match spec.separate_decoder_embeddings {
            true => Embedding::new(&vb.pp("decoder.embed_tokens"), spec.decoder_vocab_size, d)?,
            false => shared.clone(),
        };
        Ok(Self {
            encoder: Stack::new(spec, false, shared, &vb.pp("encoder"))?,
            decoder: Stack::new(spec, true, decoder_embed, &vb.pp("decoder"))?,
            spec: spec.clone(),
        })
    }

    /// The decoder's last hidden state for `input_ids` as the source and, without
    /// `decoder_input_ids`, the source shifted right behind the decoder start token (as
    /// the classification and question-answering heads run it).
    ///
    /// # Shapes
    /// `input_ids`, `attention_mask`: `[batch, seq]` -> `[batch, target_len, d_model]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        decoder_input_ids: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mask = source_mask(attention_mask, input_ids)?;
        let encoded = self.encoder.forward(input_ids, mask.as_ref(), None)?;
        let shifted;
        let target = match decoder_input_ids {
            Some(t) => t,
            None => {
                shifted = shift_right(input_ids, self.spec.decoder_start_token_id)?;
                &shifted
            }
        };
        let mut cache = EncoderDecoderCache::new(self.spec.decoder_layers, DType::F32)?;
        cache.set_encoder_output(encoded, attention_mask.cloned());
        let (b, seq) = target.dims2()?;
        let causal = causal_mask(None, b, 0, seq, None, input_ids.device())?;
        self.decoder
            .forward(target, causal.as_ref(), Some(&mut cache))
    }
}

/// transformers' `shift_tokens_right`: `start` then every token but the last.
fn shift_right(ids: &Tensor, start: u32) -> Result<Tensor> {
    let (b, seq) = ids.dims2()?;
    let first = Tensor::full(start, (b, 1), ids.device())?;
    Ok(Tensor::cat(
        &[&first, &ids.to_dtype(DType::U32)?.narrow(1, 0, seq - 1)?],
        1,
    )?)
}

/// `BartForSequenceClassification`: `out_proj(tanh(dense(h)))` of the decoder's hidden
/// state at each row's last end-of-sequence token (bart-large-mnli's NLI head).
pub struct BartForSequenceClassification {
    model: BartModel,
    dense: Linear,
    out_proj: Linear,
    eos_token_id: u32,
    labels: Vec<String>,
}

impl BartForSequenceClassification {
    /// Loads the model and `classification_head` from a checkpoint with that head;
    /// `labels` are the classes' names (config.json's `id2label`, in id order).
    pub fn new(spec: &BartSpec, config: &Value, labels: Vec<String>, vb: &Weights) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let d = spec.d_model;
        if labels.is_empty() {
            return Err(Error::config("id2label", "names no class"));
        }
        let head = vb.pp("classification_head");
        Ok(Self {
            model: BartModel::new(spec, &vb.pp("model"))?,
            dense: Linear::new(&head.pp("dense"), d, d, true)?,
            out_proj: Linear::new(&head.pp("out_proj"), d, labels.len(), true)?,
            eos_token_id: hf_config::token_id(&f, "eos_token_id")?.unwrap_or(2),
            labels,
        })
    }

    /// The classes' names, in logit order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Class logits. Every row needs the same number of end-of-sequence tokens (its
    /// padding after them), as transformers requires.
    ///
    /// # Shapes
    /// `input_ids`, `attention_mask`: `[batch, seq]` -> `[batch, num_labels]` f32.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let hidden = self.model.forward(input_ids, attention_mask, None)?;
        let rows: Vec<Vec<u32>> = input_ids.to_dtype(DType::U32)?.to_vec2()?;
        let counts: Vec<usize> = rows
            .iter()
            .map(|r| r.iter().filter(|&&t| t == self.eos_token_id).count())
            .collect();
        if counts.first().is_none_or(|&c| c == 0) || counts.iter().any(|&c| c != counts[0]) {
            return Err(Error::InvalidInput(format!(
                "every input must hold the same number (at least one) of end-of-sequence \
                 tokens ({}), got {counts:?}",
                self.eos_token_id
            )));
        }
        let last: Vec<u32> = rows
            .iter()
            .map(|r| r.iter().rposition(|&t| t == self.eos_token_id).unwrap_or(0) as u32)
            .collect();
        let picked = (0..rows.len())
            .map(|i| Ok(hidden.get(i)?.get(last[i] as usize)?.unsqueeze(0)?))
            .collect::<Result<Vec<_>>>()?;
        let sentence = Tensor::cat(&picked, 0)?;
        let h = self.dense.forward(&sentence)?.tanh()?;
        Ok(self.out_proj.forward(&h)?.to_dtype(DType::F32)?)
    }
}

/// `BartForQuestionAnswering`: start and end logits from `qa_outputs` over the decoder's
/// hidden states.
pub struct BartForQuestionAnswering {
    model: BartModel,
    qa_outputs: Linear,
}

impl BartForQuestionAnswering {
    /// Loads the model and `qa_outputs` from a checkpoint with that head.
    pub fn new(spec: &BartSpec, vb: &Weights) -> Result<Self> {
        Ok(Self {
            model: BartModel::new(spec, &vb.pp("model"))?,
            qa_outputs: Linear::new(&vb.pp("qa_outputs"), spec.d_model, 2, true)?,
        })
    }

    /// # Shapes
    /// `input_ids`, `attention_mask`: `[batch, seq]` -> start and end logits `[batch, seq]`
    /// f32.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let hidden = self.model.forward(input_ids, attention_mask, None)?;
        let logits = self.qa_outputs.forward(&hidden)?.to_dtype(DType::F32)?;
        Ok((
            logits.narrow(2, 0, 1)?.squeeze(2)?.contiguous()?,
            logits.narrow(2, 1, 1)?.squeeze(2)?.contiguous()?,
        ))
    }
}

/// `BartForConditionalGeneration`, `MBartForConditionalGeneration`, `MarianMTModel` and
/// `PegasusForConditionalGeneration`.
pub struct BartForConditionalGeneration {
    model_type: String,
    model: BartModel,
    lm_head: Linear,
    device: Device,
    dtype: DType,
}

impl BartForConditionalGeneration {
    /// Loads the model from a checkpoint with the head (`model.` prefix). The head is
    /// `lm_head.weight` when the checkpoint has one, else the decoder's embedding table,
    /// plus the `final_logits_bias` buffer (zeros when absent).
    pub fn new(model_type: &str, spec: &BartSpec, vb: &Weights) -> Result<Self> {
        let model = BartModel::new(spec, &vb.pp("model"))?;
        let (d, vocab) = (spec.d_model, spec.decoder_vocab_size);
        let bias = match vb.contains("final_logits_bias") {
            true => Some(vb.get((1, vocab), "final_logits_bias")?.squeeze(0)?),
            false => None,
        };
        let lm_head = if vb.contains("lm_head.weight") {
            Linear::from_weight(vb.get_weight((vocab, d), "lm_head.weight")?, bias)?
        } else {
            model.decoder.embed.tied_linear(bias)?
        };
        Ok(Self {
            model_type: model_type.to_owned(),
            model,
            lm_head,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }
}

impl EncoderDecoderLM for BartForConditionalGeneration {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn encode(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let mask = source_mask(attention_mask, input_ids)?;
        self.model.encoder.forward(input_ids, mask.as_ref(), None)
    }

    fn new_cache(&self, encoder_output: Tensor, attention_mask: Option<Tensor>) -> Result<Cache> {
        encoder_cache(
            self.model.spec.decoder_layers,
            encoder_output,
            attention_mask,
        )
    }

    fn decode(
        &self,
        decoder_input_ids: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<Seq2SeqOutput> {
        let cache = cache.encoder_decoder_mut(&self.model_type)?;
        let mask = decoder_mask(decoder_input_ids, opts, cache)?;
        let hidden = self
            .model
            .decoder
            .forward(decoder_input_ids, mask.as_ref(), Some(cache))?;
        let out = keep_last(&hidden, opts.logits_to_keep)?;
        Ok(Seq2SeqOutput {
            logits: self.lm_head.forward(&out)?.to_dtype(DType::F32)?,
            last_hidden_state: hidden,
        })
    }

    fn decoder_start_token_id(&self) -> u32 {
        self.model.spec.decoder_start_token_id
    }

    // The trait's vocabulary is the decoder's (the logits' width): Marian's may differ
    // from the encoder's.
    #[allow(clippy::misnamed_getters)]
    fn vocab_size(&self) -> usize {
        self.model.spec.decoder_vocab_size
    }

    fn max_target_positions(&self) -> usize {
        self.model.spec.max_position_embeddings
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}
