//! ModernBERT (`modeling_modernbert.py`): a pre-LayerNorm encoder with rotary positions, a
//! fused `Wqkv`, a GeGLU MLP (`Wi` -> input, gate -> `Wo(act(input) * gate)`), no biases by
//! default, and layers alternating between global attention and a bidirectional local window
//! (`|i - j| <= local_attention / 2`), each kind with its own RoPE base.
//!
//! ```text
//! x = LN(tok_embeddings(ids))
//! x = x + attn(attn_norm(x))      (no attn_norm on layer 0)
//! x = x + mlp(mlp_norm(x))
//! out = final_norm(x)
//! ```

use super::heads::{EncoderTask, HeadInput, HeadLayout, HeadOut};
use super::{EncoderLayout, EncoderSpec};
use crate::hf_config::{self, limits, Dropouts};
use candle_core::Tensor;
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::attention::{sdpa, split_fused_qkv};
use trustformers_nn::{
    Activation, Dropout, Embedding, LayerNorm, Linear, RopeSpec, RotaryEmbedding,
};

/// What ModernBERT adds to [`EncoderSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModernBertSpec {
    /// Per layer: the local window half-width (`local_attention / 2`), or `None` for global.
    pub layer_windows: Vec<Option<usize>>,
    pub global_rope: RopeSpec,
    pub local_rope: RopeSpec,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub norm_bias: bool,
    /// The heads' activation (`classifier_activation`) and dense bias (`classifier_bias`).
    pub classifier_act: Activation,
    pub classifier_bias: bool,
    /// Sequence-level heads read the mean of the tokens (`classifier_pooling: mean`) instead
    /// of the first token.
    pub mean_pooling: bool,
}

/// Reads a `modernbert` config.json (transformers 5's `layer_types` / `rope_parameters`, or
/// transformers 4's `global_attn_every_n_layers` / `global_rope_theta` / `local_rope_theta`).
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = EncoderSpec::bert_like(&f, "model")?;
    spec.hidden_act = Activation::from_hf(f.opt_str("hidden_activation")?.unwrap_or("gelu"))?;
    spec.layer_norm_eps = f.opt_f64("norm_eps", 0.0..=1.0)?.unwrap_or(1e-5);
    spec.max_position_embeddings = f
        .opt_usize("max_position_embeddings", limits::POSITIONS)?
        .unwrap_or(8192);
    spec.type_vocab_size = 0;
    // `embedding_dropout` after the embeddings' norm, `attention_dropout` on the attention
    // probabilities and after `Wo`, `mlp_dropout` on the gated activations,
    // `classifier_dropout` between every head's dense block and its output; all 0 by default.
    let attention = hf_config::dropout(&f, &["attention_dropout"], 0.0)?;
    spec.dropout = Dropouts {
        embedding: hf_config::dropout(&f, &["embedding_dropout"], 0.0)?,
        attention,
        attention_output: attention,
        mlp_output: 0.0,
        mlp_activation: hf_config::dropout(&f, &["mlp_dropout"], 0.0)?,
    };
    let classifier = (0.0, hf_config::dropout(&f, &["classifier_dropout"], 0.0)?);
    spec.head_dropout = super::HeadDropouts {
        sequence_classification: classifier,
        multiple_choice: classifier,
        token_classification: classifier,
        question_answering: classifier,
    };
    let n = spec.num_hidden_layers;
    let half = f
        .opt_usize("local_attention", limits::POSITIONS)?
        .unwrap_or(128)
        / 2;
    let every = f
        .opt_usize("global_attn_every_n_layers", limits::LAYERS)?
        .unwrap_or(3);
    let layer_windows = match hf_config::layer_types_windows(&f, n, Some(half))? {
        Some(w) => w,
        None => (0..n).map(|i| (i % every != 0).then_some(half)).collect(),
    };
    let head_dim = spec.hidden_size / spec.num_attention_heads.max(1);
    let rope = |kind: &str, legacy: &str, default: f64| -> Result<RopeSpec> {
        let params = f.raw("rope_parameters").and_then(|p| p.get(kind));
        let theta = f.opt_f64(legacy, 1.0..=1e12)?.unwrap_or(default);
        hf_config::rope_from_params(
            &f,
            params,
            &format!("rope_parameters.{kind}."),
            theta,
            head_dim,
            spec.max_position_embeddings,
        )
    };
    spec.layout = EncoderLayout::ModernBert(ModernBertSpec {
        layer_windows,
        global_rope: rope("full_attention", "global_rope_theta", 160_000.0)?,
        local_rope: rope("sliding_attention", "local_rope_theta", 10_000.0)?,
        attention_bias: f.opt_bool("attention_bias")?.unwrap_or(false),
        mlp_bias: f.opt_bool("mlp_bias")?.unwrap_or(false),
        norm_bias: f.opt_bool("norm_bias")?.unwrap_or(false),
        classifier_act: Activation::from_hf(f.opt_str("classifier_activation")?.unwrap_or("gelu"))?,
        classifier_bias: f.opt_bool("classifier_bias")?.unwrap_or(false),
        mean_pooling: match f.opt_str("classifier_pooling")?.unwrap_or("cls") {
            "cls" => false,
            "mean" => true,
            other => {
                return Err(Error::config(
                    "classifier_pooling",
                    format!("`{other}` is not cls or mean"),
                ))
            }
        },
    });
    Ok(spec)
}

