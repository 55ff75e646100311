//! DeBERTa-v2/v3 (`modeling_deberta_v2.py`): the BERT layer with disentangled attention.
//! Scores add content-to-position and position-to-content terms read from a table of relative
//! position embeddings (`encoder.rel_embeddings`, optionally layer-normed), indexed by the
//! relative distance `i - j` put into log-spaced buckets past `position_buckets / 2`:
//!
//! ```text
//! s[i, j] = (q_i . k_j + q_i . pk[r(i, j)] + k_j . pq[r(i, j)]) / sqrt(d * terms)
//! r(i, j) = clamp(span + bucket(i - j), 0, 2 * span - 1)
//! ```
//!
//! `pk` / `pq` are the key / query projections of the table (`share_att_key`) or their own
//! `pos_key_proj` / `pos_query_proj`.

use super::heads::{EncoderTask, HeadInput, HeadLayout, HeadOut};
use super::presets::{plain, rename_layer, split_base};
use super::{EncoderLayout, EncoderSpec, HeadDropouts};
use crate::hf_config::{dropout, limits};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, StoredName, Weights};
use trustformers_nn::positions::relative::log_bucket;
use trustformers_nn::{Activation, Dropout, LayerNorm, Linear};

/// What DeBERTa adds to [`EncoderSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct DebertaSpec {
    /// Content-to-position and position-to-content terms (`pos_att_type`).
    pub c2p: bool,
    pub p2c: bool,
    /// The table is projected by the layer's own query/key projections.
    pub share_att_key: bool,
    /// Log-bucketed distances past `position_buckets / 2` (0: none).
    pub position_buckets: usize,
    pub max_relative_positions: usize,
    /// LayerNorm on the relative embedding table (`norm_rel_ebd: layer_norm`).
    pub norm_rel_ebd: bool,
    /// Absolute position embeddings are added to the input (`position_biased_input`).
    pub position_biased_input: bool,
    /// The classification pooler's activation (`pooler_hidden_act`).
    pub pooler_act: Activation,
    /// The masked-LM head is the legacy `cls.predictions` one.
    pub legacy_mlm: bool,
    /// The convolution after the first layer (`conv_kernel_size` > 0: deberta-v2-xlarge
    /// and -xxlarge).
    pub conv: Option<ConvSpec>,
}

/// `ConvLayer`: a 1-D convolution over positions, `conv_kernel_size` wide, in
/// `conv_groups` groups, followed by `conv_act`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub kernel_size: usize,
    pub groups: usize,
    pub act: Activation,
}

impl DebertaSpec {
    /// Half the width of the relative table.
    pub fn span(&self) -> usize {
        if self.position_buckets > 0 {
            self.position_buckets
        } else {
            self.max_relative_positions
        }
    }
}

