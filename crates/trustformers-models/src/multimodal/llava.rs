//! LLaVA (`modeling_llava.py`): a CLIP vision tower read at `vision_feature_layer` (without
//! its class token under the `default` strategy), a two-layer projector into the language
//! model's width, and a decoder (LLaMA-family, built by its own preset) whose `<image>` token
//! positions take the projected image features instead of token embeddings.
//!
//! Checkpoints come in three layouts, all of which load: the Hub's (transformers 4:
//! `vision_tower.vision_model`, `multi_modal_projector`, `language_model.model`,
//! `language_model.lm_head`), transformers 5's (the same with `vision_tower` holding the
//! tower itself), and that of transformers 4.52-4.57 (`model.vision_tower.vision_model`,
//! `model.multi_modal_projector`, `model.language_model`, `lm_head`).

use super::{causal_lm_by_language_model, VisionLanguageModel};
use crate::registry;
use crate::traits::{CausalLM, CausalLmOutput, ForwardOptions, RuntimeOptions};
use crate::vision::clip::{ClipVisionSpec, ClipVisionTower};
use crate::vision::TowerSpec;
use crate::DecoderForCausalLM;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{Activation, Cache, Linear};

/// Which vision tokens feed the projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSelect {
    /// All but the class token (`default`).
    Default,
    /// Every token (`full`).
    Full,
}

/// Everything that shapes a LLaVA besides its two sub-models.
#[derive(Debug, Clone, PartialEq)]
pub struct LlavaSpec {
    pub vision: ClipVisionSpec,
    /// The text model's `model_type` and config.
    pub text_model_type: String,
    pub text_config: Value,
    pub image_token_id: u32,
    /// Hidden states of the vision tower read (python indices: -2 is the second to last
    /// layer's output), concatenated along the features when several.
    pub vision_feature_layers: Vec<i64>,
    pub select: FeatureSelect,
    pub projector_act: Activation,
    pub projector_bias: bool,
}

impl LlavaSpec {
    /// Reads a `LlavaConfig`.
    pub fn from_config(config: &Value) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let vision_config = config
            .get("vision_config")
            .cloned()
            .ok_or_else(|| Error::config("vision_config", "is required"))?;
        let vision_type = vision_config
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("clip_vision_model");
        if vision_type != "clip_vision_model" {
            return Err(Error::config(
                "vision_config.model_type",
                format!("`{vision_type}` is not supported (clip_vision_model)"),
            ));
        }
        let vision = ClipVisionSpec::from_config(
            &vision_config,
            &TowerSpec {
                hidden_size: 1024,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                intermediate_size: 4096,
                hidden_act: Activation::QuickGelu,
                layer_norm_eps: 1e-5,
                qkv_bias: true,
            },
            14,
        )?;
        let (text_config, text_model_type) = super::text_config(config, "llama");
        let image_token_id = super::image_token_id(&f)?.unwrap_or(32000);
        let layers = match f.raw("vision_feature_layer") {
            None => vec![-2],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_i64().ok_or_else(|| {
                        Error::config("vision_feature_layer", format!("{v} is not a layer index"))
                    })
                })
                .collect::<Result<_>>()?,
            Some(v) => vec![v.as_i64().ok_or_else(|| {
                Error::config("vision_feature_layer", format!("{v} is not a layer index"))
            })?],
        };
        let n = vision.tower.num_hidden_layers as i64;
        if layers.is_empty() || layers.iter().any(|&l| l < -(n + 1) || l > n) {
            return Err(Error::config(
                "vision_feature_layer",
                format!("{layers:?}: the vision tower has {} hidden states", n + 1),
            ));
        }
        let select = match f
            .opt_str("vision_feature_select_strategy")?
            .unwrap_or("default")
        {
            "default" => FeatureSelect::Default,
            "full" => FeatureSelect::Full,
            other => {
                return Err(Error::config(
                    "vision_feature_select_strategy",
                    format!("`{other}` is not one of default, full"),
                ))
            }
        };
        Ok(Self {
            vision,
            text_model_type,
            text_config,
            image_token_id,
            vision_feature_layers: layers,
            select,
            projector_act: Activation::from_hf(
                f.opt_str("projector_hidden_act")?.unwrap_or("gelu"),
            )?,
            projector_bias: f.opt_bool("multimodal_projector_bias")?.unwrap_or(true),
        })
    }

    /// Image tokens per image: the patches, and the class token under `full`.
    pub fn image_seq_length(&self) -> usize {
        self.vision.num_patches() + usize::from(self.select == FeatureSelect::Full)
    }
}

