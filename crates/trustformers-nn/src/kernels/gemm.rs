//! f32 matrix multiplication `C = A W^T (+ bias)` for linear layers, with `W` `[n, k]` read
//! through [`Panels`]: pre-packed once for dense weights, or dequantized a panel at a time
//! for ggml formats, so that prefill runs quantized weights through the same f32 kernel
//! without ever holding them dequantized.
//!
//! The structure is BLIS's: `W^T` is cut into panels of [`NR`] output columns and up to
//! [`KC`] depth (a panel stays in L1 while it is multiplied by every row of `A`), and a
//! register-blocked micro-kernel computes `MR x NR` tiles of `C` from `A`'s rows as they are
//! (no packing of `A`). The micro-kernel is chosen at run time: AVX-512 (12 rows of one
//! 16-wide register each), AVX2/FMA (6 rows of two 8-wide registers) or portable; each sums a
//! value of `C` over the depth in order with fused multiply-adds (a tile of one row in four
//! interleaved chains on AVX), so they differ by rounding only where their tiles differ.
//! Output panels are split over candle's barrier pool.

use super::fused::{activate_row, Act};
#[cfg(target_arch = "x86_64")]
#[path = "gemm_avx512.rs"]
mod avx512;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[path = "gemm_simd128.rs"]
mod simd128;
use std::sync::OnceLock;
use trustformers_core::{Error, Result};

/// Output columns per panel (two AVX registers, one AVX-512 register).
pub const NR: usize = 16;
/// Rows of `A` per micro-kernel tile (AVX2 and portable).
const MR: usize = 6;
/// Rows of `A` per AVX-512 micro-kernel tile of one panel (twelve accumulators hide the FMA
/// latency).
const MR_AVX512: usize = 12;
#[cfg(target_arch = "x86_64")]
use avx512::MR_PAIR;
/// Depth of one pass of the micro-kernel (its slice of a panel stays in L1).
const KC: usize = 256;
/// Rows of `A` swept across a group of panels (a block stays in L2).
const MC: usize = 120;
/// Most panels per work item.
const MAX_GROUP: usize = 16;

/// The right-hand side of [`gemm`]: `W` `[n, k]`, handed out as `W^T` panels.
pub trait Panels: Sync {
    /// `(n, k)`: output columns and depth.
    fn dims(&self) -> (usize, usize);

    /// The panel of columns `j * NR ..`: `k` rows of [`NR`] values, row `p` holding
    /// `W[j * NR + c, p]` at `c` (zero past `n`). Either fills `scratch` (`k * NR` values)
    /// and returns it, or returns a panel it keeps.
    fn panel<'a>(&'a self, j: usize, scratch: &'a mut [f32]) -> &'a [f32];

    /// Whether [`Self::panel`] returns panels it keeps, never writing `scratch` (which may
    /// then be empty).
    fn keeps_panels(&self) -> bool {
        false
    }
}

/// A dense f32 `W` `[n, k]` packed once into its panels.
pub struct PackedF32 {
    n: usize,
    k: usize,
    /// `ceil(n / NR)` panels of `k * NR` values.
    data: Vec<f32>,
}

impl PackedF32 {
    /// Packs `w` `[n, k]` row-major (a linear layer's weight), after checking its size.
    pub fn new(w: &[f32], n: usize, k: usize) -> Result<Self> {
        if n.checked_mul(k) != Some(w.len()) {
            return Err(Error::InvalidInput(format!(
                "{} weight values do not make a [{n}, {k}] matrix",
                w.len()
            )));
        }
        Ok(Self::from_rows(w, n, k))
    }

    /// Packs `w` `[n, k]` row-major; `w` must hold `n * k` values.
    pub(crate) fn from_rows(w: &[f32], n: usize, k: usize) -> Self {
        Self::from_strided_rows(w, n, k, k)
    }

