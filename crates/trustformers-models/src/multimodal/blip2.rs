//! BLIP-2 (`modeling_blip_2.py`, `Blip2ForConditionalGeneration` with a decoder-only language
//! model): a ViT (fused `qkv` projection with q and v biases, `post_layernorm` on every token)
//! whose output the Q-Former's learned queries read through cross-attention (every
//! `cross_attention_frequency`-th layer; BERT-style post-norm layers with the queries' own
//! feed-forward), projected into the language model's width; the projected queries take the
//! places of the prompt's image tokens (the processor puts `num_query_tokens` of them before
//! the text).

use super::{causal_lm_by_language_model, ImagePlacement, VisionLanguageModel};
use crate::hf_config::limits;
use crate::registry;
use crate::traits::{CausalLM, CausalLmOutput, ForwardOptions, RuntimeOptions};
use crate::vision::{attend, check_pixels, pair, LayerNames, PreNormEncoder, TowerSpec};
use crate::DecoderForCausalLM;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{Activation, Cache, LayerNorm, Linear, PatchEmbedding};

/// BLIP-2's vision layers.
const BLIP2_VISION_NAMES: LayerNames = LayerNames {
    attention: "self_attn",
    qkv: ["qkv", "q_bias", "v_bias"],
    fused: true,
    out: "self_attn.projection",
    norm1: "layer_norm1",
    norm2: "layer_norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
};

/// The Q-Former's shape (`Blip2QFormerConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct QFormerSpec {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub cross_attention_frequency: usize,
    /// The width of what the cross-attention reads (the vision tower's).
    pub encoder_hidden_size: usize,
}

/// Everything that shapes a BLIP-2.
#[derive(Debug, Clone, PartialEq)]
pub struct Blip2Spec {
    pub vision: TowerSpec,
    pub image_size: (usize, usize),
    pub patch_size: usize,
    pub num_channels: usize,
    pub qformer: QFormerSpec,
    pub num_query_tokens: usize,
    pub text_model_type: String,
    pub text_config: Value,
    pub image_token_id: u32,
}

impl Blip2Spec {
    /// Reads a `Blip2Config` with a decoder-only language model.
    pub fn from_config(config: &Value) -> Result<Self> {
        let f = Fields::new(config, "")?;
        if !f
            .opt_bool("use_decoder_only_language_model")?
            .unwrap_or(true)
        {
            return Err(Error::config(
                "use_decoder_only_language_model",
                "BLIP-2 with an encoder-decoder language model (Flan-T5) is not supported",
            ));
        }
        let section = |name: &str| {
            config
                .get(name)
                .cloned()
                .unwrap_or(Value::Object(Default::default()))
        };
        let vision_config = section("vision_config");
        let vf = Fields::new(&vision_config, "vision_config.")?;
        let vision = TowerSpec::from_fields(
            &vf,
            &TowerSpec {
                hidden_size: 1408,
                num_hidden_layers: 39,
                num_attention_heads: 16,
                intermediate_size: 6144,
                hidden_act: Activation::GeluErf,
                layer_norm_eps: 1e-6,
                qkv_bias: true,
            },
        )?;
        let image_size = pair(&vf, "image_size", 224)?;
        let (patch_size, pw) = pair(&vf, "patch_size", 14)?;
        if patch_size != pw || image_size.0 % patch_size != 0 || image_size.1 % patch_size != 0 {
            return Err(Error::config(
                "vision_config.patch_size",
                format!("{patch_size} must be square and divide image_size {image_size:?}"),
            ));
        }
        let qformer_config = section("qformer_config");
        let qf = Fields::new(&qformer_config, "qformer_config.")?;
        let q = TowerSpec::from_fields(
            &qf,
            &TowerSpec {
                hidden_size: 768,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                intermediate_size: 3072,
                hidden_act: Activation::GeluErf,
                layer_norm_eps: 1e-12,
                qkv_bias: true,
            },
        )?;
        let qformer = QFormerSpec {
            hidden_size: q.hidden_size,
            num_hidden_layers: q.num_hidden_layers,
            num_attention_heads: q.num_attention_heads,
            intermediate_size: q.intermediate_size,
            hidden_act: q.hidden_act,
            layer_norm_eps: q.layer_norm_eps,
            cross_attention_frequency: qf
                .opt_usize("cross_attention_frequency", limits::LAYERS)?
                .unwrap_or(2),
            encoder_hidden_size: qf
                .opt_usize("encoder_hidden_size", limits::HIDDEN)?
                .unwrap_or(vision.hidden_size),
        };
        if qformer.encoder_hidden_size != vision.hidden_size {
            return Err(Error::config(
                "qformer_config.encoder_hidden_size",
                format!(
                    "{} differs from the vision tower's hidden_size {}",
                    qformer.encoder_hidden_size, vision.hidden_size
                ),
            ));
        }
        if qf.opt_bool("use_qformer_text_input")?.unwrap_or(false) {
            return Err(Error::config(
                "qformer_config.use_qformer_text_input",
                "the Q-Former's text input (InstructBLIP-style) is not supported",
            ));
        }
        let (text_config, text_model_type) = super::text_config(config, "opt");
        let image_token_id = super::image_token_id(&f)?.ok_or_else(|| {
            Error::config(
                "image_token_id",
                "is required (checkpoints from before transformers 4.47 lack it: their \
                     prompts carry no image tokens)",
            )
        })?;
        Ok(Self {
            vision,
            image_size,
            patch_size,
            num_channels: vf.opt_usize("num_channels", 64)?.unwrap_or(3),
            qformer,
            num_query_tokens: f
                .opt_usize("num_query_tokens", limits::POSITIONS)?
                .unwrap_or(32),
            text_model_type,
            text_config,
            image_token_id,
        })
    }

