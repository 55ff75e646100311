//! The pieces of Mamba's selective state-space layer that are not matrix products: the short
//! causal depthwise convolution and the selective scan (`modeling_mamba.py`'s
//! `causal_conv1d_fn` / `causal_conv1d_update` and `mamba_selective_scan` /
//! `mamba_selective_state_update`). Both carry a fixed-size state from one call to the next,
//! so a prompt can go through in pieces and decoding costs the same at any depth.
//!
//! Both are sequential along the sequence and independent per channel: on the CPU they run
//! over plain slices, channels innermost; in an autograd graph (training) they run as
//! candle's ops, which the kernels equal.

use candle_core::{DType, Tensor, D};
use std::sync::{Mutex, PoisonError};
use trustformers_core::{Error, Result, Weights};

/// A depthwise 1-D convolution over the sequence that sees only the current and the
/// `kernel - 1` previous positions, with its state: the last `kernel - 1` inputs.
#[derive(Clone)]
pub struct CausalConv1d {
    /// `[channels, kernel]`.
    weight: Tensor,
    /// `[channels]`.
    bias: Option<Tensor>,
    channels: usize,
    kernel: usize,
}

impl CausalConv1d {
    /// Loads torch's `nn.Conv1d(channels, channels, kernel, groups=channels)`: `weight`
    /// `[channels, 1, kernel]` (or `[channels, kernel]`, as llama.cpp stores it) and `bias`
    /// `[channels]` under `vb`.
    pub fn new(vb: &Weights, channels: usize, kernel: usize, bias: bool) -> Result<Self> {
        if kernel == 0 {
            return Err(Error::config("conv_kernel", "must be at least 1"));
        }
        let weight = match vb.shape_of("weight").as_deref() {
            Some([_, _]) => vb.get((channels, kernel), "weight")?,
            _ => vb.get((channels, 1, kernel), "weight")?.squeeze(1)?,
        };
        let bias = bias.then(|| vb.get(channels, "bias")).transpose()?;
        Ok(Self {
            weight: weight.to_dtype(DType::F32)?,
            bias: bias.map(|b| b.to_dtype(DType::F32)).transpose()?,
            channels,
            kernel,
        })
    }

    /// The state before any input: zeros, `[batch, kernel - 1, channels]`.
    pub fn zero_state(&self, batch: usize, like: &Tensor) -> Result<Tensor> {
        Ok(Tensor::zeros(
            (batch, self.kernel - 1, self.channels),
            DType::F32,
            like.device(),
        )?)
    }

    /// The convolution (no activation) of `xs` after the inputs `state` holds, and the new
    /// state.
    ///
    /// # Shapes
    /// `xs`: `[batch, seq, channels]`, `state`: `[batch, kernel - 1, channels]` f32 ->
    /// (`[batch, seq, channels]` f32, `[batch, kernel - 1, channels]` f32).
    pub fn forward(&self, xs: &Tensor, state: &Tensor) -> Result<(Tensor, Tensor)> {
        let (batch, seq, channels) = xs.dims3()?;
        let (k, c) = (self.kernel, self.channels);
        if channels != c || state.dims() != [batch, k - 1, c] {
            return Err(Error::InvalidInput(format!(
                "causal conv1d of {c} channels and kernel {k}: input {:?} with state {:?}",
                xs.dims(),
                state.dims()
            )));
        }
        let joined = Tensor::cat(&[state, &xs.to_dtype(DType::F32)?], 1)?;
        let new_state = joined.narrow(1, seq, k - 1)?;
        if crate::differentiable(&[&joined, &self.weight]) || !xs.device().is_cpu() {
            // Sum over taps of the shifted inputs times each tap's weights.
            let mut out = self.bias.clone().map_or_else(
                || Tensor::zeros((batch, seq, c), DType::F32, xs.device()),
                |b| {
                    b.reshape((1, 1, c))?
                        .broadcast_as((batch, seq, c))?
                        .contiguous()
                },
            )?;
            for tap in 0..k {
                let w = self.weight.narrow(1, tap, 1)?.reshape((1, 1, c))?;
                out = (out + joined.narrow(1, tap, seq)?.broadcast_mul(&w)?)?;
            }
            return Ok((out, new_state.contiguous()?));
        }
        let x = joined.flatten_all()?.to_vec1::<f32>()?;
        let w = self.weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = match &self.bias {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; c],
        };
        let rows = seq + k - 1;
        let mut out = vec![0f32; batch * seq * c];
        for b in 0..batch {
            let x = &x[b * rows * c..(b + 1) * rows * c];
            for (t, row) in out[b * seq * c..(b + 1) * seq * c]
                .chunks_exact_mut(c)
                .enumerate()
            {
                row.copy_from_slice(&bias);
                for tap in 0..k {
                    let input = &x[(t + tap) * c..(t + tap + 1) * c];
                    for ((o, &xi), ch) in row.iter_mut().zip(input).zip(0..c) {
                        *o += w[ch * k + tap] * xi;
                    }
                }
            }
        }
        let out = Tensor::from_vec(out, (batch, seq, c), xs.device())?;
        Ok((out, new_state.contiguous()?))
    }
}