    /// Packs `W` `[n, k]` whose row `r` is `w[r * stride..][..k]` (one head's keys inside
    /// rows of several); `w` must hold `(n - 1) * stride + k` values.
    pub(crate) fn from_strided_rows(w: &[f32], n: usize, k: usize, stride: usize) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * k * NR];
        for (j, panel) in data.chunks_exact_mut(k.max(1) * NR).enumerate() {
            for c in 0..NR.min(n - j * NR) {
                let row = &w[(j * NR + c) * stride..(j * NR + c) * stride + k];
                for (p, &v) in row.iter().enumerate() {
                    panel[p * NR + c] = v;
                }
            }
        }
        Self { n, k, data }
    }

    /// Packs `W` `[n, k]` given as `wt` = `W^T` `[k, n]` row-major (`k * n` values).
    pub(crate) fn from_columns(wt: &[f32], k: usize, n: usize) -> Self {
        Self::from_strided_columns(wt, k, n, n)
    }

    /// Packs `W` `[n, k]` given as `W^T` `[k, n]` whose row `p` is `wt[p * stride..][..n]`;
    /// `wt` must hold `(k - 1) * stride + n` values.
    pub(crate) fn from_strided_columns(wt: &[f32], k: usize, n: usize, stride: usize) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * k * NR];
        for (j, panel) in data.chunks_exact_mut(k.max(1) * NR).enumerate() {
            let cols = NR.min(n - j * NR);
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                let at = p * stride + j * NR;
                dst[..cols].copy_from_slice(&wt[at..at + cols]);
            }
        }
        Self { n, k, data }
    }
}

impl PackedF32 {
    /// One matrix of `parts`' rows, in order (q, k and v projections as one), or `None`
    /// when their depths differ.
    pub fn stack(parts: &[&PackedF32]) -> Option<Self> {
        let k = parts.first()?.k;
        if parts.iter().any(|p| p.k != k) {
            return None;
        }
        let n: usize = parts.iter().map(|p| p.n).sum();
        let rows: Vec<f32> = parts.iter().flat_map(|p| p.unpack()).collect();
        Some(Self::from_rows(&rows, n, k))
    }

    /// The matrix `[n, k]` row-major, as it was before packing.
    pub fn unpack(&self) -> Vec<f32> {
        let k = self.k;
        let mut rows = Vec::with_capacity(self.n * k);
        for r in 0..self.n {
            let panel = &self.data[(r / NR) * k * NR..];
            rows.extend((0..k).map(|p| panel[p * NR + r % NR]));
        }
        rows
    }
}

impl Panels for PackedF32 {
    fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    fn panel<'a>(&'a self, j: usize, _: &'a mut [f32]) -> &'a [f32] {
        &self.data[j * self.k * NR..(j + 1) * self.k * NR]
    }

    fn keeps_panels(&self) -> bool {
        true
    }
}

/// The top-left `n x k` corner of a [`PackedF32`]: its first `n` rows, each cut to its first
/// `k` values (causal attention's visible keys). Panels are shared, not copied: the last
/// one may hold rows past `n`, whose output columns the GEMM computes and drops.
pub(crate) struct Corner<'a> {
    packed: &'a PackedF32,
    n: usize,
    k: usize,
}

impl PackedF32 {
    /// The first `n` rows and `k` columns (clamped to the matrix).
    pub(crate) fn corner(&self, n: usize, k: usize) -> Corner<'_> {
        Corner {
            packed: self,
            n: n.min(self.n),
            k: k.min(self.k),
        }
    }
}

impl Panels for Corner<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    fn panel<'a>(&'a self, j: usize, scratch: &'a mut [f32]) -> &'a [f32] {
        // Depth is a panel's outer index, so the first `k` rows are a prefix of it.
        &self.packed.panel(j, scratch)[..self.k * NR]
    }

    fn keeps_panels(&self) -> bool {
        true
    }
}

/// How a tile's accumulators start.
#[derive(Clone, Copy)]
enum Init<'a> {
    /// From the bias (`NR` values, zero-padded), or zero.
    Bias(Option<&'a [f32; NR]>),
    /// From what `C` holds (a later depth block).
    Load,
}

/// An output buffer shared by the pool's workers, each writing only its own part (the GEMM:
/// its panels' columns; attention: its heads' columns). Whoever creates one must keep the
/// parts disjoint and read the buffer only after the pool has returned.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: writes through it go to disjoint ranges, and the buffer is read only after all
// writers have finished (the creator's obligation above).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Applies `act` to rows `rows` of `C` (`n` values a row, behind `out`), at the columns of
/// panels `panels` (clamped to `n`).
///
/// # Safety
/// Those values lie inside the buffer behind `out`, are initialized, and belong to the
/// caller.
pub(crate) unsafe fn activate_block(
    act: Act,
    out: OutPtr,
    n: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
) {
    let (start, end) = (panels.start * NR, n.min(panels.end * NR));
    for i in rows {
        // SAFETY: the caller's guarantee.
        let row =
            unsafe { std::slice::from_raw_parts_mut(out.get().add(i * n + start), end - start) };
        activate_row(act, row);
    }
}

