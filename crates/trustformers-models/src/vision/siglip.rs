//! SigLIP (`modeling_siglip.py`): CLIP's two towers with a sigmoid loss. The vision tower has
//! no class token (patches with biased projection, positions, layers, `post_layernorm` on
//! every token) and pools by attention from a learned probe (`SiglipMultiheadAttention-
//! PoolingHead`); the text tower is bidirectional, pooled at its last token and projected by
//! `head`. Logits are `cos * exp(logit_scale) + logit_bias`, read through a sigmoid.

use super::clip::{ClipTextSpec, ClipVisionSpec, TextTower};
use super::{
    attend, check_pixels, ImageModel, ImageTextModel, ImageTextOutput, PreNormEncoder, ScoreKind,
    TowerSpec, VisionOutput, CLIP_NAMES,
};
use crate::hf_config::limits;
use candle_core::Tensor;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{Activation, LayerNorm, Linear, PatchEmbedding};

/// A `SiglipConfig`, or a tower's own config (`siglip_vision_model`).
#[derive(Debug, Clone, PartialEq)]
pub struct SiglipSpec {
    pub text: Option<ClipTextSpec>,
    pub vision: Option<ClipVisionSpec>,
    /// The vision tower pools with its attention head (`vision_use_head`).
    pub vision_use_head: bool,
    /// The text head's output size (`projection_size`, the hidden size by default).
    pub projection_size: usize,
}

fn siglip_tower() -> TowerSpec {
    TowerSpec {
        hidden_size: 768,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        intermediate_size: 3072,
        hidden_act: Activation::GeluTanh,
        layer_norm_eps: 1e-6,
        qkv_bias: true,
    }
}

impl SiglipSpec {
    /// Reads a `SiglipConfig` (`siglip`) or a tower's own config (`siglip_vision_model`).
    pub fn from_config(config: &Value, model_type: &str) -> Result<Self> {
        let nested = |name: &str| match model_type {
            "siglip" => config
                .get(name)
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
            _ => config.clone(),
        };
        let vision_cfg = nested("vision_config");
        let vision = matches!(model_type, "siglip" | "siglip_vision_model")
            .then(|| ClipVisionSpec::from_config(&vision_cfg, &siglip_tower(), 16))
            .transpose()?;
        let text = (model_type == "siglip")
            .then(|| ClipTextSpec::from_config(&nested("text_config"), &siglip_tower(), 32000, 64))
            .transpose()?;
        let vf = Fields::new(&vision_cfg, "vision_config.")?;
        let projection_size = match &text {
            Some(t) => {
                let text_cfg = nested("text_config");
                let tf = Fields::new(&text_cfg, "text_config.")?;
                tf.opt_usize("projection_size", limits::HIDDEN)?
                    .unwrap_or(t.tower.hidden_size)
            }
            None => 0,
        };
        Ok(Self {
            text,
            vision,
            vision_use_head: vf.opt_bool("vision_use_head")?.unwrap_or(true),
            projection_size,
        })
    }
}

/// `torch.nn.MultiheadAttention` from one learned query (the probe) over the tokens, then
/// LayerNorm and an MLP with a residual; the pooled vector is its output.
struct AttentionPool {
    /// `[1, 1, hidden]`.
    probe: Tensor,
    /// `in_proj_weight` split: `[hidden, hidden]` each, and their biases.
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
    heads: usize,
}

impl AttentionPool {
    fn new(spec: &TowerSpec, vb: &Weights) -> Result<Self> {
        let h = spec.hidden_size;
        let att = vb.pp("attention");
        let w = att.get((3 * h, h), "in_proj_weight")?;
        let b = att.get(3 * h, "in_proj_bias")?;
        let part = |i: usize| {
            Linear::from_weight(
                trustformers_core::Weight::Dense(w.narrow(0, i * h, h)?.contiguous()?),
                Some(b.narrow(0, i * h, h)?.contiguous()?),
            )
        };
        Ok(Self {
            probe: vb.get((1, 1, h), "probe")?,
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            out: Linear::new(&att.pp("out_proj"), h, h, true)?,
            norm: LayerNorm::new(&vb.pp("layernorm"), h, spec.layer_norm_eps, true)?,
            fc1: Linear::new(&vb.pp("mlp").pp("fc1"), h, spec.intermediate_size, true)?,
            fc2: Linear::new(&vb.pp("mlp").pp("fc2"), spec.intermediate_size, h, true)?,
            act: spec.hidden_act,
            heads: spec.num_attention_heads,
        })
    }

