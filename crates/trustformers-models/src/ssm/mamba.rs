//! Mamba (`modeling_mamba.py`, `MambaForCausalLM`): embeddings, then per layer an RMSNorm and
//! a selective state-space mixer added to the residual stream (kept in f32 when
//! `residual_in_fp32`), a final RMSNorm and a head tied to the embeddings unless
//! `tie_word_embeddings` is false. The mixer projects the input to `2 * intermediate_size`
//! (the scan's input and its gate), runs a causal depthwise convolution of `conv_kernel`
//! taps and `silu` over the first half, derives the time step (rank `time_step_rank`,
//! widened by `dt_proj`), `B` and `C` (`state_size` each) from it by `x_proj`, scans, gates
//! with `silu` of the second half and projects back with `out_proj`.
//!
//! Per sequence the cache holds, per layer, the convolution's last `conv_kernel - 1` inputs
//! and the scan's `[intermediate_size, state_size]` state: a fixed size at any length. A
//! padding mask zeroes padded positions before the input projection and after the
//! convolution, as transformers does, so left padding leaves the states at zero.
//! transformers' own forward over several new tokens after a filled cache restarts the scan
//! from zero (its "TODO" in `mamba_scan_forward`); this one continues from the cache, which
//! is what a single pass over the whole sequence computes.
//!
//! Falcon-Mamba (`falcon_mamba`, `FalconMambaForCausalLM`) is the same model with the time
//! step, `B` and `C` each put through an RMSNorm without weights (`mixer_rms_eps`) before
//! the scan.

use super::mamba2::{Mamba2Mixer, Mamba2Spec};
use crate::gguf::{arch_value, copy_metadata, has_block_tensor};
use crate::hf_config::limits;
use crate::traits::{CausalLM, CausalLmOutput, ForwardOptions, RuntimeOptions};
use candle_core::{DType, Device, Tensor, D};
use serde_json::{Map, Value};
use trustformers_core::config::Fields;
use trustformers_core::gguf::GgufFile;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{
    selective_scan, Cache, CausalConv1d, Embedding, Linear, RecurrentState, RmsNorm, ScanInputs,
};

/// llama.cpp's `mamba` files: the widths under `ssm.*` (`inner_size`, `state_size`,
/// `conv_kernel`, `time_step_rank`), biases and the untied head by the tensors present.
/// Falcon-Mamba's files (`ssm.dt_b_c_rms`: weightless RMS norms on the time step, `B` and
/// `C`) are `falcon_mamba`, with transformers' `mixer_rms_eps` of 1e-6 (the file does not
/// state it; llama.cpp uses the layers' epsilon there).
pub fn from_gguf(file: &GgufFile, config: &mut Map<String, Value>) -> Result<()> {
    if arch_value(file, "ssm.dt_b_c_rms").is_some_and(|(_, v)| v.as_bool() == Some(true)) {
        config.insert("model_type".into(), Value::from("falcon_mamba"));
    }
    copy_metadata(
        file,
        config,
        &[
            ("ssm.inner_size", "intermediate_size"),
            ("ssm.state_size", "state_size"),
            ("ssm.conv_kernel", "conv_kernel"),
            ("ssm.time_step_rank", "time_step_rank"),
            ("attention.layer_norm_rms_epsilon", "layer_norm_epsilon"),
        ],
    )?;
    biases_and_head_from_gguf(file, config);
    Ok(())
}

/// What llama.cpp's `mamba` and `mamba2` files state by the tensors present: projection and
/// convolution biases, and an untied head.
pub(super) fn biases_and_head_from_gguf(file: &GgufFile, config: &mut Map<String, Value>) {
    let has = |name: &str| has_block_tensor(file, name);
    config.insert("use_bias".into(), Value::from(has("ssm_in.bias")));
    config.insert("use_conv_bias".into(), Value::from(has("ssm_conv1d.bias")));
    let tied = file.tensor_info("output.weight").is_none();
    config.insert("tie_word_embeddings".into(), Value::from(tied));
}

