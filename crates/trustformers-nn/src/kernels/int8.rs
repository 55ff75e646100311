//! Dynamically quantized int8 matrix multiplication for linear layers, as onnxruntime runs
//! `quantize_dynamic` models: weights quantized once per output channel (symmetric, int8 in
//! `[-127, 127]`), activations quantized on every call to unsigned bytes with a scale and a
//! zero point per row (onnxruntime's `DynamicQuantizeLinear`, per row instead of per
//! tensor: the row's range, zero included, onto `[0, 255]`), dot products summed exactly in
//! 32-bit integers and scaled once:
//! `C[i, j] = sx[i] * sw[j] * (Σ_p qx[i, p] qw[j, p] - zx[i] Σ_p qw[j, p]) (+ bias[j])`.
//!
//! The micro-kernel is chosen at run time: AVX-512 VNNI (`vpdpbusd`: 64 products of unsigned
//! by signed bytes per instruction), AVX2 (`vpmaddubsw` on the magnitudes of the activations
//! less 128 and the weights carrying their signs, which cannot saturate: pairs stay within
//! 2 * 128 * 127) or portable. All three compute the same integer sums and the same float
//! epilogue, so their outputs are bit-identical.
//!
//! Weights are packed in panels of [`NR`] output columns; within a panel, each group of four
//! depth steps holds four bytes per column (`vpdpbusd`'s operand layout). Panels are split
//! over candle's barrier pool as the f32 GEMM's are.

use super::fused::{activate_row, Act};
use super::gemm::{activate_block, OutPtr, NR};
use std::sync::OnceLock;
use trustformers_core::{Error, Result};

/// Depth steps one `vpdpbusd` lane sums.
const QUAD: usize = 4;
/// Depth a packed matrix is padded to a multiple of (one AMX tile's row of bytes).
const KPAD: usize = 64;
/// Rows of `A` per AMX tile.
const MR_AMX: usize = 16;
/// Rows of `A` per VNNI tile of two panels (24 accumulators).
const MR_VNNI: usize = 12;
/// Rows of `A` per AVX2 and portable tile of one panel.
const MR: usize = 4;
/// Rows of `A` swept across a group of panels (their quantized block stays in L2).
const MC: usize = 192;
/// Most panels per work item.
const MAX_GROUP: usize = 8;

/// The micro-kernel an int8 matmul runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Simd {
    Portable,
    Avx2,
    Vnni,
    /// AMX tiles (`tdpbusd`: 16 x 16 sums of 64 byte products per instruction), with
    /// AVX-512 for the rest.
    Amx,
}

