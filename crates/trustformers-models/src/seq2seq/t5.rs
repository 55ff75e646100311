//! T5 (`modeling_t5.py`), mT5 and UMT5: pre-norm blocks with RMS layer norms and no biases,
//! attention without score scaling whose positions are a learned bias per relative-position
//! bucket and head, added to the scores.
//!
//! ```text
//! h = h + attn(rms(h), bias)             layer.0.SelfAttention (+ relative_attention_bias)
//! h = h + cross(rms(h), encoder output)  layer.1.EncDecAttention (decoder only)
//! h = h + ff(rms(h))                     layer.-1.DenseReluDense: wo(act(wi h)), or
//!                                        wo(act(wi_0 h) * wi_1 h) when gated (v1.1, mT5)
//! ```
//!
//! T5 and mT5 keep the bucket table in block 0 and share its bias with every layer of the
//! stack; UMT5 has a table in every block. The decoder's buckets look only backwards.

use super::{
    decoder_mask, decoder_start, encoder_cache, keep_last, residual, self_attention, source_mask,
};
use crate::hf_config::limits;
use crate::traits::{EncoderDecoderLM, ForwardOptions, Seq2SeqOutput};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::positions::t5_buckets;
use trustformers_nn::{
    Activation, Cache, CrossAttention, CrossAttentionSpec, Embedding, EncoderDecoderCache, Linear,
    RmsNorm,
};

/// Everything that shapes a T5, mT5 or UMT5 model, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct T5Spec {
    pub vocab_size: usize,
    pub d_model: usize,
    /// Width of each head.
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_decoder_layers: usize,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
    pub layer_norm_epsilon: f64,
    /// The feed-forward's activation, and whether it gates (`feed_forward_proj`
    /// `gated-gelu`: `act(wi_0 h) * wi_1 h`).
    pub act: Activation,
    pub gated: bool,
    /// A relative-bias table in every block (UMT5), not only in block 0.
    pub bias_per_layer: bool,
    /// Multiply the decoder's output by `d_model^-0.5` before the head (T5 v1.0, whose head
    /// is the embedding table).
    pub scale_decoder_outputs: bool,
    pub decoder_start_token_id: u32,
}

impl T5Spec {
    /// Reads a `t5`, `mt5` or `umt5` config.json as transformers 5 does.
    pub fn from_config(config: &Value, model_type: &str) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let d_model = f.usize("d_model", limits::HIDDEN)?;
        let num_heads = f.usize("num_heads", limits::HEADS)?;
        let d_kv = f.usize("d_kv", limits::HEAD_DIM)?;
        let num_layers = f.usize("num_layers", limits::LAYERS)?;
        let buckets = f.usize("relative_attention_num_buckets", 1 << 16)?;
        if buckets < 2 {
            return Err(Error::config(
                "relative_attention_num_buckets",
                "must be at least 2 (half for each direction in the encoder)",
            ));
        }
        let proj = f.opt_str("feed_forward_proj")?.unwrap_or("relu");
        let (gated, act_name) = match proj.split('-').collect::<Vec<_>>()[..] {
            [act] => (false, act),
            ["gated", act] => (true, act),
            _ => {
                return Err(Error::config(
                    "feed_forward_proj",
                    format!(
                        "`{proj}` is neither `ACT` nor `gated-ACT` (e.g. `relu`, `gated-gelu`)"
                    ),
                ))
            }
        };
        // transformers runs `gated-gelu` with the tanh approximation.
        let act = match proj {
            "gated-gelu" => Activation::GeluTanh,
            _ => Activation::from_hf(act_name)
                .map_err(|e| Error::config("feed_forward_proj", e.to_string()))?,
        };
        let vocab_size = f.usize("vocab_size", limits::VOCAB)?;
        let decoder_start_token_id = decoder_start(&f, 0, vocab_size)?;
        // transformers 5 forces `tie_word_embeddings` true and keeps what the file said as
        // `scale_decoder_outputs` (false for v1.1 and Flan-T5); mT5 never scales.
        let scale_decoder_outputs = match model_type {
            "mt5" => false,
            _ => match f.opt_bool("scale_decoder_outputs")? {
                Some(scale) => scale,
                None => f.opt_bool("tie_word_embeddings")? != Some(false),
            },
        };
        Ok(Self {
            vocab_size,
            d_model,
            d_kv,
            d_ff: f.usize("d_ff", limits::INTERMEDIATE)?,
            num_layers,
            num_decoder_layers: f
                .opt_usize("num_decoder_layers", limits::LAYERS)?
                .unwrap_or(num_layers),
            num_heads,
            relative_attention_num_buckets: buckets,
            relative_attention_max_distance: f
                .opt_usize("relative_attention_max_distance", 1 << 24)?
                .unwrap_or(128),
            layer_norm_epsilon: f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-6),
            act,
            gated,
            bias_per_layer: model_type == "umt5",
            scale_decoder_outputs,
            decoder_start_token_id,
        })
    }

    fn attention(&self) -> CrossAttentionSpec {
        CrossAttentionSpec {
            hidden_size: self.d_model,
            source_size: self.d_model,
            num_heads: self.num_heads,
            head_dim: self.d_kv,
            bias: false,
            // T5's initialization folds the 1/sqrt(d) into the query weights.
            scale: 1.0,
            names: ["q", "k", "v", "o"],
        }
    }
}

