//! NomicBERT (`modeling_nomic_bert.py`; nomic-embed-text): BERT's post-norm layers with
//! rotary positions instead of learned ones, a fused `Wqkv`, a SwiGLU MLP and no biases but
//! the norms'.
//!
//! ```text
//! x = emb_ln(word_embeddings(ids) + token_type_embeddings(types))
//! h = norm1(x + out_proj(attn(rope(q), rope(k), v)))     q, k, v = Wqkv(x)
//! x = norm2(h + fc2(act(fc12(h)) * fc11(h)))
//! ```
//!
//! Checkpoints keep the names of Nomic's original code (`emb_ln`, `encoder.layers.{i}.attn.Wqkv`,
//! `mlp.fc11` / `fc12` / `fc2`, `norm1` / `norm2`), which transformers also saves. The
//! config may use transformers' names (`hidden_size`, `rope_parameters`) or the original
//! code's (`n_embd`, `n_head`, `rotary_emb_base`, ...), as the Hub's nomic-embed-text
//! releases do.

use super::heads::{EncoderTask, HeadLayout};
use super::{pad_token_id, EncoderLayout, EncoderSpec};
use crate::hf_config::{self, limits};
use candle_core::Tensor;
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::attention::{sdpa, split_fused_qkv};
use trustformers_nn::{
    Activation, Dropout, Embedding, LayerNorm, Linear, RopeSpec, RotaryEmbedding,
};

/// What NomicBERT adds to [`EncoderSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct NomicBertSpec {
    pub rope: RopeSpec,
}

/// The original code's config names -> transformers' (the first name found wins).
const ORIGINAL_NAMES: &[(&str, &str)] = &[
    ("n_embd", "hidden_size"),
    ("n_head", "num_attention_heads"),
    ("n_layer", "num_hidden_layers"),
    ("n_inner", "intermediate_size"),
    ("n_positions", "max_position_embeddings"),
    ("layer_norm_epsilon", "layer_norm_eps"),
    ("rotary_emb_base", "rope_theta"),
];

/// Reads a `nomic_bert` config.json, with transformers' names or the original code's.
pub fn spec(config: &Value) -> Result<EncoderSpec> {
    let obj = config
        .as_object()
        .ok_or_else(|| Error::config("config", "must be a JSON object"))?;
    let mut named: Map<String, Value> = obj.clone();
    for (from, to) in ORIGINAL_NAMES {
        if let Some(v) = obj.get(*from).filter(|v| !v.is_null()) {
            named.entry(*to).or_insert_with(|| v.clone());
        }
    }
    // The original code states its layout; only what this model is can be loaded.
    let original = |key: &str| obj.get(key).filter(|v| !v.is_null());
    for (key, want) in [
        ("prenorm", Value::Bool(false)),
        ("causal", Value::Bool(false)),
        ("rotary_emb_interleaved", Value::Bool(false)),
        ("qkv_proj_bias", Value::Bool(false)),
        ("mlp_fc1_bias", Value::Bool(false)),
        ("mlp_fc2_bias", Value::Bool(false)),
    ] {
        if let Some(v) = original(key) {
            if *v != want {
                return Err(Error::config(
                    key,
                    format!("{v} is not supported (only {want})"),
                ));
            }
        }
    }
    if let Some(v) = original("rotary_emb_fraction").and_then(Value::as_f64) {
        if v != 1.0 {
            return Err(Error::config(
                "rotary_emb_fraction",
                format!("{v} is not supported (only 1.0)"),
            ));
        }
    }
    if let Some(v) = original("rotary_scaling_factor") {
        return Err(Error::config(
            "rotary_scaling_factor",
            format!("{v}: dynamic NTK scaling is not supported"),
        ));
    }
    let act = match original("activation_function").and_then(Value::as_str) {
        Some("swiglu") => "silu",
        Some(other) => {
            return Err(Error::config(
                "activation_function",
                format!("`{other}` is not supported (only swiglu)"),
            ))
        }
        None => named
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("silu"),
    }
    .to_string();
    named.insert("hidden_act".into(), Value::from(act));
    let named = Value::Object(named);
    let f = Fields::new(&named, "")?;
    let mut spec = EncoderSpec::bert_like(&f, "nomic_bert")?;
    spec.max_position_embeddings = f
        .opt_usize("max_position_embeddings", limits::POSITIONS)?
        .unwrap_or(2048);
    spec.pad_token_id = pad_token_id(&f)?;
    // BERT's sites with 0 by default (the original code's names: `embd_pdrop`,
    // `attn_pdrop`, `resid_pdrop`).
    let hidden = hf_config::dropout(&f, &["hidden_dropout_prob", "resid_pdrop"], 0.0)?;
    spec.dropout = hf_config::Dropouts {
        embedding: hf_config::dropout(&f, &["hidden_dropout_prob", "embd_pdrop"], 0.0)?,
        attention: hf_config::dropout(&f, &["attention_probs_dropout_prob", "attn_pdrop"], 0.0)?,
        attention_output: hidden,
        mlp_output: hidden,
        mlp_activation: 0.0,
    };
    let classifier = hf_config::dropout(&f, &["classifier_dropout"], hidden)?;
    spec.head_dropout = super::HeadDropouts {
        sequence_classification: (classifier, 0.0),
        multiple_choice: (classifier, 0.0),
        token_classification: (classifier, 0.0),
        question_answering: (0.0, 0.0),
    };
    let head_dim = match f.opt_usize("head_dim", limits::HEAD_DIM)? {
        Some(d) if d * spec.num_attention_heads != spec.hidden_size => {
            return Err(Error::config(
                "head_dim",
                format!(
                    "{d} times {} heads is not hidden_size {}",
                    spec.num_attention_heads, spec.hidden_size
                ),
            ))
        }
        _ => spec.hidden_size / spec.num_attention_heads.max(1),
    };
    let theta = f.opt_f64("rope_theta", 1.0..=1e12)?.unwrap_or(1000.0);
    let rope = hf_config::rope_from_params(
        &f,
        f.raw("rope_parameters"),
        "rope_parameters.",
        theta,
        head_dim,
        spec.max_position_embeddings,
    )?;
    spec.layout = EncoderLayout::NomicBert(NomicBertSpec { rope });
    Ok(spec)
}