/// The micro-kernel a GEMM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    Portable,
    Avx2,
    Avx512,
}

impl Simd {
    /// The best this CPU runs.
    pub(crate) fn detect() -> Self {
        if use_avx512() {
            Self::Avx512
        } else if use_avx2() {
            Self::Avx2
        } else {
            Self::Portable
        }
    }

    fn rows(self) -> usize {
        match self {
            Self::Avx512 => MR_AVX512,
            Self::Avx2 | Self::Portable => MR,
        }
    }
}

/// Whether the AVX-512 micro-kernel runs: the CPU has AVX-512F (and FMA) and
/// `TRUSTFORMERS_NO_AVX512` is not set (for comparing against the AVX2 path).
pub(crate) fn use_avx512() -> bool {
    static AVX512: OnceLock<bool> = OnceLock::new();
    *AVX512.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use_avx2()
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::env::var_os("TRUSTFORMERS_NO_AVX512").is_none()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

pub(crate) fn use_avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// [`gemm`] on the calling thread alone, for callers already running on the pool; `a`
/// must hold `m * k` values.
pub(crate) fn gemm_serial(a: &[f32], m: usize, w: &dyn Panels) -> Vec<f32> {
    gemm_serial_strided(a, w.dims().1, m, w)
}

/// [`gemm_serial`] for `A` whose row `i` is `a[i * lda..][..k]` (one head's queries inside
/// rows of several); `a` must hold `(m - 1) * lda + k` values.
pub(crate) fn gemm_serial_strided(a: &[f32], lda: usize, m: usize, w: &dyn Panels) -> Vec<f32> {
    // The only errors are size checks the caller has made.
    gemm_with(Simd::detect(), false, a, lda, m, w, None, None).unwrap_or_default()
}

/// `C = A W^T + bias` for `A` `[m, k]` row-major; returns `C` `[m, n]` row-major.
pub fn gemm(a: &[f32], m: usize, w: &dyn Panels, bias: Option<&[f32]>) -> Result<Vec<f32>> {
    gemm_with(Simd::detect(), true, a, w.dims().1, m, w, bias, None)
}

/// `act(A W^T + bias)`: [`gemm`] with the activation applied to each block of `C` as soon
/// as it is complete, while it is still in cache (an MLP's first layer).
pub fn gemm_activated(
    a: &[f32],
    m: usize,
    w: &dyn Panels,
    bias: Option<&[f32]>,
    act: Act,
) -> Result<Vec<f32>> {
    gemm_with(Simd::detect(), true, a, w.dims().1, m, w, bias, Some(act))
}

/// `A`'s row `i` is `a[i * lda..][..k]`; when `lda` is `k`, `a` must hold exactly `m * k`
/// values.
#[allow(clippy::too_many_arguments)]
fn gemm_with(
    simd: Simd,
    parallel: bool,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &dyn Panels,
    bias: Option<&[f32]>,
    act: Option<Act>,
) -> Result<Vec<f32>> {
    let (n, k) = w.dims();
    let fits = if lda == k {
        m.checked_mul(k) == Some(a.len())
    } else {
        m == 0
            || lda > k
                && m.checked_sub(1)
                    .and_then(|rows| rows.checked_mul(lda))
                    .and_then(|v| v.checked_add(k))
                    .is_some_and(|need| need <= a.len())
    };
    if !fits {
        return Err(Error::InvalidInput(format!(
            "{} activation values are not {m} rows of {k}",
            a.len()
        )));
    }
    if let Some(b) = bias {
        if b.len() != n {
            return Err(Error::InvalidInput(format!(
                "bias has {} values for {n} outputs",
                b.len()
            )));
        }
    }
    if k == 0 || m == 0 || n == 0 {
        let mut c = vec![0f32; m * n];
        // An empty sum: every row is the bias.
        if let Some(b) = bias {
            c.chunks_exact_mut(n.max(1))
                .for_each(|row| row.copy_from_slice(b));
        }
        if let Some(act) = act {
            activate_row(act, &mut c);
        }
        return Ok(c);
    }
    // Every value of C is written by the first depth block of its tile before anything reads
    // it, so the buffer starts uninitialised (zeroing it was a visible share of the time).
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let out = OutPtr(c.spare_capacity_mut().as_mut_ptr().cast::<f32>());
    let panels = n.div_ceil(NR);
    // A worker takes a group of panels and sweeps each block of A's rows across all of
    // them, so the block is read from L2 once per group rather than once per panel.
    let threads = if parallel { super::pool_threads() } else { 1 };
    let group = super::panels_per_item(panels, threads, MAX_GROUP);
    // Room for each panel of a group, unless `w` hands out panels it keeps (zeroing room
    // for nothing was a visible share of the time).
    let scratch_per_panel = if w.keeps_panels() { 0 } else { k * NR };
    let run = |groups: std::ops::Range<usize>| {
        let mut scratch = Vec::new();
        for g in groups {
            let first = g * group;
            let last = panels.min(first + group);
            scratch.resize((last - first) * scratch_per_panel, 0.0);
            let mut bias_tiles = vec![[0f32; NR]; last - first];
            let mut views: Vec<&[f32]> = Vec::with_capacity(last - first);
            let mut rest = scratch.as_mut_slice();
            for (j, tile) in (first..last).zip(bias_tiles.iter_mut()) {
                if let Some(b) = bias {
                    let cols = NR.min(n - j * NR);
                    tile[..cols].copy_from_slice(&b[j * NR..j * NR + cols]);
                }
                let (own, tail) = std::mem::take(&mut rest).split_at_mut(scratch_per_panel);
                rest = tail;
                views.push(w.panel(j, own));
            }
            for i0 in (0..m).step_by(MC) {
                let block = MC.min(m - i0);
                for k0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - k0);
                    let mut j = first;
                    while j < last {
                        let init_of = |j: usize| {
                            if k0 == 0 {
                                Init::Bias(bias.map(|_| &bias_tiles[j - first]))
                            } else {
                                Init::Load
                            }
                        };
                        let panel_of = |j: usize| &views[j - first][k0 * NR..(k0 + kc) * NR];
                        // AVX-512 takes two full panels at once: 12 rows x 32 columns of
                        // accumulators need fewer loads per FMA than 12 x 16.
                        #[cfg(target_arch = "x86_64")]
                        if simd == Simd::Avx512 && j + 1 < last && (j + 2) * NR <= n {
                            for i in (i0..i0 + block).step_by(MR_PAIR) {
                                let rows = MR_PAIR.min(i0 + block - i);
                                let a_tile = &a[i * lda + k0..];
                                // SAFETY: rows `i .. i + rows` and columns `j * NR .. (j + 2) *
                                // NR` lie inside `C` and belong to this worker's panels;
                                // `a_tile` holds `rows` rows of stride `lda` from `k0`; each
                                // panel `kc * NR` values; AVX-512 was detected.
                                unsafe {
                                    let c_tile = out.get().add(i * n + j * NR);
                                    avx512::pair_kernel(
                                        rows,
                                        kc,
                                        a_tile,
                                        lda,
                                        [panel_of(j), panel_of(j + 1)],
                                        c_tile,
                                        n,
                                        [init_of(j), init_of(j + 1)],
                                    )
                                };
                            }
                            j += 2;
                            continue;
                        }
                        let cols = NR.min(n - j * NR);
                        let init = init_of(j);
                        let panel = panel_of(j);
                        for i in (i0..i0 + block).step_by(simd.rows()) {
                            let rows = simd.rows().min(i0 + block - i);
                            let a_tile = &a[i * lda + k0..];
                            // SAFETY: the tile's rows `i .. i + rows` and columns
                            // `j * NR .. j * NR + cols` lie inside `C` (`m * n` values, alive
                            // until the pool returns); this worker alone owns panel `j`.
                            let c_tile = unsafe { out.get().add(i * n + j * NR) };
                            // SAFETY: as above; `a_tile` holds `rows` rows of stride `lda` from
                            // `k0`, `panel` holds `kc * NR` values.
                            unsafe {
                                tile(simd, rows, cols, kc, a_tile, lda, panel, c_tile, n, init)
                            };
                        }
                        j += 1;
                    }
                }
                if let Some(act) = act {
                    // The block's columns of this group are final: activate them in cache.
                    // SAFETY: rows `i0 .. i0 + block`, columns of panels `first .. last` lie
                    // inside `C`, belong to this worker and were all written above.
                    unsafe { activate_block(act, out, n, i0..i0 + block, first..last) };
                }
            }
        }
    };
    let n_groups = panels.div_ceil(group);
    if parallel {
        candle_core::utils::barrier_pool().execute_chunked(n_groups, run);
    } else {
        run(0..n_groups);
    }
    // SAFETY: the groups cover every panel, and within a panel every row tile's first depth
    // block (`Init::Bias`) stores all its `rows x cols` values, so all `m * n` are written.
    unsafe { c.set_len(m * n) };
    Ok(c)
}

