//! Prefill against ggml block-quantized weights in integers, as llama.cpp runs it, instead
//! of dequantizing panels into the f32 [`gemm`](super::gemm::gemm).
//!
//! The activations are quantized per 32-value block to signed bytes (`x ≈ d q`, `d` the
//! block's largest magnitude over 127, rounding to nearest, ties to even). Every weight
//! format is read as unsigned bytes `u` with a scale `a` and an offset `m` per group of
//! [`IntPanels::group`] depth steps (`w = a u + m`: Q4_1's `d` and `m`, Q5_0's `d` and
//! `-16 d`, Q8_0's `d` and `-128 d` with `u = q + 128`, Q4_K's sub-block scales and mins,
//! Q6_K's sixteen-value sub-blocks). A value of `C` is then
//! `Σ_g (a[g] d[g]) Σ_{p in g} u[p] q[p] + m[g] s[g]`, with `s[g] = d[g] Σ_{p in g} q[p]`:
//! the inner sums exact in 32-bit integers (`vpdpbusd`: unsigned weight bytes by signed
//! activation bytes), the outer in f32, two fused multiply-adds per group.
//!
//! Panels of [`NR`] output columns are unpacked when a worker takes them (the weights stay
//! quantized in memory), each group of four depth steps holding four bytes per column
//! (`vpdpbusd`'s operand layout), and swept by every row of the activations. The AVX-512
//! VNNI micro-kernel and the portable one compute the same integer sums and the same float
//! operations in the same order, so their outputs are bit-identical. CPUs without VNNI keep
//! the f32 GEMM.

use super::gemm::{OutPtr, NR};
use super::BLOCK;
use std::sync::OnceLock;
use trustformers_core::{Error, Result};

#[cfg(target_arch = "x86_64")]
#[path = "qgemm_avx2.rs"]
mod avx2;
#[cfg(target_arch = "x86_64")]
#[path = "qgemm_vnni.rs"]
mod vnni;

/// Depth steps one `vpdpbusd` lane sums.
const QUAD: usize = 4;
/// Rows of `A` per micro-kernel tile (of two panels: 24 accumulators).
const MR: usize = 6;
/// Rows of `A` swept across a group of panels (their quantized block stays in L2).
const MC: usize = 192;
/// Most panels per work item.
const MAX_GROUP: usize = 8;

/// A quantized `W` `[n, k]` read as unsigned bytes with a scale and an offset per group of
/// depth steps, a panel of [`NR`] rows of `W` at a time.
pub trait IntPanels: Sync {
    /// `(n, k)`: output columns and depth.
    fn dims(&self) -> (usize, usize);

    /// Depth steps sharing one scale and offset: 32, or 16 (Q6_K). Divides `k`.
    fn group(&self) -> usize;

    /// The largest byte [`Self::unpack`] writes (the AVX2 kernel takes only weights below
    /// 128).
    fn max_unsigned(&self) -> u8;

    /// Writes the panel of columns `j * NR ..` into `panel` (sized for `k` and
    /// [`Self::group`]); columns past `n` are left as they are (never stored).
    fn unpack(&self, j: usize, panel: &mut IntPanel);
}

/// One panel's weights: `w[c, p] = scale[g * NR + c] * u + offset[g * NR + c]` for group
/// `g = p / group`, with `u` byte `p % 4` (little-endian) of word `(p / 4) * NR + c`.
/// Written only through its methods, so its sizes stay the ones the kernels read.
pub struct IntPanel {
    u: Vec<u32>,
    scale: Vec<f32>,
    offset: Vec<f32>,
}

impl IntPanel {
    /// An empty panel of depth `k` in groups of `group`.
    pub fn new(k: usize, group: usize) -> Self {
        Self {
            u: vec![0; k / QUAD * NR],
            scale: vec![0.0; k / group * NR],
            offset: vec![0.0; k / group * NR],
        }
    }