impl Int8Simd {
    /// The best this CPU runs (`TRUSTFORMERS_NO_AMX` rules out AMX, `TRUSTFORMERS_NO_AVX512`
    /// AMX and VNNI, for comparisons).
    pub fn detect() -> Self {
        static BEST: OnceLock<Int8Simd> = OnceLock::new();
        *BEST.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let no_avx512 = std::env::var_os("TRUSTFORMERS_NO_AVX512").is_some();
                let no_amx = std::env::var_os("TRUSTFORMERS_NO_AMX").is_some();
                if !no_avx512 && !no_amx && Int8Simd::Amx.available() {
                    return Int8Simd::Amx;
                }
                if !no_avx512
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                {
                    return Int8Simd::Vnni;
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    return Int8Simd::Avx2;
                }
            }
            Int8Simd::Portable
        })
    }

    /// Whether the kernel takes activations as unsigned bytes (as opposed to less 128).
    fn unsigned(self) -> bool {
        matches!(self, Self::Vnni | Self::Amx)
    }

    /// Whether this CPU can run `self`.
    pub fn available(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Self::Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Self::Amx => Self::Vnni.available() && amx::enabled(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    fn rows(self) -> usize {
        match self {
            Self::Amx => MR_AMX,
            Self::Vnni => MR_VNNI,
            Self::Avx2 | Self::Portable => MR,
        }
    }
}

/// A weight `W` `[n, k]` quantized per output channel to int8 and packed for
/// [`Int8Matrix::matmul`].
pub struct Int8Matrix {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of [`KPAD`].
    kq: usize,
    /// `ceil(n / NR)` panels of `kq * NR` bytes: depth quad `p`, column `c`, step `t` at
    /// `p * NR * QUAD + c * QUAD + t` (zero past `n` and `k`).
    panels: Vec<i8>,
    /// Each column's scale `sw[j]` (`W[j, p] ≈ sw[j] * qw[j, p]`), zero-padded to whole
    /// panels.
    scales: Vec<f32>,
    /// `Σ_p qw[j, p]`: times a row's zero point, what its activations' offset adds to
    /// column `j`.
    sums: Vec<i32>,
}

impl Int8Matrix {
    /// Quantizes `w` `[n, k]` row-major (a linear layer's weight): each row to int8 with the
    /// scale that maps its largest magnitude to 127.
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Self> {
        if n.checked_mul(k) != Some(w.len()) {
            return Err(Error::InvalidInput(format!(
                "{} weight values do not make a [{n}, {k}] matrix",
                w.len()
            )));
        }
        if k > MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "a depth of {k} is more than int8's 32-bit sums hold (at most {MAX_DEPTH})"
            )));
        }
        if let Some(bad) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "weight value {} at row {}, column {} is not finite: it cannot be quantized \
                 to int8",
                w[bad],
                bad / k.max(1),
                bad % k.max(1)
            )));
        }
        let rows: Vec<(Vec<i8>, f32)> = (0..n)
            .map(|j| {
                let row = &w[j * k..(j + 1) * k];
                let mut q = vec![0i8; k];
                let scale = quantize_weights(row, &mut q);
                (q, scale)
            })
            .collect();
        Ok(Self::pack(&rows, k))
    }

    /// Packs quantized rows (`rows[j]`: `k` values and their scale).
    fn pack(rows: &[(Vec<i8>, f32)], k: usize) -> Self {
        let n = rows.len();
        let kq = k.div_ceil(KPAD) * KPAD;
        let panels = n.div_ceil(NR);
        let mut packed = vec![0i8; panels * kq * NR];
        let mut scales = vec![0f32; panels * NR];
        let mut sums = vec![0i32; panels * NR];
        for (j, (q, scale)) in rows.iter().enumerate() {
            let panel = &mut packed[(j / NR) * kq * NR..][..kq * NR];
            let c = j % NR;
            for (p, &v) in q.iter().enumerate() {
                panel[(p / QUAD) * NR * QUAD + c * QUAD + p % QUAD] = v;
            }
            scales[j] = *scale;
            sums[j] = q.iter().map(|&v| i32::from(v)).sum::<i32>();
        }
        Self {
            n,
            k,
            kq,
            panels: packed,
            scales,
            sums,
        }
    }

    /// `(n, k)`: output columns and depth.
    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// Row `j` of the quantized weight and its scale.
    fn row(&self, j: usize) -> (Vec<i8>, f32) {
        let panel = &self.panels[(j / NR) * self.kq * NR..][..self.kq * NR];
        let c = j % NR;
        let q = (0..self.k)
            .map(|p| panel[(p / QUAD) * NR * QUAD + c * QUAD + p % QUAD])
            .collect();
        (q, self.scales[j])
    }

    /// The matrices' rows one after another (q, k and v as one matmul), when they share a
    /// depth; `None` otherwise.
    pub fn stack(parts: &[&Int8Matrix]) -> Option<Self> {
        let k = parts.first()?.k;
        if parts.iter().any(|m| m.k != k) {
            return None;
        }
        let rows: Vec<(Vec<i8>, f32)> = parts
            .iter()
            .flat_map(|m| (0..m.n).map(|j| m.row(j)))
            .collect();
        Some(Self::pack(&rows, k))
    }

    /// `W` as the f32 values its int8 form stands for (`sw[j] * qw[j, p]`), `[n, k]`
    /// row-major.
    #[cfg(test)]
    fn dequantize(&self) -> Vec<f32> {
        (0..self.n)
            .flat_map(|j| {
                let (q, scale) = self.row(j);
                q.into_iter().map(move |v| f32::from(v) * scale)
            })
            .collect()
    }

    /// `act(A W^T + bias)` for `A` `[m, k]` row-major, its rows quantized to int8 on the way;
    /// returns `[m, n]` row-major.
    pub fn matmul(
        &self,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        act: Option<Act>,
    ) -> Result<Vec<f32>> {
        self.matmul_with(Int8Simd::detect(), a, m, bias, act)
    }

    /// [`Self::matmul`] on a chosen micro-kernel (which must be [available](Int8Simd::available)).
    pub fn matmul_with(
        &self,
        simd: Int8Simd,
        a: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        act: Option<Act>,
    ) -> Result<Vec<f32>> {
        let (n, k, kq) = (self.n, self.k, self.kq);
        if m.checked_mul(k) != Some(a.len()) {
            return Err(Error::InvalidInput(format!(
                "{} activation values are not {m} rows of {k}",
                a.len()
            )));
        }
        if !simd.available() {
            return Err(Error::InvalidInput(format!(
                "this CPU cannot run the {simd:?} int8 kernel"
            )));
        }
        let bias_padded = super::padded_bias(bias, n, self.scales.len())?;
        if m == 0 || n == 0 || k == 0 {
            // An empty sum: every row is the bias.
            let mut c: Vec<f32> = (0..m)
                .flat_map(|_| bias_padded[..n].iter().copied())
                .collect();
            if let Some(act) = act {
                activate_row(act, &mut c);
            }
            return Ok(c);
        }
        // Each row quantized once, `kq` bytes apart: unsigned for VNNI, less 128 (signed)
        // for the others. Padding meets zero weights, so its value does not matter.
        let unsigned = simd.unsigned();
        // Whole AMX tiles of rows (zero rows past `m`).
        let mut qa = vec![0u8; m.next_multiple_of(MR_AMX) * kq];
        let mut row_scales = vec![0f32; m];
        let mut zeros = vec![0i32; m];
        quantize_rows(
            a,
            k,
            kq,
            unsigned,
            &mut qa[..m * kq],
            &mut row_scales,
            &mut zeros,
        );
        // What each row's sums lack or carry: the zero point, less the 128 the signed
        // kernels already took from every activation.
        if !unsigned {
            zeros.iter_mut().for_each(|z| *z -= 128);
        }
        let mut c: Vec<f32> = Vec::with_capacity(m * n);
        let out = OutPtr(c.spare_capacity_mut().as_mut_ptr().cast::<f32>());
        let panels = n.div_ceil(NR);
        let group = super::panels_per_item(panels, super::pool_threads(), MAX_GROUP);
        let epilogue = Epilogue {
            row_scales: &row_scales,
            row_zeros: &zeros,
            col_scales: &self.scales,
            sums: &self.sums,
            bias: &bias_padded,
            n,
        };
        let run = |groups: std::ops::Range<usize>| {
            // AMX's tile configuration is per thread: set for this work, released after.
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            let _tiles = (simd == Int8Simd::Amx).then(|| {
                // SAFETY: AMX is available (`simd` was checked).
                unsafe { amx::Tiles::configure() }
            });
            for g in groups {
                let first = g * group;
                let last = panels.min(first + group);
                for i0 in (0..m).step_by(MC) {
                    let block = MC.min(m - i0);
                    // A tile of rows across the group's panels, so each row of `C` is
                    // written in one run of columns (tiles written a panel at a time down
                    // the rows made the stores the bottleneck for wide outputs).
                    for i in (i0..i0 + block).step_by(simd.rows()) {
                        let rows = simd.rows().min(i0 + block - i);
                        // An AMX tile always loads 16 rows (the buffer has them).
                        let loaded = if simd == Int8Simd::Amx { MR_AMX } else { rows };
                        let a_tile = &qa[i * kq..(i + loaded) * kq];
                        let mut j = first;
                        while j < last {
                            let pair = simd.unsigned() && j + 1 < last;
                            let width = if pair { 2 } else { 1 };
                            let b = &self.panels[j * kq * NR..(j + width) * kq * NR];
                            // SAFETY: rows `i .. i + rows` and columns `j * NR ..` of this
                            // tile lie inside `C` (`m * n` values, alive until the pool
                            // returns) and belong to this worker's panels; `simd` was
                            // checked to be available.
                            unsafe {
                                let t = Tile {
                                    rows,
                                    width,
                                    kq,
                                    a: a_tile,
                                    b,
                                    i,
                                    j,
                                };
                                tile(simd, t, &epilogue, out)
                            };
                            j += width;
                        }
                    }
                    if let Some(act) = act {
                        // SAFETY: rows `i0 .. i0 + block`, columns of panels `first .. last`
                        // lie inside `C`, belong to this worker and were all written above.
                        unsafe { activate_block(act, out, n, i0..i0 + block, first..last) };
                    }
                }
            }
        };
        let n_groups = panels.div_ceil(group);
        if m * n * k >= 1 << 16 {
            candle_core::utils::barrier_pool().execute_chunked(n_groups, run);
        } else {
            run(0..n_groups);
        }
        // SAFETY: the groups cover every panel and every row tile of each stores all its
        // rows' columns inside `C`, so all `m * n` values are written.
        unsafe { c.set_len(m * n) };
        Ok(c)
    }
}

