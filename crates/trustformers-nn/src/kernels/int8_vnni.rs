//! The int8 kernels in AVX-512 (see the parent module): VNNI tiles of up to 12 rows by two
//! panels, the activation quantizer, and the epilogue AMX shares.

use super::{Epilogue, OutPtr, RowQuant, Tile, MR_VNNI, NR, QUAD};
use std::arch::x86_64::*;

/// `rows` rows of offset `a` by `width` (1 or 2) panels from panel `j`, stored into `C`
/// from row `i`.
///
/// # Safety
/// AVX-512F, BW and VNNI must be available; `a` holds `rows * kq` bytes, `b`
/// `width * kq * NR`; `C`'s rows `i .. i + rows`, columns of panels `j .. j + width`
/// lie inside the buffer behind `out` and belong to the caller.
pub(super) unsafe fn tile(tile: Tile<'_>, epi: &Epilogue<'_>, out: OutPtr) {
    let Tile {
        rows,
        width,
        kq,
        a,
        b,
        i,
        j,
    } = tile;
    debug_assert!(a.len() >= rows * kq && b.len() >= width * kq * NR);
    let (a, b) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the caller's guarantees, for `R = rows` and `W = width`.
    unsafe {
        macro_rules! run {
            ($($r:literal)*) => {
                match (rows, width) {
                    $(($r, 2) => kernel::<$r, 2>(kq, a, b, i, j, epi, out),)*
                    $(($r, _) => kernel::<$r, 1>(kq, a, b, i, j, epi, out),)*
                    (_, 2) => kernel::<MR_VNNI, 2>(kq, a, b, i, j, epi, out),
                    _ => kernel::<MR_VNNI, 1>(kq, a, b, i, j, epi, out),
                }
            };
        }
        run!(1 2 3 4 5 6 7 8 9 10 11)
    }
}

/// [`super::quantize_activations`] as unsigned bytes into `dst` (at least `row.len()`
/// bytes), sixteen values at a time, with the same rounding (to nearest, ties to even);
/// `None` for a row holding an infinity or NaN (the portable path handles it).
///
/// # Safety
/// AVX-512F and BW must be available.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_unsigned(row: &[f32], dst: &mut [u8]) -> Option<RowQuant> {
    debug_assert!(dst.len() >= row.len());
    let k = row.len();
    let tail = k % NR;
    let tail_mask: __mmask16 = ((1u32 << tail) - 1) as u16;
    // SAFETY (whole body): loads and stores stay inside `row` and `dst` (the last,
    // partial group through masks).
    unsafe {
        let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut unordered: __mmask16 = 0;
        let mut p = 0;
        while p < k {
            let mask = if p + NR <= k { !0 } else { tail_mask };
            let v = _mm512_maskz_loadu_ps(mask, row.as_ptr().add(p));
            lo = _mm512_min_ps(lo, v);
            hi = _mm512_max_ps(hi, v);
            unordered |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            p += NR;
        }
        if unordered != 0 {
            return None;
        }
        let q = RowQuant::of_range(_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi))?;
        let (inv, zero) = (_mm512_set1_ps(q.inv), _mm512_set1_epi32(q.zero));
        let (floor, ceil) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
        let mut p = 0;
        while p < k {
            let mask = if p + NR <= k { !0 } else { tail_mask };
            let v = _mm512_maskz_loadu_ps(mask, row.as_ptr().add(p));
            let r = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zero);
            let r = _mm512_min_epi32(_mm512_max_epi32(r, floor), ceil);
            _mm512_mask_cvtepi32_storeu_epi8(dst.as_mut_ptr().add(p).cast(), mask, r);
            p += NR;
        }
        Some(q)
    }
}

/// `R` rows by `W` panels: per depth quad, one load per panel and one broadcast per
/// row, `R * W` dot products of four byte pairs per lane; then [`Epilogue::store`]'s
/// arithmetic sixteen columns at a time.
///
/// # Safety
/// As for [`tile`] with `rows = R`, `width = W`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const R: usize, const W: usize>(
    kq: usize,
    a: *const u8,
    b: *const i8,
    i: usize,
    j: usize,
    epi: &Epilogue<'_>,
    out: OutPtr,
) {
    let mut acc = [[_mm512_setzero_si512(); W]; R];
    // SAFETY (whole body): the caller guarantees the extents of `a`, `b` and `C`; the
    // epilogue's columns are padded to whole panels.
    unsafe {
        for p in (0..kq).step_by(QUAD) {
            let mut bv = [_mm512_setzero_si512(); W];
            for (h, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(b.add(h * kq * NR + p * NR).cast());
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(a.add(r * kq + p).cast::<i32>().read_unaligned());
                for (v, w) in row.iter_mut().zip(&bv) {
                    *v = _mm512_dpbusd_epi32(*v, av, *w);
                }
            }
        }
        (0..W).for_each(|h| store_panel(|r| acc[r][h], R, i, (j + h) * NR, epi, out));
    }
}

/// Stores `rows` rows of `C` from row `i`, at the sixteen (or, at the matrix's edge,
/// fewer) columns from `col`, from their sums (`sums_of(r)` for row `i + r`), with
/// [`Epilogue::store`]'s arithmetic; nothing for a `col` past the matrix.
///
/// # Safety
/// AVX-512F must be available; the rows' columns lie inside the buffer behind `out` and
/// belong to the caller.
#[inline(always)]
pub(super) unsafe fn store_panel(
    sums_of: impl Fn(usize) -> __m512i,
    rows: usize,
    i: usize,
    col: usize,
    epi: &Epilogue<'_>,
    out: OutPtr,
) {
    if col >= epi.n {
        return;
    }
    let cols = NR.min(epi.n - col);
    let mask: __mmask16 = if cols == NR { !0 } else { (1u16 << cols) - 1 };
    // SAFETY (whole body): the epilogue's columns are padded to whole panels; the
    // caller guarantees `C`'s extent.
    unsafe {
        let sums = _mm512_loadu_si512(epi.sums.as_ptr().add(col).cast());
        let scales = _mm512_loadu_ps(epi.col_scales.as_ptr().add(col));
        let bias = _mm512_loadu_ps(epi.bias.as_ptr().add(col));
        for r in 0..rows {
            let zero = _mm512_set1_epi32(epi.row_zeros[i + r]);
            let exact = _mm512_sub_epi32(sums_of(r), _mm512_mullo_epi32(zero, sums));
            let scale = _mm512_mul_ps(_mm512_set1_ps(epi.row_scales[i + r]), scales);
            let y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(exact), scale), bias);
            _mm512_mask_storeu_ps(out.get().add((i + r) * epi.n + col), mask, y);
        }
    }
}
