//! ViT (`modeling_vit.py`) and DeiT (`modeling_deit.py`): the image cut into patches, a class
//! token (and DeiT's distillation token) before them, learned positions, pre-norm layers, a
//! final LayerNorm; the pooler (`tanh(dense(h[:, 0]))`) and the classifiers read the first
//! tokens.

use super::LayerNames;
use super::{check_pixels, pair, ImageModel, PreNormEncoder, TowerSpec, VisionOutput, VisionTask};
use candle_core::Tensor;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{Activation, LayerNorm, Linear, PatchEmbedding};

/// ViT's and DeiT's layer names.
const VIT_NAMES: LayerNames = LayerNames {
    attention: "attention.attention",
    qkv: ["query", "key", "value"],
    fused: false,
    out: "attention.output.dense",
    norm1: "layernorm_before",
    norm2: "layernorm_after",
    fc1: "intermediate.dense",
    fc2: "output.dense",
};

/// Everything that shapes a ViT or DeiT.
#[derive(Debug, Clone, PartialEq)]
pub struct VitSpec {
    pub tower: TowerSpec,
    pub image_size: (usize, usize),
    pub patch_size: usize,
    pub num_channels: usize,
    /// DeiT's second token, distilled from a teacher.
    pub distillation_token: bool,
    /// Where the encoder sits in a checkpoint with a head (`vit`, `deit`).
    pub base_prefix: &'static str,
}

impl VitSpec {
    /// Reads a `ViTConfig` or `DeiTConfig`.
    pub fn from_config(config: &Value, model_type: &str) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let tower = TowerSpec::from_fields(
            &f,
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
        let image_size = pair(&f, "image_size", 224)?;
        let (patch_size, patch_w) = pair(&f, "patch_size", 16)?;
        if patch_size != patch_w {
            return Err(Error::config(
                "patch_size",
                "non-square patches are not supported",
            ));
        }
        if image_size.0 % patch_size != 0 || image_size.1 % patch_size != 0 {
            return Err(Error::config(
                "patch_size",
                format!("{patch_size} does not divide image_size {image_size:?}"),
            ));
        }
        let deit = model_type == "deit";
        Ok(Self {
            tower,
            image_size,
            patch_size,
            num_channels: f.opt_usize("num_channels", 64)?.unwrap_or(3),
            distillation_token: deit,
            base_prefix: if deit { "deit" } else { "vit" },
        })
    }

    fn num_patches(&self) -> usize {
        (self.image_size.0 / self.patch_size) * (self.image_size.1 / self.patch_size)
    }
}

/// The classifier of an image classifier.
enum Head {
    None,
    /// `classifier` on the class token.
    Classifier(Linear),
    /// DeiT with its teacher's head: the mean of `cls_classifier` on the class token and
    /// `distillation_classifier` on the distillation token.
    WithTeacher {
        cls: Linear,
        distillation: Linear,
    },
}

/// ViT or DeiT, with a pooler and a classifier when loaded with them.
pub struct VitModel {
    model_type: String,
    spec: VitSpec,
    patches: PatchEmbedding,
    /// `[1, 1, hidden]` each.
    cls_token: Tensor,
    distillation_token: Option<Tensor>,
    /// `[1, tokens, hidden]`.
    positions: Tensor,
    encoder: PreNormEncoder,
    norm: LayerNorm,
    pooler: Option<Linear>,
    head: Head,
}

