//! Scaled dot-product attention over a decoder's keys and values (its KV cache, or the
//! step's own): one pass per (batch, head, block of queries), split over candle's barrier
//! pool. Keys and values are f32 or f16 ([`KvRows`]); f16 rows are widened as they are read
//! (F16C on x86-64), so an f16 cache costs half the bytes to keep and to read.

#[cfg(target_arch = "x86_64")]
use super::fused::use_avx2;
use super::fused::{multiversion, softmax_row};
use super::gemm::{self, PackedF32};
use half::f16;
use half::slice::HalfFloatSliceExt;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use trustformers_core::{Error, Result};

/// Keys or values as [`sdpa`] reads them: `batch * kv_heads` blocks of `[keys, head_dim]`
/// rows, in f32 or f16.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl<'a> KvRows<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(x) => x.len(),
            Self::F16(x) => x.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values in `range` (in bounds: [`sdpa`] checks the lengths first).
    fn slice(self, range: Range<usize>) -> Self {
        match self {
            Self::F32(x) => Self::F32(&x[range]),
            Self::F16(x) => Self::F16(&x[range]),
        }
    }

    /// The values as f32: borrowed, or widened into a copy.
    pub fn to_f32(self) -> Cow<'a, [f32]> {
        match self {
            Self::F32(x) => Cow::Borrowed(x),
            Self::F16(x) => {
                let mut out = vec![0f32; x.len()];
                x.convert_to_f32_slice(&mut out);
                Cow::Owned(out)
            }
        }
    }
}

/// Shapes and settings of one [`sdpa`] call.
#[derive(Clone, Copy, Debug)]
pub struct SdpaShape {
    pub batch: usize,
    pub heads: usize,
    /// Key/value heads; each serves `heads / kv_heads` query heads.
    pub kv_heads: usize,
    pub queries: usize,
    pub keys: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
}

/// An additive mask read as `[batch, heads, queries, keys]`: entry `(b, h, i, j)` is
/// `values[b * strides[0] + h * strides[1] + i * strides[2] + j]` (a stride of 0 broadcasts).
#[derive(Clone, Copy)]
pub struct MaskView<'a> {
    pub values: &'a [f32],
    pub strides: [usize; 3],
}

/// Up to this many queries per head, scores are dot products and the output a weighted sum
/// of value rows (decode); from more, both products run on the GEMM micro-kernel.
const DIRECT_QUERIES: usize = 2;

/// Queries `rows` of one head of [`sdpa`]: `q` and `out` hold those rows (`head_dim`
/// values each), `kv` the head's keys and values (plain rows up to [`DIRECT_QUERIES`]
/// queries, packed for the GEMM above), `mask(i)` the mask row of query `i`.
fn attend_rows<'m>(
    q: &[f32],
    kv: KeysValues<'_>,
    rows: std::ops::Range<usize>,
    mask: &dyn Fn(usize) -> Option<&'m [f32]>,
    shape: SdpaShape,
    sink: Option<f32>,
    out: &mut [f32],
) {
    let (t, d) = (shape.keys, shape.head_dim);
    let (scale, softcap) = (shape.scale, shape.softcap);
    match kv {
        KeysValues::Rows(k, v) => {
            let mut scores = vec![0f32; t];
            for (i, (q, out)) in rows.zip(q.chunks_exact(d).zip(out.chunks_exact_mut(d))) {
                dot_rows(q, k, &mut scores);
                softmax_row(&mut scores, mask(i), scale, softcap, sink);
                weighted_sum(&scores, v, out);
            }
        }
        KeysValues::Packed(keys, values) => {
            // Keys past every row's last visible one (a causal mask's upper triangle) are
            // left out of both products. A row that drops every key attends to all of them
            // evenly, as the full product does, so its block keeps every key.
            let visible = rows
                .clone()
                .map(|i| match mask(i).map_or(t, visible_keys) {
                    0 => t,
                    n => n,
                })
                .max()
                .unwrap_or(t);
            let n = rows.len();
            let mut scores = gemm::gemm_serial(q, n, &keys.corner(visible, d));
            for (i, row) in rows.zip(scores.chunks_exact_mut(visible)) {
                softmax_row(row, mask(i).map(|m| &m[..visible]), scale, softcap, sink);
            }
            out.copy_from_slice(&gemm::gemm_serial(&scores, n, &values.corner(d, visible)));
        }
    }
}

/// One key/value head as [`attend_rows`] reads it.
#[derive(Clone, Copy)]
enum KeysValues<'a> {
    /// `[keys, head_dim]` rows each.
    Rows(KvRows<'a>, KvRows<'a>),
    /// Q K^T's right-hand side (K `[keys, head_dim]` is a linear layer's `[n, k]` weight)
    /// and P V's (V is the transposed weight `[k, n]`).
    Packed(&'a PackedF32, &'a PackedF32),
}