/// A Mamba config.json's fields.
#[derive(Debug, Clone)]
pub struct MambaSpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub state_size: usize,
    pub num_hidden_layers: usize,
    pub conv_kernel: usize,
    pub time_step_rank: usize,
    pub layer_norm_epsilon: f64,
    pub use_bias: bool,
    pub use_conv_bias: bool,
    pub residual_in_fp32: bool,
    pub tie_word_embeddings: bool,
    /// Falcon-Mamba (`falcon_mamba`): the time step, `B` and `C` go through an RMSNorm
    /// without weights, of this epsilon (`mixer_rms_eps`), before they are used.
    pub mixer_rms_eps: Option<f64>,
    /// Mamba-2 (`mamba2`): its heads, groups and time-step bounds.
    pub mamba2: Option<Mamba2Spec>,
}

/// The longest convolution this reads (the released models use 4).
const MAX_CONV_KERNEL: usize = 64;
/// The largest state per channel (the released models use 16).
const MAX_STATE: usize = 1 << 12;

impl MambaSpec {
    /// Reads `config` with `MambaConfig`'s defaults; sizes that cannot work are errors naming
    /// the field.
    pub fn from_config(config: &Value) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let v2 = f.opt_str("model_type")? == Some("mamba2");
        let hidden_size = f
            .opt_usize("hidden_size", limits::HIDDEN)?
            .unwrap_or(if v2 { 4096 } else { 768 });
        let expand = f.opt_usize("expand", 64)?.unwrap_or(2);
        // Mamba-2's mixer takes `expand * hidden_size` whatever `intermediate_size` says.
        let intermediate_size = match v2 {
            true => expand * hidden_size,
            false => f
                .opt_usize("intermediate_size", limits::INTERMEDIATE)?
                .unwrap_or(expand * hidden_size),
        };
        let time_step_rank = match f.raw("time_step_rank") {
            None | Some(Value::Null) => hidden_size.div_ceil(16),
            Some(Value::String(s)) if s == "auto" => hidden_size.div_ceil(16),
            Some(_) => f.usize("time_step_rank", limits::HIDDEN)?,
        };
        let conv_kernel = f.opt_usize("conv_kernel", MAX_CONV_KERNEL)?.unwrap_or(4);
        if let Some(act) = f.opt_str("hidden_act")? {
            if act != "silu" && act != "swish" {
                return Err(Error::config(
                    "hidden_act",
                    format!("Mamba's mixer runs silu, not {act:?}"),
                ));
            }
        }
        let spec = Self {
            vocab_size: f.opt_usize("vocab_size", limits::VOCAB)?.unwrap_or(if v2 {
                32768
            } else {
                50280
            }),
            hidden_size,
            intermediate_size,
            state_size: f
                .opt_usize("state_size", MAX_STATE)?
                .unwrap_or(if v2 { 128 } else { 16 }),
            num_hidden_layers: f
                .opt_usize("num_hidden_layers", limits::LAYERS)?
                .unwrap_or(if v2 { 64 } else { 32 }),
            conv_kernel,
            time_step_rank,
            layer_norm_epsilon: f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5),
            use_bias: f.opt_bool("use_bias")?.unwrap_or(false),
            use_conv_bias: f.opt_bool("use_conv_bias")?.unwrap_or(true),
            residual_in_fp32: f.opt_bool("residual_in_fp32")?.unwrap_or(true),
            tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(!v2),
            mixer_rms_eps: match f.opt_str("model_type")? {
                Some("falcon_mamba") => {
                    Some(f.opt_f64("mixer_rms_eps", 0.0..=1.0)?.unwrap_or(1e-6))
                }
                _ => None,
            },
            mamba2: v2
                .then(|| Mamba2Spec::from_config(&f, intermediate_size))
                .transpose()?,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl MambaSpec {
    /// Refuses sizes no layer can be built with, naming the field.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("state_size", self.state_size),
            ("time_step_rank", self.time_step_rank),
            ("conv_kernel", self.conv_kernel),
            ("vocab_size", self.vocab_size),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// One layer's Mamba (or Falcon-Mamba) mixer.
struct MambaMixer {
    in_proj: Linear,
    conv: CausalConv1d,
    x_proj: Linear,
    dt_proj: Linear,
    /// `-exp(A_log)`, `[intermediate_size, state_size]` f32.
    a: Tensor,
    /// `[intermediate_size]` f32.
    d: Tensor,
    out_proj: Linear,
    inner: usize,
    rank: usize,
    state: usize,
    /// Falcon-Mamba's weightless RMSNorm epsilon for the time step, `B` and `C`.
    rms_eps: Option<f64>,
}

impl MambaMixer {
    fn new(spec: &MambaSpec, vb: &Weights) -> Result<Self> {
        let (h, i, n, r) = (
            spec.hidden_size,
            spec.intermediate_size,
            spec.state_size,
            spec.time_step_rank,
        );
        // llama.cpp stores `A` itself (`-exp(A_log)`).
        let a = if vb.contains("A") {
            vb.get((i, n), "A")?.to_dtype(DType::F32)?
        } else {
            vb.get((i, n), "A_log")?
                .to_dtype(DType::F32)?
                .exp()?
                .neg()?
        };
        Ok(Self {
            in_proj: Linear::new(&vb.pp("in_proj"), h, 2 * i, spec.use_bias)?,
            conv: CausalConv1d::new(&vb.pp("conv1d"), i, spec.conv_kernel, spec.use_conv_bias)?,
            x_proj: Linear::new(&vb.pp("x_proj"), i, r + 2 * n, false)?,
            dt_proj: Linear::new(&vb.pp("dt_proj"), r, i, true)?,
            a,
            d: vb.get(i, "D")?.to_dtype(DType::F32)?,
            out_proj: Linear::new(&vb.pp("out_proj"), i, h, spec.use_bias)?,
            inner: i,
            rank: r,
            state: n,
            rms_eps: spec.mixer_rms_eps,
        })
    }

    /// The layer's states before any input: the convolution's and the scan's.
    fn zero_states(&self, batch: usize, like: &Tensor) -> Result<Vec<Tensor>> {
        Ok(vec![
            self.conv.zero_state(batch, like)?,
            Tensor::zeros((batch, self.inner, self.state), DType::F32, like.device())?,
        ])
    }

    /// `xs` `[batch, seq, hidden]`, `masked` zeroing padded positions, `states` the
    /// convolution's and the scan's -> `[batch, seq, hidden]` and the new states.
    fn forward(
        &self,
        xs: &Tensor,
        masked: &dyn Fn(Tensor) -> Result<Tensor>,
        conv_state: &Tensor,
        scan_state: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let projected = self.in_proj.forward(&masked(xs.clone())?)?;
        let x = projected.narrow(2, 0, self.inner)?;
        let gate = projected.narrow(2, self.inner, self.inner)?;
        let (x, conv_state) = self.conv.forward(&x, conv_state)?;
        let x = masked(x.silu()?)?.to_dtype(xs.dtype())?;
        let params = self.x_proj.forward(&x)?;
        let mut time_step = params.narrow(2, 0, self.rank)?;
        let mut b = params.narrow(2, self.rank, self.state)?;
        let mut c = params.narrow(2, self.rank + self.state, self.state)?;
        if let Some(eps) = self.rms_eps {
            // `x * rsqrt(mean(x^2) + eps)` over the last dimension, in f32.
            let rms = |t: &Tensor| -> Result<Tensor> {
                let f = t.to_dtype(DType::F32)?;
                let norm = (f.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
                Ok(f.broadcast_div(&norm)?.to_dtype(t.dtype())?)
            };
            (time_step, b, c) = (rms(&time_step)?, rms(&b)?, rms(&c)?);
        }
        let dt = self.dt_proj.forward(&time_step)?;
        let inputs = ScanInputs {
            x: &x,
            dt: &dt,
            a: &self.a,
            b: &b,
            c: &c,
            groups: 1,
            d: &self.d,
            z: Some(&gate),
            dt_limit: None,
        };
        let (y, scan_state) = selective_scan(&inputs, scan_state)?;
        let out = self.out_proj.forward(&y.to_dtype(xs.dtype())?)?;
        Ok((out, vec![conv_state, scan_state]))
    }
}

/// A layer's mixer: Mamba's or Mamba-2's.
enum Mixer {
    V1(MambaMixer),
    V2(Mamba2Mixer),
}

impl Mixer {
    fn new(spec: &MambaSpec, vb: &Weights) -> Result<Self> {
        Ok(match &spec.mamba2 {
            None => Self::V1(MambaMixer::new(spec, vb)?),
            Some(v2) => Self::V2(Mamba2Mixer::new(spec, v2, vb)?),
        })
    }

    /// `xs` `[batch, seq, hidden]`, `mask` `[batch, seq, 1]` (1 kept, 0 padded), `states`
    /// the convolution's and the scan's -> `[batch, seq, hidden]` and the new states.
    fn forward(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
        states: Option<&[Tensor]>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let batch = xs.dim(0)?;
        let masked = |t: Tensor| -> Result<Tensor> {
            Ok(match mask {
                Some(m) => t.broadcast_mul(&m.to_dtype(t.dtype())?)?,
                None => t,
            })
        };
        let zero;
        let states = match states {
            Some(s) => s,
            None => {
                zero = match self {
                    Self::V1(m) => m.zero_states(batch, xs)?,
                    Self::V2(m) => m.zero_states(batch, xs)?,
                };
                &zero[..]
            }
        };
        let [conv_state, scan_state] = states else {
            return Err(Error::InvalidInput(format!(
                "a Mamba layer's cache holds 2 states, not {}",
                states.len()
            )));
        };
        match self {
            Self::V1(m) => m.forward(xs, &masked, conv_state, scan_state),
            Self::V2(m) => m.forward(xs, &masked, conv_state, scan_state),
        }
    }
}

struct Block {
    norm: RmsNorm,
    mixer: Mixer,
}

/// Mamba with its language-modelling head.
pub struct MambaForCausalLM {
    model_type: String,
    spec: MambaSpec,
    embeddings: Embedding,
    layers: Vec<Block>,
    norm_f: RmsNorm,
    lm_head: Linear,
    prefill_chunk: usize,
}

impl MambaForCausalLM {
    /// Loads `backbone.*` and `lm_head` (or ties it to the embeddings) from `vb`.
    pub fn new(
        model_type: &str,
        spec: &MambaSpec,
        vb: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Self> {
        runtime.validate()?;
        spec.validate()?;
        let backbone = vb.pp("backbone");
        let embeddings = Embedding::new(
            &backbone.pp("embeddings"),
            spec.vocab_size,
            spec.hidden_size,
        )?;
        let layers = (0..spec.num_hidden_layers)
            .map(|i| -> Result<Block> {
                let layer = backbone.pp("layers").pp(i);
                Ok(Block {
                    norm: RmsNorm::new(
                        &layer.pp("norm"),
                        spec.hidden_size,
                        spec.layer_norm_epsilon,
                    )?,
                    mixer: Mixer::new(spec, &layer.pp("mixer"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm_f = RmsNorm::new(
            &backbone.pp("norm_f"),
            spec.hidden_size,
            spec.layer_norm_epsilon,
        )?;
        let lm_head = if spec.tie_word_embeddings {
            embeddings.tied_linear(None)?
        } else {
            Linear::new(&vb.pp("lm_head"), spec.hidden_size, spec.vocab_size, false)?
        };
        Ok(Self {
            model_type: model_type.to_owned(),
            spec: spec.clone(),
            embeddings,
            layers,
            norm_f,
            lm_head,
            prefill_chunk: runtime.prefill_chunk,
        })
    }

    /// One pass of `input_ids` through the layers from `state`: the final hidden states and,
    /// when asked, every layer's output then the normed last one (transformers' tuple).
    fn forward_layers(
        &self,
        input_ids: &Tensor,
        mask: Option<&Tensor>,
        hidden_states: bool,
        state: &mut RecurrentState,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut xs = self.embeddings.forward(input_ids)?;
        let embeddings = xs.clone();
        let mut all = Vec::new();
        for (i, block) in self.layers.iter().enumerate() {
            let residual = if self.spec.residual_in_fp32 {
                xs.to_dtype(DType::F32)?
            } else {
                xs.clone()
            };
            let normed = block.norm.forward(&xs)?;
            let (out, states) = block.mixer.forward(&normed, mask, state.get(i))?;
            state.set(i, states)?;
            let out = out.to_dtype(residual.dtype())?;
            xs = (residual + out)?;
            if hidden_states {
                all.push(xs.clone());
            }
        }
        let xs = self
            .norm_f
            .forward(&xs.to_dtype(self.embeddings.dtype())?)?;
        if hidden_states {
            if self.spec.mamba2.is_some() {
                // Mamba-2's tuple is the decoders': the embeddings, each layer's output, the
                // last one normed.
                all.pop();
                all.insert(0, embeddings);
            }
            all.push(xs.clone());
        }
        Ok((xs, all))
    }
}

impl CausalLM for MambaForCausalLM {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    fn forward_with(
        &self,
        input_ids: &Tensor,
        _positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<CausalLmOutput> {
        let state = cache.state_mut(&self.model_type)?;
        let (batch, seq) = input_ids.dims2()?;
        let past = state.seq_len();
        let mask = match &opts.attention_mask {
            Some(m) if m.dims() != [batch, past + seq] => {
                return Err(Error::InvalidInput(format!(
                    "attention_mask is {:?}; expected [{batch}, {}] (cached + new tokens)",
                    m.dims(),
                    past + seq
                )))
            }
            Some(m) => Some(m.narrow(1, past, seq)?.unsqueeze(2)?),
            None => None,
        };
        let out = super::chunked_pass(
            (batch, seq),
            self.spec.hidden_size,
            (self.embeddings.dtype(), self.device()),
            self.prefill_chunk,
            opts,
            &self.lm_head,
            |start, len| {
                let part_mask = mask.as_ref().map(|m| m.narrow(1, start, len)).transpose()?;
                self.forward_layers(
                    &input_ids.narrow(1, start, len)?,
                    part_mask.as_ref(),
                    opts.output_hidden_states,
                    state,
                )
            },
        )?;
        state.advance(seq);
        Ok(out)
    }

    /// Per-layer convolution and scan states, kept in f32.
    fn new_cache(&self) -> Cache {
        Cache::State(RecurrentState::new(self.layers.len(), DType::F32))
    }

    fn vocab_size(&self) -> usize {
        self.spec.vocab_size
    }

    /// Unbounded: the state does not grow with the sequence.
    fn max_position_embeddings(&self) -> usize {
        usize::MAX
    }

    fn num_hidden_layers(&self) -> usize {
        self.spec.num_hidden_layers
    }

    fn device(&self) -> &Device {
        self.embeddings.device()
    }

    fn dtype(&self) -> DType {
        self.embeddings.dtype()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_that_cannot_work_are_errors_naming_the_field() {
        let base = json!({"model_type": "mamba", "hidden_size": 32, "vocab_size": 10});
        assert_eq!(MambaSpec::from_config(&base).unwrap().time_step_rank, 2);
        for (field, value) in [
            ("state_size", json!(0)),
            ("conv_kernel", json!(0)),
            ("conv_kernel", json!(1000)),
            ("time_step_rank", json!(0)),
            ("time_step_rank", json!("fast")),
            ("intermediate_size", json!(0)),
            ("hidden_act", json!("gelu")),
            ("layer_norm_epsilon", json!(-1.0)),
        ] {
            let mut config = base.clone();
            config[field] = value.clone();
            let err = MambaSpec::from_config(&config).unwrap_err().to_string();
            assert!(err.contains(field), "{field} = {value}: {err}");
        }
        // Mamba-2: heads that do not make the inner width, groups that do not divide them,
        // time-step bounds that are not [low, high].
        let base = json!({"model_type": "mamba2", "hidden_size": 32, "expand": 2,
                          "num_heads": 8, "head_dim": 8, "n_groups": 2});
        assert!(MambaSpec::from_config(&base).unwrap().mamba2.is_some());
        for (field, value) in [
            ("num_heads", json!(6)),
            ("n_groups", json!(3)),
            ("n_groups", json!(0)),
            ("time_step_limit", json!([1.0, 0.5])),
            ("time_step_limit", json!([0.0])),
            ("time_step_limit", json!("wide")),
        ] {
            let mut config = base.clone();
            config[field] = value.clone();
            let err = MambaSpec::from_config(&config).unwrap_err().to_string();
            assert!(err.contains(field), "{field} = {value}: {err}");
        }
    }
}
