//! Fused f32 CPU kernels for the steps between matmuls: LayerNorm, exact GeLU and
//! bidirectional attention, each one pass over its data instead of a chain of tensor ops
//! that allocate an intermediate per step.
//!
//! The loops are written to vectorize: each is compiled twice, once with AVX2/FMA (chosen at
//! run time) and once for the baseline target. Rows are split over candle's barrier pool.

use super::gemm::{self, PackedF32};
use std::sync::{Mutex, PoisonError};
use trustformers_core::{Error, Result};

/// `a * b + c`: one fused multiply-add where the target has the instruction (the AVX2
/// builds of the kernels, ARM), a multiply then an add on WebAssembly, which has none (there
/// `mul_add` is a software routine, tens of times slower).
#[inline(always)]
pub(super) fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        a * b + c
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        a.mul_add(b, c)
    }
}

/// Rows per parallel work item for row-wise kernels.
const ROWS_PER_TASK: usize = 32;

#[cfg(target_arch = "x86_64")]
pub(super) fn use_avx2() -> bool {
    super::gemm::use_avx2()
}

/// Runs `f` on every `row_len`-value row of `data` (the last one shorter when `row_len`
/// does not divide the length), rows split over the barrier pool.
fn par_rows(data: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if row_len == 0 {
        return;
    }
    let tasks: Vec<Mutex<&mut [f32]>> = data
        .chunks_mut(ROWS_PER_TASK * row_len)
        .map(Mutex::new)
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
        for t in range {
            let mut chunk = tasks[t].lock().unwrap_or_else(PoisonError::into_inner);
            for (i, row) in chunk.chunks_mut(row_len).enumerate() {
                f(t * ROWS_PER_TASK + i, row);
            }
        }
    });
}

/// Compiles `$body` (a closure-free block over its arguments) for AVX2/FMA and for the
/// baseline, and calls the one the CPU supports.
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }
            // The same code in 16-wide registers: every value is computed by the same
            // operations in the same order (no reduction is reassociated), so the results
            // are those of the AVX2 build.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if crate::kernels::gemm::use_avx512() {
                // SAFETY: only called when the CPU reports AVX-512F, AVX2 and FMA.
                return unsafe { avx512($($arg),*) };
            }
            #[cfg(target_arch = "x86_64")]
            if use_avx2() {
                // SAFETY: only called when the CPU reports AVX2 and FMA.
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}
pub(super) use multiversion;

/// `erf(x)` to within 3e-7 (a few ulp): XLA's and Eigen's rational approximation on [-4, 4] (erf is ±1 to
/// f32 precision beyond). Branch-free, so loops over it vectorize.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = fmadd(p, x2, 2.770_681_4e-8);
    p = fmadd(p, x2, -2.101_024e-6);
    p = fmadd(p, x2, -5.692_506_4e-5);
    p = fmadd(p, x2, -7.349_906_3e-4);
    p = fmadd(p, x2, -2.954_6e-3);
    p = fmadd(p, x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5f32;
    q = fmadd(q, x2, -2.133_740_6e-4);
    q = fmadd(q, x2, -1.682_827e-3);
    q = fmadd(q, x2, -7.373_329_3e-3);
    q = fmadd(q, x2, -1.426_474e-2);
    x * p / q
}

/// `exp(x)` to about 2 ulp for `x` in f32's range (0 below -87.3): `2^n * e^r` with
/// `|r| <= ln2 / 2` and a degree-6 polynomial. Branch-free.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    let n = (x * std::f32::consts::LOG2_E).round();
    // r = x - n ln2, with ln2 split in two for precision.
    let r = fmadd(n, -0.693_145_75, x);
    let r = fmadd(n, -1.428_606_8e-6, r);
    let mut p = 1.0 / 720.0f32;
    p = fmadd(p, r, 1.0 / 120.0);
    p = fmadd(p, r, 1.0 / 24.0);
    p = fmadd(p, r, 1.0 / 6.0);
    p = fmadd(p, r, 0.5);
    p = fmadd(p, r, 1.0);
    p = fmadd(p, r, 1.0);
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// An elementwise activation the fused kernels compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `x * sigmoid(x)`.
    Silu,
    /// GeLU with erf.
    GeluErf,
    /// GeLU's tanh approximation (`gelu_pytorch_tanh`).
    GeluTanh,
}