/// One `rows x cols` tile (`rows <= simd.rows()`, `cols <= NR`) of `C` at `c` (row stride
/// `ldc`).
///
/// # Safety
/// `c` must be valid for writes of `rows` rows of `cols` values at stride `ldc`; `a` must
/// hold `(rows - 1) * lda + kc` values; `b` `kc * NR`.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    simd: Simd,
    rows: usize,
    cols: usize,
    kc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    debug_assert!(a.len() >= (rows - 1) * lda + kc && b.len() >= kc * NR);
    if cols == NR {
        // SAFETY: `c` holds `rows` full rows of NR values at stride `ldc`; the rest as the
        // caller guarantees.
        return unsafe { rows_kernel(simd, rows, kc, a, lda, b, c, ldc, init) };
    }
    // A partial tile runs on a full-width copy so the kernels always read and write NR.
    let mut buf = [0f32; MR_AVX512 * NR];
    if matches!(init, Init::Load) {
        for r in 0..rows {
            // SAFETY: the caller guarantees `cols` values in each of `rows` rows.
            unsafe {
                std::ptr::copy_nonoverlapping(c.add(r * ldc), buf[r * NR..].as_mut_ptr(), cols)
            };
        }
    }
    // SAFETY: `buf` holds MR_AVX512 >= `rows` rows of NR values; the rest as the caller
    // guarantees.
    unsafe { rows_kernel(simd, rows, kc, a, lda, b, buf.as_mut_ptr(), NR, init) };
    for r in 0..rows {
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(buf[r * NR..].as_ptr(), c.add(r * ldc), cols) };
    }
}