/// Most depth an [`Int8Matrix`] takes: its sums (up to `255 * 127` a step) stay in `i32`.
const MAX_DEPTH: usize = 1 << 16;

/// Quantizes a weight row into `q` (same length) with the scale mapping its largest
/// magnitude to 127, rounding to nearest, ties to even; returns the scale. The row must be
/// finite.
fn quantize_weights(row: &[f32], q: &mut [i8]) -> f32 {
    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 {
        q.fill(0);
        return 0.0;
    }
    const ROUND: f32 = 12_582_912.0;
    let inv = 127.0 / amax;
    for (d, &v) in q.iter_mut().zip(row) {
        // To nearest, ties to even (see `quantize_activations`), without a library call.
        *d = ((v * inv + ROUND) - ROUND).clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

/// An activation row's quantization: `x ≈ scale * (q - zero)`, `q` in `[0, 255]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowQuant {
    scale: f32,
    zero: i32,
    /// `1 / scale` (0 for a row of zeros).
    inv: f32,
}

impl RowQuant {
    /// The quantization of a row whose values span `lo ..= hi`: the range widened to hold
    /// zero, onto `[0, 255]` (a row of zeros: scale 0). `None` for a range that is not
    /// finite (the row holds an infinity or NaN).
    fn of_range(lo: f32, hi: f32) -> Option<Self> {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        if !(hi - lo).is_finite() {
            return None;
        }
        if hi == lo {
            return Some(Self {
                scale: 0.0,
                zero: 0,
                inv: 0.0,
            });
        }
        let scale = (hi - lo) / 255.0;
        let inv = 255.0 / (hi - lo);
        let zero = (-lo * inv).round_ties_even().clamp(0.0, 255.0) as i32;
        Some(Self { scale, zero, inv })
    }
}

/// Quantizes an activation row into `dst` (at least as long) as unsigned bytes, each put
/// through `put` (unchanged, or less 128 as a signed byte), rounding to nearest, ties to
/// even; returns the scale and zero point. Written so the compiler vectorizes it (no library
/// call for the rounding: adding and subtracting 1.5 * 2^23 rounds a float of magnitude
/// below 2^22 to an integer, ties to even). A row holding an infinity or NaN quantizes to
/// zeros with a NaN scale (its outputs are NaN, as f32's would be).
#[inline(always)]
fn quantize_activations(row: &[f32], dst: &mut [u8], put: impl Fn(i32) -> u8) -> (f32, i32) {
    const ROUND: f32 = 12_582_912.0;
    let (lo, hi) = row
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let finite = !row.iter().fold(false, |any, v| any | v.is_nan());
    let Some(q) = RowQuant::of_range(lo, hi).filter(|_| finite) else {
        dst.iter_mut().zip(row).for_each(|(d, _)| *d = put(0));
        return (f32::NAN, 0);
    };
    let zero = q.zero as f32;
    for (d, &v) in dst.iter_mut().zip(row) {
        let r = ((v * q.inv + ROUND) - ROUND) + zero;
        *d = put(r.clamp(0.0, 255.0) as i32);
    }
    (q.scale, q.zero)
}

/// Quantizes `m` rows of `a` (`k` values each) into `qa` (`kq` bytes a row, the padding
/// left as it is), their scales and zero points: unsigned bytes when `unsigned`, less 128
/// (signed) otherwise; rows split over the pool.
fn quantize_rows(
    a: &[f32],
    k: usize,
    kq: usize,
    unsigned: bool,
    qa: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [i32],
) {
    let m = scales.len();
    let put = |v: i32| if unsigned { v as u8 } else { (v as u8) ^ 0x80 };
    #[cfg(target_arch = "x86_64")]
    let avx512 = unsigned && Int8Simd::Vnni.available();
    let rows =
        |range: std::ops::Range<usize>, qa: &mut [u8], scales: &mut [f32], zeros: &mut [i32]| {
            for (i, ((dst, scale), zero)) in range.zip(
                qa.chunks_exact_mut(kq)
                    .zip(scales.iter_mut())
                    .zip(zeros.iter_mut()),
            ) {
                let row = &a[i * k..(i + 1) * k];
                #[cfg(target_arch = "x86_64")]
                if avx512 {
                    // SAFETY: AVX-512F/BW are available; `dst` holds at least `k` bytes.
                    if let Some(q) = unsafe { vnni::quantize_unsigned(row, dst) } {
                        (*scale, *zero) = (q.scale, q.zero);
                        continue;
                    }
                }
                (*scale, *zero) = quantize_activations(row, dst, put);
            }
        };
    let chunk = 64;
    if m <= chunk {
        return rows(0..m, qa, scales, zeros);
    }
    let qa_ptr = Shared(qa.as_mut_ptr());
    let sc_ptr = Shared(scales.as_mut_ptr());
    let zero_ptr = Shared(zeros.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(m.div_ceil(chunk), |items| {
        for item in items {
            let start = item * chunk;
            let end = m.min(start + chunk);
            // SAFETY: items cover disjoint row ranges of `qa` (`kq` bytes a row), `scales`
            // and `zeros`, all alive until the pool returns.
            let (qa, scales, zeros) = unsafe {
                (
                    std::slice::from_raw_parts_mut(
                        qa_ptr.get().add(start * kq),
                        (end - start) * kq,
                    ),
                    std::slice::from_raw_parts_mut(sc_ptr.get().add(start), end - start),
                    std::slice::from_raw_parts_mut(zero_ptr.get().add(start), end - start),
                )
            };
            rows(start..end, qa, scales, zeros);
        }
    });
}

/// [`OutPtr`] for any element type.
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: as for `OutPtr`: writers take disjoint ranges, read only after the pool returns.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// What turns a tile's integer sums into `C`'s values.
struct Epilogue<'a> {
    row_scales: &'a [f32],
    /// What to take `sums[j]` times from row `i`'s sums: its zero point, less 128 for the
    /// signed kernels.
    row_zeros: &'a [i32],
    /// Padded to whole panels, as are `sums` and `bias`.
    col_scales: &'a [f32],
    sums: &'a [i32],
    bias: &'a [f32],
    /// `C`'s row length.
    n: usize,
}

impl Epilogue<'_> {
    /// Stores row `i`'s sums `acc` for the columns from `col` (up to [`NR`] of them, fewer
    /// at the matrix's edge).
    ///
    /// # Safety
    /// Row `i`, columns `col .. min(col + NR, n)` must lie inside the buffer behind `out`
    /// and belong to the caller.
    #[inline(always)]
    unsafe fn store(&self, acc: &[i32; NR], i: usize, col: usize, out: OutPtr) {
        let cols = NR.min(self.n - col);
        let sx = self.row_scales[i];
        // SAFETY: the caller's guarantee.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(i * self.n + col), cols) };
        for (c, d) in dst.iter_mut().enumerate() {
            let sum = acc[c].wrapping_sub(self.row_zeros[i].wrapping_mul(self.sums[col + c]));
            *d = sum as f32 * (sx * self.col_scales[col + c]) + self.bias[col + c];
        }
    }
}

