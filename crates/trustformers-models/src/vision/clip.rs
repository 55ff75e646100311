//! CLIP (`modeling_clip.py`): a causal text transformer pooled at its end-of-text token and a
//! ViT pooled at its class token, each projected into one space; the logits are the scaled
//! cosine similarities. `CLIPModel`, and the towers alone (`CLIPVisionModel[WithProjection]`
//! checkpoints, `clip_vision_model`).

use super::{
    check_pixels, pair, ImageModel, ImageTextModel, ImageTextOutput, PreNormEncoder, ScoreKind,
    TowerSpec, VisionOutput, CLIP_NAMES,
};
use crate::hf_config::{self, limits};
use candle_core::{DType, Tensor};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::attention::{causal_mask, padding_mask};
use trustformers_nn::{Activation, Embedding, LayerNorm, Linear, PatchEmbedding};

/// The vision tower's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionSpec {
    pub tower: TowerSpec,
    pub image_size: (usize, usize),
    pub patch_size: usize,
    pub num_channels: usize,
}

impl ClipVisionSpec {
    /// Reads a `CLIPVisionConfig` (`vision_config`, or SigLIP's, with its defaults).
    pub fn from_config(config: &Value, defaults: &TowerSpec, patch: usize) -> Result<Self> {
        let f = Fields::new(config, "vision_config.")?;
        let image_size = pair(&f, "image_size", 224)?;
        let (patch_size, pw) = pair(&f, "patch_size", patch)?;
        if patch_size != pw || image_size.0 % patch_size != 0 || image_size.1 % patch_size != 0 {
            return Err(Error::config(
                "vision_config.patch_size",
                format!("{patch_size} must be square and divide image_size {image_size:?}"),
            ));
        }
        Ok(Self {
            tower: TowerSpec::from_fields(&f, defaults)?,
            image_size,
            patch_size,
            num_channels: f.opt_usize("num_channels", 64)?.unwrap_or(3),
        })
    }

    pub(crate) fn num_patches(&self) -> usize {
        (self.image_size.0 / self.patch_size) * (self.image_size.1 / self.patch_size)
    }
}

/// The text tower's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipTextSpec {
    pub tower: TowerSpec,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    /// Where a text is pooled: the first `eos_token_id` (the highest id when it is 2, as in
    /// checkpoints from before the field was right).
    pub eos_token_id: u32,
}

impl ClipTextSpec {
    /// Reads a `CLIPTextConfig` (`text_config`, or SigLIP's, with its defaults).
    pub fn from_config(
        config: &Value,
        defaults: &TowerSpec,
        vocab: usize,
        positions: usize,
    ) -> Result<Self> {
        let f = Fields::new(config, "text_config.")?;
        Ok(Self {
            tower: TowerSpec::from_fields(&f, defaults)?,
            vocab_size: f.opt_usize("vocab_size", limits::VOCAB)?.unwrap_or(vocab),
            max_position_embeddings: f
                .opt_usize("max_position_embeddings", limits::POSITIONS)?
                .unwrap_or(positions),
            eos_token_id: hf_config::token_id(&f, "eos_token_id")?.unwrap_or(49407),
        })
    }
}

/// A `CLIPConfig`: towers as present (`CLIPModel` has both; the tower configs alone have one).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSpec {
    pub text: Option<ClipTextSpec>,
    pub vision: Option<ClipVisionSpec>,
    pub projection_dim: usize,
}

fn clip_tower(hidden: usize, layers: usize, heads: usize, inter: usize) -> TowerSpec {
    TowerSpec {
        hidden_size: hidden,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        intermediate_size: inter,
        hidden_act: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
        qkv_bias: true,
    }
}