/// The selective scan's inputs for `[batch, seq]` positions of `inner` channels and a state
/// of `state_size` per channel. Mamba-2's heads are runs of `head_dim` channels sharing
/// their time step, `A` and `D` (given per channel, repeated), and `B` and `C` come in
/// `groups`, each shared by a run of `inner / groups` channels.
pub struct ScanInputs<'a> {
    /// `[batch, seq, inner]`: the convolved, activated input `u`.
    pub x: &'a Tensor,
    /// `[batch, seq, inner]`: the time step before softplus (bias included).
    pub dt: &'a Tensor,
    /// `[inner, state_size]`: `A = -exp(A_log)`.
    pub a: &'a Tensor,
    /// `[batch, seq, groups * state_size]`: the input-dependent `B` and `C`.
    pub b: &'a Tensor,
    pub c: &'a Tensor,
    /// How many `B` / `C` groups (1 for Mamba); divides `inner`.
    pub groups: usize,
    /// `[inner]`: the skip `D`.
    pub d: &'a Tensor,
    /// `[batch, seq, inner]`: the gate, applied as `silu(z)` (Mamba; Mamba-2 gates in its
    /// norm instead).
    pub z: Option<&'a Tensor>,
    /// Bounds the time step after softplus (Mamba-2's `time_step_limit`).
    pub dt_limit: Option<(f32, f32)>,
}