/// One tile's work: `rows` rows of `C` from row `i`, at the columns of `width` (1 or 2)
/// panels from panel `j`; `a` holds its rows of quantized activations (`kq` bytes each;
/// 16 rows for AMX), `b` its panels (`kq * NR` bytes each).
#[derive(Clone, Copy)]
struct Tile<'a> {
    rows: usize,
    width: usize,
    kq: usize,
    a: &'a [u8],
    b: &'a [i8],
    i: usize,
    j: usize,
}

/// One tile: `rows` rows of `A` (quantized, `kq` bytes each) by `width` panels from `j`.
///
/// # Safety
/// `simd` must be available; `C` rows `i .. i + rows`, columns of panels `j .. j + width`
/// must lie inside the buffer behind `out` and belong to the caller; `width` is 2 only for
/// VNNI and AMX; `a` and `b` as [`Tile`] says.
unsafe fn tile(simd: Int8Simd, tile: Tile<'_>, epi: &Epilogue<'_>, out: OutPtr) {
    let Tile {
        rows,
        width,
        kq,
        a,
        b,
        i,
        j,
    } = tile;
    let mut acc = [[[0i32; NR]; 2]; MR_VNNI];
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: VNNI is available and the tile lies in `C` (the caller's guarantees);
        // extents as documented. It stores its own results.
        Int8Simd::Vnni => return unsafe { vnni::tile(tile, epi, out) },
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // SAFETY: as above; the thread's tiles are configured (`run` in `matmul_with`) and
        // `a` holds 16 rows.
        Int8Simd::Amx => return unsafe { amx::tile(tile, epi, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is available (the caller's guarantee); extents as documented.
        Int8Simd::Avx2 => unsafe { avx2::tile(rows, kq, a, b, &mut acc) },
        _ => portable_tile(rows, kq, a, b, &mut acc),
    }
    for (r, sums) in acc.iter().take(rows).enumerate() {
        for (h, sums) in sums.iter().take(width).enumerate() {
            let col = (j + h) * NR;
            if col < epi.n {
                // SAFETY: the caller's guarantee on `C`'s tile.
                unsafe { epi.store(sums, i + r, col, out) };
            }
        }
    }
}

/// The integer sums of `rows` rows of signed `a` by one panel, one product at a time.
fn portable_tile(rows: usize, kq: usize, a: &[u8], b: &[i8], acc: &mut [[[i32; NR]; 2]; MR_VNNI]) {
    for (r, row) in a.chunks_exact(kq).take(rows).enumerate() {
        let sums = &mut acc[r][0];
        for (xs, ws) in row.chunks_exact(QUAD).zip(b.chunks_exact(NR * QUAD)) {
            for (c, w) in ws.chunks_exact(QUAD).enumerate() {
                sums[c] += xs
                    .iter()
                    .zip(w)
                    .map(|(&x, &w)| i32::from(x as i8) * i32::from(w))
                    .sum::<i32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[path = "int8_vnni.rs"]
mod vnni;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[path = "int8_amx.rs"]
mod amx;

#[cfg(target_arch = "x86_64")]
#[path = "int8_avx2.rs"]
mod avx2;

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    /// `A W^T + bias` in f64 from the dequantized operands: what the integer sums stand for.
    fn reference(a: &[f32], m: usize, w: &Int8Matrix, bias: Option<&[f32]>) -> Vec<f32> {
        let (n, k) = w.dims();
        let wd = w.dequantize();
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            let row = &a[i * k..(i + 1) * k];
            let mut q = vec![0u8; k];
            let (s, z) = quantize_activations(row, &mut q, |v| v as u8);
            for j in 0..n {
                let dot: f64 = q
                    .iter()
                    .zip(&wd[j * k..(j + 1) * k])
                    .map(|(&x, &w)| f64::from(i32::from(x) - z) * f64::from(s) * f64::from(w))
                    .sum();
                out[i * n + j] = dot as f32 + bias.map_or(0.0, |b| b[j]);
            }
        }
        out
    }

    #[test]
    fn every_kernel_gives_the_same_values() {
        // Edge shapes: depth not a multiple of four, columns not of a panel, rows not of a
        // tile, and one big enough to run on the pool.
        for &(m, n, k) in &[
            (1, 1, 1),
            (2, 3, 0),
            (3, 17, 5),
            (13, 33, 38),
            (25, 50, 67),
            (64, 96, 130),
        ] {
            let a = values(m * k, 7);
            let w = Int8Matrix::quantize(&values(n * k, 11), n, k).unwrap();
            let bias = values(n, 13);
            let want = reference(&a, m, &w, Some(&bias));
            let portable = w
                .matmul_with(Int8Simd::Portable, &a, m, Some(&bias), None)
                .unwrap();
            for (got, want) in portable.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{got} vs {want}"
                );
            }
            for simd in [Int8Simd::Avx2, Int8Simd::Vnni, Int8Simd::Amx] {
                if simd.available() {
                    let got = w.matmul_with(simd, &a, m, Some(&bias), None).unwrap();
                    assert_eq!(got, portable, "{simd:?} on {m}x{n}x{k}");
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn simd_quantizer_equals_the_portable_one() {
        if !Int8Simd::Vnni.available() {
            return;
        }
        // Ties (x.5 after scaling) included: a row spanning 0 ..= 255 scales by 1.
        let mut ties: Vec<f32> = (0..40).map(|i| i as f32 + 0.5).collect();
        ties.push(255.0);
        let negative: Vec<f32> = values(21, 6).iter().map(|v| -v.abs()).collect();
        for row in [
            values(37, 4),
            values(16, 5),
            ties,
            negative,
            vec![0.0; 9],
            vec![1.0, f32::NAN],
            vec![f32::INFINITY, 1.0],
        ] {
            let mut want = vec![0u8; row.len()];
            let (s_want, z_want) = quantize_activations(&row, &mut want, |v| v as u8);
            let mut got = vec![0u8; row.len()];
            // SAFETY: VNNI's features are available (checked above).
            match unsafe { vnni::quantize_unsigned(&row, &mut got) } {
                Some(q) => {
                    assert_eq!(got, want);
                    assert_eq!((q.scale.to_bits(), q.zero), (s_want.to_bits(), z_want));
                }
                None => assert!(s_want.is_nan()),
            }
        }
    }

    #[test]
    fn stays_close_to_f32() {
        let (m, n, k) = (8, 40, 384);
        let a = values(m * k, 3);
        let wf = values(n * k, 5);
        let w = Int8Matrix::quantize(&wf, n, k).unwrap();
        let got = w.matmul(&a, m, None, None).unwrap();
        let (mut err, mut norm) = (0f64, 0f64);
        for i in 0..m {
            for j in 0..n {
                let exact: f32 = (0..k).map(|p| a[i * k + p] * wf[j * k + p]).sum();
                err += f64::from(got[i * n + j] - exact).powi(2);
                norm += f64::from(exact).powi(2);
            }
        }
        // Half a step of rounding on each operand, over 384 terms: about 0.6% here.
        assert!(
            (err / norm).sqrt() < 0.01,
            "relative error {}",
            (err / norm).sqrt()
        );
    }

    #[test]
    fn activation_is_applied() {
        let (m, n, k) = (5, 20, 12);
        let a = values(m * k, 1);
        let w = Int8Matrix::quantize(&values(n * k, 2), n, k).unwrap();
        let plain = w.matmul(&a, m, None, None).unwrap();
        let mut want = plain.clone();
        activate_row(Act::GeluErf, &mut want);
        assert_eq!(w.matmul(&a, m, None, Some(Act::GeluErf)).unwrap(), want);
    }

    #[test]
    fn stacking_concatenates_outputs() {
        let (m, k) = (6, 20);
        let a = values(m * k, 9);
        let q = Int8Matrix::quantize(&values(17 * k, 1), 17, k).unwrap();
        let v = Int8Matrix::quantize(&values(5 * k, 2), 5, k).unwrap();
        let both = Int8Matrix::stack(&[&q, &v]).unwrap();
        let (yq, yv, y) = (
            q.matmul(&a, m, None, None).unwrap(),
            v.matmul(&a, m, None, None).unwrap(),
            both.matmul(&a, m, None, None).unwrap(),
        );
        for i in 0..m {
            assert_eq!(&y[i * 22..i * 22 + 17], &yq[i * 17..(i + 1) * 17]);
            assert_eq!(&y[i * 22 + 17..(i + 1) * 22], &yv[i * 5..(i + 1) * 5]);
        }
        let other = Int8Matrix::quantize(&values(4 * 3, 2), 4, 3).unwrap();
        assert!(Int8Matrix::stack(&[&q, &other]).is_none());
    }

    #[test]
    fn refuses_bad_sizes_and_values() {
        assert!(Int8Matrix::quantize(&[1.0; 5], 2, 3).is_err());
        assert!(Int8Matrix::quantize(&[1.0, f32::NAN], 1, 2).is_err());
        assert!(Int8Matrix::quantize(&vec![0.0; MAX_DEPTH + 1], 1, MAX_DEPTH + 1).is_err());
        let w = Int8Matrix::quantize(&[1.0; 6], 2, 3).unwrap();
        assert!(w.matmul(&[1.0; 5], 2, None, None).is_err());
        assert!(w.matmul(&[1.0; 6], 2, Some(&[0.0; 3]), None).is_err());
        // A zero row of activations and a zero row of weights give exact zeros.
        let z = Int8Matrix::quantize(&[0.0; 3], 1, 3).unwrap();
        assert_eq!(z.matmul(&[0.0; 3], 1, None, None).unwrap(), vec![0.0]);
    }
}