/// Reads a `deberta-v2` config.json.
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    let f = Fields::new(config, "")?;
    let mut spec = EncoderSpec::bert_like(&f, "deberta")?;
    if f.raw("type_vocab_size").is_none() {
        spec.type_vocab_size = 0;
    }
    spec.embedding_size = f
        .opt_usize("embedding_size", limits::HIDDEN)?
        .unwrap_or(spec.hidden_size);
    spec.layer_norm_eps = f.opt_f64("layer_norm_eps", 0.0..=1.0)?.unwrap_or(1e-7);
    let conv = match f.opt_usize("conv_kernel_size", 64)?.unwrap_or(0) {
        0 => None,
        k if k % 2 == 0 => {
            // transformers pads (k - 1) / 2 on each side: an even kernel would shorten the
            // sequence by one position and fail there too.
            return Err(Error::config(
                "conv_kernel_size",
                format!("must be odd, got {k}"),
            ));
        }
        kernel_size => {
            let groups = f.opt_usize("conv_groups", limits::HIDDEN)?.unwrap_or(1);
            if groups == 0 || spec.hidden_size % groups != 0 {
                return Err(Error::config(
                    "conv_groups",
                    format!("must divide hidden_size {}, got {groups}", spec.hidden_size),
                ));
            }
            let act = f.opt_str("conv_act")?.unwrap_or("tanh");
            let act = Activation::from_hf(act).map_err(|_| {
                Error::config(
                    "conv_act",
                    format!("unsupported activation `{act}` (supported: silu, gelu, gelu_pytorch_tanh, gelu_new, relu, tanh)"),
                )
            })?;
            Some(ConvSpec {
                kernel_size,
                groups,
                act,
            })
        }
    };
    if f.opt_bool("relative_attention")? != Some(true) {
        return Err(Error::config(
            "relative_attention",
            "only DeBERTa with relative attention is supported",
        ));
    }
    let types: Vec<String> = match f.raw("pos_att_type") {
        None => Vec::new(),
        Some(Value::String(s)) => s
            .to_lowercase()
            .split('|')
            .map(|t| t.trim().to_string())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_lowercase)
                    .ok_or_else(|| Error::config("pos_att_type", "must hold strings"))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::config("pos_att_type", "must be a string or a list")),
    };
    if let Some(t) = types.iter().find(|t| !["c2p", "p2c"].contains(&t.as_str())) {
        return Err(Error::config(
            "pos_att_type",
            format!("unknown term `{t}` (c2p, p2c)"),
        ));
    }
    let max_rel = match f.raw("max_relative_positions").and_then(Value::as_i64) {
        Some(n) if n >= 1 => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(limits::POSITIONS),
        _ => spec.max_position_embeddings,
    };
    let buckets = match f.raw("position_buckets").and_then(Value::as_i64) {
        Some(n) if n > 0 => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(limits::POSITIONS),
        _ => 0,
    };
    if buckets > 0 && (buckets < 4 || max_rel <= buckets / 2 + 1) {
        return Err(Error::config(
            "position_buckets",
            format!("{buckets} buckets do not fit max_relative_positions {max_rel}"),
        ));
    }
    let norm_rel = f.opt_str("norm_rel_ebd")?.unwrap_or("none");
    spec.layout = EncoderLayout::Deberta(DebertaSpec {
        c2p: types.iter().any(|t| t == "c2p"),
        p2c: types.iter().any(|t| t == "p2c"),
        share_att_key: f.opt_bool("share_att_key")?.unwrap_or(false),
        position_buckets: buckets,
        max_relative_positions: max_rel,
        norm_rel_ebd: norm_rel
            .to_lowercase()
            .split('|')
            .any(|t| t.trim() == "layer_norm"),
        position_biased_input: f.opt_bool("position_biased_input")?.unwrap_or(true),
        pooler_act: Activation::from_hf(f.opt_str("pooler_hidden_act")?.unwrap_or("gelu"))?,
        legacy_mlm: f.opt_bool("legacy")?.unwrap_or(true),
        conv,
    });
    // `ContextPooler`'s `pooler_dropout` before its dense, then `cls_dropout` (else
    // `hidden_dropout_prob`) before the classifier; `hidden_dropout_prob` before the token
    // classifier; nothing in question answering.
    let hidden = dropout(&f, &["hidden_dropout_prob"], 0.1)?;
    let classifier = (
        dropout(&f, &["pooler_dropout"], 0.0)?,
        dropout(&f, &["cls_dropout"], hidden)?,
    );
    spec.head_dropout = HeadDropouts {
        sequence_classification: classifier,
        multiple_choice: classifier,
        token_classification: (hidden, 0.0),
        question_answering: (0.0, 0.0),
    };
    Ok(spec)
}

/// DeBERTa's heads: `cls.predictions` (legacy) or `lm_predictions.lm_head`, and the
/// `pooler` + `classifier` of classification.
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    let d = spec.deberta()?;
    let (dense, norm, bias) = if d.legacy_mlm {
        (
            "cls.predictions.transform.dense",
            "cls.predictions.transform.LayerNorm",
            "cls.predictions.bias",
        )
    } else {
        (
            "lm_predictions.lm_head.dense",
            "lm_predictions.lm_head.LayerNorm",
            "lm_predictions.lm_head.bias",
        )
    };
    Some(match task {
        EncoderTask::MaskedLm => HeadLayout {
            input: HeadInput::EveryToken,
            dense: Some((dense, spec.hidden_size, spec.hidden_act, true)),
            norm: Some((norm, spec.layer_norm_eps, true)),
            out: HeadOut::TiedEmbeddings { bias },
        },
        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice => HeadLayout {
            input: HeadInput::FirstToken,
            dense: Some(("pooler.dense", spec.hidden_size, d.pooler_act, true)),
            norm: None,
            out: HeadOut::Linear("classifier"),
        },
        EncoderTask::TokenClassification => HeadLayout::linear(HeadInput::EveryToken, "classifier"),
        EncoderTask::QuestionAnswering => HeadLayout::linear(HeadInput::EveryToken, "qa_outputs"),
        EncoderTask::Base | EncoderTask::PreTraining => return None,
    })
}