    /// Column `c`'s depth steps `p0 .. p0 + 4 * u.len()` (`p0` a multiple of four) from
    /// `u`, four to a word.
    #[inline]
    pub fn put(&mut self, c: usize, p0: usize, u: &[u32]) {
        let column = self.u[p0 / QUAD * NR + c..].iter_mut().step_by(NR);
        for (dst, &w) in column.zip(u) {
            *dst = w;
        }
    }

    /// Every weight zero (all scales and offsets zero).
    pub fn clear(&mut self) {
        self.scale.fill(0.0);
        self.offset.fill(0.0);
    }

    /// Column `c`'s scale and offset for group `g`.
    #[inline]
    pub fn put_group(&mut self, c: usize, g: usize, (a, m): (f32, f32)) {
        self.scale[g * NR + c] = a;
        self.offset[g * NR + c] = m;
    }
}

impl<B: super::WeightBlock> IntPanels for super::QMatrix<B> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn group(&self) -> usize {
        BLOCK
    }

    fn max_unsigned(&self) -> u8 {
        B::MAX_UNSIGNED
    }

    fn unpack(&self, j: usize, panel: &mut IntPanel) {
        let per_row = self.cols / BLOCK;
        let mut u = [0u32; BLOCK / QUAD];
        for c in 0..NR.min(self.rows.saturating_sub(j * NR)) {
            let row = &self.blocks[(j * NR + c) * per_row..(j * NR + c + 1) * per_row];
            for (b, block) in row.iter().enumerate() {
                let group = block.unpack(&mut u);
                panel.put(c, b * BLOCK, &u);
                panel.put_group(c, b, group);
            }
        }
    }
}

/// The activations, quantized per 32-value block: `q` row-major `[m, k]`, `d` each block's
/// scale `[m, k / 32]`, `s` each group's `d Σ q` `[m, k / group]`.
struct QuantRows {
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

impl QuantRows {
    /// Quantizes `m` rows of `k` values (`k` a multiple of 32 and of `group`, which is 16
    /// or 32), with `simd`'s code (the same values for finite inputs).
    fn new(simd: QSimd, a: &[f32], m: usize, k: usize, group: usize) -> Self {
        let mut rows = Self {
            q: vec![0; m * k],
            d: vec![0.0; m * k / BLOCK],
            s: vec![0.0; m * k / group],
        };
        let per_block = BLOCK / group;
        for (((x, q), d), s) in a
            .chunks_exact(BLOCK)
            .zip(rows.q.chunks_exact_mut(BLOCK))
            .zip(rows.d.iter_mut())
            .zip(rows.s.chunks_exact_mut(per_block))
        {
            *d = match simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `simd` is available (checked by `qgemm`); the slices hold one block.
                QSimd::Vnni => unsafe { vnni::quantize_block(x, q, s) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                QSimd::Avx2 => unsafe { avx2::quantize_block(x, q, s) },
                _ => quantize_block(x, q, s),
            };
        }
        rows
    }
}

/// One block of 32 values to signed bytes `q` (rounded to nearest, ties to even), and
/// `d Σ q` of each of its groups into `sums` (one or two); returns the scale `d` (largest
/// magnitude over 127; zero for an all-zero block, whose bytes are all zero).
fn quantize_block(x: &[f32], q: &mut [i8], sums: &mut [f32]) -> f32 {
    let amax = x.iter().fold(0f32, |a, &v| a.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
    let group = BLOCK / sums.len();
    for (s, q) in sums.iter_mut().zip(q.chunks_exact(group)) {
        *s = d * q.iter().map(|&v| v as i32).sum::<i32>() as f32;
    }
    d
}

/// The micro-kernel an integer prefill runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QSimd {
    Portable,
    /// AVX2 (`vpmaddubsw`), for weights whose bytes stay below 128.
    Avx2,
    /// AVX-512 VNNI (`vpdpbusd`).
    Vnni,
}

impl QSimd {
    /// Whether this CPU can run `self`.
    pub fn available(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx2 | Self::Vnni => false,
        }
    }