/// ModernBERT's heads: `head` (dense, activation, norm), then `decoder` (tied) or
/// `classifier`.
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    let m = spec.modern_bert()?;
    let input = match task {
        EncoderTask::MaskedLm
        | EncoderTask::TokenClassification
        | EncoderTask::QuestionAnswering => HeadInput::EveryToken,
        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice if m.mean_pooling => {
            HeadInput::MeanPooled
        }
        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice => HeadInput::FirstToken,
        EncoderTask::Base | EncoderTask::PreTraining => return None,
    };
    Some(HeadLayout {
        input,
        dense: Some((
            "head.dense",
            spec.hidden_size,
            m.classifier_act,
            m.classifier_bias,
        )),
        norm: Some(("head.norm", spec.layer_norm_eps, m.norm_bias)),
        out: match task {
            EncoderTask::MaskedLm => HeadOut::TiedEmbeddings {
                bias: "decoder.bias",
            },
            _ => HeadOut::Linear("classifier"),
        },
    })
}

struct Layer {
    attn_norm: Option<LayerNorm>,
    wqkv: Linear,
    wo: Linear,
    mlp_norm: LayerNorm,
    wi: Linear,
    mlp_out: Linear,
    window: Option<usize>,
}

/// The ModernBERT body under the `model.` prefix.
pub(super) struct ModernBertBody {
    embeddings: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    global_rope: RotaryEmbedding,
    local_rope: RotaryEmbedding,
    heads: usize,
    head_dim: usize,
    intermediate: usize,
    act: Activation,
    dropout: Dropouts,
}

