//! Mamba-2's mixer (`modeling_mamba2.py`, `Mamba2Mixer`): one input projection to the gate
//! (`intermediate_size`), the convolved stream (`x`, then `B` and `C` for `n_groups` groups of
//! `state_size`) and one time step per head; a causal depthwise convolution and `silu` over
//! the stream; a scan whose state is `[num_heads, head_dim, state_size]` with one scalar `A`,
//! time step (plus `dt_bias`, softplus, bounded by `time_step_limit`) and `D` per head, each
//! group's `B` and `C` shared by `num_heads / n_groups` heads; then `silu(gate)` times the
//! output, an RMSNorm over each group's `intermediate_size / n_groups` values with a weight,
//! and the output projection. The rest of the model is Mamba's ([`super::mamba`]).
//!
//! transformers computes prefill with the chunked state-space-duality form (`chunk_size`);
//! this runs the recurrence it is equal to, position by position, on the CPU kernel of nn's
//! scan (per channel, `head_dim` channels to a head).

use super::MambaSpec;
use crate::gguf::{arch_value, copy_metadata};
use crate::hf_config::limits;
use candle_core::{DType, Tensor, D};
use serde_json::{Map, Value};
use trustformers_core::config::{json_f64, Fields};
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{selective_scan, CausalConv1d, Linear, ScanInputs};

/// llama.cpp's `mamba2` files: heads from `ssm.time_step_rank` (llama.cpp's name for the
/// head count), groups from `ssm.group_count`, widths under `ssm.*`; biases and the untied
/// head by the tensors present.
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    copy_metadata(
        file,
        config,
        &[
            ("ssm.state_size", "state_size"),
            ("ssm.conv_kernel", "conv_kernel"),
            ("ssm.time_step_rank", "num_heads"),
            ("ssm.group_count", "n_groups"),
            ("attention.layer_norm_rms_epsilon", "layer_norm_epsilon"),
        ],
    )?;
    let count = |field: &str| config.get(field).and_then(Value::as_u64);
    let (hidden, heads) = (count("hidden_size"), count("num_heads"));
    let inner = arch_value(file, "ssm.inner_size").and_then(|(_, v)| v.as_u64());
    match (hidden, heads, inner) {
        (Some(h), Some(n), Some(i)) if h > 0 && n > 0 && i % h == 0 && i % n == 0 => {
            config.insert("expand".into(), Value::from(i / h));
            config.insert("head_dim".into(), Value::from(i / n));
        }
        _ => {
            return Err(Error::config(
                "mamba2.ssm.inner_size",
                format!(
                    "{inner:?} must be a multiple of embedding_length ({hidden:?}) and of \
                     time_step_rank, the head count ({heads:?})"
                ),
            ))
        }
    }
    super::mamba::biases_and_head_from_gguf(file, config);
    Ok(())
}

/// Mamba-2's own fields.
#[derive(Debug, Clone)]
pub struct Mamba2Spec {
    pub num_heads: usize,
    pub head_dim: usize,
    pub n_groups: usize,
    /// The bounds of the time step after softplus.
    pub time_step_limit: (f64, f64),
}