/// torch's `softplus` (beta 1, linear above 20).
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Runs the scan from `state` over the sequence: per position `t` and channel `i` of group
/// `g`, `dt = softplus(dt)` (bounded by `dt_limit`), `h = exp(dt A) h + dt B_{t,g} u_t`,
/// `y = C_{t,g} h + D u`, times `silu(z)` when gated. Returns `y` and the state after the
/// last position.
///
/// # Shapes
/// See [`ScanInputs`]; `state`: `[batch, inner, state_size]` f32 -> (`[batch, seq, inner]`
/// f32, `[batch, inner, state_size]` f32).
pub fn selective_scan(inputs: &ScanInputs<'_>, state: &Tensor) -> Result<(Tensor, Tensor)> {
    let (batch, seq, inner) = inputs.x.dims3()?;
    let (a_inner, n) = inputs.a.dims2()?;
    let groups = inputs.groups;
    let shapes_fit = a_inner == inner
        && groups > 0
        && inner.is_multiple_of(groups)
        && inputs.dt.dims() == [batch, seq, inner]
        && inputs.z.is_none_or(|z| z.dims() == [batch, seq, inner])
        && inputs.b.dims() == [batch, seq, groups * n]
        && inputs.c.dims() == [batch, seq, groups * n]
        && inputs.d.dims() == [inner]
        && state.dims() == [batch, inner, n];
    if !shapes_fit {
        return Err(Error::InvalidInput(format!(
            "selective scan: x {:?}, dt {:?}, A {:?}, B {:?}, C {:?} in {groups} groups, D {:?}, \
             z {:?}, state {:?} do not fit",
            inputs.x.dims(),
            inputs.dt.dims(),
            inputs.a.dims(),
            inputs.b.dims(),
            inputs.c.dims(),
            inputs.d.dims(),
            inputs.z.map(Tensor::dims),
            state.dims()
        )));
    }
    let f32s = |t: &Tensor| t.to_dtype(DType::F32);
    let (x, dt, a, b, c, d) = (
        f32s(inputs.x)?,
        f32s(inputs.dt)?,
        f32s(inputs.a)?,
        f32s(inputs.b)?,
        f32s(inputs.c)?,
        f32s(inputs.d)?,
    );
    let z = inputs.z.map(f32s).transpose()?;
    let mut graph = vec![&x, &dt, &a, &b, &c, &d, state];
    graph.extend(z.as_ref());
    if crate::differentiable(&graph) || !x.device().is_cpu() {
        let f32_inputs = ScanInputs {
            x: &x,
            dt: &dt,
            a: &a,
            b: &b,
            c: &c,
            groups,
            d: &d,
            z: z.as_ref(),
            dt_limit: inputs.dt_limit,
        };
        return scan_ops(&f32_inputs, state);
    }
    let vec = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let sizes = ScanSizes {
        seq,
        inner,
        n,
        groups,
    };
    let (xv, dtv, av, bv, cv, dv) = (vec(&x)?, vec(&dt)?, vec(&a)?, vec(&b)?, vec(&c)?, vec(&d)?);
    let zv = z.as_ref().map(vec).transpose()?;
    let mut h = vec(state)?;
    let mut y = vec![0f32; batch * seq * inner];
    // Channels are independent: each task scans a run of them over the whole sequence.
    let per_task = 16usize.max(inner.div_ceil(4 * crate::kernels::pool_threads()));
    for bi in 0..batch {
        let rows = |v: &[f32], width: usize| v[bi * seq * width..(bi + 1) * seq * width].to_vec();
        let (x, dt) = (rows(&xv, inner), rows(&dtv, inner));
        let z = zv.as_ref().map(|z| rows(z, inner));
        let (bm, cm) = (rows(&bv, groups * n), rows(&cv, groups * n));
        let h = &mut h[bi * inner * n..(bi + 1) * inner * n];
        let tasks: Vec<ChannelTask<'_>> = h
            .chunks_mut(per_task * n)
            .enumerate()
            .map(|(t, hs)| {
                let first = t * per_task;
                let width = hs.len() / n;
                (first, Mutex::new((hs, vec![0f32; seq * width])))
            })
            .collect();
        let inputs = ScanSlices {
            x: &x,
            dt: &dt,
            a: &av,
            b: &bm,
            c: &cm,
            d: &dv,
            z: z.as_deref(),
            dt_limit: inputs.dt_limit,
        };
        candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
            for (first, task) in &tasks[range] {
                let mut task = task.lock().unwrap_or_else(PoisonError::into_inner);
                let (hs, ys) = &mut *task;
                scan_channels(&inputs, sizes, *first, hs, ys);
            }
        });
        let y = &mut y[bi * seq * inner..(bi + 1) * seq * inner];
        for (first, task) in tasks {
            let (_, ys) = task.into_inner().unwrap_or_else(PoisonError::into_inner);
            let width = ys.len() / seq.max(1);
            for (t, row) in ys.chunks_exact(width.max(1)).enumerate() {
                y[t * inner + first..t * inner + first + width].copy_from_slice(row);
            }
        }
    }
    let device = x.device();
    Ok((
        Tensor::from_vec(y, (batch, seq, inner), device)?,
        Tensor::from_vec(h, (batch, inner, n), device)?,
    ))
}

