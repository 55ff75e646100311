//! RWKV (`modeling_rwkv.py`, `RwkvForCausalLM`: RWKV-4): embeddings, a LayerNorm before the
//! first block, then per block a time-mix (attention-free "linear attention") and a
//! channel-mix, each on a LayerNormed input added to the residual stream, a final LayerNorm
//! and an untied head.
//!
//! Both mixes take their input interpolated with the previous token's (token shift: learned
//! `time_mix_*` weights per channel). The time-mix projects keys, values and a sigmoid
//! receptance, and runs the WKV recurrence per channel with a learned decay (`-exp
//! (time_decay)`) and a bonus for the current token (`time_first`), in the numerically
//! stable form transformers' CPU path uses (numerator, denominator and a running maximum
//! exponent); the channel-mix is `sigmoid(receptance) * value(relu(key)²)`.
//!
//! In inference transformers divides the time-mix output and channel-mix value weights of
//! block `i` by `2^(i / rescale_every)` and halves the hidden states after every
//! `rescale_every` blocks (so that fp16 does not overflow); this does the same on the
//! outputs, which is exact (scaling by a power of two commutes with rounding).
//!
//! Per sequence the cache holds, per block, the two mixes' previous inputs and the WKV
//! numerator, denominator and maximum: a fixed size at any length. Like transformers, RWKV
//! reads no attention mask: padding tokens go through the recurrence like any other, so a
//! left-padded row's outputs differ from the same row alone (transformers' too).

use crate::hf_config::limits;
use crate::traits::{CausalLM, CausalLmOutput, ForwardOptions, RuntimeOptions};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use trustformers_core::config::Fields;
use trustformers_core::{Error, Result, Weights};
use trustformers_nn::{Cache, Embedding, LayerNorm, Linear, RecurrentState};

/// `RwkvConfig`'s sizes and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RwkvSpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub attention_hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub layer_norm_epsilon: f64,
    /// Halve the hidden states after every this many blocks (0: never).
    pub rescale_every: usize,
    pub tie_word_embeddings: bool,
}