/// NomicBERT's heads: BERT's masked-LM and classification heads, with the prediction
/// transform's norm named `layer_norm`.
pub fn head(task: EncoderTask, spec: &EncoderSpec) -> Option<HeadLayout> {
    match task {
        EncoderTask::MaskedLm
        | EncoderTask::SequenceClassification
        | EncoderTask::TokenClassification => {}
        _ => return None,
    }
    let mut layout = super::presets::bert::head(task, spec)?;
    if let Some(norm) = &mut layout.norm {
        norm.0 = "cls.predictions.transform.layer_norm";
    }
    Some(layout)
}

struct Layer {
    wqkv: Linear,
    out_proj: Linear,
    norm1: LayerNorm,
    /// `fc11`: the up projection.
    up: Linear,
    /// `fc12`: the gate.
    gate: Linear,
    down: Linear,
    norm2: LayerNorm,
}

/// The NomicBERT body: embeddings, layers, and the pooler when a head reads it.
pub(super) struct NomicBertBody {
    word: Embedding,
    token_type: Option<Embedding>,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
    pub(super) pooler: Option<Linear>,
    rope: RotaryEmbedding,
    heads: usize,
    head_dim: usize,
    act: Activation,
    dropout: hf_config::Dropouts,
}

impl NomicBertBody {
    pub(super) fn new(
        spec: &EncoderSpec,
        n: &NomicBertSpec,
        vb: &Weights,
        pooler: bool,
    ) -> Result<Self> {
        let (h, i) = (spec.hidden_size, spec.intermediate_size);
        let norm = |vb: Weights| LayerNorm::new(&vb, h, spec.layer_norm_eps, true);
        let layers = (0..spec.num_hidden_layers)
            .map(|l| -> Result<Layer> {
                let vb = vb.pp("encoder").pp("layers").pp(l);
                let lin =
                    |name: &str, inp: usize, out: usize| Linear::new(&vb.pp(name), inp, out, false);
                Ok(Layer {
                    wqkv: lin("attn.Wqkv", h, 3 * h)?,
                    out_proj: lin("attn.out_proj", h, h)?,
                    norm1: norm(vb.pp("norm1"))?,
                    up: lin("mlp.fc11", h, i)?,
                    gate: lin("mlp.fc12", h, i)?,
                    down: lin("mlp.fc2", i, h)?,
                    norm2: norm(vb.pp("norm2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let emb = vb.pp("embeddings");
        let pooler_vb = vb.pp("pooler").pp("dense");
        Ok(Self {
            word: Embedding::new(&emb.pp("word_embeddings"), spec.vocab_size, h)?
                .with_padding_idx(spec.embedding_padding_idx()),
            token_type: (spec.type_vocab_size > 0)
                .then(|| Embedding::new(&emb.pp("token_type_embeddings"), spec.type_vocab_size, h))
                .transpose()?,
            emb_ln: norm(vb.pp("emb_ln"))?,
            layers,
            pooler: (pooler && pooler_vb.contains("weight"))
                .then(|| Linear::new(&pooler_vb, h, h, true))
                .transpose()?,
            rope: RotaryEmbedding::new(&n.rope)?,
            heads: spec.num_attention_heads,
            head_dim: h / spec.num_attention_heads,
            act: spec.hidden_act,
            dropout: spec.dropout,
        })
    }

    pub(super) fn word_embeddings(&self) -> &Embedding {
        &self.word
    }

    /// # Shapes
    /// `input_ids`, `token_type_ids`: `[batch, seq]`; `padding`: additive `[batch, 1, 1,
    /// seq]` -> (`[batch, seq, hidden]`, the embeddings and every layer's output when asked).
    pub(super) fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        padding: Option<&Tensor>,
        output_hidden_states: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (b, s) = input_ids.dims2()?;
        let device = input_ids.device();
        let mut xs = self.word.forward(input_ids)?;
        if let Some(table) = &self.token_type {
            let types = match token_type_ids {
                Some(t) => t.clone(),
                None => input_ids.zeros_like()?,
            };
            xs = (xs + table.forward(&types)?)?;
        }
        let d = &self.dropout;
        let (attention, attention_output, mlp_output) = (
            Dropout::new(d.attention, "attention_probs_dropout_prob")?,
            Dropout::new(d.attention_output, "hidden_dropout_prob")?,
            Dropout::new(d.mlp_output, "hidden_dropout_prob")?,
        );
        let mut xs = Dropout::new(d.embedding, "hidden_dropout_prob")?
            .forward(&self.emb_ln.forward(&xs)?)?;
        let positions = Tensor::arange(0i64, s as i64, device)?
            .unsqueeze(0)?
            .repeat((b, 1))?;
        let (cos, sin) = self.rope.cos_sin(&positions, xs.dtype())?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut hidden = Vec::new();
        for layer in &self.layers {
            if output_hidden_states {
                hidden.push(xs.clone());
            }
            let (q, k, v) = split_fused_qkv(&layer.wqkv.forward(&xs)?, self.heads, self.head_dim)?;
            let q = self.rope.apply(&q, &cos, &sin)?;
            let k = self.rope.apply(&k, &cos, &sin)?;
            let ctx = sdpa(&q, &k, &v, padding, 1, scale, None, attention)?
                .transpose(1, 2)?
                .reshape((b, s, self.heads * self.head_dim))?;
            let h = layer.norm1.forward_residual(
                &attention_output.forward(&layer.out_proj.forward(&ctx)?)?,
                &xs,
            )?;
            let gated = (self.act.forward(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            xs = layer
                .norm2
                .forward_residual(&mlp_output.forward(&layer.down.forward(&gated)?)?, &h)?;
        }
        if output_hidden_states {
            hidden.push(xs.clone());
        }
        Ok((xs, hidden))
    }

    /// `tanh(pooler(h[:, 0]))`, when the body has a pooler.
    pub(super) fn pool(&self, last_hidden_state: &Tensor) -> Result<Option<Tensor>> {
        let Some(pooler) = &self.pooler else {
            return Ok(None);
        };
        let first = last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(Some(pooler.forward(&first)?.tanh()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The Hub's config (the original code's names) and transformers' give one spec.
    #[test]
    fn original_and_transformers_names_agree() {
        let hub = serde_json::json!({
            "model_type": "nomic_bert", "vocab_size": 128, "n_embd": 32, "n_head": 4,
            "n_layer": 2, "n_inner": 64, "n_positions": 2048, "layer_norm_epsilon": 1e-12,
            "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0, "activation_function": "swiglu",
            "prenorm": false, "causal": false, "qkv_proj_bias": false, "type_vocab_size": 2,
            "pad_token_id": 0
        });
        let native = serde_json::json!({
            "model_type": "nomic_bert", "vocab_size": 128, "hidden_size": 32,
            "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 64,
            "max_position_embeddings": 2048, "layer_norm_eps": 1e-12, "hidden_act": "silu",
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000.0},
            "type_vocab_size": 2, "pad_token_id": 0
        });
        assert_eq!(spec(&hub).unwrap(), spec(&native).unwrap());
        let mut prenorm = hub.clone();
        prenorm["prenorm"] = true.into();
        assert!(spec(&prenorm).is_err());
        let mut gelu = hub;
        gelu["activation_function"] = "gelu".into();
        assert!(spec(&gelu).is_err());
    }
}
