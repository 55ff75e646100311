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

use super::{decoder_start, keep_last, residual, self_attention, source_mask};
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

/// `BartForConditionalGeneration`, `MBartForConditionalGeneration`, `MarianMTModel` and
/// `PegasusForConditionalGeneration`.
pub struct BartForConditionalGeneration {
    model_type: String,
    encoder: Stack,
    decoder: Stack,
    lm_head: Linear,
    spec: BartSpec,
    device: Device,
    dtype: DType,
}

impl BartForConditionalGeneration {
    /// Loads the model from a checkpoint with the head (`model.` prefix). The head is
    /// `lm_head.weight` when the checkpoint has one, else the decoder's embedding table,
    /// plus the `final_logits_bias` buffer (zeros when absent).
    pub fn new(model_type: &str, spec: &BartSpec, vb: &Weights) -> Result<Self> {
        let model = vb.pp("model");
        let d = spec.d_model;
        let shared = Embedding::new(&model.pp("shared"), spec.vocab_size, d)?;
        let decoder_embed = match spec.separate_decoder_embeddings {
            true => Embedding::new(
                &model.pp("decoder.embed_tokens"),
                spec.decoder_vocab_size,
                d,
            )?,
            false => shared.clone(),
        };
        let bias = match vb.contains("final_logits_bias") {
            true => Some(
                vb.get((1, spec.decoder_vocab_size), "final_logits_bias")?
                    .squeeze(0)?,
            ),
            false => None,
        };
        let lm_head = if vb.contains("lm_head.weight") {
            let weight = vb.get_weight((spec.decoder_vocab_size, d), "lm_head.weight")?;
            Linear::from_weight(weight, bias)?
        } else {
            decoder_embed.tied_linear(bias)?
        };
        Ok(Self {
            model_type: model_type.to_owned(),
            encoder: Stack::new(spec, false, shared, &model.pp("encoder"))?,
            decoder: Stack::new(spec, true, decoder_embed, &model.pp("decoder"))?,
            lm_head,
            spec: spec.clone(),
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
        self.encoder.forward(input_ids, mask.as_ref(), None)
    }

    fn new_cache(&self, encoder_output: Tensor, attention_mask: Option<Tensor>) -> Result<Cache> {
        let mut cache = EncoderDecoderCache::new(self.spec.decoder_layers, DType::F32)?;
        cache.set_encoder_output(encoder_output, attention_mask);
        Ok(cache.into())
    }

    fn decode(
        &self,
        decoder_input_ids: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<Seq2SeqOutput> {
        let cache = cache.encoder_decoder_mut(&self.model_type)?;
        let (b, seq) = decoder_input_ids.dims2()?;
        let mask = causal_mask(
            opts.attention_mask.as_ref(),
            b,
            cache.seq_len(),
            seq,
            None,
            &self.device,
        )?;
        let hidden = self
            .decoder
            .forward(decoder_input_ids, mask.as_ref(), Some(cache))?;
        let out = keep_last(&hidden, opts.logits_to_keep)?;
        Ok(Seq2SeqOutput {
            logits: self.lm_head.forward(&out)?.to_dtype(DType::F32)?,
            last_hidden_state: hidden,
        })
    }

    fn decoder_start_token_id(&self) -> u32 {
        self.spec.decoder_start_token_id
    }

    fn vocab_size(&self) -> usize {
        self.spec.decoder_vocab_size
    }

    fn max_target_positions(&self) -> usize {
        self.spec.max_position_embeddings
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}