/// A run of channels: its first channel, its states and its outputs.
type ChannelTask<'a> = (usize, Mutex<(&'a mut [f32], Vec<f32>)>);

#[derive(Clone, Copy)]
struct ScanSizes {
    seq: usize,
    inner: usize,
    n: usize,
    groups: usize,
}

/// One sequence's inputs as slices: `x`, `dt`, `z` `[seq, inner]`, `a` `[inner, n]`, `b`,
/// `c` `[seq, groups * n]`, `d` `[inner]`.
struct ScanSlices<'a> {
    x: &'a [f32],
    dt: &'a [f32],
    a: &'a [f32],
    b: &'a [f32],
    c: &'a [f32],
    d: &'a [f32],
    z: Option<&'a [f32]>,
    dt_limit: Option<(f32, f32)>,
}

/// Scans channels `first..first + h.len() / n` over the sequence: `h` their states
/// `[width, n]`, `y` their outputs `[seq, width]`.
fn scan_channels(s: &ScanSlices<'_>, sizes: ScanSizes, first: usize, h: &mut [f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { scan_channels_avx2(s, sizes, first, h, y) };
        return;
    }
    scan_channels_portable(s, sizes, first, h, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_channels_avx2(
    s: &ScanSlices<'_>,
    sizes: ScanSizes,
    first: usize,
    h: &mut [f32],
    y: &mut [f32],
) {
    scan_channels_portable(s, sizes, first, h, y)
}

/// The scan itself; inlined into each target-feature wrapper so the loop over a channel's
/// state compiles to that target's vectors.
#[inline(always)]
fn scan_channels_portable(
    s: &ScanSlices<'_>,
    sizes: ScanSizes,
    first: usize,
    h: &mut [f32],
    y: &mut [f32],
) {
    let ScanSizes {
        seq,
        inner,
        n,
        groups,
    } = sizes;
    let width = h.len() / n;
    let per_group = inner / groups;
    let mut decay = vec![0f32; n];
    for t in 0..seq {
        for (k, hk) in h.chunks_exact_mut(n).enumerate() {
            let i = first + k;
            let g = i / per_group;
            let bt = &s.b[(t * groups + g) * n..(t * groups + g + 1) * n];
            let ct = &s.c[(t * groups + g) * n..(t * groups + g + 1) * n];
            let u = s.x[t * inner + i];
            let mut step = softplus(s.dt[t * inner + i]);
            if let Some((lo, hi)) = s.dt_limit {
                step = step.clamp(lo, hi);
            }
            let ai = &s.a[i * n..(i + 1) * n];
            for (e, &av) in decay.iter_mut().zip(ai) {
                *e = exp_fast(step * av);
            }
            let su = step * u;
            for ((hv, &e), &bv) in hk.iter_mut().zip(&decay).zip(bt) {
                *hv = e * *hv + su * bv;
            }
            let out = dot(hk, ct) + s.d[i] * u;
            y[t * width + k] = match s.z {
                Some(z) => out * silu(z[t * inner + i]),
                None => out,
            };
        }
    }
}

/// `a . b` over eight partial sums, so the loop vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `e^x` within two ulp of `f32::exp` (Cephes' `expf`: `x = k ln 2 + r`, a degree-6
/// polynomial in `r`), branch-free so a loop of it vectorizes. Clamped to the normal range:
/// below -87 it returns about 1.6e-38 rather than a subnormal.
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // `shifted`'s low mantissa bits hold k (two's complement): 2^k without a float-to-int
    // conversion, which would not vectorize.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    e * f32::from_bits(biased << 23)
}