impl ClipSpec {
    /// Reads a `CLIPConfig` (`clip`) or a tower's own config (`clip_vision_model`,
    /// `clip_text_model`, whose fields are at the top level).
    pub fn from_config(config: &Value, model_type: &str) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let section = |name: &str| -> Result<Value> {
            Ok(match model_type {
                "clip" => config
                    .get(name)
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
                _ => config.clone(),
            })
        };
        let vision = matches!(model_type, "clip" | "clip_vision_model")
            .then(|| {
                ClipVisionSpec::from_config(
                    &section("vision_config")?,
                    &clip_tower(768, 12, 12, 3072),
                    32,
                )
            })
            .transpose()?;
        let text = matches!(model_type, "clip" | "clip_text_model")
            .then(|| {
                ClipTextSpec::from_config(
                    &section("text_config")?,
                    &clip_tower(512, 12, 8, 2048),
                    49408,
                    77,
                )
            })
            .transpose()?;
        Ok(Self {
            text,
            vision,
            projection_dim: f
                .opt_usize("projection_dim", limits::HIDDEN)?
                .unwrap_or(512),
        })
    }
}

/// CLIP's vision tower: class token and patches, positions, `pre_layrnorm`, the layers;
/// pooled by `post_layernorm` on the class token.
pub struct ClipVisionTower {
    spec: ClipVisionSpec,
    patches: PatchEmbedding,
    /// `[hidden]`.
    class_embedding: Tensor,
    /// `[tokens, hidden]`.
    positions: Tensor,
    pre_norm: LayerNorm,
    encoder: PreNormEncoder,
    post_norm: LayerNorm,
}

impl ClipVisionTower {
    /// Loads `vision_model.*` from `vb`.
    pub fn new(spec: &ClipVisionSpec, vb: &Weights) -> Result<Self> {
        let h = spec.tower.hidden_size;
        let eps = spec.tower.layer_norm_eps;
        let emb = vb.pp("embeddings");
        Ok(Self {
            spec: spec.clone(),
            patches: PatchEmbedding::new(
                &emb.pp("patch_embedding"),
                spec.num_channels,
                h,
                spec.patch_size,
                false,
            )?,
            class_embedding: emb.get(h, "class_embedding")?,
            positions: emb
                .pp("position_embedding")
                .get((spec.num_patches() + 1, h), "weight")?,
            pre_norm: LayerNorm::new(&vb.pp("pre_layrnorm"), h, eps, true)?,
            encoder: PreNormEncoder::new(&spec.tower, &CLIP_NAMES, &vb.pp("encoder").pp("layers"))?,
            post_norm: LayerNorm::new(&vb.pp("post_layernorm"), h, eps, true)?,
        })
    }

    /// `last_hidden_state` (the last layer's output, not normalized), `pooler_output`, and
    /// with `keep` the hidden states (the input after `pre_layrnorm`, then each layer's).
    pub fn forward(&self, pixel_values: &Tensor, keep: bool) -> Result<VisionOutput> {
        check_pixels(pixel_values, self.spec.num_channels, self.spec.image_size)?;
        let patches = self.patches.forward(pixel_values)?;
        let (b, _, h) = patches.dims3()?;
        let cls = self
            .class_embedding
            .reshape((1, 1, h))?
            .broadcast_as((b, 1, h))?;
        let xs = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.positions.unsqueeze(0)?)?;
        let xs = self.pre_norm.forward(&xs)?;
        let (last, hidden_states) = self.encoder.forward(&xs, None, keep)?;
        let pooled = self.post_norm.forward(&last.narrow(1, 0, 1)?.squeeze(1)?)?;
        Ok(VisionOutput {
            last_hidden_state: last,
            pooler_output: Some(pooled),
            logits: None,
            hidden_states,
        })
    }
}

/// The text tower CLIP and SigLIP share: tokens and positions, the layers (causal in CLIP,
/// bidirectional in SigLIP), `final_layer_norm`.
pub struct TextTower {
    pub(crate) spec: ClipTextSpec,
    tokens: Embedding,
    positions: Embedding,
    encoder: PreNormEncoder,
    final_norm: LayerNorm,
    causal: bool,
}