impl RwkvSpec {
    /// Reads `config` with `RwkvConfig`'s defaults; sizes that cannot work are errors naming
    /// the field.
    pub fn from_config(config: &Value) -> Result<Self> {
        let f = Fields::new(config, "")?;
        let hidden_size = f.opt_usize("hidden_size", limits::HIDDEN)?.unwrap_or(4096);
        let spec = Self {
            vocab_size: f.opt_usize("vocab_size", limits::VOCAB)?.unwrap_or(50277),
            hidden_size,
            attention_hidden_size: f
                .opt_usize("attention_hidden_size", limits::HIDDEN)?
                .unwrap_or(hidden_size),
            intermediate_size: f
                .opt_usize("intermediate_size", limits::INTERMEDIATE)?
                .unwrap_or(4 * hidden_size),
            num_hidden_layers: f
                .opt_usize("num_hidden_layers", limits::LAYERS)?
                .unwrap_or(32),
            layer_norm_epsilon: f.opt_f64("layer_norm_epsilon", 0.0..=1.0)?.unwrap_or(1e-5),
            rescale_every: f.opt_usize("rescale_every", limits::LAYERS)?.unwrap_or(6),
            tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
        };
        for (field, value) in [
            ("hidden_size", spec.hidden_size),
            ("attention_hidden_size", spec.attention_hidden_size),
            ("intermediate_size", spec.intermediate_size),
            ("vocab_size", spec.vocab_size),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        Ok(spec)
    }
}

/// A learned per-channel vector stored as `[1, 1, hidden]` (the `time_mix_*` weights).
fn mix_weight(vb: &Weights, name: &str, dim: usize) -> Result<Tensor> {
    Ok(vb.get((1, 1, dim), name)?.reshape((1, 1, dim))?)
}

/// `1 / (1 + exp(-x))`.
fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// `x * mix + shifted * (1 - mix)`.
fn interpolate(x: &Tensor, shifted: &Tensor, mix: &Tensor) -> Result<Tensor> {
    let keep = x.broadcast_mul(mix)?;
    let prev = shifted.broadcast_mul(&mix.affine(-1.0, 1.0)?)?;
    Ok((keep + prev)?)
}

/// The inputs shifted one token later: `prev` (the last input of the previous pass,
/// `[batch, hidden]`) first, then all but the last of `x` (`[batch, seq, hidden]`).
fn token_shift(x: &Tensor, prev: &Tensor) -> Result<Tensor> {
    let seq = x.dim(1)?;
    let prev = prev.unsqueeze(1)?.to_dtype(x.dtype())?;
    match seq {
        1 => Ok(prev),
        _ => Ok(Tensor::cat(&[&prev, &x.narrow(1, 0, seq - 1)?], 1)?),
    }
}

/// The last position of `x` (`[batch, seq, hidden]` -> `[batch, hidden]`), for the state.
fn last_position(x: &Tensor) -> Result<Tensor> {
    let seq = x.dim(1)?;
    Ok(x.narrow(1, seq - 1, 1)?.squeeze(1)?.to_dtype(DType::F32)?)
}

struct TimeMix {
    /// `-exp(time_decay)`, per channel.
    decay: Vec<f32>,
    first: Vec<f32>,
    mix_key: Tensor,
    mix_value: Tensor,
    mix_receptance: Tensor,
    key: Linear,
    value: Linear,
    receptance: Linear,
    output: Linear,
}

/// The WKV state of one block: per batch row and channel, the numerator, the denominator and
/// the largest exponent seen (all f32).
struct Wkv {
    num: Vec<f32>,
    den: Vec<f32>,
    max: Vec<f32>,
}

impl TimeMix {
    fn new(spec: &RwkvSpec, vb: &Weights) -> Result<Self> {
        let (h, a) = (spec.hidden_size, spec.attention_hidden_size);
        let vector = |name: &str| -> Result<Vec<f32>> {
            Ok(vb.get(a, name)?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
        };
        Ok(Self {
            decay: vector("time_decay")?.iter().map(|w| -w.exp()).collect(),
            first: vector("time_first")?,
            mix_key: mix_weight(vb, "time_mix_key", h)?,
            mix_value: mix_weight(vb, "time_mix_value", h)?,
            mix_receptance: mix_weight(vb, "time_mix_receptance", h)?,
            key: Linear::new(&vb.pp("key"), h, a, false)?,
            value: Linear::new(&vb.pp("value"), h, a, false)?,
            receptance: Linear::new(&vb.pp("receptance"), h, a, false)?,
            output: Linear::new(&vb.pp("output"), a, h, false)?,
        })
    }

    /// The WKV recurrence over `[batch, seq, channels]` keys and values from `state`, which
    /// it advances: transformers' `rwkv_linear_attention_cpu`, in f32.
    fn wkv(&self, key: &Tensor, value: &Tensor, state: &mut Wkv) -> Result<Tensor> {
        let (batch, seq, dim) = key.dims3()?;
        let k = key.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let v = value
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut out = vec![0f32; k.len()];
        for b in 0..batch {
            let s = b * dim;
            let (num, den, max) = (
                &mut state.num[s..s + dim],
                &mut state.den[s..s + dim],
                &mut state.max[s..s + dim],
            );
            for t in 0..seq {
                let at = (b * seq + t) * dim;
                for c in 0..dim {
                    let (kk, vv) = (k[at + c], v[at + c]);
                    let bonus = kk + self.first[c];
                    let top = max[c].max(bonus);
                    let (e1, e2) = ((max[c] - top).exp(), (bonus - top).exp());
                    out[at + c] = (e1 * num[c] + e2 * vv) / (e1 * den[c] + e2);
                    let decayed = max[c] + self.decay[c];
                    let top = decayed.max(kk);
                    let (e1, e2) = ((decayed - top).exp(), (kk - top).exp());
                    num[c] = e1 * num[c] + e2 * vv;
                    den[c] = e1 * den[c] + e2;
                    max[c] = top;
                }
            }
        }
        Ok(Tensor::from_vec(out, (batch, seq, dim), key.device())?.to_dtype(key.dtype())?)
    }

    fn forward(&self, x: &Tensor, prev: &Tensor, state: &mut Wkv, scale: f64) -> Result<Tensor> {
        let shifted = token_shift(x, prev)?;
        let key = self
            .key
            .forward(&interpolate(x, &shifted, &self.mix_key)?)?;
        let value = self
            .value
            .forward(&interpolate(x, &shifted, &self.mix_value)?)?;
        let receptance = sigmoid(&self.receptance.forward(&interpolate(
            x,
            &shifted,
            &self.mix_receptance,
        )?)?)?;
        let wkv = self.wkv(&key, &value, state)?;
        Ok(self
            .output
            .forward(&(receptance * wkv)?)?
            .affine(scale, 0.0)?)
    }
}

struct ChannelMix {
    mix_key: Tensor,
    mix_receptance: Tensor,
    key: Linear,
    receptance: Linear,
    value: Linear,
}

impl ChannelMix {
    fn new(spec: &RwkvSpec, vb: &Weights) -> Result<Self> {
        let (h, i) = (spec.hidden_size, spec.intermediate_size);
        Ok(Self {
            mix_key: mix_weight(vb, "time_mix_key", h)?,
            mix_receptance: mix_weight(vb, "time_mix_receptance", h)?,
            key: Linear::new(&vb.pp("key"), h, i, false)?,
            receptance: Linear::new(&vb.pp("receptance"), h, h, false)?,
            value: Linear::new(&vb.pp("value"), i, h, false)?,
        })
    }