    /// Whether `self` multiplies `w`'s weights (AVX2's 16-bit pair sums would saturate on
    /// bytes from 128).
    pub fn takes(self, w: &dyn IntPanels) -> bool {
        self != Self::Avx2 || w.max_unsigned() < 128
    }

    fn rows(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => avx2::MR_AVX2,
            _ => MR,
        }
    }
}

/// The integer kernel prefill takes on this CPU: VNNI, else AVX2; `None` keeps the f32
/// GEMM (neither, or `TRUSTFORMERS_F32_PREFILL` set; `TRUSTFORMERS_NO_AVX512` rules out
/// VNNI), for comparisons.
pub fn prefill_kernel() -> Option<QSimd> {
    static KERNEL: OnceLock<Option<QSimd>> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        if std::env::var_os("TRUSTFORMERS_F32_PREFILL").is_some() {
            return None;
        }
        let no_avx512 = std::env::var_os("TRUSTFORMERS_NO_AVX512").is_some();
        if !no_avx512 && QSimd::Vnni.available() {
            Some(QSimd::Vnni)
        } else {
            QSimd::Avx2.available().then_some(QSimd::Avx2)
        }
    })
}

/// The integer kernel prefill takes for `w` on this CPU ([`prefill_kernel`], when it takes
/// `w`'s weights); `None` for the f32 GEMM.
pub fn kernel_for(w: &dyn IntPanels) -> Option<QSimd> {
    prefill_kernel().filter(|simd| simd.takes(w))
}

/// One tile's work: `rows` rows of `C` from row `i`, at the columns of `width` (1 or 2)
/// panels starting at column `col`.
struct Tile<'a> {
    rows: usize,
    width: usize,
    i: usize,
    col: usize,
    k: usize,
    group: usize,
    a: &'a QuantRows,
    panels: [&'a IntPanel; 2],
    /// Padded to whole panels.
    bias: &'a [f32],
    /// `C`'s row length.
    n: usize,
    /// Depth quads the AVX2 kernel sums in 16 bits before widening (divides `group / 4`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    run: usize,
}

#[cfg(target_arch = "x86_64")]
impl Tile<'_> {
    /// The tile's first row of quantized activations, of block scales and of group sums
    /// (for groups of `group`).
    fn activations(&self, group: usize) -> (*const i8, *const f32, *const f32) {
        let (k, a) = (self.k, self.a);
        debug_assert!(a.q.len() >= (self.i + self.rows) * k);
        (
            a.q[self.i * k..].as_ptr(),
            a.d[self.i * k / BLOCK..].as_ptr(),
            a.s[self.i * k / group..].as_ptr(),
        )
    }
}