impl VitModel {
    /// Loads the model for `task`; the classifier has `num_labels` outputs. The base model
    /// loads from a checkpoint of the base model or of any head (under `vit.` / `deit.`), and
    /// its pooler when the checkpoint has one.
    pub fn new(
        model_type: &str,
        spec: &VitSpec,
        task: VisionTask,
        num_labels: usize,
        vb: &Weights,
    ) -> Result<Self> {
        let h = spec.tower.hidden_size;
        let base = if vb.contains(&format!("{}.embeddings.cls_token", spec.base_prefix)) {
            vb.pp(spec.base_prefix)
        } else {
            vb.clone()
        };
        let emb = base.pp("embeddings");
        let extra = 1 + usize::from(spec.distillation_token);
        let pooler = (task == VisionTask::Base && base.contains("pooler.dense.weight"))
            .then(|| Linear::new(&base.pp("pooler").pp("dense"), h, h, true))
            .transpose()?;
        let head = match task {
            VisionTask::Base => Head::None,
            VisionTask::ImageClassification if vb.contains("cls_classifier.weight") => {
                Head::WithTeacher {
                    cls: Linear::new(&vb.pp("cls_classifier"), h, num_labels, true)?,
                    distillation: Linear::new(
                        &vb.pp("distillation_classifier"),
                        h,
                        num_labels,
                        true,
                    )?,
                }
            }
            VisionTask::ImageClassification => {
                Head::Classifier(Linear::new(&vb.pp("classifier"), h, num_labels, true)?)
            }
        };
        Ok(Self {
            model_type: model_type.to_string(),
            spec: spec.clone(),
            patches: PatchEmbedding::new(
                &emb.pp("patch_embeddings").pp("projection"),
                spec.num_channels,
                h,
                spec.patch_size,
                true,
            )?,
            cls_token: emb.get((1, 1, h), "cls_token")?,
            distillation_token: spec
                .distillation_token
                .then(|| emb.get((1, 1, h), "distillation_token"))
                .transpose()?,
            positions: emb.get((1, spec.num_patches() + extra, h), "position_embeddings")?,
            encoder: PreNormEncoder::new(&spec.tower, &VIT_NAMES, &base.pp("encoder").pp("layer"))?,
            norm: LayerNorm::new(&base.pp("layernorm"), h, spec.tower.layer_norm_eps, true)?,
            pooler,
            head,
        })
    }
}

impl ImageModel for VitModel {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn forward(&self, pixel_values: &Tensor, output_hidden_states: bool) -> Result<VisionOutput> {
        check_pixels(pixel_values, self.spec.num_channels, self.spec.image_size)?;
        let patches = self.patches.forward(pixel_values)?;
        let b = patches.dim(0)?;
        let h = self.spec.tower.hidden_size;
        let mut tokens = vec![self.cls_token.broadcast_as((b, 1, h))?];
        if let Some(d) = &self.distillation_token {
            tokens.push(d.broadcast_as((b, 1, h))?);
        }
        tokens.push(patches);
        let xs = Tensor::cat(&tokens, 1)?.broadcast_add(&self.positions)?;
        let (xs, hidden_states) = self.encoder.forward(&xs, None, output_hidden_states)?;
        let last = self.norm.forward(&xs)?;
        let token = |i: usize| last.narrow(1, i, 1).and_then(|t| t.squeeze(1));
        let pooler_output = self
            .pooler
            .as_ref()
            .map(|p| p.forward(&token(0)?)?.tanh().map_err(Error::from))
            .transpose()?;
        let logits = match &self.head {
            Head::None => None,
            Head::Classifier(c) => Some(c.forward(&token(0)?)?),
            Head::WithTeacher { cls, distillation } => {
                Some(((cls.forward(&token(0)?)? + distillation.forward(&token(1)?)?)? / 2.0)?)
            }
        };
        Ok(VisionOutput {
            last_hidden_state: last,
            pooler_output,
            logits: logits.map(|l| l.contiguous()).transpose()?,
            hidden_states,
        })
    }

    fn image_size(&self) -> (usize, usize) {
        self.spec.image_size
    }

    /// Whether the loader may leave a checkpoint tensor unused: another task's head, the
    /// pooler under a classifier, a mask token for masked image modeling.
    fn may_skip_tensor(&self, name: &str) -> bool {
        let base = name
            .strip_prefix(self.spec.base_prefix)
            .and_then(|n| n.strip_prefix('.'))
            .unwrap_or(name);
        base.starts_with("pooler.")
            || base == "embeddings.mask_token"
            || name.ends_with("position_ids")
            || match self.head {
                Head::None => {
                    name.starts_with("classifier.")
                        || name.starts_with("cls_classifier.")
                        || name.starts_with("distillation_classifier.")
                }
                _ => false,
            }
    }
}