impl TextTower {
    /// Loads `text_model.*` from `vb`.
    pub fn new(spec: &ClipTextSpec, causal: bool, vb: &Weights) -> Result<Self> {
        let h = spec.tower.hidden_size;
        let emb = vb.pp("embeddings");
        Ok(Self {
            spec: spec.clone(),
            tokens: Embedding::new(&emb.pp("token_embedding"), spec.vocab_size, h)?,
            positions: Embedding::new(
                &emb.pp("position_embedding"),
                spec.max_position_embeddings,
                h,
            )?,
            encoder: PreNormEncoder::new(&spec.tower, &CLIP_NAMES, &vb.pp("encoder").pp("layers"))?,
            final_norm: LayerNorm::new(
                &vb.pp("final_layer_norm"),
                h,
                spec.tower.layer_norm_eps,
                true,
            )?,
            causal,
        })
    }

    /// The last hidden state (after `final_layer_norm`).
    ///
    /// # Shapes
    /// `input_ids`, `attention_mask`: `[batch, seq]` -> `[batch, seq, hidden]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        if s == 0 || s > self.spec.max_position_embeddings {
            return Err(Error::InvalidInput(format!(
                "{s} tokens: the text model takes 1 to {} (truncate the input)",
                self.spec.max_position_embeddings
            )));
        }
        let dev = input_ids.device();
        let positions = Tensor::arange(0u32, s as u32, dev)?.unsqueeze(0)?;
        let xs = self
            .tokens
            .forward(input_ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let mask = if self.causal {
            causal_mask(attention_mask, b, 0, s, None, dev)?
        } else {
            padding_mask(attention_mask, b, s)?
        };
        let (xs, _) = self.encoder.forward(&xs, mask.as_ref(), false)?;
        self.final_norm.forward(&xs)
    }
}

/// CLIP's text tower, pooled at the end-of-text token.
pub struct ClipTextTower(TextTower);

impl ClipTextTower {
    /// Loads `text_model.*` from `vb`.
    pub fn new(spec: &ClipTextSpec, vb: &Weights) -> Result<Self> {
        Ok(Self(TextTower::new(spec, true, vb)?))
    }

    /// `(last_hidden_state, pooler_output)`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let last = self.0.forward(input_ids, attention_mask)?;
        let ids = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let eos = self.0.spec.eos_token_id;
        let index: Vec<u32> = ids
            .iter()
            .map(|row| {
                let pos = if eos == 2 {
                    // argmax of the ids: the first highest.
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&t| t == max)
                } else {
                    row.iter().position(|&t| t == eos)
                };
                pos.unwrap_or(0) as u32
            })
            .collect();
        let pooled = gather_rows(&last, &index)?;
        Ok((last, pooled))
    }
}

/// `xs[i, index[i]]` for each row: `[batch, seq, hidden]` -> `[batch, hidden]`.
pub(crate) fn gather_rows(xs: &Tensor, index: &[u32]) -> Result<Tensor> {
    let rows = index
        .iter()
        .enumerate()
        .map(|(i, &p)| xs.get(i)?.get(p as usize))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::stack(&rows, 0)?)
}

/// A text tower and its projection (absent in `CLIPTextModel` checkpoints).
type TextPart = (ClipTextTower, Option<Linear>);
/// A vision tower and its projection.
type VisionPart = (ClipVisionTower, Option<Linear>);

/// `CLIPModel` (both towers, projections, `logit_scale`), or a tower alone.
pub struct ClipModel {
    model_type: String,
    text: Option<TextPart>,
    vision: Option<VisionPart>,
    /// `exp(logit_scale)`.
    scale: Option<f32>,
}

impl ClipModel {
    /// Loads what the checkpoint holds: `text_model` and `vision_model` for the towers the
    /// spec has, each projection where the checkpoint has it, `logit_scale` with both.
    pub fn new(model_type: &str, spec: &ClipSpec, vb: &Weights) -> Result<Self> {
        let p = spec.projection_dim;
        let projection = |name: &str, hidden: usize| {
            (vb.contains(&format!("{name}.weight")))
                .then(|| Linear::new(&vb.pp(name), hidden, p, false))
                .transpose()
        };
        let text = spec
            .text
            .as_ref()
            .map(|t| {
                Ok::<_, Error>((
                    ClipTextTower::new(t, &vb.pp("text_model"))?,
                    projection("text_projection", t.tower.hidden_size)?,
                ))
            })
            .transpose()?;
        let vision = spec
            .vision
            .as_ref()
            .map(|v| {
                Ok::<_, Error>((
                    ClipVisionTower::new(v, &vb.pp("vision_model"))?,
                    projection("visual_projection", v.tower.hidden_size)?,
                ))
            })
            .transpose()?;
        let scale = (text.is_some() && vision.is_some())
            .then(|| Ok::<_, Error>(vb.get((), "logit_scale")?.exp()?.to_scalar::<f32>()?))
            .transpose()?;
        Ok(Self {
            model_type: model_type.to_string(),
            text,
            vision,
            scale,
        })
    }