/// BERT-layout names -> DeBERTa checkpoint names.
pub fn tensor_name(canonical: &str, _config: &Value) -> Option<StoredName> {
    let (base, rest) = split_base(canonical, "deberta")?;
    let stored = match rest.strip_prefix("embeddings_project.") {
        Some(r) => Some(format!("embeddings.embed_proj.{r}")),
        None => rename_layer(
            rest,
            "encoder.layer.{i}",
            &[
                ("attention.self.query.", "attention.self.query_proj."),
                ("attention.self.key.", "attention.self.key_proj."),
                ("attention.self.value.", "attention.self.value_proj."),
            ],
        ),
    };
    plain(stored.map(|n| format!("{base}{n}")))
}

/// The relative-position table and index shared by every layer of one forward pass.
pub(super) struct RelContext {
    /// `[2 * span, hidden]`, normed when the config asks.
    pub table: Tensor,
    /// `[seq, seq]` u32: the table row of each (query, key) pair.
    pub index: Tensor,
    pub spec: DebertaSpec,
    /// On the table, in each layer, in training (`pos_dropout`: `hidden_dropout_prob`).
    pub dropout: Dropout,
}

/// The table under `encoder.` (`rel_embeddings`), layer-normed when the config asks
/// (`encoder.LayerNorm`). It does not depend on the input, but the norm runs per forward
/// pass: in training the table and the norm's weights change after each step.
pub(super) struct RelTable {
    table: Tensor,
    norm: Option<LayerNorm>,
    spec: DebertaSpec,
    dropout: Dropout,
}

impl RelTable {
    pub(super) fn new(spec: &EncoderSpec, d: &DebertaSpec, vb: &Weights) -> Result<Self> {
        let enc = vb.pp("encoder");
        let table = enc.get((2 * d.span(), spec.hidden_size), "rel_embeddings.weight")?;
        let h = spec.hidden_size;
        Ok(Self {
            table,
            norm: d
                .norm_rel_ebd
                .then(|| LayerNorm::new(&enc.pp("LayerNorm"), h, spec.layer_norm_eps, true))
                .transpose()?,
            spec: d.clone(),
            dropout: Dropout::new(spec.dropout.attention_output, "hidden_dropout_prob")?,
        })
    }

    pub(super) fn context(&self, seq: usize, device: &Device) -> Result<RelContext> {
        let span = self.spec.span();
        let mut index = Vec::with_capacity(seq * seq);
        for i in 0..seq as i64 {
            for j in 0..seq as i64 {
                let rel = if self.spec.position_buckets > 0 {
                    log_bucket(
                        i - j,
                        self.spec.position_buckets,
                        self.spec.max_relative_positions,
                    )
                } else {
                    i - j
                };
                index.push((span as i64 + rel).clamp(0, 2 * span as i64 - 1) as u32);
            }
        }
        Ok(RelContext {
            table: match &self.norm {
                Some(norm) => norm.forward(&self.table)?,
                None => self.table.clone(),
            },
            index: Tensor::from_vec(index, (seq, seq), device)?,
            spec: self.spec.clone(),
            dropout: self.dropout,
        })
    }
}

/// `encoder.conv` (`ConvLayer`): runs once, after the first layer, on the embeddings;
/// its output replaces that layer's.
pub(super) struct ConvLayer {
    /// `[hidden, hidden / groups, kernel_size]`.
    weight: Tensor,
    bias: Tensor,
    norm: LayerNorm,
    spec: ConvSpec,
    /// On the convolution's output before the activation, in training.
    dropout: Dropout,
}

impl ConvLayer {
    pub(super) fn new(spec: &EncoderSpec, c: &ConvSpec, vb: &Weights) -> Result<Self> {
        let h = spec.hidden_size;
        let conv = vb.pp("conv");
        Ok(Self {
            weight: conv.get((h, h / c.groups, c.kernel_size), "weight")?,
            bias: conv.get(h, "bias")?,
            norm: LayerNorm::new(&vb.pp("LayerNorm"), h, spec.layer_norm_eps, true)?,
            spec: c.clone(),
            dropout: Dropout::new(spec.dropout.attention_output, "hidden_dropout_prob")?,
        })
    }

    /// `LayerNorm(layer_output + act(conv(embeddings)))`, padding positions zeroed before
    /// the activation and after the norm. `embeddings` must be zero at padding, as the
    /// encoder gives them: the convolution reads each position's neighbours.
    ///
    /// # Shapes
    /// `embeddings`, `layer_output`: `[batch, seq, hidden]`; `attention_mask`: `[batch, seq]`.
    pub(super) fn forward(
        &self,
        embeddings: &Tensor,
        layer_output: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let c = &self.spec;
        let keep = attention_mask
            .map(|m| m.to_dtype(embeddings.dtype())?.unsqueeze(2))
            .transpose()?;
        let conv = embeddings
            .transpose(1, 2)?
            .contiguous()?
            .conv1d(&self.weight, (c.kernel_size - 1) / 2, 1, 1, c.groups)?
            .broadcast_add(&self.bias.unsqueeze(1)?)?
            .transpose(1, 2)?;
        let conv = match &keep {
            Some(k) => conv.broadcast_mul(k)?,
            None => conv,
        };
        let out = self
            .norm
            .forward(&(layer_output + c.act.forward(&self.dropout.forward(&conv)?)?)?)?;
        Ok(match &keep {
            Some(k) => out.broadcast_mul(k)?,
            None => out,
        })
    }
}