/// `DenseReluDense`.
enum FeedForward {
    Plain {
        wi: Linear,
        wo: Linear,
    },
    Gated {
        wi_0: Linear,
        wi_1: Linear,
        wo: Linear,
    },
}

impl FeedForward {
    fn new(spec: &T5Spec, vb: &Weights) -> Result<Self> {
        let (d, ff) = (spec.d_model, spec.d_ff);
        let wo = Linear::new(&vb.pp("wo"), ff, d, false)?;
        Ok(if spec.gated {
            Self::Gated {
                wi_0: Linear::new(&vb.pp("wi_0"), d, ff, false)?,
                wi_1: Linear::new(&vb.pp("wi_1"), d, ff, false)?,
                wo,
            }
        } else {
            Self::Plain {
                wi: Linear::new(&vb.pp("wi"), d, ff, false)?,
                wo,
            }
        })
    }

    fn forward(&self, xs: &Tensor, act: Activation) -> Result<Tensor> {
        match self {
            Self::Plain { wi, wo } => wo.forward(&act.forward(&wi.forward(xs)?)?),
            Self::Gated { wi_0, wi_1, wo } => {
                wo.forward(&act.forward_gated(&wi_0.forward(xs)?, &wi_1.forward(xs)?)?)
            }
        }
    }
}

/// One `T5Block`.
struct Block {
    attn: CrossAttention,
    attn_norm: RmsNorm,
    /// `relative_attention_bias.weight` `[buckets, heads]`, in the blocks that have one.
    bias_table: Option<Tensor>,
    cross: Option<(CrossAttention, RmsNorm)>,
    ff: FeedForward,
    ff_norm: RmsNorm,
}

/// The encoder or decoder stack (`T5Stack`), its embedding table shared.
struct Stack {
    blocks: Vec<Block>,
    final_norm: RmsNorm,
    /// The encoder's buckets look both ways; the decoder's only back.
    bidirectional: bool,
    buckets: usize,
    max_distance: usize,
    act: Activation,
}