    fn towers(&self) -> Result<(&TextPart, &VisionPart)> {
        match (&self.text, &self.vision) {
            (Some(t), Some(v)) => Ok((t, v)),
            _ => Err(Error::InvalidInput(format!(
                "this `{}` checkpoint holds one tower, not both",
                self.model_type
            ))),
        }
    }
}

fn project(tower_output: Tensor, projection: Option<&Linear>, what: &str) -> Result<Tensor> {
    match projection {
        Some(p) => p.forward(&tower_output),
        None => Err(Error::InvalidInput(format!(
            "the checkpoint has no {what} projection"
        ))),
    }
}

impl ImageTextModel for ClipModel {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let Some((tower, projection)) = &self.vision else {
            return Err(Error::InvalidInput(
                "this checkpoint has no vision tower".into(),
            ));
        };
        let pooled = tower
            .forward(pixel_values, false)?
            .pooler_output
            .ok_or_else(|| Error::InvalidInput("the vision tower has no pooler".into()))?;
        project(pooled, projection.as_ref(), "visual")
    }

    fn text_features(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let Some((tower, projection)) = &self.text else {
            return Err(Error::InvalidInput(
                "this checkpoint has no text tower".into(),
            ));
        };
        let (_, pooled) = tower.forward(input_ids, attention_mask)?;
        project(pooled, projection.as_ref(), "text")
    }

    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        pixel_values: &Tensor,
    ) -> Result<ImageTextOutput> {
        let ((text, text_proj), (vision, visual_proj)) = self.towers()?;
        let v = vision.forward(pixel_values, false)?;
        let pooled = v
            .pooler_output
            .ok_or_else(|| Error::InvalidInput("the vision tower has no pooler".into()))?;
        let image_features = project(pooled, visual_proj.as_ref(), "visual")?;
        let (text_last, text_pooled) = text.forward(input_ids, attention_mask)?;
        let text_features = project(text_pooled, text_proj.as_ref(), "text")?;
        ImageTextOutput::from_features(
            &text_features,
            &image_features,
            self.scale.unwrap_or(1.0),
            0.0,
            text_last,
            v.last_hidden_state,
        )
    }

    fn score_kind(&self) -> ScoreKind {
        ScoreKind::Softmax
    }

    fn max_text_length(&self) -> usize {
        self.text
            .as_ref()
            .map_or(0, |(t, _)| t.0.spec.max_position_embeddings)
    }

    fn image_size(&self) -> (usize, usize) {
        self.vision
            .as_ref()
            .map_or((0, 0), |(v, _)| v.spec.image_size)
    }
}

/// A CLIP vision tower as an image model (`CLIPVisionModel`: `last_hidden_state`,
/// `pooler_output`).
pub struct ClipVisionModel {
    model_type: String,
    tower: ClipVisionTower,
}

impl ClipVisionModel {
    /// Loads `vision_model.*` of a `clip` or `clip_vision_model` checkpoint.
    pub fn new(model_type: &str, spec: &ClipSpec, vb: &Weights) -> Result<Self> {
        let vision = spec
            .vision
            .as_ref()
            .ok_or_else(|| Error::InvalidInput(format!("`{model_type}` has no vision tower")))?;
        Ok(Self {
            model_type: model_type.to_string(),
            tower: ClipVisionTower::new(vision, &vb.pp("vision_model"))?,
        })
    }
}

impl ImageModel for ClipVisionModel {
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