/// `pos_key_proj` / `pos_query_proj` of a layer without `share_att_key`.
pub(super) struct RelProjections {
    pub pos_key: Option<Linear>,
    pub pos_query: Option<Linear>,
}

impl RelProjections {
    pub(super) fn new(spec: &EncoderSpec, d: &DebertaSpec, att: &Weights) -> Result<Self> {
        let h = spec.hidden_size;
        let proj = |on: bool, name: &str| {
            (on && !d.share_att_key)
                .then(|| Linear::new(&att.pp(name), h, h, true))
                .transpose()
        };
        Ok(Self {
            pos_key: proj(d.c2p, "pos_key_proj")?,
            pos_query: proj(d.p2c, "pos_query_proj")?,
        })
    }
}

/// The position terms of disentangled attention, already scaled, and the scale of the
/// content term (`1 / sqrt(d * terms)`).
///
/// # Shapes
/// q, k `[batch, heads, seq, d]` -> `[batch, heads, seq, seq]` f32.
pub(super) fn position_bias(
    q: &Tensor,
    k: &Tensor,
    ctx: &RelContext,
    project_query: &Linear,
    project_key: &Linear,
    own: &RelProjections,
) -> Result<(Tensor, f64)> {
    let (b, heads, s, d) = q.dims4()?;
    let terms = 1 + usize::from(ctx.spec.c2p) + usize::from(ctx.spec.p2c);
    let scale = 1.0 / ((d * terms) as f64).sqrt();
    let (q, k) = (q.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?);
    let mut out = Tensor::zeros((b, heads, s, s), DType::F32, q.device())?;
    let table = ctx.dropout.forward(&ctx.table)?;
    let rows = table.dim(0)?;
    // [2span, hidden] -> [1, heads, d, 2span]
    let per_head = |t: Tensor| -> Result<Tensor> {
        Ok(t.to_dtype(DType::F32)?
            .reshape((rows, heads, d))?
            .permute((1, 2, 0))?
            .unsqueeze(0)?
            .contiguous()?)
    };
    let index = ctx
        .index
        .unsqueeze(0)?
        .unsqueeze(0)?
        .broadcast_as((b, heads, s, s))?
        .contiguous()?;
    if ctx.spec.c2p {
        let pk = match &own.pos_key {
            Some(p) => p.forward(&table)?,
            None => project_key.forward(&table)?,
        };
        let c2p = q.broadcast_matmul(&per_head(pk)?)?.contiguous()?;
        out = (out + c2p.gather(&index, 3)?)?;
    }
    if ctx.spec.p2c {
        let pq = match &own.pos_query {
            Some(p) => p.forward(&table)?,
            None => project_query.forward(&table)?,
        };
        let p2c = k.broadcast_matmul(&per_head(pq)?)?.contiguous()?;
        let index_t = index.transpose(2, 3)?.contiguous()?;
        out = (out + p2c.gather(&index_t, 3)?.transpose(2, 3)?)?;
    }
    Ok(((out * scale)?, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convolution_settings_are_read_and_checked() {
        let config = |extra: Value| {
            let mut c = serde_json::json!({
                "model_type": "deberta-v2",
                "vocab_size": 128,
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 64,
                "max_position_embeddings": 64,
                "relative_attention": true,
            });
            if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
                c.extend(extra);
            }
            spec(&c)
        };
        let conv = |s: EncoderSpec| s.deberta().unwrap().conv.clone();
        assert_eq!(conv(config(serde_json::json!({})).unwrap()), None);
        assert_eq!(
            conv(config(serde_json::json!({"conv_kernel_size": 3})).unwrap()),
            Some(ConvSpec {
                kernel_size: 3,
                groups: 1,
                act: Activation::Tanh
            })
        );
        for (bad, field) in [
            (
                serde_json::json!({"conv_kernel_size": 4}),
                "conv_kernel_size",
            ),
            (
                serde_json::json!({"conv_kernel_size": 3, "conv_groups": 5}),
                "conv_groups",
            ),
            (
                serde_json::json!({"conv_kernel_size": 3, "conv_act": "mish"}),
                "conv_act",
            ),
        ] {
            let err = config(bad).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