/// [`selective_scan`] as candle's ops, one position at a time (differentiable); the inputs
/// in f32.
fn scan_ops(s: &ScanInputs<'_>, state: &Tensor) -> Result<(Tensor, Tensor)> {
    let (batch, seq, inner) = s.x.dims3()?;
    let n = s.a.dim(1)?;
    let groups = s.groups;
    // softplus, linear above 20 as torch's.
    let above = s.dt.gt(20.0)?;
    let mut dt = above.where_cond(s.dt, &(s.dt.exp()? + 1.0)?.log()?)?;
    if let Some((lo, hi)) = s.dt_limit {
        dt = dt.clamp(lo, hi)?;
    }
    // Each channel's group of B or C at one position: [batch, inner, n].
    let per_channel = |v: &Tensor| -> Result<Tensor> {
        Ok(v.reshape((batch, groups, 1, n))?
            .broadcast_as((batch, groups, inner / groups, n))?
            .reshape((batch, inner, n))?)
    };
    let mut h = state.clone();
    let mut ys = Vec::with_capacity(seq);
    for t in 0..seq {
        let at = |v: &Tensor| v.narrow(1, t, 1)?.squeeze(1);
        let (u, step) = (at(s.x)?, at(&dt)?);
        let (bt, ct) = (per_channel(&at(s.b)?)?, per_channel(&at(s.c)?)?);
        // [batch, inner, state]
        let decay = step
            .unsqueeze(D::Minus1)?
            .broadcast_mul(&s.a.unsqueeze(0)?)?
            .exp()?;
        let input = (step * &u)?.unsqueeze(D::Minus1)?.broadcast_mul(&bt)?;
        h = ((decay * &h)? + input)?;
        let out = (h.broadcast_mul(&ct)?).sum(D::Minus1)?;
        ys.push((out + u.broadcast_mul(&s.d.unsqueeze(0)?)?)?);
    }
    let y = Tensor::stack(&ys, 1)?;
    let y = match s.z {
        Some(z) => (y * (z * candle_nn::ops::sigmoid(z)?)?)?,
        None => y,
    };
    Ok((y, h))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| {
                let x = (i as u64 * 2654435761 + seed * 97) % 1000;
                x as f32 / 500.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn the_scan_kernel_equals_the_ops_and_carries_its_state() {
        // A state narrower than the dot product's lanes in one task; several tasks of
        // channels with two full lanes each; Mamba-2's grouped B / C without a gate, with
        // the time step bounded.
        for (inner, n, groups, gated, limit) in [
            (6, 4, 1, true, None),
            (40, 16, 1, true, None),
            (48, 8, 3, false, Some((0.2, 0.9))),
        ] {
            scan_case(inner, n, groups, gated, limit);
        }
    }

    fn scan_case(inner: usize, n: usize, groups: usize, gated: bool, limit: Option<(f32, f32)>) {
        let (batch, seq) = (2, 5);
        let x = rand(&[batch, seq, inner], 1);
        let dt = rand(&[batch, seq, inner], 2);
        let a = (rand(&[inner, n], 3).abs().unwrap() * -1.0).unwrap();
        let b = rand(&[batch, seq, groups * n], 4);
        let c = rand(&[batch, seq, groups * n], 5);
        let (d, z) = (rand(&[inner], 6), rand(&[batch, seq, inner], 7));
        let h0 = rand(&[batch, inner, n], 8);
        let z = gated.then_some(z);
        let inputs = ScanInputs {
            x: &x,
            dt: &dt,
            a: &a,
            b: &b,
            c: &c,
            groups,
            d: &d,
            z: z.as_ref(),
            dt_limit: limit,
        };
        let (y, h) = selective_scan(&inputs, &h0).unwrap();
        let (y_ops, h_ops) = scan_ops(&inputs, &h0).unwrap();
        assert!(max_diff(&y, &y_ops) < 1e-5);
        assert!(max_diff(&h, &h_ops) < 1e-5);
        // Channel 0 of group 0 at position 0 by hand (ungated, from a zero state).
        if !gated {
            let zero = Tensor::zeros((batch, inner, n), DType::F32, &Device::Cpu).unwrap();
            let (y0, _) = selective_scan(&inputs, &zero).unwrap();
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (xv, dtv, bv, cv, dv) = (v(&x), v(&dt), v(&b), v(&c), v(&d));
            let (lo, hi) = limit.unwrap_or((0.0, f32::INFINITY));
            let step = dtv[0].exp().ln_1p().clamp(lo, hi);
            let want: f32 =
                (0..n).map(|s| step * bv[s] * xv[0] * cv[s]).sum::<f32>() + dv[0] * xv[0];
            assert!((v(&y0)[0] - want).abs() < 1e-5);
        }
        // Two positions, then the other three from the state: the same outputs.
        let part = |t: &Tensor, s, l| t.narrow(1, s, l).unwrap();
        let mut h = h0.clone();
        let mut ys = vec![];
        for (s, l) in [(0, 2), (2, 3)] {
            let (xs, dts, bs, cs) = (
                part(&x, s, l),
                part(&dt, s, l),
                part(&b, s, l),
                part(&c, s, l),
            );
            let zs = z.as_ref().map(|z| part(z, s, l));
            let inputs = ScanInputs {
                x: &xs,
                dt: &dts,
                a: &a,
                b: &bs,
                c: &cs,
                groups,
                d: &d,
                z: zs.as_ref(),
                dt_limit: limit,
            };
            let (y, next) = selective_scan(&inputs, &h).unwrap();
            ys.push(y);
            h = next;
        }
        assert!(max_diff(&Tensor::cat(&ys, 1).unwrap(), &y_ops) < 1e-5);
        // In a graph, the ops run and gradients reach the inputs.
        let xv = Var::from_tensor(&x).unwrap();
        let inputs = ScanInputs {
            x: xv.as_tensor(),
            ..inputs
        };
        let (y, _) = selective_scan(&inputs, &h0).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(xv.as_tensor()).is_some());
    }

    #[test]
    fn the_fast_exp_is_within_two_ulp() {
        let mut worst = 0f32;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_fast(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp_fast(0.0), 1.0);
        assert!(exp_fast(-1000.0) < 1e-37);
        assert!(exp_fast(f32::NAN).is_nan());
    }

    #[test]
    fn the_conv_kernel_equals_the_ops_and_carries_its_state() {
        let (batch, seq, c, k) = (2, 5, 3, 4);
        let conv = CausalConv1d {
            weight: rand(&[c, k], 1),
            bias: Some(rand(&[c], 2)),
            channels: c,
            kernel: k,
        };
        let x = rand(&[batch, seq, c], 3);
        let s0 = conv.zero_state(batch, &x).unwrap();
        let (y, s) = conv.forward(&x, &s0).unwrap();
        // The ops path, through a graph.
        let xv = Var::from_tensor(&x).unwrap();
        let (y_ops, s_ops) = conv.forward(xv.as_tensor(), &s0).unwrap();
        assert!(max_diff(&y, &y_ops) < 1e-6);
        assert!(max_diff(&s, &s_ops) < 1e-6);
        // Position by position from the state: the same outputs.
        let mut state = s0;
        let mut ys = vec![];
        for t in 0..seq {
            let (y, next) = conv.forward(&x.narrow(1, t, 1).unwrap(), &state).unwrap();
            ys.push(y);
            state = next;
        }
        assert!(max_diff(&Tensor::cat(&ys, 1).unwrap(), &y) < 1e-6);
        assert!(max_diff(&state, &s) < 1e-6);
        // The first output sees only the first input: bias + last tap x_0.
        let first = y.narrow(1, 0, 1).unwrap().flatten_all().unwrap();
        let want = (conv.bias.clone().unwrap()
            + (conv.weight.narrow(1, k - 1, 1).unwrap().squeeze(1).unwrap()
                * x.get(0).unwrap().get(0).unwrap())
            .unwrap())
        .unwrap();
        assert!(max_diff(&first.narrow(0, 0, c).unwrap(), &want) < 1e-6);
    }
}