/// `C = A W^T + bias` for `A` `[m, k]` row-major, with `W`'s values read through
/// [`IntPanels`] and `A` quantized to 8 bits per block; returns `C` `[m, n]` row-major.
pub fn qgemm(
    simd: QSimd,
    a: &[f32],
    m: usize,
    w: &dyn IntPanels,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let (n, k) = w.dims();
    let group = w.group();
    if m.checked_mul(k) != Some(a.len()) {
        return Err(Error::InvalidInput(format!(
            "{} activation values are not {m} rows of {k}",
            a.len()
        )));
    }
    if !simd.available() || !simd.takes(w) {
        return Err(Error::InvalidInput(format!(
            "the {simd:?} integer kernel cannot run here or take weights up to {}",
            w.max_unsigned()
        )));
    }
    if !matches!(group, 16 | 32) || !k.is_multiple_of(BLOCK) {
        return Err(Error::InvalidInput(format!(
            "a depth of {k} in groups of {group} is not whole blocks of {BLOCK}"
        )));
    }
    let panels = n.div_ceil(NR);
    let bias_padded = super::padded_bias(bias, n, panels * NR)?;
    if m == 0 || n == 0 || k == 0 {
        return Ok((0..m)
            .flat_map(|_| bias_padded[..n].iter().copied())
            .collect());
    }
    let rows = QuantRows::new(simd, a, m, k, group);
    #[cfg(target_arch = "x86_64")]
    let quads_16 = avx2::quads_in_16_bits(w.max_unsigned(), group / QUAD);
    #[cfg(not(target_arch = "x86_64"))]
    let quads_16 = 1usize;
    // A power of two, so that it divides the group's quads.
    let quads_16 = 1 << quads_16.ilog2();
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let out = OutPtr(c.spare_capacity_mut().as_mut_ptr().cast::<f32>());
    let per_item = super::panels_per_item(panels, super::pool_threads(), MAX_GROUP);
    let run = |items: std::ops::Range<usize>| {
        let mut unpacked: Vec<IntPanel> = Vec::new();
        for item in items {
            let first = item * per_item;
            let last = panels.min(first + per_item);
            unpacked.resize_with(last - first, || IntPanel::new(k, group));
            for (j, panel) in (first..last).zip(unpacked.iter_mut()) {
                w.unpack(j, panel);
            }
            for i0 in (0..m).step_by(MC) {
                let block = MC.min(m - i0);
                for i in (i0..i0 + block).step_by(simd.rows()) {
                    let tile_rows = simd.rows().min(i0 + block - i);
                    let mut j = first;
                    while j < last {
                        let width = if j + 1 < last { 2 } else { 1 };
                        let p = &unpacked[j - first..];
                        let t = Tile {
                            rows: tile_rows,
                            width,
                            i,
                            col: j * NR,
                            k,
                            group,
                            a: &rows,
                            panels: [&p[0], &p[width - 1]],
                            bias: &bias_padded,
                            n,
                            run: quads_16,
                        };
                        // SAFETY: rows `i .. i + tile_rows` and the columns of panels
                        // `j .. j + width` lie inside `C` (`m * n` values, alive until the
                        // pool returns) and belong to this item's panels; `simd` was
                        // checked to be available.
                        unsafe { tile(simd, &t, out) };
                        j += width;
                    }
                }
            }
        }
    };
    let n_items = panels.div_ceil(per_item);
    if m * n * k >= 1 << 16 {
        candle_core::utils::barrier_pool().execute_chunked(n_items, run);
    } else {
        run(0..n_items);
    }
    // SAFETY: the items cover every panel, and every row tile stores all its rows' columns
    // inside `C`, so all `m * n` values are written.
    unsafe { c.set_len(m * n) };
    Ok(c)
}