impl ModernBertBody {
    pub(super) fn new(spec: &EncoderSpec, m: &ModernBertSpec, vb: &Weights) -> Result<Self> {
        let (h, i) = (spec.hidden_size, spec.intermediate_size);
        let norm = |vb: Weights| LayerNorm::new(&vb, h, spec.layer_norm_eps, m.norm_bias);
        if m.layer_windows.len() != spec.num_hidden_layers {
            return Err(Error::config(
                "layer_types",
                format!(
                    "{} entries for {} layers",
                    m.layer_windows.len(),
                    spec.num_hidden_layers
                ),
            ));
        }
        let layers = m
            .layer_windows
            .iter()
            .enumerate()
            .map(|(l, &window)| -> Result<Layer> {
                let vb = vb.pp("layers").pp(l);
                Ok(Layer {
                    attn_norm: (l > 0).then(|| norm(vb.pp("attn_norm"))).transpose()?,
                    wqkv: Linear::new(&vb.pp("attn").pp("Wqkv"), h, 3 * h, m.attention_bias)?,
                    wo: Linear::new(&vb.pp("attn").pp("Wo"), h, h, m.attention_bias)?,
                    mlp_norm: norm(vb.pp("mlp_norm"))?,
                    wi: Linear::new(&vb.pp("mlp").pp("Wi"), h, 2 * i, m.mlp_bias)?,
                    mlp_out: Linear::new(&vb.pp("mlp").pp("Wo"), i, h, m.mlp_bias)?,
                    window,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: Embedding::new(
                &vb.pp("embeddings").pp("tok_embeddings"),
                spec.vocab_size,
                h,
            )?
            .with_padding_idx(spec.embedding_padding_idx()),
            embed_norm: norm(vb.pp("embeddings").pp("norm"))?,
            layers,
            final_norm: norm(vb.pp("final_norm"))?,
            global_rope: RotaryEmbedding::new(&m.global_rope)?,
            local_rope: RotaryEmbedding::new(&m.local_rope)?,
            heads: spec.num_attention_heads,
            head_dim: h / spec.num_attention_heads,
            intermediate: i,
            act: spec.hidden_act,
            dropout: spec.dropout,
        })
    }

    pub(super) fn word_embeddings(&self) -> &Embedding {
        &self.embeddings
    }

    /// # Shapes
    /// `input_ids`: `[batch, seq]`, `padding`: additive `[batch, 1, 1, seq]` ->
    /// (`[batch, seq, hidden]`, hidden states when asked).
    pub(super) fn forward(
        &self,
        input_ids: &Tensor,
        padding: Option<&Tensor>,
        output_hidden_states: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (b, s) = input_ids.dims2()?;
        let device = input_ids.device();
        let positions = Tensor::arange(0i64, s as i64, device)?
            .unsqueeze(0)?
            .repeat((b, 1))?;
        let d = &self.dropout;
        let (attention, attention_output) = (
            Dropout::new(d.attention, "attention_dropout")?,
            Dropout::new(d.attention_output, "attention_dropout")?,
        );
        let mlp_activation = Dropout::new(d.mlp_activation, "mlp_dropout")?;
        let embeddings = self.embeddings.forward(input_ids)?;
        let mut xs = Dropout::new(d.embedding, "embedding_dropout")?
            .forward(&self.embed_norm.forward(&embeddings)?)?;
        let dtype = xs.dtype();
        let global = self.global_rope.cos_sin(&positions, dtype)?;
        let local = self.local_rope.cos_sin(&positions, dtype)?;
        // The local window as an additive mask, on top of padding.
        let window_mask = |w: usize| -> Result<Tensor> {
            let data: Vec<f32> = (0..s)
                .flat_map(|i| (0..s).map(move |j| if i.abs_diff(j) <= w { 0.0 } else { f32::MIN }))
                .collect();
            let m = Tensor::from_vec(data, (1, 1, s, s), device)?;
            Ok(match padding {
                Some(p) => m.broadcast_add(p)?.clamp(f32::MIN, 0f32)?,
                None => m,
            })
        };
        let mut windows: Vec<(usize, Tensor)> = Vec::new();
        let mut hidden = Vec::new();
        for layer in &self.layers {
            if output_hidden_states {
                hidden.push(xs.clone());
            }
            let (rope, cs, mask) = match layer.window {
                Some(w) => {
                    if !windows.iter().any(|(x, _)| *x == w) {
                        windows.push((w, window_mask(w)?));
                    }
                    let m = windows
                        .iter()
                        .find(|(x, _)| *x == w)
                        .map(|(_, m)| m.clone());
                    (&self.local_rope, &local, m)
                }
                None => (&self.global_rope, &global, padding.cloned()),
            };
            let normed = match &layer.attn_norm {
                Some(n) => n.forward(&xs)?,
                None => xs.clone(),
            };
            let (q, k, v) =
                split_fused_qkv(&layer.wqkv.forward(&normed)?, self.heads, self.head_dim)?;
            let q = rope.apply(&q, &cs.0, &cs.1)?;
            let k = rope.apply(&k, &cs.0, &cs.1)?;
            let scale = 1.0 / (self.head_dim as f64).sqrt();
            let ctx = sdpa(&q, &k, &v, mask.as_ref(), 1, scale, None, attention)?
                .transpose(1, 2)?
                .reshape((b, s, self.heads * self.head_dim))?;
            xs = (xs + attention_output.forward(&layer.wo.forward(&ctx)?)?)?;
            let wi = layer.wi.forward(&layer.mlp_norm.forward(&xs)?)?;
            let input = wi.narrow(2, 0, self.intermediate)?;
            let gate = wi.narrow(2, self.intermediate, self.intermediate)?;
            let m = layer
                .mlp_out
                .forward(&mlp_activation.forward(&(self.act.forward(&input)? * gate)?)?)?;
            xs = (xs + m)?;
        }
        // transformers' last hidden state entry is the normed output.
        let out = self.final_norm.forward(&xs)?;
        if output_hidden_states {
            hidden.push(out.clone());
        }
        Ok((out, hidden))
    }
}