/// [`kernel`] for `rows` (at most `simd.rows()`) rows.
///
/// # Safety
/// As for [`kernel`] with `R = rows`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rows_kernel(
    simd: Simd,
    rows: usize,
    kc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 {
        let (a, b) = (a.as_ptr(), b.as_ptr());
        // SAFETY: `Avx512` is only chosen when the CPU has AVX-512F; the caller's guarantees
        // for `R = rows`.
        unsafe {
            match rows {
                1 => avx512::kernel::<1>(kc, a, lda, b, c, ldc, init),
                2 => avx512::kernel::<2>(kc, a, lda, b, c, ldc, init),
                3 => avx512::kernel::<3>(kc, a, lda, b, c, ldc, init),
                4 => avx512::kernel::<4>(kc, a, lda, b, c, ldc, init),
                5 => avx512::kernel::<5>(kc, a, lda, b, c, ldc, init),
                6 => avx512::kernel::<6>(kc, a, lda, b, c, ldc, init),
                7 => avx512::kernel::<7>(kc, a, lda, b, c, ldc, init),
                8 => avx512::kernel::<8>(kc, a, lda, b, c, ldc, init),
                9 => avx512::kernel::<9>(kc, a, lda, b, c, ldc, init),
                10 => avx512::kernel::<10>(kc, a, lda, b, c, ldc, init),
                11 => avx512::kernel::<11>(kc, a, lda, b, c, ldc, init),
                _ => avx512::kernel::<MR_AVX512>(kc, a, lda, b, c, ldc, init),
            }
        }
        return;
    }
    let avx2 = simd == Simd::Avx2;
    // SAFETY: the caller's guarantees, for `R = rows`.
    unsafe {
        match rows {
            1 => kernel::<1>(avx2, kc, a, lda, b, c, ldc, init),
            2 => kernel::<2>(avx2, kc, a, lda, b, c, ldc, init),
            3 => kernel::<3>(avx2, kc, a, lda, b, c, ldc, init),
            4 => kernel::<4>(avx2, kc, a, lda, b, c, ldc, init),
            5 => kernel::<5>(avx2, kc, a, lda, b, c, ldc, init),
            _ => kernel::<MR>(avx2, kc, a, lda, b, c, ldc, init),
        }
    }
}