/// One tile on `simd`.
///
/// # Safety
/// `simd` must be available; the tile's rows and columns must lie inside the buffer
/// behind `out` and belong to the caller.
unsafe fn tile(simd: QSimd, t: &Tile<'_>, out: OutPtr) {
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's guarantees.
        QSimd::Vnni => unsafe { vnni::tile(t, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's guarantees; `qgemm` checked that AVX2 takes the weights.
        QSimd::Avx2 => unsafe { avx2::tile(t, out) },
        // SAFETY: the caller's guarantees.
        _ => unsafe { portable_tile(t, out) },
    }
}

/// [`tile`] one product at a time, with the VNNI kernel's float operations in its order.
///
/// # Safety
/// As for [`tile`].
unsafe fn portable_tile(t: &Tile<'_>, out: OutPtr) {
    let (k, g) = (t.k, t.group);
    let (blocks, groups) = (k / BLOCK, k / g);
    for r in 0..t.rows {
        let row = t.i + r;
        let q = &t.a.q[row * k..(row + 1) * k];
        for h in 0..t.width {
            let (panel, col) = (t.panels[h], t.col + h * NR);
            if col >= t.n {
                continue;
            }
            let mut f = [0f32; NR];
            for gi in 0..groups {
                let mut acc = [0i32; NR];
                for p in (gi * g..(gi + 1) * g).step_by(QUAD) {
                    let u = &panel.u[p / QUAD * NR..(p / QUAD + 1) * NR];
                    for (c, u) in u.iter().enumerate() {
                        for (u, &x) in u.to_le_bytes().into_iter().zip(&q[p..p + QUAD]) {
                            acc[c] += u as i32 * x as i32;
                        }
                    }
                }
                let dx = t.a.d[row * blocks + gi * g / BLOCK];
                let sx = t.a.s[row * groups + gi];
                for (c, f) in f.iter_mut().enumerate() {
                    let (a, m) = (panel.scale[gi * NR + c], panel.offset[gi * NR + c]);
                    *f = (acc[c] as f32).mul_add(a * dx, *f);
                    *f = m.mul_add(sx, *f);
                }
            }
            let cols = NR.min(t.n - col);
            // SAFETY: the caller's guarantee on `C`'s tile.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(out.get().add(row * t.n + col), cols) };
            for (c, d) in dst.iter_mut().enumerate() {
                *d = f[c] + t.bias[col + c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::{dequantized_product, random};
    use crate::kernels::{for_qtensor, KQuantPanels};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};
    use std::sync::Arc;

    const FORMATS: [GgmlDType; 5] = [
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q6K,
    ];

    fn panels(q: &Arc<QTensor>) -> Box<dyn IntPanels> {
        use crate::kernels::{BlockQ4_1, BlockQ5_0, BlockQ8_0, QMatrix};
        match q.dtype() {
            GgmlDType::Q4_1 => Box::new(QMatrix::<BlockQ4_1>::from_qtensor(q).unwrap()),
            GgmlDType::Q5_0 => Box::new(QMatrix::<BlockQ5_0>::from_qtensor(q).unwrap()),
            GgmlDType::Q8_0 => Box::new(QMatrix::<BlockQ8_0>::from_qtensor(q).unwrap()),
            _ => Box::new(KQuantPanels::new(q.clone()).unwrap().unwrap()),
        }
    }

    /// Every unpacked panel, `a u + m`, is candle's dequantized matrix (to f32 rounding).
    #[test]
    fn panels_unpack_to_the_dequantized_weights() {
        let (rows, cols) = (21, 512);
        let w = Tensor::from_vec(random(rows * cols, 3), (rows, cols), &Device::Cpu).unwrap();
        for dtype in FORMATS {
            let q = Arc::new(QTensor::quantize(&w, dtype).unwrap());
            let want = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let p = panels(&q);
            let g = p.group();
            let mut panel = IntPanel::new(cols, g);
            for j in 0..rows.div_ceil(NR) {
                p.unpack(j, &mut panel);
                for c in 0..NR.min(rows - j * NR) {
                    for (k, want) in want[j * NR + c].iter().enumerate() {
                        let u = panel.u[(k / QUAD) * NR + c].to_le_bytes()[k % QUAD];
                        let (a, m) = (panel.scale[k / g * NR + c], panel.offset[k / g * NR + c]);
                        let got = a * u as f32 + m;
                        assert!(
                            (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                            "{dtype:?} [{}, {k}]: {got} vs {want}",
                            j * NR + c
                        );
                    }
                }
            }
        }
    }

    /// Against the f32 product of the dequantized weights: no further than the 8-bit
    /// rounding of the activations allows, and as close as the decode kernels (which
    /// quantize activations the same way) or candle's ggml kernels; the VNNI kernel equals
    /// the portable one bit for bit, on ragged shapes.
    #[test]
    fn matches_the_dequantized_product_on_every_kernel() {
        for (rows, cols, m) in [(37, 512, 45), (16, 256, 1), (70, 768, 13)] {
            let w = Tensor::from_vec(random(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
            let x = random(m * cols, 2);
            let bias = random(rows, 5);
            for dtype in FORMATS {
                let q = Arc::new(QTensor::quantize(&w, dtype).unwrap());
                let want = dequantized_product(&q, &x, m);
                let p = panels(&q);
                let got = qgemm(QSimd::Portable, &x, m, p.as_ref(), Some(&bias)).unwrap();
                let worst = got
                    .iter()
                    .zip(&want)
                    .enumerate()
                    .map(|(i, (g, w))| (g - bias[i % rows] - w).abs())
                    .fold(0f32, f32::max);
                // Half an 8-bit step (|x|max / 254) per value times |w| <= 1, over `cols`
                // values, a tenth of the worst case.
                assert!(
                    worst < cols as f32 / 254.0 * 0.1,
                    "{dtype:?} {rows}x{cols}, {m} rows: {worst}"
                );
                if let Some(decode) = for_qtensor(&q).unwrap() {
                    let ours: Vec<f32> = (0..m)
                        .flat_map(|i| decode.matmul(&x[i * cols..(i + 1) * cols]).unwrap())
                        .collect();
                    let theirs = ours
                        .iter()
                        .zip(&want)
                        .map(|(g, w)| (g - w).abs())
                        .fold(0f32, f32::max);
                    assert!(
                        worst <= theirs * 1.5 + 1e-5,
                        "{dtype:?}: {worst} vs {theirs}"
                    );
                }
                for simd in [QSimd::Avx2, QSimd::Vnni] {
                    if !simd.available() {
                        continue;
                    }
                    let fast = qgemm(simd, &x, m, p.as_ref(), Some(&bias));
                    if !simd.takes(p.as_ref()) {
                        assert!(fast.is_err(), "{simd:?} {dtype:?}");
                        continue;
                    }
                    assert_eq!(
                        fast.unwrap(),
                        got,
                        "{simd:?} {dtype:?} {rows}x{cols}, {m} rows"
                    );
                }
            }
        }
    }

    /// Every weight byte at its format's largest value, by a full-scale row: the sums the
    /// AVX2 kernel keeps in 16 bits reach their bound and must not wrap.
    #[test]
    fn largest_weights_by_full_scale_activations() {
        struct Constant {
            byte: u8,
            group: usize,
        }
        impl IntPanels for Constant {
            fn dims(&self) -> (usize, usize) {
                (NR, 256)
            }
            fn group(&self) -> usize {
                self.group
            }
            fn max_unsigned(&self) -> u8 {
                self.byte
            }
            fn unpack(&self, _: usize, panel: &mut IntPanel) {
                let words = vec![u32::from_le_bytes([self.byte; 4]); 256 / QUAD];
                for c in 0..NR {
                    panel.put(c, 0, &words);
                    for g in 0..256 / self.group {
                        panel.put_group(c, g, (1.0, 0.0));
                    }
                }
            }
        }
        for (byte, group) in [(15, 32), (31, 32), (63, 16), (127, 32), (255, 32)] {
            let w = Constant { byte, group };
            for sign in [1.0f32, -1.0] {
                // Every activation quantizes to +-127 with a scale of 1.
                let x = vec![127.0 * sign; 2 * 256];
                let want = 127.0 * sign * byte as f32 * 256.0;
                let got = qgemm(QSimd::Portable, &x, 2, &w, None).unwrap();
                assert!(got.iter().all(|&v| v == want), "{byte}: {got:?}");
                for simd in [QSimd::Avx2, QSimd::Vnni] {
                    if simd.available() && simd.takes(&w) {
                        let fast = qgemm(simd, &x, 2, &w, None).unwrap();
                        assert_eq!(fast, got, "{simd:?}, bytes of {byte}");
                    }
                }
            }
        }
    }

    #[test]
    fn zero_rows_and_blocks_and_bad_sizes() {
        let (rows, cols) = (5, 64);
        let w = Tensor::from_vec(random(rows * cols, 4), (rows, cols), &Device::Cpu).unwrap();
        let q = Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap());
        let p = panels(&q);
        let bias = [1.0, 2.0, 3.0, 4.0, 5.0];
        // An all-zero row gives the bias; no rows, nothing.
        let got = qgemm(QSimd::Portable, &[0.0; 64], 1, p.as_ref(), Some(&bias)).unwrap();
        assert_eq!(got, bias);
        assert!(qgemm(QSimd::Portable, &[], 0, p.as_ref(), None)
            .unwrap()
            .is_empty());
        assert!(qgemm(QSimd::Portable, &[0.0; 63], 1, p.as_ref(), None).is_err());
        assert!(qgemm(QSimd::Portable, &[0.0; 64], 1, p.as_ref(), Some(&bias[..4])).is_err());
    }
}