    fn forward(&self, x: &Tensor, prev: &Tensor, scale: f64) -> Result<Tensor> {
        let shifted = token_shift(x, prev)?;
        let key = self
            .key
            .forward(&interpolate(x, &shifted, &self.mix_key)?)?
            .relu()?
            .sqr()?;
        let value = self.value.forward(&key)?.affine(scale, 0.0)?;
        let receptance = sigmoid(&self.receptance.forward(&interpolate(
            x,
            &shifted,
            &self.mix_receptance,
        )?)?)?;
        Ok((receptance * value)?)
    }
}

struct Block {
    pre_ln: Option<LayerNorm>,
    ln1: LayerNorm,
    ln2: LayerNorm,
    attention: TimeMix,
    feed_forward: ChannelMix,
}

/// RWKV with its language-modelling head.
pub struct RwkvForCausalLM {
    model_type: String,
    spec: RwkvSpec,
    embeddings: Embedding,
    blocks: Vec<Block>,
    ln_out: LayerNorm,
    head: Linear,
    prefill_chunk: usize,
}

/// A block's five states: the channel-mix's and the time-mix's previous inputs, then the
/// WKV numerator, denominator and maximum (transformers' `state[0..5]` for that block).
const STATES: usize = 5;

/// transformers' starting maximum exponent (any value far below every key works).
const NO_EXPONENT: f32 = -1e38;

impl RwkvForCausalLM {
    /// Loads `rwkv.*` and `head` (or ties it to the embeddings) from `vb`.
    pub fn new(
        model_type: &str,
        spec: &RwkvSpec,
        vb: &Weights,
        runtime: &RuntimeOptions,
    ) -> Result<Self> {
        runtime.validate()?;
        let rwkv = vb.pp("rwkv");
        let embeddings = Embedding::new(&rwkv.pp("embeddings"), spec.vocab_size, spec.hidden_size)?;
        let norm =
            |vb: &Weights| LayerNorm::new(vb, spec.hidden_size, spec.layer_norm_epsilon, true);
        let blocks = (0..spec.num_hidden_layers)
            .map(|i| -> Result<Block> {
                let block = rwkv.pp("blocks").pp(i);
                Ok(Block {
                    pre_ln: (i == 0).then(|| norm(&block.pp("pre_ln"))).transpose()?,
                    ln1: norm(&block.pp("ln1"))?,
                    ln2: norm(&block.pp("ln2"))?,
                    attention: TimeMix::new(spec, &block.pp("attention"))?,
                    feed_forward: ChannelMix::new(spec, &block.pp("feed_forward"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ln_out = norm(&rwkv.pp("ln_out"))?;
        let head = if spec.tie_word_embeddings {
            embeddings.tied_linear(None)?
        } else {
            Linear::new(&vb.pp("head"), spec.hidden_size, spec.vocab_size, false)?
        };
        Ok(Self {
            model_type: model_type.to_owned(),
            spec: spec.clone(),
            embeddings,
            blocks,
            ln_out,
            head,
            prefill_chunk: runtime.prefill_chunk,
        })
    }

    /// Block `i`'s states for `batch` rows: the cache's, or the starting ones.
    fn states(
        &self,
        state: &RecurrentState,
        i: usize,
        batch: usize,
    ) -> Result<(Tensor, Tensor, Wkv)> {
        let (h, a) = (self.spec.hidden_size, self.spec.attention_hidden_size);
        let device = self.device();
        match state.get(i) {
            Some([ffn, att, num, den, max]) => {
                let host = |t: &Tensor| -> Result<Vec<f32>> {
                    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
                };
                if ffn.dim(0)? != batch {
                    return Err(Error::InvalidInput(format!(
                        "the cache holds {} rows, the input {batch}",
                        ffn.dim(0)?
                    )));
                }
                Ok((
                    ffn.clone(),
                    att.clone(),
                    Wkv {
                        num: host(num)?,
                        den: host(den)?,
                        max: host(max)?,
                    },
                ))
            }
            Some(other) => Err(Error::InvalidInput(format!(
                "an RWKV cache holds {STATES} states per block, this one {}",
                other.len()
            ))),
            None => Ok((
                Tensor::zeros((batch, h), DType::F32, device)?,
                Tensor::zeros((batch, h), DType::F32, device)?,
                Wkv {
                    num: vec![0.0; batch * a],
                    den: vec![0.0; batch * a],
                    max: vec![NO_EXPONENT; batch * a],
                },
            )),
        }
    }

    /// One pass of `input_ids` through the blocks from `state`: the final hidden states and,
    /// when asked, every block's output then the normed last one (transformers' tuple).
    fn forward_blocks(
        &self,
        input_ids: &Tensor,
        hidden_states: bool,
        state: &mut RecurrentState,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let batch = input_ids.dim(0)?;
        let a = self.spec.attention_hidden_size;
        let mut xs = self.embeddings.forward(input_ids)?;
        let mut all = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let scale = match self.spec.rescale_every {
                0 => 1.0,
                every => 0.5f64.powi((i / every).min(1000) as i32),
            };
            if let Some(pre) = &block.pre_ln {
                xs = pre.forward(&xs)?;
            }
            let (ffn_prev, att_prev, mut wkv) = self.states(state, i, batch)?;
            let x = block.ln1.forward(&xs)?;
            let att = block.attention.forward(&x, &att_prev, &mut wkv, scale)?;
            let att_last = last_position(&x)?;
            xs = (xs + att)?;
            let y = block.ln2.forward(&xs)?;
            xs = (&xs + block.feed_forward.forward(&y, &ffn_prev, scale)?)?;
            let device = self.device();
            let wkv_tensor =
                |v: Vec<f32>| -> Result<Tensor> { Ok(Tensor::from_vec(v, (batch, a), device)?) };
            state.set(
                i,
                vec![
                    last_position(&y)?,
                    att_last,
                    wkv_tensor(wkv.num)?,
                    wkv_tensor(wkv.den)?,
                    wkv_tensor(wkv.max)?,
                ],
            )?;
            if self.spec.rescale_every > 0 && (i + 1) % self.spec.rescale_every == 0 {
                xs = xs.affine(0.5, 0.0)?;
            }
            if hidden_states {
                all.push(xs.clone());
            }
        }
        let xs = self.ln_out.forward(&xs)?;
        if hidden_states {
            all.push(xs.clone());
        }
        Ok((xs, all))
    }
}

impl CausalLM for RwkvForCausalLM {
    fn model_type(&self) -> &str {
        &self.model_type
    }

    /// Positions and the attention mask are not read (transformers' RWKV reads neither);
    /// the mask's shape is still checked.
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
        if let Some(m) = &opts.attention_mask {
            if m.dims() != [batch, past + seq] {
                return Err(Error::InvalidInput(format!(
                    "attention_mask is {:?}; expected [{batch}, {}] (cached + new tokens)",
                    m.dims(),
                    past + seq
                )));
            }
        }
        let out = super::chunked_pass(
            (batch, seq),
            self.spec.hidden_size,
            (self.embeddings.dtype(), self.device()),
            self.prefill_chunk,
            opts,
            &self.head,
            |start, len| {
                self.forward_blocks(
                    &input_ids.narrow(1, start, len)?,
                    opts.output_hidden_states,
                    state,
                )
            },
        )?;
        state.advance(seq);
        Ok(out)
    }

    /// Per-block previous inputs and WKV states, kept in f32.
    fn new_cache(&self) -> Cache {
        Cache::State(RecurrentState::new(self.blocks.len(), DType::F32))
    }

    fn vocab_size(&self) -> usize {
        self.spec.vocab_size
    }

    /// Unbounded: the state does not grow with the sequence (config.json's `context_length`
    /// is what the checkpoint was trained on, which transformers does not enforce either).
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
    use super::*;

    #[test]
    fn sizes_that_cannot_work_are_errors_naming_the_field() {
        let err = RwkvSpec::from_config(&serde_json::json!({"hidden_size": 0})).unwrap_err();
        assert!(err.to_string().contains("hidden_size"), "{err}");
        let spec = RwkvSpec::from_config(&serde_json::json!({"hidden_size": 8})).unwrap();
        assert_eq!(
            (spec.attention_hidden_size, spec.intermediate_size),
            (8, 32)
        );
        assert_eq!(spec.rescale_every, 6);
    }
}