impl Mamba2Spec {
    /// Reads `Mamba2Config`'s fields and checks them against `intermediate_size`.
    pub fn from_config(f: &Fields<'_>, intermediate_size: usize) -> Result<Self> {
        let num_heads = f.opt_usize("num_heads", limits::HEADS * 64)?.unwrap_or(128);
        let head_dim = f.opt_usize("head_dim", limits::HEAD_DIM)?.unwrap_or(64);
        let n_groups = f.opt_usize("n_groups", limits::HEADS * 64)?.unwrap_or(8);
        if num_heads.checked_mul(head_dim) != Some(intermediate_size) {
            return Err(Error::config(
                "num_heads",
                format!(
                    "{num_heads} heads of head_dim {head_dim} must make hidden_size * expand \
                     ({intermediate_size})"
                ),
            ));
        }
        if n_groups == 0 || !num_heads.is_multiple_of(n_groups) {
            return Err(Error::config(
                "n_groups",
                format!("{n_groups} groups must divide the {num_heads} heads"),
            ));
        }
        let time_step_limit = match f.raw("time_step_limit") {
            None | Some(Value::Null) => (0.0, f64::INFINITY),
            Some(Value::Array(v)) if v.len() == 2 => match (json_f64(&v[0]), json_f64(&v[1])) {
                (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
                _ => {
                    return Err(Error::config(
                        "time_step_limit",
                        format!("must be [low, high] numbers with low <= high, got {v:?}"),
                    ))
                }
            },
            Some(other) => {
                return Err(Error::config(
                    "time_step_limit",
                    format!("must be [low, high], got {other}"),
                ))
            }
        };
        Ok(Self {
            num_heads,
            head_dim,
            n_groups,
            time_step_limit,
        })
    }
}

/// One layer's Mamba-2 mixer.
pub(super) struct Mamba2Mixer {
    in_proj: Linear,
    conv: CausalConv1d,
    /// Per channel (each head's value repeated `head_dim` times): `dt_bias`, `D`, and `A`
    /// (`-exp(A_log)`) as `[inner, state_size]`.
    dt_bias: Tensor,
    d: Tensor,
    a: Tensor,
    norm_weight: Tensor,
    norm_eps: f64,
    out_proj: Linear,
    inner: usize,
    state: usize,
    spec: Mamba2Spec,
}

impl Mamba2Mixer {
    pub(super) fn new(model: &MambaSpec, spec: &Mamba2Spec, vb: &Weights) -> Result<Self> {
        let (hidden, inner, state) = (model.hidden_size, model.intermediate_size, model.state_size);
        let (h, p, g) = (spec.num_heads, spec.head_dim, spec.n_groups);
        let conv_dim = inner + 2 * g * state;
        // A per-head vector as one value per channel.
        let per_channel = |t: Tensor| -> Result<Tensor> {
            Ok(t.to_dtype(DType::F32)?
                .reshape((h, 1))?
                .broadcast_as((h, p))?
                .reshape(inner)?)
        };
        // llama.cpp stores `A` itself (`-exp(A_log)`), and `A`, `D` as `[heads, 1]` and the
        // norm's weight as `[groups, inner / groups]`.
        let vector = |vb: &Weights, name: &str, len: usize| -> Result<Tensor> {
            Ok(match vb.shape_of(name).as_deref() {
                Some([_, _]) => vb.get((len, 1), name)?.reshape(len)?,
                _ => vb.get(len, name)?,
            })
        };
        let a = match vb.contains("A") {
            true => vector(vb, "A", h)?,
            false => vb.get(h, "A_log")?.to_dtype(DType::F32)?.exp()?.neg()?,
        };
        let norm_weight = match vb.shape_of("norm.weight").as_deref() {
            Some([_, _]) => vb
                .pp("norm")
                .get((g, inner / g), "weight")?
                .reshape(inner)?,
            _ => vb.pp("norm").get(inner, "weight")?,
        };
        let a = per_channel(a)?
            .reshape((inner, 1))?
            .broadcast_as((inner, state))?
            .contiguous()?;
        Ok(Self {
            in_proj: Linear::new(
                &vb.pp("in_proj"),
                hidden,
                inner + conv_dim + h,
                model.use_bias,
            )?,
            conv: CausalConv1d::new(
                &vb.pp("conv1d"),
                conv_dim,
                model.conv_kernel,
                model.use_conv_bias,
            )?,
            dt_bias: per_channel(vb.get(h, "dt_bias")?)?,
            d: per_channel(vector(vb, "D", h)?)?,
            a,
            norm_weight: norm_weight.to_dtype(DType::F32)?,
            norm_eps: model.layer_norm_epsilon,
            out_proj: Linear::new(&vb.pp("out_proj"), inner, hidden, model.use_bias)?,
            inner,
            state,
            spec: spec.clone(),
        })
    }

    /// The layer's states before any input: the convolution's and the scan's.
    pub(super) fn zero_states(&self, batch: usize, like: &Tensor) -> Result<Vec<Tensor>> {
        Ok(vec![
            self.conv.zero_state(batch, like)?,
            Tensor::zeros((batch, self.inner, self.state), DType::F32, like.device())?,
        ])
    }

    /// `xs` `[batch, seq, hidden]`, `masked` zeroing padded positions, `states` the
    /// convolution's and the scan's -> `[batch, seq, hidden]` and the new states.
    pub(super) fn forward(
        &self,
        xs: &Tensor,
        masked: &dyn Fn(Tensor) -> Result<Tensor>,
        conv_state: &Tensor,
        scan_state: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (batch, seq, _) = xs.dims3()?;
        let (inner, n) = (self.inner, self.state);
        let (h, p, g) = (self.spec.num_heads, self.spec.head_dim, self.spec.n_groups);
        let conv_dim = inner + 2 * g * n;
        let projected = self.in_proj.forward(&masked(xs.clone())?)?;
        let gate = projected.narrow(2, 0, inner)?;
        let stream = projected.narrow(2, inner, conv_dim)?;
        let dt = projected.narrow(2, inner + conv_dim, h)?;
        let (stream, conv_state) = self.conv.forward(&stream, conv_state)?;
        let stream = masked(stream.silu()?)?;
        let x = stream.narrow(2, 0, inner)?;
        let b = stream.narrow(2, inner, g * n)?;
        let c = stream.narrow(2, inner + g * n, g * n)?;
        // Each head's time step for its `head_dim` channels, with the bias.
        let dt = dt
            .to_dtype(DType::F32)?
            .unsqueeze(3)?
            .broadcast_as((batch, seq, h, p))?
            .reshape((batch, seq, inner))?
            .broadcast_add(&self.dt_bias)?;
        let (lo, hi) = self.spec.time_step_limit;
        let dt_limit = (lo > 0.0 || hi < f64::INFINITY).then_some((lo as f32, hi as f32));
        let inputs = ScanInputs {
            x: &x,
            dt: &dt,
            a: &self.a,
            b: &b,
            c: &c,
            groups: g,
            d: &self.d,
            z: None,
            dt_limit,
        };
        let (y, scan_state) = selective_scan(&inputs, scan_state)?;
        // The gated RMSNorm, per group of channels, in f32.
        let gated = (y * gate.to_dtype(DType::F32)?.silu()?)?;
        let grouped = gated.reshape((batch, seq, g, inner / g))?;
        let rms = (grouped.sqr()?.mean_keepdim(D::Minus1)? + self.norm_eps)?.sqrt()?;
        let normed = grouped
            .broadcast_div(&rms)?
            .reshape((batch, seq, inner))?
            .broadcast_mul(&self.norm_weight)?;
        let out = self.out_proj.forward(&normed.to_dtype(xs.dtype())?)?;
        Ok((out, vec![conv_state, scan_state]))
    }
}