    fn num_patches(&self) -> usize {
        (self.image_size.0 / self.patch_size) * (self.image_size.1 / self.patch_size)
    }
}

/// BERT's attention block: `LN(x + dense(attention))`.
struct QFormerAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    norm: LayerNorm,
    heads: usize,
}

impl QFormerAttention {
    fn new(spec: &QFormerSpec, kv_width: usize, vb: &Weights) -> Result<Self> {
        let h = spec.hidden_size;
        let att = vb.pp("attention");
        Ok(Self {
            query: Linear::new(&att.pp("query"), h, h, true)?,
            key: Linear::new(&att.pp("key"), kv_width, h, true)?,
            value: Linear::new(&att.pp("value"), kv_width, h, true)?,
            dense: Linear::new(&vb.pp("output").pp("dense"), h, h, true)?,
            norm: LayerNorm::new(
                &vb.pp("output").pp("LayerNorm"),
                h,
                spec.layer_norm_eps,
                true,
            )?,
            heads: spec.num_attention_heads,
        })
    }

    /// `xs` attending over `context` (itself for self-attention).
    fn forward(&self, xs: &Tensor, context: &Tensor) -> Result<Tensor> {
        let ctx = attend(
            &self.query.forward(xs)?,
            &self.key.forward(context)?,
            &self.value.forward(context)?,
            self.heads,
        )?;
        self.norm.forward(&(xs + self.dense.forward(&ctx)?)?)
    }
}

struct QFormerLayer {
    attention: QFormerAttention,
    cross: Option<QFormerAttention>,
    /// The queries' feed-forward (`intermediate_query`, `output_query`).
    up: Linear,
    down: Linear,
    norm: LayerNorm,
    act: Activation,
}

/// The Q-Former over query tokens only (`Blip2QFormerModel` without text input).
struct QFormer {
    queries: Tensor,
    norm: LayerNorm,
    layers: Vec<QFormerLayer>,
}