/// `LlavaForConditionalGeneration`.
pub struct LlavaForConditionalGeneration {
    model_type: String,
    spec: LlavaSpec,
    vision: ClipVisionTower,
    linear_1: Linear,
    linear_2: Linear,
    language: DecoderForCausalLM,
}

impl LlavaForConditionalGeneration {
    /// Loads either checkpoint layout (see the module's documentation).
    pub fn new(
        model_type: &str,
        spec: &LlavaSpec,
        vb: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Self> {
        // The first layout whose probe tensor the checkpoint holds.
        let find = |what: &str, candidates: &[&str], probe: &str| {
            candidates
                .iter()
                .find(|p| vb.contains(&format!("{p}.{probe}")))
                .map(|p| p.to_string())
                .ok_or_else(|| Error::MissingTensor {
                    name: format!("{}.{probe} ({what})", candidates[0]),
                })
        };
        let text = find(
            "the language model",
            &["language_model.model", "model.language_model"],
            "embed_tokens.weight",
        )?;
        let head = if text == "language_model.model" {
            "language_model.lm_head"
        } else {
            "lm_head"
        };
        let vision = find(
            "the vision tower",
            &[
                "vision_tower",
                "vision_tower.vision_model",
                "model.vision_tower",
                "model.vision_tower.vision_model",
            ],
            "embeddings.patch_embedding.weight",
        )?;
        let projector = find(
            "the projector",
            &["multi_modal_projector", "model.multi_modal_projector"],
            "linear_1.weight",
        )?;
        let (vision_vb, projector_vb, text_vb, head_vb) =
            (vb.pp(vision), vb.pp(projector), vb.pp(text), vb.pp(head));
        let text_spec =
            registry::by_model_type(&spec.text_model_type)?.decoder_spec(&spec.text_config)?;
        let language =
            DecoderForCausalLM::from_parts(model_type, &text_spec, &text_vb, &head_vb, runtime)?;
        let (vh, th) = (spec.vision.tower.hidden_size, text_spec.hidden_size);
        let features = vh * spec.vision_feature_layers.len();
        Ok(Self {
            model_type: model_type.to_string(),
            spec: spec.clone(),
            vision: ClipVisionTower::new(&spec.vision, &vision_vb)?,
            linear_1: Linear::new(
                &projector_vb.pp("linear_1"),
                features,
                th,
                spec.projector_bias,
            )?,
            linear_2: Linear::new(&projector_vb.pp("linear_2"), th, th, spec.projector_bias)?,
            language,
        })
    }
}

impl VisionLanguageModel for LlavaForConditionalGeneration {
    fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let out = self.vision.forward(pixel_values, true)?;
        let n = out.hidden_states.len() as i64;
        let layers = self
            .spec
            .vision_feature_layers
            .iter()
            .map(|&l| {
                let i = if l < 0 { n + l } else { l };
                let h = &out.hidden_states[i as usize];
                match self.spec.select {
                    FeatureSelect::Default => {
                        let t = h.dim(1)?;
                        Ok(h.narrow(1, 1, t - 1)?)
                    }
                    FeatureSelect::Full => Ok(h.clone()),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let selected = Tensor::cat(&layers, 2)?;
        let up = self.linear_1.forward(&selected)?;
        self.linear_2
            .forward(&self.spec.projector_act.forward(&up)?)
    }

    fn image_token_id(&self) -> u32 {
        self.spec.image_token_id
    }

    fn image_seq_length(&self) -> usize {
        self.spec.image_seq_length()
    }

    fn image_size(&self) -> (usize, usize) {
        self.spec.vision.image_size
    }

    fn language_model(&self) -> &DecoderForCausalLM {
        &self.language
    }
}

causal_lm_by_language_model!(LlavaForConditionalGeneration, language);