#[inline(always)]
fn act(kind: Act, x: f32) -> f32 {
    match kind {
        Act::Silu => x / (1.0 + exp(-x)),
        Act::GeluErf => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
        Act::GeluTanh => {
            // sqrt(2 / pi)
            let inner = 0.797_884_6 * x * (1.0 + 0.044_715 * x * x);
            0.5 * x * (1.0 + tanh(inner))
        }
    }
}

multiversion! {
    /// `act(x)` in place on the calling thread.
    pub(crate) fn activate_row(kind: Act, xs: &mut [f32]) {
        match kind {
            Act::Silu => xs.iter_mut().for_each(|x| *x = act(Act::Silu, *x)),
            Act::GeluErf => xs.iter_mut().for_each(|x| *x = act(Act::GeluErf, *x)),
            Act::GeluTanh => xs.iter_mut().for_each(|x| *x = act(Act::GeluTanh, *x)),
        }
    }
}

/// `act(x)` in place.
pub fn activate(kind: Act, xs: &mut [f32]) {
    par_rows(xs, 4096.min(xs.len().max(1)), |_, row| {
        activate_row(kind, row)
    });
}

multiversion! {
    fn gated_row(kind: Act, gate: &mut [f32], up: &[f32]) {
        // One loop per kind, so each vectorizes without a branch inside.
        match kind {
            Act::Silu => gate.iter_mut().zip(up).for_each(|(g, &u)| *g = act(Act::Silu, *g) * u),
            Act::GeluErf => gate.iter_mut().zip(up).for_each(|(g, &u)| *g = act(Act::GeluErf, *g) * u),
            Act::GeluTanh => gate.iter_mut().zip(up).for_each(|(g, &u)| *g = act(Act::GeluTanh, *g) * u),
        }
    }
}

/// `gate = act(gate) * up` in place (a gated MLP's middle); `up` holds as many values.
pub fn gated(kind: Act, gate: &mut [f32], up: &[f32]) {
    let chunk = 4096.min(gate.len().max(1));
    par_rows(gate, chunk, |i, row| {
        gated_row(kind, row, &up[i * chunk..i * chunk + row.len()])
    });
}

multiversion! {
    fn rms_norm_row(x: &mut [f32], weight: &[f32], eps: f32) {
        let mut lanes = [0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
        for c in chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += v * v;
            }
        }
        let mean = (lanes.iter().sum::<f32>() + tail) / x.len() as f32;
        let inv = 1.0 / (mean + eps).sqrt();
        x.iter_mut().zip(weight).for_each(|(x, &w)| *x = *x * inv * w);
    }
}

/// RMSNorm over rows of `weight.len()` values, in place: `x / sqrt(mean(x^2) + eps) * w`.
pub fn rms_norm(xs: &mut [f32], weight: &[f32], eps: f32) {
    par_rows(xs, weight.len(), |_, row| rms_norm_row(row, weight, eps));
}

multiversion! {
    fn layer_norm_row(x: &mut [f32], weight: &[f32], bias: Option<&[f32]>, eps: f32) {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        match bias {
            Some(b) => {
                for ((x, &w), &b) in x.iter_mut().zip(weight).zip(b) {
                    *x = (*x - mean) * inv * w + b;
                }
            }
            None => {
                for (x, &w) in x.iter_mut().zip(weight) {
                    *x = (*x - mean) * inv * w;
                }
            }
        }
    }
}