    /// `[batch, tokens, hidden]` -> `[batch, hidden]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, _, h) = xs.dims3()?;
        let probe = self.probe.broadcast_as((b, 1, h))?.contiguous()?;
        let ctx = attend(
            &self.q.forward(&probe)?,
            &self.k.forward(xs)?,
            &self.v.forward(xs)?,
            self.heads,
        )?;
        let attended = self.out.forward(&ctx)?;
        let up = self.fc1.forward(&self.norm.forward(&attended)?)?;
        let pooled = (&attended + self.fc2.forward(&self.act.forward(&up)?)?)?;
        Ok(pooled.squeeze(1)?)
    }
}

/// SigLIP's vision tower.
pub struct SiglipVisionTower {
    spec: ClipVisionSpec,
    patches: PatchEmbedding,
    /// `[tokens, hidden]`.
    positions: Tensor,
    encoder: PreNormEncoder,
    post_norm: LayerNorm,
    head: Option<AttentionPool>,
}

impl SiglipVisionTower {
    fn new(spec: &ClipVisionSpec, use_head: bool, vb: &Weights) -> Result<Self> {
        let h = spec.tower.hidden_size;
        let emb = vb.pp("embeddings");
        Ok(Self {
            spec: spec.clone(),
            patches: PatchEmbedding::new(
                &emb.pp("patch_embedding"),
                spec.num_channels,
                h,
                spec.patch_size,
                true,
            )?,
            positions: emb
                .pp("position_embedding")
                .get((spec.num_patches(), h), "weight")?,
            encoder: PreNormEncoder::new(&spec.tower, &CLIP_NAMES, &vb.pp("encoder").pp("layers"))?,
            post_norm: LayerNorm::new(
                &vb.pp("post_layernorm"),
                h,
                spec.tower.layer_norm_eps,
                true,
            )?,
            head: use_head
                .then(|| AttentionPool::new(&spec.tower, &vb.pp("head")))
                .transpose()?,
        })
    }

    fn forward(&self, pixel_values: &Tensor, keep: bool) -> Result<VisionOutput> {
        check_pixels(pixel_values, self.spec.num_channels, self.spec.image_size)?;
        let xs = self
            .patches
            .forward(pixel_values)?
            .broadcast_add(&self.positions.unsqueeze(0)?)?;
        let (xs, hidden_states) = self.encoder.forward(&xs, None, keep)?;
        let last = self.post_norm.forward(&xs)?;
        let pooler_output = self.head.as_ref().map(|h| h.forward(&last)).transpose()?;
        Ok(VisionOutput {
            last_hidden_state: last,
            pooler_output,
            logits: None,
            hidden_states,
        })
    }
}

/// SigLIP's text tower: bidirectional, pooled at the last position through `head`.
struct SiglipTextTower {
    tower: TextTower,
    head: Linear,
}

impl SiglipTextTower {
    fn new(spec: &ClipTextSpec, projection: usize, vb: &Weights) -> Result<Self> {
        Ok(Self {
            tower: TextTower::new(spec, false, vb)?,
            head: Linear::new(&vb.pp("head"), spec.tower.hidden_size, projection, true)?,
        })
    }

    /// `(last_hidden_state, pooler_output)`.
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let last = self.tower.forward(input_ids, attention_mask)?;
        let s = last.dim(1)?;
        let pooled = self.head.forward(&last.narrow(1, s - 1, 1)?.squeeze(1)?)?;
        Ok((last, pooled))
    }
}

/// `SiglipModel`, or its vision tower alone (`SiglipVisionModel`).
pub struct SiglipModel {
    model_type: String,
    text: Option<SiglipTextTower>,
    vision: Option<SiglipVisionTower>,
    /// `exp(logit_scale)` and `logit_bias`.
    scale_bias: Option<(f32, f32)>,
}

