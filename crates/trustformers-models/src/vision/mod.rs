//! Vision transformers and image-text models: ViT and DeiT ([`vit`]), CLIP ([`clip`]) and
//! SigLIP ([`siglip`]). Their towers are stacks of the same pre-norm layer ([`PreNormEncoder`]),
//! which each family names its own way.
//!
//! ```text
//! h = x + out(attn(norm1(x)))
//! x = h + fc2(act(fc1(norm2(h))))
//! ```

pub mod clip;
pub mod siglip;
pub mod vit;

use candle_core::{Tensor, D};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{Activation, BidirectionalAttention, LayerNorm, Linear};

/// Checkpoint buffers transformers itself skips.
pub const IGNORED_TENSORS: &[&str] = &["position_ids"];

/// Outputs of an image encoder (transformers' `BaseModelOutputWithPooling` and
/// `ImageClassifierOutput`).
pub struct VisionOutput {
    /// `[batch, tokens, hidden]`: the last layer's output (after the final norm where the
    /// family has one there).
    pub last_hidden_state: Tensor,
    /// `[batch, hidden]`, for models with a pooler.
    pub pooler_output: Option<Tensor>,
    /// `[batch, labels]`, for image classifiers.
    pub logits: Option<Tensor>,
    /// With `output_hidden_states`: the embeddings, then each layer's output.
    pub hidden_states: Vec<Tensor>,
}

/// What an image model is loaded for: transformers' `AutoModel` or
/// `AutoModelForImageClassification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionTask {
    /// The encoder (and its pooler, when the checkpoint has one).
    Base,
    /// The encoder and its classifier over `id2label`.
    ImageClassification,
}

/// A model that encodes images: ViT, DeiT, and the vision towers of CLIP and SigLIP.
pub trait ImageModel: Send + Sync {
    /// config.json's `model_type`.
    fn model_type(&self) -> &str;

    /// # Shapes
    /// `pixel_values`: `[batch, channels, height, width]` f32 -> [`VisionOutput`].
    fn forward(&self, pixel_values: &Tensor, output_hidden_states: bool) -> Result<VisionOutput>;

    /// The image size the position embeddings are for, `(height, width)`.
    fn image_size(&self) -> (usize, usize);

    /// Whether the loader may leave a checkpoint tensor unused (another task's head, the
    /// other tower of an image-text checkpoint).
    fn may_skip_tensor(&self, name: &str) -> bool {
        let _ = name;
        false
    }
}

/// Outputs of an image-text model (transformers' `CLIPOutput` / `SiglipOutput`).
pub struct ImageTextOutput {
    /// `[images, texts]`.
    pub logits_per_image: Tensor,
    /// `[texts, images]`.
    pub logits_per_text: Tensor,
    /// `[texts, dim]`, L2-normalized.
    pub text_embeds: Tensor,
    /// `[images, dim]`, L2-normalized.
    pub image_embeds: Tensor,
    /// `[texts, seq, hidden]`.
    pub text_last_hidden_state: Tensor,
    /// `[images, tokens, hidden]`.
    pub vision_last_hidden_state: Tensor,
}

impl ImageTextOutput {
    /// The outputs from both towers' features (not yet normalized) and last hidden states:
    /// `logits_per_text = cos(text, image) * scale + bias` (CLIP's bias is 0).
    pub fn from_features(
        text_features: &Tensor,
        image_features: &Tensor,
        scale: f32,
        bias: f32,
        text_last_hidden_state: Tensor,
        vision_last_hidden_state: Tensor,
    ) -> Result<Self> {
        let text_embeds = l2_normalize(text_features)?;
        let image_embeds = l2_normalize(image_features)?;
        let logits_per_text = text_embeds
            .matmul(&image_embeds.t()?)?
            .affine(f64::from(scale), f64::from(bias))?;
        Ok(Self {
            logits_per_image: logits_per_text.t()?.contiguous()?,
            logits_per_text,
            text_embeds,
            image_embeds,
            text_last_hidden_state,
            vision_last_hidden_state,
        })
    }
}