/// LayerNorm over rows of `weight.len()` values, in place, after adding `residual` when
/// given (BERT's `LayerNorm(x + residual)`).
pub fn layer_norm(
    xs: &mut [f32],
    residual: Option<&[f32]>,
    weight: &[f32],
    bias: Option<&[f32]>,
    eps: f32,
) {
    let cols = weight.len();
    par_rows(xs, cols, |i, row| {
        if let Some(r) = residual {
            for (x, &r) in row.iter_mut().zip(&r[i * cols..(i + 1) * cols]) {
                *x += r;
            }
        }
        layer_norm_row(row, weight, bias, eps)
    });
}

/// Shapes and settings of one [`attention`] call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    /// Values from one token's queries (keys, values) to the next's: `heads * head_dim`
    /// for separate projections, three times that for one fused q/k/v projection.
    pub row_stride: usize,
}

/// `tanh(x)` from [`exp`]: `1 - 2 / (e^2x + 1)`, within 1e-7 absolute. Branch-free.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// One row of scores to probabilities: `softmax(softcap(x * scale) + mask)`, with
/// `softcap(y) = c * tanh(y / c)` when given.
#[inline(always)]
fn softmax_row_body(
    row: &mut [f32],
    mask: Option<&[f32]>,
    scale: f32,
    softcap: Option<f32>,
    sink: Option<f32>,
) {
    match (softcap, mask) {
        (Some(c), _) => {
            let k = scale / c;
            row.iter_mut().for_each(|x| *x = c * tanh(*x * k));
            if let Some(m) = mask {
                row.iter_mut().zip(m).for_each(|(x, &m)| *x += m);
            }
        }
        (None, Some(m)) => row
            .iter_mut()
            .zip(m)
            .for_each(|(x, &m)| *x = fmadd(*x, scale, m)),
        (None, None) => row.iter_mut().for_each(|x| *x *= scale),
    }
    // Eight running lanes per reduction, so the loops vectorize without reassociating.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = l.max(x);
        }
    }
    // An attention sink is one more logit in the softmax, with no value row.
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .chain(&sink)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sums = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (l, x) in sums.iter_mut().zip(c) {
            *x = exp(*x - max);
            *l += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum::<f32>() + sink.map_or(0.0, |s| exp(s - max));
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

multiversion! {
    fn softmax_rows(scores: &mut [f32], seq: usize, mask: Option<&[f32]>, scale: f32) {
        for row in scores.chunks_exact_mut(seq) {
            softmax_row_body(row, mask, scale, None, None);
        }
    }
}

multiversion! {
    pub(super) fn softmax_row(row: &mut [f32], mask: Option<&[f32]>, scale: f32, softcap: Option<f32>, sink: Option<f32>) {
        softmax_row_body(row, mask, scale, softcap, sink);
    }
}

/// One (batch, head): `q`, `k`, `v` start at the batch's first token, one token every
/// `row_stride` values; returns this head's `[seq, head_dim]` output. Both products run
/// through the GEMM micro-kernel, reading the head where the projection put it.
fn attend_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    shape: AttentionShape,
    h: usize,
) -> Vec<f32> {
    let (s, d, stride) = (shape.seq, shape.head_dim, shape.row_stride);
    // Q K^T: K `[seq, head_dim]` is a linear layer's `[n, k]` weight.
    let keys = PackedF32::from_strided_rows(&k[h * d..], s, d, stride);
    let mut scores = gemm::gemm_serial_strided(&q[h * d..], stride, s, &keys);
    softmax_rows(&mut scores, s, mask, shape.scale);
    // P V: V `[seq, head_dim]` is the transposed weight `[k, n]`.
    let values = PackedF32::from_strided_columns(&v[h * d..], s, d, stride);
    gemm::gemm_serial(&scores, s, &values)
}