impl Stack {
    fn new(spec: &T5Spec, layers: usize, decoder: bool, vb: &Weights) -> Result<Self> {
        let eps = spec.layer_norm_epsilon;
        let attention = spec.attention();
        let blocks = (0..layers)
            .map(|i| {
                let vb = vb.pp(format!("block.{i}.layer"));
                let sa = vb.pp("0.SelfAttention");
                // UMT5 has a table in every block; so may a GGUF file (llama.cpp's `t5`
                // architecture writes UMT5 too), which says so by holding them.
                let bias_table = if i == 0
                    || spec.bias_per_layer
                    || sa.contains("relative_attention_bias.weight")
                {
                    Some(sa.get(
                        (spec.relative_attention_num_buckets, spec.num_heads),
                        "relative_attention_bias.weight",
                    )?)
                } else {
                    None
                };
                let cross = if decoder {
                    Some((
                        CrossAttention::new(&attention, &vb.pp("1.EncDecAttention"))?,
                        RmsNorm::new(&vb.pp("1.layer_norm"), spec.d_model, eps)?,
                    ))
                } else {
                    None
                };
                let ff = vb.pp(if decoder { 2 } else { 1 });
                Ok(Block {
                    attn: CrossAttention::new(&attention, &sa)?,
                    attn_norm: RmsNorm::new(&vb.pp("0.layer_norm"), spec.d_model, eps)?,
                    bias_table,
                    cross,
                    ff: FeedForward::new(spec, &ff.pp("DenseReluDense"))?,
                    ff_norm: RmsNorm::new(&ff.pp("layer_norm"), spec.d_model, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            blocks,
            final_norm: RmsNorm::new(&vb.pp("final_layer_norm"), spec.d_model, eps)?,
            bidirectional: !decoder,
            buckets: spec.relative_attention_num_buckets,
            max_distance: spec.relative_attention_max_distance,
            act: spec.act,
        })
    }

    /// The position bias of `table` for `queries` queries after `past` positions.
    ///
    /// # Shapes
    /// `table`: `[buckets, heads]` -> `[1, heads, queries, past + queries]`.
    fn position_bias(&self, table: &Tensor, past: usize, queries: usize) -> Result<Tensor> {
        let keys = past + queries;
        let ids = t5_buckets(
            past,
            queries,
            keys,
            self.bidirectional,
            self.buckets,
            self.max_distance,
            table.device(),
        )?;
        let heads = table.dim(1)?;
        Ok(table
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((queries, keys, heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .to_dtype(DType::F32)?)
    }

    /// Runs the blocks and the final norm over embedded `h`; `mask` is the additive mask
    /// of the self-attention (`[batch, 1, 1 | seq, keys]`), the position bias is added
    /// to it here.
    fn forward(
        &self,
        mut h: Tensor,
        mask: Option<&Tensor>,
        mut cache: Option<&mut EncoderDecoderCache>,
    ) -> Result<Tensor> {
        let seq = h.dim(1)?;
        let past = cache.as_ref().map_or(0, |c| c.seq_len());
        let mut scores_bias: Option<Tensor> = None;
        for (i, block) in self.blocks.iter().enumerate() {
            if let Some(table) = &block.bias_table {
                let bias = self.position_bias(table, past, seq)?;
                scores_bias = Some(match mask {
                    Some(m) => bias.broadcast_add(m)?,
                    None => bias,
                });
            }
            let bias = scores_bias.as_ref();
            let norm = |x: &Tensor| block.attn_norm.forward(x);
            h = residual(&h, true, norm, |x| {
                self_attention(&block.attn, x, bias, cache.as_deref_mut().map(|c| (c, i)))
            })?;
            if let (Some((cross, norm)), Some(c)) = (&block.cross, cache.as_deref_mut()) {
                h = residual(
                    &h,
                    true,
                    |x| norm.forward(x),
                    |x| cross.forward_cached(x, c, i),
                )?;
            }
            h = residual(
                &h,
                true,
                |x| block.ff_norm.forward(x),
                |x| block.ff.forward(x, self.act),
            )?;
        }
        self.final_norm.forward(&h)
    }
}

/// The shared embedding table: `shared.weight`, or `encoder.embed_tokens.weight` in
/// checkpoints saved from an encoder alone that lack it.
fn shared_embedding(spec: &T5Spec, vb: &Weights) -> Result<Embedding> {
    let name = if vb.contains("shared.weight") || !vb.contains("encoder.embed_tokens.weight") {
        "shared"
    } else {
        "encoder.embed_tokens"
    };
    Embedding::new(&vb.pp(name), spec.vocab_size, spec.d_model)
}

/// `T5EncoderModel`: the shared embeddings and the encoder stack, for embedding models
/// built on T5 encoders (sentence-T5, the text encoders of diffusion models).
pub struct T5EncoderModel {
    shared: Embedding,
    encoder: Stack,
}

impl T5EncoderModel {
    /// Loads the encoder of a T5, mT5 or UMT5 checkpoint (with or without its decoder).
    pub fn new(spec: &T5Spec, vb: &Weights) -> Result<Self> {
        Ok(Self {
            shared: shared_embedding(spec, vb)?,
            encoder: Stack::new(spec, spec.num_layers, false, &vb.pp("encoder"))?,
        })
    }

    /// The encoder's last hidden state.
    ///
    /// # Shapes
    /// `input_ids`, `attention_mask`: `[batch, source_len]` -> `[batch, source_len, d_model]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let mask = source_mask(attention_mask, input_ids)?;
        let h = self.shared.forward(input_ids)?;
        self.encoder.forward(h, mask.as_ref(), None)
    }
}

/// `T5ForConditionalGeneration` (and `MT5…`, `UMT5…`).
pub struct T5ForConditionalGeneration {
    model_type: String,
    encoder: T5EncoderModel,
    decoder: Stack,
    lm_head: Linear,
    spec: T5Spec,
    device: Device,
    dtype: DType,
}

impl T5ForConditionalGeneration {
    /// Loads the model under `vb`. The head is `lm_head.weight` when the checkpoint has one
    /// (v1.1, Flan-T5), else the embedding table, as transformers ties it.
    pub fn new(model_type: &str, spec: &T5Spec, vb: &Weights) -> Result<Self> {
        let encoder = T5EncoderModel::new(spec, vb)?;
        let decoder = Stack::new(spec, spec.num_decoder_layers, true, &vb.pp("decoder"))?;
        let lm_head = if vb.contains("lm_head.weight") {
            Linear::new(&vb.pp("lm_head"), spec.d_model, spec.vocab_size, false)?
        } else {
            encoder.shared.tied_linear(None)?
        };
        Ok(Self {
            model_type: model_type.to_owned(),
            encoder,
            decoder,
            lm_head,
            spec: spec.clone(),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }
}

impl EncoderDecoderLM for T5ForConditionalGeneration {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn encode(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        self.encoder.forward(input_ids, attention_mask)
    }

    fn new_cache(&self, encoder_output: Tensor, attention_mask: Option<Tensor>) -> Result<Cache> {
        encoder_cache(self.spec.num_decoder_layers, encoder_output, attention_mask)
    }

    fn decode(
        &self,
        decoder_input_ids: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<Seq2SeqOutput> {
        let cache = cache.encoder_decoder_mut(&self.model_type)?;
        let mask = decoder_mask(decoder_input_ids, opts, cache)?;
        let h = self.encoder.shared.forward(decoder_input_ids)?;
        let hidden = self.decoder.forward(h, mask.as_ref(), Some(cache))?;
        let mut out = keep_last(&hidden, opts.logits_to_keep)?;
        if self.spec.scale_decoder_outputs {
            out = (out * (self.spec.d_model as f64).powf(-0.5))?;
        }
        Ok(Seq2SeqOutput {
            logits: self.lm_head.forward(&out)?.to_dtype(DType::F32)?,
            last_hidden_state: hidden,
        })
    }

    fn decoder_start_token_id(&self) -> u32 {
        self.spec.decoder_start_token_id
    }

    fn vocab_size(&self) -> usize {
        self.spec.vocab_size
    }

    fn max_target_positions(&self) -> usize {
        // Relative positions: no table bounds the length.
        usize::MAX
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }
}

/// llama.cpp's name for a T5 tensor (`convert_hf_to_gguf.py`'s `T5Model`, gguf-py's
/// `TensorNameMap`): `token_embd`, `output`, `{enc,dec}.output_norm` and
/// `{enc,dec}.blk.{i}.{attn,cross_attn,ffn}_*`.
pub fn gguf_tensor_name(name: &str, _config: &Value) -> Option<trustformers_core::StoredName> {
    let plain = |n: String| Some(trustformers_core::StoredName::plain(n));
    match name {
        "shared.weight" => return plain("token_embd.weight".into()),
        "lm_head.weight" => return plain("output.weight".into()),
        "encoder.final_layer_norm.weight" => return plain("enc.output_norm.weight".into()),
        "decoder.final_layer_norm.weight" => return plain("dec.output_norm.weight".into()),
        _ => {}
    }
    let (stack, rest) = name.split_once(".block.")?;
    let prefix = match stack {
        "encoder" => "enc",
        "decoder" => "dec",
        _ => return None,
    };
    let (layer, rest) = rest.split_once(".layer.")?;
    let (sub, tensor) = rest.split_once('.')?;
    let ffn_layer = if prefix == "enc" { "1" } else { "2" };
    let gguf = match (sub, tensor) {
        ("0", "layer_norm.weight") => "attn_norm.weight".to_owned(),
        ("0", "SelfAttention.relative_attention_bias.weight") => "attn_rel_b.weight".to_owned(),
        ("0", t) => format!("attn_{}", t.strip_prefix("SelfAttention.")?),
        ("1", "layer_norm.weight") if prefix == "dec" => "cross_attn_norm.weight".to_owned(),
        ("1", t) if prefix == "dec" => {
            format!("cross_attn_{}", t.strip_prefix("EncDecAttention.")?)
        }
        (l, "layer_norm.weight") if l == ffn_layer => "ffn_norm.weight".to_owned(),
        (l, t) if l == ffn_layer => {
            let w = match t.strip_prefix("DenseReluDense.")? {
                "wi.weight" | "wi_1.weight" => "ffn_up",
                "wi_0.weight" => "ffn_gate",
                "wo.weight" => "ffn_down",
                _ => return None,
            };
            format!("{w}.weight")
        }
        _ => return None,
    };
    plain(format!("{prefix}.blk.{layer}.{gguf}"))
}

/// The config.json fields of a llama.cpp `t5` or `t5encoder` GGUF file (its `t5.*` or
/// `t5encoder.*` metadata): the feed-forward is gated when the file has `ffn_gate` tensors;
/// the bucket distance is the 128 llama.cpp assumes; a file without `output` ties the head
/// to the embeddings (T5 v1.0, with the output scale).
pub fn from_gguf(
    file: &trustformers_core::gguf::GgufFile,
    config: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    use trustformers_core::gguf::GgufValue;
    let arch = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("t5");
    let int = |key: &str| {
        file.get(&format!("{arch}.{key}"))
            .and_then(GgufValue::as_u64)
    };
    let mut required = |key: &str, field: &str| -> Result<()> {
        let v = int(key).ok_or_else(|| {
            Error::config(format!("{arch}.{key}"), "missing from the GGUF metadata")
        })?;
        config.insert(field.into(), Value::from(v));
        Ok(())
    };
    required("embedding_length", "d_model")?;
    required("feed_forward_length", "d_ff")?;
    required("block_count", "num_layers")?;
    required("attention.head_count", "num_heads")?;
    required("attention.key_length", "d_kv")?;
    required(
        "attention.relative_buckets_count",
        "relative_attention_num_buckets",
    )?;
    if int("decoder_block_count").is_some() {
        required("decoder_block_count", "num_decoder_layers")?;
    }
    if int("decoder_start_token_id").is_some() {
        required("decoder_start_token_id", "decoder_start_token_id")?;
    }
    let eps = file
        .get(&format!("{arch}.attention.layer_norm_rms_epsilon"))
        .and_then(GgufValue::as_f64);
    if let Some(eps) = eps {
        config.insert("layer_norm_epsilon".into(), Value::from(eps));
    }
    config.insert("relative_attention_max_distance".into(), Value::from(128));
    let gated = file.tensor_info("enc.blk.0.ffn_gate.weight").is_some();
    config.insert(
        "feed_forward_proj".into(),
        Value::from(if gated { "gated-gelu" } else { "relu" }),
    );
    config.insert(
        "tie_word_embeddings".into(),
        Value::from(file.tensor_info("output.weight").is_none()),
    );
    Ok(())
}