impl QFormer {
    fn new(spec: &Blip2Spec, vb: &Weights) -> Result<Self> {
        let q = &spec.qformer;
        let h = q.hidden_size;
        let qf = vb.pp("qformer");
        let layers = (0..q.num_hidden_layers)
            .map(|i| {
                let vb = qf.pp("encoder").pp("layer").pp(i);
                Ok(QFormerLayer {
                    attention: QFormerAttention::new(q, h, &vb.pp("attention"))?,
                    cross: (i % q.cross_attention_frequency == 0)
                        .then(|| {
                            QFormerAttention::new(
                                q,
                                q.encoder_hidden_size,
                                &vb.pp("crossattention"),
                            )
                        })
                        .transpose()?,
                    up: Linear::new(
                        &vb.pp("intermediate_query").pp("dense"),
                        h,
                        q.intermediate_size,
                        true,
                    )?,
                    down: Linear::new(
                        &vb.pp("output_query").pp("dense"),
                        q.intermediate_size,
                        h,
                        true,
                    )?,
                    norm: LayerNorm::new(
                        &vb.pp("output_query").pp("LayerNorm"),
                        h,
                        q.layer_norm_eps,
                        true,
                    )?,
                    act: q.hidden_act,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            queries: vb.get((1, spec.num_query_tokens, h), "query_tokens")?,
            norm: LayerNorm::new(&qf.pp("layernorm"), h, q.layer_norm_eps, true)?,
            layers,
        })
    }

    /// `image_embeds` `[batch, tokens, vision hidden]` -> `[batch, queries, hidden]`.
    fn forward(&self, image_embeds: &Tensor) -> Result<Tensor> {
        let b = image_embeds.dim(0)?;
        let (_, n, h) = self.queries.dims3()?;
        let mut xs = self
            .norm
            .forward(&self.queries.broadcast_as((b, n, h))?.contiguous()?)?;
        for layer in &self.layers {
            xs = layer.attention.forward(&xs, &xs)?;
            if let Some(cross) = &layer.cross {
                xs = cross.forward(&xs, image_embeds)?;
            }
            let up = layer.act.forward(&layer.up.forward(&xs)?)?;
            xs = layer.norm.forward(&(&xs + layer.down.forward(&up)?)?)?;
        }
        Ok(xs)
    }
}

/// `Blip2ForConditionalGeneration` with a decoder-only language model (OPT).
pub struct Blip2ForConditionalGeneration {
    model_type: String,
    spec: Blip2Spec,
    patches: PatchEmbedding,
    /// `[1, 1, hidden]` and `[1, tokens, hidden]`.
    class_embedding: Tensor,
    positions: Tensor,
    encoder: PreNormEncoder,
    post_norm: LayerNorm,
    qformer: QFormer,
    projection: Linear,
    language: DecoderForCausalLM,
}

impl Blip2ForConditionalGeneration {
    /// Loads `vision_model`, `query_tokens`, `qformer`, `language_projection` and
    /// `language_model` (its own names: OPT's `model.decoder.*`).
    pub fn new(
        model_type: &str,
        spec: &Blip2Spec,
        vb: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Self> {
        let text_spec =
            registry::by_model_type(&spec.text_model_type)?.decoder_spec(&spec.text_config)?;
        let lm = vb.pp("language_model");
        let language = DecoderForCausalLM::from_parts(
            model_type,
            &text_spec,
            &lm.pp("model"),
            &lm.pp("lm_head"),
            runtime,
        )?;
        let h = spec.vision.hidden_size;
        let vision = vb.pp("vision_model");
        let emb = vision.pp("embeddings");
        Ok(Self {
            model_type: model_type.to_string(),
            patches: PatchEmbedding::new(
                &emb.pp("patch_embedding"),
                spec.num_channels,
                h,
                spec.patch_size,
                true,
            )?,
            class_embedding: emb.get((1, 1, h), "class_embedding")?,
            positions: emb.get((1, spec.num_patches() + 1, h), "position_embedding")?,
            encoder: PreNormEncoder::new(
                &spec.vision,
                &BLIP2_VISION_NAMES,
                &vision.pp("encoder").pp("layers"),
            )?,
            post_norm: LayerNorm::new(
                &vision.pp("post_layernorm"),
                h,
                spec.vision.layer_norm_eps,
                true,
            )?,
            qformer: QFormer::new(spec, vb)?,
            projection: Linear::new(
                &vb.pp("language_projection"),
                spec.qformer.hidden_size,
                text_spec.hidden_size,
                true,
            )?,
            language,
            spec: spec.clone(),
        })
    }

    /// The vision tower's last hidden state (after `post_layernorm`).
    pub fn vision_last_hidden_state(&self, pixel_values: &Tensor) -> Result<Tensor> {
        check_pixels(pixel_values, self.spec.num_channels, self.spec.image_size)?;
        let patches = self.patches.forward(pixel_values)?;
        let (b, _, h) = patches.dims3()?;
        let cls = self.class_embedding.broadcast_as((b, 1, h))?;
        let xs = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.positions)?;
        let (xs, _) = self.encoder.forward(&xs, None, false)?;
        self.post_norm.forward(&xs)
    }

    /// The Q-Former's last hidden state (`get_qformer_features`).
    pub fn qformer_last_hidden_state(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.qformer
            .forward(&self.vision_last_hidden_state(pixel_values)?)
    }
}

impl VisionLanguageModel for Blip2ForConditionalGeneration {
    fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.projection
            .forward(&self.qformer_last_hidden_state(pixel_values)?)
    }

    fn image_token_id(&self) -> u32 {
        self.spec.image_token_id
    }

    fn image_seq_length(&self) -> usize {
        self.spec.num_query_tokens
    }

    fn image_size(&self) -> (usize, usize) {
        self.spec.image_size
    }

    fn image_placement(&self) -> ImagePlacement {
        ImagePlacement::Prefix
    }

    fn image_stages(&self, pixel_values: &Tensor) -> Result<Vec<(&'static str, Tensor)>> {
        let vision = self.vision_last_hidden_state(pixel_values)?;
        let qformer = self.qformer.forward(&vision)?;
        Ok(vec![
            ("vision_last_hidden_state", vision),
            ("qformer_last_hidden_state", qformer),
        ])
    }

    fn language_model(&self) -> &DecoderForCausalLM {
        &self.language
    }
}

causal_lm_by_language_model!(Blip2ForConditionalGeneration, language);