/// Bidirectional scaled dot-product attention with an additive key mask, reading heads in
/// place: token `t`'s queries (keys, values) are `q[t * row_stride..][..heads * head_dim]`
/// (the projections' layout, or one fused projection's thirds), `mask` is `[batch, seq]`
/// (0 to keep, a large negative number to drop). Returns `[batch, seq, heads * head_dim]`.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    shape: AttentionShape,
) -> Result<Vec<f32>> {
    let AttentionShape {
        batch,
        seq,
        heads,
        head_dim,
        row_stride,
        ..
    } = shape;
    let width = heads * head_dim;
    let tokens = batch * seq;
    let total = tokens * width;
    if total == 0 {
        return Ok(Vec::new());
    }
    let need = (tokens - 1) * row_stride + width;
    if row_stride < width
        || [q, k, v].iter().any(|t| t.len() < need)
        || mask.is_some_and(|m| m.len() != tokens)
    {
        return Err(Error::InvalidInput(format!(
            "attention over {batch} x {seq} tokens of {heads} x {head_dim} (stride {row_stride}) \
             got {} / {} / {} values and a mask of {:?}",
            q.len(),
            k.len(),
            v.len(),
            mask.map(<[f32]>::len)
        )));
    }
    let mut out: Vec<f32> = Vec::with_capacity(total);
    // Work items are (batch, head), each writing its own heads' columns; `out` is read only
    // after the pool returns.
    let dst = gemm::OutPtr(out.spare_capacity_mut().as_mut_ptr().cast::<f32>());
    candle_core::utils::barrier_pool().execute_chunked(batch * heads, |items| {
        for item in items {
            let (b, h) = (item / heads, item % heads);
            let first = b * seq * row_stride;
            let head = attend_head(
                &q[first..],
                &k[first..],
                &v[first..],
                mask.map(|m| &m[b * seq..(b + 1) * seq]),
                shape,
                h,
            );
            for (i, row) in head.chunks_exact(head_dim).enumerate() {
                // SAFETY: token `b * seq + i`, head `h`'s `head_dim` columns lie inside the
                // `total` values of `out`, and no other item writes them.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        row.as_ptr(),
                        dst.get().add((b * seq + i) * width + h * head_dim),
                        head_dim,
                    )
                };
            }
        }
    });
    // SAFETY: the items cover every (batch, head), and each wrote its `seq * head_dim` values,
    // so all `total` are written.
    unsafe { out.set_len(total) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::random;

    #[test]
    fn erf_and_exp_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f64 / 250.0;
            let e = erf(x as f32) as f64;
            assert!((e - libm_erf(x)).abs() < 3e-7, "erf({x}) = {e}");
        }
        for i in -870..=880 {
            let x = i as f32 / 10.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 4e-7 * want,
                "exp({x}) = {got} vs {want}"
            );
        }
        assert_eq!(exp(f32::MIN), exp(-87.3));
        assert!(exp(f32::MIN) < 1e-37);
    }

    /// erf by its series (|x| < 3) or continued fraction: the f64 reference.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut sum = x;
            let mut term = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by Lentz's continued fraction.
            let z = x.abs();
            let mut f = z;
            for n in (1..60).rev() {
                f = z + (n as f64 / 2.0) / f;
            }
            let erfc = (-z * z).exp() / (f * std::f64::consts::PI.sqrt());
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn layer_norm_matches_the_definition() {
        let (rows, cols) = (70, 48);
        let x = random(rows * cols, 1);
        let r = random(rows * cols, 2);
        let w = random(cols, 3);
        let b = random(cols, 4);
        let mut got = x.clone();
        layer_norm(&mut got, Some(&r), &w, Some(&b), 1e-12);
        for i in 0..rows {
            let row: Vec<f64> = (0..cols)
                .map(|c| (x[i * cols + c] + r[i * cols + c]) as f64)
                .collect();
            let mean = row.iter().sum::<f64>() / cols as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
            for c in 0..cols {
                let want = (row[c] - mean) / (var + 1e-12).sqrt() * w[c] as f64 + b[c] as f64;
                assert!((got[i * cols + c] as f64 - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn attention_matches_the_definition() {
        let shape = AttentionShape {
            batch: 2,
            seq: 5,
            heads: 3,
            head_dim: 4,
            scale: 0.5,
            row_stride: 12,
        };
        let width = shape.heads * shape.head_dim;
        let n = shape.batch * shape.seq * width;
        let (q, k, v) = (random(n, 1), random(n, 2), random(n, 3));
        // The second row's last two keys are padding.
        let mut mask = vec![0f32; shape.batch * shape.seq];
        mask[8] = f32::MIN;
        mask[9] = f32::MIN;
        let got = attention(&q, &k, &v, Some(&mask), shape).unwrap();
        // The same from one fused projection: each token's q, k and v side by side.
        let fused: Vec<f32> = (0..shape.batch * shape.seq)
            .flat_map(|t| [&q, &k, &v].map(|x| &x[t * width..(t + 1) * width]))
            .flatten()
            .copied()
            .collect();
        let strided = AttentionShape {
            row_stride: 3 * width,
            ..shape
        };
        let (fq, fk, fv) = (&fused[..], &fused[width..], &fused[2 * width..]);
        assert_eq!(attention(fq, fk, fv, Some(&mask), strided).unwrap(), got);
        assert!(attention(&q[1..], &k, &v, Some(&mask), shape).is_err());
        assert!(attention(&q, &k, &v, Some(&mask[1..]), shape).is_err());
        for b in 0..shape.batch {
            for h in 0..shape.heads {
                for i in 0..shape.seq {
                    let at = |t: &[f32], j: usize, c: usize| {
                        t[(b * shape.seq + j) * width + h * 4 + c] as f64
                    };
                    let s: Vec<f64> = (0..shape.seq)
                        .map(|j| {
                            (0..4).map(|c| at(&q, i, c) * at(&k, j, c)).sum::<f64>() * 0.5
                                + mask[b * shape.seq + j] as f64
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..4 {
                        let want: f64 = (0..shape.seq).map(|j| e[j] / z * at(&v, j, c)).sum();
                        let g = got[(b * shape.seq + i) * width + h * 4 + c] as f64;
                        assert!((g - want).abs() < 1e-5, "{b} {h} {i} {c}: {g} vs {want}");
                    }
                }
            }
        }
    }

    /// Each activation, alone and gated, against its definition in f64.
    #[test]
    fn activations_match_their_definitions() {
        // More values than one work item's 4096, and not a multiple of it.
        let x: Vec<f32> = (-5000..5001).map(|i| i as f32 / 500.0).collect();
        let up = random(x.len(), 7);
        type Reference = fn(f64) -> f64;
        let cases: [(Act, Reference); 3] = [
            (Act::Silu, |v| v / (1.0 + (-v).exp())),
            (Act::GeluErf, |v| {
                0.5 * v * (1.0 + libm_erf(v / 2f64.sqrt()))
            }),
            (Act::GeluTanh, |v| {
                let inner = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
                0.5 * v * (1.0 + inner.tanh())
            }),
        ];
        for (kind, f) in cases {
            let mut plain = x.clone();
            activate(kind, &mut plain);
            let mut gated_x = x.clone();
            gated(kind, &mut gated_x, &up);
            for (i, &v) in x.iter().enumerate() {
                let want = f(v as f64);
                let tol = 2e-6 * (1.0 + want.abs());
                assert!(
                    (plain[i] as f64 - want).abs() < tol,
                    "{kind:?}({v}) = {}, want {want}",
                    plain[i]
                );
                let want_gated = want * up[i] as f64;
                assert!(
                    (gated_x[i] as f64 - want_gated).abs() < tol,
                    "{kind:?} gated at {v}"
                );
            }
        }
    }

    #[test]
    fn rms_norm_matches_the_definition() {
        let (rows, cols) = (5, 77);
        let x = random(rows * cols, 8);
        let w = random(cols, 9);
        let mut got = x.clone();
        rms_norm(&mut got, &w, 1e-6);
        for (row, out) in x.chunks_exact(cols).zip(got.chunks_exact(cols)) {
            let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / cols as f64;
            let inv = 1.0 / (ms + 1e-6).sqrt();
            for c in 0..cols {
                let want = row[c] as f64 * inv * w[c] as f64;
                assert!((out[c] as f64 - want).abs() < 1e-5, "{} vs {want}", out[c]);
            }
        }
    }
}