/// # Safety
/// `c` must hold `R` rows of NR values at stride `ldc`; `a` `(R - 1) * lda + kc` values; `b`
/// `kc * NR`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn kernel<const R: usize>(
    avx2: bool,
    kc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only true when the CPU has AVX2 and FMA; the rest is the caller's.
        return unsafe { kernel_avx2::<R>(kc, a.as_ptr(), lda, b.as_ptr(), c, ldc, init) };
    }
    let _ = avx2;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: the caller's guarantees.
    unsafe {
        simd128::kernel::<R>(kc, a, lda, b, c, ldc, init)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    // SAFETY: the caller's guarantees.
    unsafe {
        kernel_portable::<R>(kc, a, lda, b, c, ldc, init)
    }
}

/// [`kernel`] in plain code.
///
/// # Safety
/// As for [`kernel`].
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
unsafe fn kernel_portable<const R: usize>(
    kc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    let mut acc = [[0f32; NR]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        match init {
            Init::Bias(Some(bias)) => *row = *bias,
            Init::Bias(None) => {}
            // SAFETY: the caller guarantees NR values per row.
            Init::Load => unsafe {
                std::ptr::copy_nonoverlapping(c.add(r * ldc), row.as_mut_ptr(), NR)
            },
        }
    }
    for (p, bp) in b[..kc * NR].chunks_exact(NR).enumerate() {
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a[r * lda + p];
            for (o, &bv) in row.iter_mut().zip(bp) {
                *o = super::fused::fmadd(av, bv, *o);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), c.add(r * ldc), NR) };
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; pointers as for [`kernel`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    use std::arch::x86_64::*;
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    // SAFETY (whole body): the caller guarantees the extents of `a`, `b` and `c`.
    unsafe {
        match init {
            Init::Bias(Some(bias)) => {
                let (b0, b1) = (
                    _mm256_loadu_ps(bias.as_ptr()),
                    _mm256_loadu_ps(bias.as_ptr().add(8)),
                );
                for r in 0..R {
                    lo[r] = b0;
                    hi[r] = b1;
                }
            }
            Init::Bias(None) => {}
            Init::Load => {
                for r in 0..R {
                    lo[r] = _mm256_loadu_ps(c.add(r * ldc));
                    hi[r] = _mm256_loadu_ps(c.add(r * ldc + 8));
                }
            }
        }
        let mut p = 0;
        if R == 1 {
            // One row has only two accumulators, too few to hide the FMA latency: four
            // more pairs take successive depths, summed at the end.
            let mut more = [[_mm256_setzero_ps(); 2]; 3];
            while p + 4 <= kc {
                for (u, acc) in more.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*a.add(p + u + 1));
                    acc[0] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b.add((p + u + 1) * NR)), acc[0]);
                    acc[1] =
                        _mm256_fmadd_ps(av, _mm256_loadu_ps(b.add((p + u + 1) * NR + 8)), acc[1]);
                }
                let av = _mm256_broadcast_ss(&*a.add(p));
                lo[0] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b.add(p * NR)), lo[0]);
                hi[0] = _mm256_fmadd_ps(av, _mm256_loadu_ps(b.add(p * NR + 8)), hi[0]);
                p += 4;
            }
            for acc in more {
                lo[0] = _mm256_add_ps(lo[0], acc[0]);
                hi[0] = _mm256_add_ps(hi[0], acc[1]);
            }
        }
        for p in p..kc {
            let b0 = _mm256_loadu_ps(b.add(p * NR));
            let b1 = _mm256_loadu_ps(b.add(p * NR + 8));
            for r in 0..R {
                let av = _mm256_broadcast_ss(&*a.add(r * lda + p));
                lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(c.add(r * ldc), lo[r]);
            _mm256_storeu_ps(c.add(r * ldc + 8), hi[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::random;

    fn reference(
        a: &[f32],
        m: usize,
        w: &[f32],
        n: usize,
        k: usize,
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j]) as f64;
                for p in 0..k {
                    s += a[i * k + p] as f64 * w[j * k + p] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    /// The micro-kernels this CPU runs.
    fn portable_or_better() -> Vec<Simd> {
        let mut all = vec![Simd::Portable];
        if use_avx2() {
            all.push(Simd::Avx2);
        }
        if use_avx512() {
            all.push(Simd::Avx512);
        }
        all
    }

    #[test]
    fn matches_the_reference_on_ragged_shapes() {
        // Rows not a multiple of MR, columns not of NR, depth over two KC blocks and ragged.
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 17, 300),
            (13, 40, 513),
            // Three row blocks, the last partial.
            (250, 33, 300),
            (6, 16, 256),
            (2, 3, 0),
        ] {
            let a = random(m * k, 1);
            let w = random(n * k, 2);
            let bias = random(n, 3);
            let packed = PackedF32::new(&w, n, k).unwrap();
            for b in [None, Some(bias.as_slice())] {
                let want = reference(&a, m, &w, n, k, b);
                for simd in portable_or_better() {
                    for parallel in [true, false] {
                        let got = gemm_with(simd, parallel, &a, k, m, &packed, b, None).unwrap();
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                (g - w).abs() <= 1e-5 * (1.0 + k as f32),
                                "{m}x{n}x{k} {simd:?}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn activated_equals_gemm_then_activation() {
        // Groups of panels and row blocks cut across the output, columns ragged.
        for &(m, n, k) in &[(1, 5, 7), (250, 600, 40), (9, 17, 0)] {
            let a = random(m * k, 4);
            let w = random(n * k, 5);
            let bias = random(n, 6);
            let packed = PackedF32::new(&w, n, k).unwrap();
            for act in [Act::Silu, Act::GeluErf, Act::GeluTanh] {
                let mut want = gemm(&a, m, &packed, Some(&bias)).unwrap();
                activate_row(act, &mut want);
                for simd in portable_or_better() {
                    for parallel in [true, false] {
                        let got =
                            gemm_with(simd, parallel, &a, k, m, &packed, Some(&bias), Some(act))
                                .unwrap();
                        assert_eq!(got.len(), want.len());
                        for (g, w) in got.iter().zip(&want) {
                            assert!((g - w).abs() <= 1e-5, "{m}x{n}x{k} {act:?}: {g} vs {w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stacked_matrices_give_their_outputs_side_by_side() {
        let (m, k) = (7, 20);
        let a = random(m * k, 7);
        // Row counts that do not fill their last panels.
        let parts: Vec<(Vec<f32>, usize)> = [(5, 8), (17, 9), (16, 10)]
            .iter()
            .map(|&(n, seed)| (random(n * k, seed), n))
            .collect();
        let packed: Vec<PackedF32> = parts
            .iter()
            .map(|(w, n)| PackedF32::new(w, *n, k).unwrap())
            .collect();
        let stacked = PackedF32::stack(&packed.iter().collect::<Vec<_>>()).unwrap();
        let got = gemm(&a, m, &stacked, None).unwrap();
        let all: Vec<f32> = parts.iter().flat_map(|(w, _)| w.iter().copied()).collect();
        assert_eq!(
            got,
            gemm(&a, m, &PackedF32::new(&all, 38, k).unwrap(), None).unwrap()
        );
        let other = PackedF32::new(&random(3 * 4, 1), 3, 4).unwrap();
        assert!(PackedF32::stack(&[&packed[0], &other]).is_none());
        assert!(PackedF32::stack(&[]).is_none());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(PackedF32::new(&[0.0; 5], 2, 3).is_err());
        let packed = PackedF32::new(&[0.0; 6], 2, 3).unwrap();
        assert!(gemm(&[0.0; 5], 2, &packed, None).is_err());
        assert!(gemm(&[0.0; 6], 2, &packed, Some(&[0.0; 3])).is_err());
    }
}