/// Query rows per block of the prefill path: each block skips the keys none of its rows
/// sees.
const QUERY_BLOCK: usize = 48;

/// One past the last key a mask row keeps (0 when it drops them all). Entries at or below
/// -1e30 (the decoder's `f32::MIN`, `-inf`) are dropped: their softmax weight is 0 in
/// f32, so leaving them out changes nothing.
fn visible_keys(mask: &[f32]) -> usize {
    mask.iter().rposition(|&m| m > -1e30).map_or(0, |j| j + 1)
}

/// Scaled dot-product attention, `softmax(softcap(q k^T * scale) + mask) v`, with grouped
/// key/value heads: `q` is `[batch, heads, queries, head_dim]`, `k` and `v` hold
/// `batch * kv_heads` blocks of `[keys, head_dim]`, block `i` starting at `i * kv_stride`
/// (`keys * head_dim` when packed tight, more in a [`KvBuffer`](crate::cache::kv::KvBuffer));
/// returns `[batch, heads, queries, head_dim]`. `sinks`, one logit per query head, join
/// each head's softmax with no value row (gpt-oss's attention sinks).
/// (Batch, head, block of queries) items are split over the barrier pool.
pub fn sdpa(
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    kv_stride: usize,
    mask: Option<MaskView<'_>>,
    sinks: Option<&[f32]>,
    shape: SdpaShape,
) -> Result<Vec<f32>> {
    let SdpaShape {
        batch,
        heads,
        kv_heads,
        queries,
        keys,
        head_dim,
        ..
    } = shape;
    let bad = |what: String| Err(Error::InvalidInput(format!("attention: {what}")));
    if kv_heads == 0 || heads % kv_heads != 0 {
        return bad(format!(
            "{heads} heads cannot share {kv_heads} key/value heads"
        ));
    }
    let q_len = batch * heads * queries * head_dim;
    let kv_head = keys * head_dim;
    let kv_len = (batch * kv_heads).saturating_sub(1) * kv_stride + kv_head;
    if q.len() != q_len || kv_stride < kv_head || k.len() < kv_len || v.len() < kv_len {
        return bad(format!(
            "{} / {} / {} query / key / value values (stride {kv_stride}) for {shape:?}",
            q.len(),
            k.len(),
            v.len()
        ));
    }
    if sinks.is_some_and(|s| s.len() != heads) {
        return bad(format!(
            "{} sinks for {heads} heads",
            sinks.map_or(0, <[f32]>::len)
        ));
    }
    if let Some(m) = &mask {
        let last = |n: usize, stride: usize| n.saturating_sub(1) * stride;
        let needed = last(batch, m.strides[0])
            + last(heads, m.strides[1])
            + last(queries, m.strides[2])
            + keys;
        if m.values.len() < needed {
            return bad(format!(
                "a mask of {} values is too small for {shape:?}",
                m.values.len()
            ));
        }
    }
    let mut out = vec![0f32; q_len];
    if q_len == 0 {
        return Ok(out);
    }
    let group = heads / kv_heads;
    let q_head = queries * head_dim;
    fn block(x: KvRows<'_>, i: usize, stride: usize, len: usize) -> KvRows<'_> {
        x.slice(i * stride..i * stride + len)
    }
    let block = |x, i| block(x, i, kv_stride, kv_head);
    // Decode reads keys and values as they are; prefill packs each key/value head once.
    let direct = queries <= DIRECT_QUERIES;
    let packed: Vec<(PackedF32, PackedF32)> = if direct {
        Vec::new()
    } else {
        (0..batch * kv_heads)
            .map(|i| {
                (
                    PackedF32::from_rows(&block(k, i).to_f32(), keys, head_dim),
                    PackedF32::from_columns(&block(v, i).to_f32(), keys, head_dim),
                )
            })
            .collect()
    };
    // Work items are (batch, head, block of query rows), in `out`'s order.
    let rows_per_item = if direct { queries } else { QUERY_BLOCK };
    let blocks_per_head = queries.div_ceil(rows_per_item);
    let items: Vec<Mutex<&mut [f32]>> = out
        .chunks_mut(q_head)
        .flat_map(|head| head.chunks_mut(rows_per_item * head_dim))
        .map(Mutex::new)
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(items.len(), |range| {
        for item in range {
            let (bh, blk) = (item / blocks_per_head, item % blocks_per_head);
            let (b, h) = (bh / heads, bh % heads);
            let kvh = b * kv_heads + h / group;
            let rows = blk * rows_per_item..queries.min((blk + 1) * rows_per_item);
            let mut dst = items[item].lock().unwrap_or_else(PoisonError::into_inner);
            let mask_row = |i: usize| {
                mask.map(|m| {
                    let at = b * m.strides[0] + h * m.strides[1] + i * m.strides[2];
                    &m.values[at..at + keys]
                })
            };
            let kv = match packed.get(kvh) {
                Some((keys, values)) => KeysValues::Packed(keys, values),
                None => KeysValues::Rows(block(k, kvh), block(v, kvh)),
            };
            let q_rows = bh * q_head + rows.start * head_dim..bh * q_head + rows.end * head_dim;
            let sink = sinks.map(|s| s[h]);
            attend_rows(&q[q_rows], kv, rows, &mask_row, shape, sink, &mut dst);
        }
    });
    drop(items);
    Ok(out)
}

multiversion! {
    /// `out[j] = q · keys[j]` for the `q.len()`-value rows of `keys`.
    fn dot_rows_f32(q: &[f32], keys: &[f32], out: &mut [f32]) {
        for (o, key) in out.iter_mut().zip(keys.chunks_exact(q.len().max(1))) {
            let mut lanes = [0f32; 8];
            let (qs, ks) = (q.chunks_exact(8), key.chunks_exact(8));
            let tail: f32 = qs.remainder().iter().zip(ks.remainder()).map(|(a, b)| a * b).sum();
            for (a, b) in qs.zip(ks) {
                for l in 0..8 {
                    lanes[l] += a[l] * b[l];
                }
            }
            *o = lanes.iter().sum::<f32>() + tail;
        }
    }
}

multiversion! {
    /// `out = Σ_j p[j] values[j]` for the `out.len()`-value rows of `values`.
    fn weighted_sum_f32(p: &[f32], values: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (&p, row) in p.iter().zip(values.chunks_exact(out.len().max(1))) {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += p * v;
            }
        }
    }
}