impl SiglipModel {
    /// Loads `text_model.*` and `vision_model.*` for the towers the spec has, and
    /// `logit_scale` / `logit_bias` with both.
    pub fn new(model_type: &str, spec: &SiglipSpec, vb: &Weights) -> Result<Self> {
        let text = spec
            .text
            .as_ref()
            .map(|t| SiglipTextTower::new(t, spec.projection_size, &vb.pp("text_model")))
            .transpose()?;
        let vision = spec
            .vision
            .as_ref()
            .map(|v| SiglipVisionTower::new(v, spec.vision_use_head, &vb.pp("vision_model")))
            .transpose()?;
        let scale_bias = (text.is_some() && vision.is_some())
            .then(|| {
                let scalar =
                    |name: &str| -> Result<f32> { Ok(vb.get(1, name)?.to_vec1::<f32>()?[0]) };
                Ok::<_, Error>((scalar("logit_scale")?.exp(), scalar("logit_bias")?))
            })
            .transpose()?;
        Ok(Self {
            model_type: model_type.to_string(),
            text,
            vision,
            scale_bias,
        })
    }

    fn vision(&self) -> Result<&SiglipVisionTower> {
        self.vision
            .as_ref()
            .ok_or_else(|| Error::InvalidInput("this checkpoint has no vision tower".into()))
    }
}

impl ImageTextModel for SiglipModel {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.vision()?
            .forward(pixel_values, false)?
            .pooler_output
            .ok_or_else(|| Error::InvalidInput("the vision tower has no pooling head".into()))
    }

    fn text_features(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let text = self
            .text
            .as_ref()
            .ok_or_else(|| Error::InvalidInput("this checkpoint has no text tower".into()))?;
        Ok(text.forward(input_ids, attention_mask)?.1)
    }

    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        pixel_values: &Tensor,
    ) -> Result<ImageTextOutput> {
        let (Some(text), Some(vision), Some((scale, bias))) =
            (&self.text, &self.vision, self.scale_bias)
        else {
            return Err(Error::InvalidInput(format!(
                "this `{}` checkpoint holds one tower, not both",
                self.model_type
            )));
        };
        let v = vision.forward(pixel_values, false)?;
        let pooled = v
            .pooler_output
            .ok_or_else(|| Error::InvalidInput("the vision tower has no pooling head".into()))?;
        let (text_last, text_pooled) = text.forward(input_ids, attention_mask)?;
        ImageTextOutput::from_features(
            &text_pooled,
            &pooled,
            scale,
            bias,
            text_last,
            v.last_hidden_state,
        )
    }

    fn score_kind(&self) -> ScoreKind {
        ScoreKind::Sigmoid
    }

    fn pads_to_max_length(&self) -> bool {
        true
    }

    fn max_text_length(&self) -> usize {
        self.text
            .as_ref()
            .map_or(0, |t| t.tower.spec.max_position_embeddings)
    }

    fn image_size(&self) -> (usize, usize) {
        self.vision.as_ref().map_or((0, 0), |v| v.spec.image_size)
    }
}

/// SigLIP's vision tower as an image model (`SiglipVisionModel`).
pub struct SiglipVisionModel {
    model_type: String,
    tower: SiglipVisionTower,
}

impl SiglipVisionModel {
    /// Loads `vision_model.*` of a `siglip` or `siglip_vision_model` checkpoint.
    pub fn new(model_type: &str, spec: &SiglipSpec, vb: &Weights) -> Result<Self> {
        let vision = spec
            .vision
            .as_ref()
            .ok_or_else(|| Error::InvalidInput(format!("`{model_type}` has no vision tower")))?;
        Ok(Self {
            model_type: model_type.to_string(),
            tower: SiglipVisionTower::new(vision, spec.vision_use_head, &vb.pp("vision_model"))?,
        })
    }
}

impl ImageModel for SiglipVisionModel {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn forward(&self, pixel_values: &Tensor, output_hidden_states: bool) -> Result<VisionOutput> {
        self.tower.forward(pixel_values, output_hidden_states)
    }

    fn image_size(&self) -> (usize, usize) {
        self.tower.spec.image_size
    }

    fn may_skip_tensor(&self, name: &str) -> bool {
        !name.starts_with("vision_model.")
    }
}