/// How an image-text model's logits become probabilities over candidate labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreKind {
    /// A softmax over the candidates (CLIP).
    Softmax,
    /// A sigmoid per candidate (SigLIP).
    Sigmoid,
}

/// A model that embeds images and texts into one space: CLIP, SigLIP.
pub trait ImageTextModel: Send + Sync {
    /// config.json's `model_type`.
    fn model_type(&self) -> &str;

    /// `get_image_features`: `[images, dim]`, not normalized.
    fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor>;

    /// `get_text_features`: `[texts, dim]`, not normalized. `attention_mask` `[texts, seq]`.
    fn text_features(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor>;

    /// Both towers and the similarity logits.
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        pixel_values: &Tensor,
    ) -> Result<ImageTextOutput>;

    /// How zero-shot scores are read.
    fn score_kind(&self) -> ScoreKind;

    /// Whether texts are padded to `max_length` (64) for this model, as transformers'
    /// zero-shot pipeline does for SigLIP.
    fn pads_to_max_length(&self) -> bool {
        false
    }

    /// The longest text the model takes.
    fn max_text_length(&self) -> usize;

    /// The image size it takes, `(height, width)`.
    fn image_size(&self) -> (usize, usize);
}

/// Where a pre-norm layer keeps its parts.
#[derive(Debug, Clone, Copy)]
pub struct LayerNames {
    /// Under which q, k and v live.
    pub attention: &'static str,
    /// The three projections; or, with `fused`, the fused projection, then the q and v biases
    /// (BLIP-2: `qkv`, whose bias is `qkv.bias` or `q_bias`, zeros, `v_bias`).
    pub qkv: [&'static str; 3],
    pub fused: bool,
    pub out: &'static str,
    pub norm1: &'static str,
    pub norm2: &'static str,
    pub fc1: &'static str,
    pub fc2: &'static str,
}

/// CLIP's and SigLIP's names.
pub const CLIP_NAMES: LayerNames = LayerNames {
    attention: "self_attn",
    qkv: ["q_proj", "k_proj", "v_proj"],
    fused: false,
    out: "self_attn.out_proj",
    norm1: "layer_norm1",
    norm2: "layer_norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
};

/// The shape of a stack of pre-norm layers.
#[derive(Debug, Clone, PartialEq)]
pub struct TowerSpec {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub qkv_bias: bool,
}

impl TowerSpec {
    /// Reads the common fields, with a family's defaults for the absent ones (transformers'
    /// config classes write them all, but hand-written configs may not).
    pub fn from_fields(f: &Fields<'_>, d: &TowerSpec) -> Result<Self> {
        use crate::hf_config::limits;
        let get = |field: &str, max: usize, default: usize| {
            Ok::<_, Error>(f.opt_usize(field, max)?.unwrap_or(default))
        };
        let spec = Self {
            hidden_size: get("hidden_size", limits::HIDDEN, d.hidden_size)?,
            num_hidden_layers: get("num_hidden_layers", limits::LAYERS, d.num_hidden_layers)?,
            num_attention_heads: get("num_attention_heads", limits::HEADS, d.num_attention_heads)?,
            intermediate_size: get(
                "intermediate_size",
                limits::INTERMEDIATE,
                d.intermediate_size,
            )?,
            hidden_act: match f.opt_str("hidden_act")? {
                Some(a) => Activation::from_hf(a)?,
                None => d.hidden_act,
            },
            layer_norm_eps: f
                .opt_f64("layer_norm_eps", 0.0..=1.0)?
                .unwrap_or(d.layer_norm_eps),
            qkv_bias: f.opt_bool("qkv_bias")?.unwrap_or(d.qkv_bias),
        };
        if !spec.hidden_size.is_multiple_of(spec.num_attention_heads) {
            return Err(Error::config(
                "num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    spec.num_attention_heads, spec.hidden_size
                ),
            ));
        }
        Ok(spec)
    }
}