/// `out[j] = q · keys[j]` for the `q.len()`-value rows of `keys`.
fn dot_rows(q: &[f32], keys: KvRows<'_>, out: &mut [f32]) {
    match keys {
        KvRows::F32(k) => dot_rows_f32(q, k, out),
        KvRows::F16(k) => dot_rows_f16(q, k, out),
    }
}

/// `out = Σ_j p[j] values[j]` for the `out.len()`-value rows of `values`.
fn weighted_sum(p: &[f32], values: KvRows<'_>, out: &mut [f32]) {
    match values {
        KvRows::F32(v) => weighted_sum_f32(p, v, out),
        KvRows::F16(v) => weighted_sum_f16(p, v, out),
    }
}

/// Whether the CPU widens f16 in hardware (F16C) next to AVX2/FMA.
#[cfg(target_arch = "x86_64")]
fn use_f16c() -> bool {
    static F16C: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *F16C.get_or_init(|| use_avx2() && std::arch::is_x86_feature_detected!("f16c"))
}

/// [`dot_rows`] over f16 keys.
fn dot_rows_f16(q: &[f32], keys: &[f16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_f16c() {
        // SAFETY: the CPU reports AVX2, FMA and F16C.
        return unsafe { x86::dot_rows_f16(q, keys, out) };
    }
    portable::dot_rows_f16(q, keys, out)
}

/// [`weighted_sum`] over f16 values.
fn weighted_sum_f16(p: &[f32], values: &[f16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if use_f16c() {
        // SAFETY: the CPU reports AVX2, FMA and F16C.
        return unsafe { x86::weighted_sum_f16(p, values, out) };
    }
    portable::weighted_sum_f16(p, values, out)
}

/// The f16 products on any CPU, one value at a time.
mod portable {
    use half::f16;

    pub(super) fn dot_rows_f16(q: &[f32], keys: &[f16], out: &mut [f32]) {
        for (o, key) in out.iter_mut().zip(keys.chunks_exact(q.len().max(1))) {
            *o = q.iter().zip(key).map(|(a, b)| a * b.to_f32()).sum();
        }
    }

    pub(super) fn weighted_sum_f16(p: &[f32], values: &[f16], out: &mut [f32]) {
        out.fill(0.0);
        for (&p, row) in p.iter().zip(values.chunks_exact(out.len().max(1))) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += p * v.to_f32();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    /// The first eight values of `x`, widened.
    ///
    /// # Safety
    /// `x` holds at least eight values.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn widen8(x: &[f16]) -> __m256 {
        debug_assert!(x.len() >= 8);
        // SAFETY: the caller guarantees the 16 bytes read.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(x.as_ptr().cast()) })
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_rows_f16(q: &[f32], keys: &[f16], out: &mut [f32]) {
        for (o, key) in out.iter_mut().zip(keys.chunks_exact(q.len().max(1))) {
            // Four independent sums per 32 values, so the FMAs do not wait on each other.
            let mut acc = [_mm256_setzero_ps(); 4];
            let (mut qs, mut ks) = (q.chunks_exact(32), key.chunks_exact(32));
            for (a, b) in (&mut qs).zip(&mut ks) {
                for (j, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: both chunks hold 32 values.
                    let (a, b) =
                        unsafe { (_mm256_loadu_ps(a.as_ptr().add(8 * j)), widen8(&b[8 * j..])) };
                    *acc = _mm256_fmadd_ps(a, b, *acc);
                }
            }
            let (qs, ks) = (
                qs.remainder().chunks_exact(8),
                ks.remainder().chunks_exact(8),
            );
            let tail: f32 = qs
                .remainder()
                .iter()
                .zip(ks.remainder())
                .map(|(a, b)| a * b.to_f32())
                .sum();
            for (a, b) in qs.zip(ks) {
                // SAFETY: both chunks hold eight values.
                let (a, b) = unsafe { (_mm256_loadu_ps(a.as_ptr()), widen8(b)) };
                acc[0] = _mm256_fmadd_ps(a, b, acc[0]);
            }
            let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            // SAFETY: the CPU supports AVX (it has AVX2).
            *o = unsafe { super::super::hsum(sum) } + tail;
        }
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum_f16(p: &[f32], values: &[f16], out: &mut [f32]) {
        let d = out.len();
        out.fill(0.0);
        if d == 0 {
            return;
        }
        let rows = values.chunks_exact(d).zip(p);
        // Four rows at a time: each 8-value slice of `out` is loaded and stored once per
        // four rows.
        let (mut fours, mut ps) = (values.chunks_exact(4 * d), p.chunks_exact(4));
        for (block, p) in (&mut fours).zip(&mut ps) {
            let w = [p[0], p[1], p[2], p[3]].map(|p| _mm256_set1_ps(p));
            let mut cols = 0;
            while cols + 8 <= d {
                // SAFETY: `cols + 8 <= d`, and `block` holds four rows of `d` values.
                unsafe {
                    let mut sum = _mm256_loadu_ps(out.as_ptr().add(cols));
                    for (r, w) in w.iter().enumerate() {
                        sum = _mm256_fmadd_ps(*w, widen8(&block[r * d + cols..]), sum);
                    }
                    _mm256_storeu_ps(out.as_mut_ptr().add(cols), sum);
                }
                cols += 8;
            }
            for (c, o) in out.iter_mut().enumerate().skip(cols) {
                *o += (0..4)
                    .map(|r| p[r] * block[r * d + c].to_f32())
                    .sum::<f32>();
            }
        }
        let done = p.len().min(values.len() / d) / 4 * 4;
        for (row, &p) in rows.skip(done) {
            let weight = _mm256_set1_ps(p);
            let mut outs = out.chunks_exact_mut(8);
            let mut row8 = row.chunks_exact(8);
            for (o, v) in (&mut outs).zip(&mut row8) {
                // SAFETY: both chunks hold eight values.
                unsafe {
                    let sum = _mm256_fmadd_ps(weight, widen8(v), _mm256_loadu_ps(o.as_ptr()));
                    _mm256_storeu_ps(o.as_mut_ptr(), sum);
                }
            }
            for (o, v) in outs.into_remainder().iter_mut().zip(row8.remainder()) {
                *o += p * v.to_f32();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::random;

    /// The f16 products (the dispatched one and the portable one) equal the f32 ones over
    /// the same values widened: row lengths with and without a tail past eight.
    #[test]
    fn f16_rows_give_the_f32_products_of_their_values() {
        for d in [8, 64, 72, 5, 256] {
            let rows = 37;
            let q = random(d, 1);
            let keys: Vec<f16> = random(rows * d, 2)
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect();
            let wide = KvRows::F16(&keys).to_f32().into_owned();
            let mut want = vec![0f32; rows];
            dot_rows_f32(&q, &wide, &mut want);
            for got in [
                {
                    let mut out = vec![0f32; rows];
                    dot_rows(&q, KvRows::F16(&keys), &mut out);
                    out
                },
                {
                    let mut out = vec![0f32; rows];
                    portable::dot_rows_f16(&q, &keys, &mut out);
                    out
                },
            ] {
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "d {d}: {g} vs {w}");
                }
            }
            let p = random(rows, 3);
            let mut want = vec![0f32; d];
            weighted_sum_f32(&p, &wide, &mut want);
            for got in [
                {
                    let mut out = vec![1f32; d];
                    weighted_sum(&p, KvRows::F16(&keys), &mut out);
                    out
                },
                {
                    let mut out = vec![1f32; d];
                    portable::weighted_sum_f16(&p, &keys, &mut out);
                    out
                },
            ] {
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "d {d}: {g} vs {w}");
                }
            }
        }
    }
}