struct PreNormLayer {
    norm1: LayerNorm,
    attention: BidirectionalAttention,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

/// A stack of pre-norm transformer layers.
pub struct PreNormEncoder {
    layers: Vec<PreNormLayer>,
}

impl PreNormEncoder {
    /// Loads `spec.num_hidden_layers` layers under `vb` (`vb.pp(i)` each), named by `names`.
    pub fn new(spec: &TowerSpec, names: &LayerNames, vb: &Weights) -> Result<Self> {
        let (h, i) = (spec.hidden_size, spec.intermediate_size);
        let layers = (0..spec.num_hidden_layers)
            .map(|l| {
                let vb = vb.pp(l);
                Ok(PreNormLayer {
                    norm1: LayerNorm::new(&vb.pp(names.norm1), h, spec.layer_norm_eps, true)?,
                    attention: attention(spec, names, &vb.pp(names.attention))?,
                    out: Linear::new(&vb.pp(names.out), h, h, true)?,
                    norm2: LayerNorm::new(&vb.pp(names.norm2), h, spec.layer_norm_eps, true)?,
                    fc1: Linear::new(&vb.pp(names.fc1), h, i, true)?,
                    fc2: Linear::new(&vb.pp(names.fc2), i, h, true)?,
                    act: spec.hidden_act,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// The last layer's output, and with `keep`, the input and every layer's output.
    ///
    /// # Shapes
    /// `xs`: `[batch, seq, hidden]`; `mask`: additive, broadcasting to `[batch, heads, seq,
    /// seq]`.
    pub fn forward(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
        keep: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut hidden = Vec::new();
        let mut xs = xs.clone();
        for layer in &self.layers {
            if keep {
                hidden.push(xs.clone());
            }
            let ctx = layer.attention.forward(&layer.norm1.forward(&xs)?, mask)?;
            let h = (&xs + layer.out.forward(&ctx)?)?;
            let up = layer.fc1.forward(&layer.norm2.forward(&h)?)?;
            xs = (&h + layer.fc2.forward(&layer.act.forward(&up)?)?)?;
        }
        if keep {
            hidden.push(xs.clone());
        }
        Ok((xs, hidden))
    }
}

/// A layer's self-attention projections, named by `names`.
fn attention(spec: &TowerSpec, names: &LayerNames, vb: &Weights) -> Result<BidirectionalAttention> {
    let (h, heads) = (spec.hidden_size, spec.num_attention_heads);
    if !names.fused {
        return BidirectionalAttention::new(
            vb,
            names.qkv,
            h,
            heads,
            h / heads,
            spec.qkv_bias,
            true,
        );
    }
    let [qkv, q_bias, v_bias] = names.qkv;
    let weight = vb.pp(qkv).get((3 * h, h), "weight")?;
    // transformers 5 stores the fused bias (`qkv.bias`); checkpoints saved before, the q and v
    // biases on their own, k's being zero.
    let bias = match (spec.qkv_bias, vb.contains(&format!("{qkv}.bias"))) {
        (false, _) => None,
        (true, true) => Some(vb.pp(qkv).get(3 * h, "bias")?),
        (true, false) => {
            let zeros = Tensor::zeros(h, weight.dtype(), weight.device())?;
            Some(Tensor::cat(
                &[vb.get(h, q_bias)?, zeros, vb.get(h, v_bias)?],
                0,
            )?)
        }
    };
    let fused = Linear::from_weight(trustformers_core::Weight::Dense(weight), bias)?;
    Ok(BidirectionalAttention::from_fused(fused, heads, h / heads))
}

/// Multi-head attention of `q` over `k` and `v` (no mask): `softmax(q k^T / sqrt(d)) v`.
///
/// # Shapes
/// `q`: `[batch, q_len, heads * d]`, `k`, `v`: `[batch, kv_len, heads * d]` ->
/// `[batch, q_len, heads * d]`.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, width) = q.dims3()?;
    let m = k.dim(1)?;
    let d = width / heads;
    let split = |t: &Tensor, len: usize| -> Result<Tensor> {
        Ok(t.reshape((b, len, heads, d))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let (q, k, v) = (split(q, n)?, split(k, m)?, split(v, m)?);
    let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, width))?)
}

/// L2-normalizes the rows of `xs` `[n, dim]`.
pub fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    let norm = xs.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    Ok(xs.broadcast_div(&norm)?)
}

/// Checks that `pixel_values` are `[batch, channels, height, width]` with the size the
/// position embeddings are for (transformers refuses other sizes without
/// `interpolate_pos_encoding`).
pub fn check_pixels(pixel_values: &Tensor, channels: usize, size: (usize, usize)) -> Result<()> {
    match pixel_values.dims() {
        &[_, c, h, w] if c == channels && (h, w) == size => Ok(()),
        dims => Err(Error::InvalidInput(format!(
            "pixel_values have shape {dims:?}, expected [batch, {channels}, {}, {}] (the \
             model's image size; the image processor resizes to it)",
            size.0, size.1
        ))),
    }
}

/// `image_size` or `patch_size`: a number or a `[height, width]` pair.
pub fn pair(f: &Fields<'_>, field: &str, default: usize) -> Result<(usize, usize)> {
    match f.raw(field) {
        None => Ok((default, default)),
        Some(v) => {
            let side = |x: &serde_json::Value| {
                x.as_u64()
                    .filter(|&n| (1..=16384).contains(&n))
                    .map(|n| n as usize)
            };
            match v {
                serde_json::Value::Array(a) if a.len() == 2 => side(&a[0]).zip(side(&a[1])),
                other => side(other).map(|n| (n, n)),
            }
            .ok_or_else(|| {
                Error::config(
                    field,
                    format!("must be a size in pixels or [height, width], got {v}"),
                )
            })
        }
    }
}

/// Builds ViT or DeiT (the registry's `vit` and `deit` entries).
pub fn vit(
    model_type: &str,
    config: &Value,
    task: VisionTask,
    num_labels: usize,
    vb: &Weights,
) -> Result<Box<dyn ImageModel>> {
    let spec = vit::VitSpec::from_config(config, model_type)?;
    Ok(Box::new(vit::VitModel::new(
        model_type, &spec, task, num_labels, vb,
    )?))
}

/// The vision tower of an image-text model is an image model with no head.
fn no_head(model_type: &str, task: VisionTask) -> Result<()> {
    match task {
        VisionTask::Base => Ok(()),
        VisionTask::ImageClassification => Err(Error::InvalidInput(format!(
            "`{model_type}` has no image classification head (use zero-shot image \
             classification)"
        ))),
    }
}

/// Builds a CLIP vision tower as an image model.
pub fn clip_vision(
    model_type: &str,
    config: &Value,
    task: VisionTask,
    _: usize,
    vb: &Weights,
) -> Result<Box<dyn ImageModel>> {
    no_head(model_type, task)?;
    let spec = clip::ClipSpec::from_config(config, model_type)?;
    Ok(Box::new(clip::ClipVisionModel::new(model_type, &spec, vb)?))
}

/// Builds CLIP (or a tower alone) as an image-text model.
pub fn clip(model_type: &str, config: &Value, vb: &Weights) -> Result<Box<dyn ImageTextModel>> {
    let spec = clip::ClipSpec::from_config(config, model_type)?;
    Ok(Box::new(clip::ClipModel::new(model_type, &spec, vb)?))
}

/// Builds a SigLIP vision tower as an image model.
pub fn siglip_vision(
    model_type: &str,
    config: &Value,
    task: VisionTask,
    _: usize,
    vb: &Weights,
) -> Result<Box<dyn ImageModel>> {
    no_head(model_type, task)?;
    let spec = siglip::SiglipSpec::from_config(config, model_type)?;
    Ok(Box::new(siglip::SiglipVisionModel::new(
        model_type, &spec, vb,
    )?))
}

/// Builds SigLIP as an image-text model.
pub fn siglip(model_type: &str, config: &Value, vb: &Weights) -> Result<Box<dyn ImageTextModel>> {
    let spec = siglip::SiglipSpec::from_config(config, model_type)?;
    Ok(Box::new(siglip::SiglipModel::new(model_type, &spec, vb)?))
}
