//! The GEMM micro-kernels in AVX-512 (see the parent module): 12 rows of two panels (32
//! columns, 24 accumulators) and 12 rows of one.

use super::{Init, NR};

/// Rows of `A` per AVX-512 tile of two panels (24 accumulators, 14 loads per 24 FMAs).
pub(super) const MR_PAIR: usize = 12;

/// [`kernel_pair`] for `rows` (at most [`MR_PAIR`]) rows.
///
/// # Safety
/// As for [`kernel_pair`] with `R = rows`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn pair_kernel(
    rows: usize,
    kc: usize,
    a: &[f32],
    lda: usize,
    b: [&[f32]; 2],
    c: *mut f32,
    ldc: usize,
    init: [Init<'_>; 2],
) {
    debug_assert!(a.len() >= (rows - 1) * lda + kc && b.iter().all(|p| p.len() >= kc * NR));
    let (a, b) = (a.as_ptr(), [b[0].as_ptr(), b[1].as_ptr()]);
    // SAFETY: the caller's guarantees, for `R = rows`.
    unsafe {
        match rows {
            1 => kernel_pair::<1>(kc, a, lda, b, c, ldc, init),
            2 => kernel_pair::<2>(kc, a, lda, b, c, ldc, init),
            3 => kernel_pair::<3>(kc, a, lda, b, c, ldc, init),
            4 => kernel_pair::<4>(kc, a, lda, b, c, ldc, init),
            5 => kernel_pair::<5>(kc, a, lda, b, c, ldc, init),
            6 => kernel_pair::<6>(kc, a, lda, b, c, ldc, init),
            7 => kernel_pair::<7>(kc, a, lda, b, c, ldc, init),
            8 => kernel_pair::<8>(kc, a, lda, b, c, ldc, init),
            9 => kernel_pair::<9>(kc, a, lda, b, c, ldc, init),
            10 => kernel_pair::<10>(kc, a, lda, b, c, ldc, init),
            11 => kernel_pair::<11>(kc, a, lda, b, c, ldc, init),
            _ => kernel_pair::<MR_PAIR>(kc, a, lda, b, c, ldc, init),
        }
    }
}

/// `R` rows of two adjacent panels (32 columns of `C`), one 16-wide register per row and
/// panel, every value summed over the depth in order.
///
/// # Safety
/// The CPU must support AVX-512F; `c` must hold `R` rows of `2 * NR` values at stride `ldc`;
/// `a` `(R - 1) * lda + kc` values; each of `b` `kc * NR`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn kernel_pair<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: [*const f32; 2],
    c: *mut f32,
    ldc: usize,
    init: [Init<'_>; 2],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // SAFETY (whole body): the caller guarantees the extents of `a`, `b` and `c`.
    unsafe {
        for (h, init) in init.iter().enumerate() {
            match init {
                Init::Bias(Some(bias)) => {
                    let v = _mm512_loadu_ps(bias.as_ptr());
                    for row in acc.iter_mut() {
                        row[h] = v;
                    }
                }
                Init::Bias(None) => {}
                Init::Load => {
                    for (r, row) in acc.iter_mut().enumerate() {
                        row[h] = _mm512_loadu_ps(c.add(r * ldc + h * NR));
                    }
                }
            }
        }
        for p in 0..kc {
            let b0 = _mm512_loadu_ps(b[0].add(p * NR));
            let b1 = _mm512_loadu_ps(b[1].add(p * NR));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * ldc), row[0]);
            _mm512_storeu_ps(c.add(r * ldc + NR), row[1]);
        }
    }
}

/// [`super::kernel_avx2`] with one 16-wide register per row: the same fused multiply-adds per value
/// in the same order (a single row's depth split in four chains, as there).
///
/// # Safety
/// The CPU must support AVX-512F; pointers as for [`kernel`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn kernel<const R: usize>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); R];
    // SAFETY (whole body): the caller guarantees the extents of `a`, `b` and `c`.
    unsafe {
        match init {
            Init::Bias(Some(bias)) => {
                let b0 = _mm512_loadu_ps(bias.as_ptr());
                for v in acc.iter_mut() {
                    *v = b0;
                }
            }
            Init::Bias(None) => {}
            Init::Load => {
                for (r, v) in acc.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(c.add(r * ldc));
                }
            }
        }
        let mut p = 0;
        if R == 1 {
            let mut more = [_mm512_setzero_ps(); 3];
            while p + 4 <= kc {
                for (u, m) in more.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(p + u + 1));
                    *m = _mm512_fmadd_ps(av, _mm512_loadu_ps(b.add((p + u + 1) * NR)), *m);
                }
                let av = _mm512_set1_ps(*a.add(p));
                acc[0] = _mm512_fmadd_ps(av, _mm512_loadu_ps(b.add(p * NR)), acc[0]);
                p += 4;
            }
            for m in more {
                acc[0] = _mm512_add_ps(acc[0], m);
            }
        }
        for p in p..kc {
            let bv = _mm512_loadu_ps(b.add(p * NR));
            for (r, v) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                *v = _mm512_fmadd_ps(av, bv, *v);
            }
        }
        for (r, v) in acc.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * ldc), *v);
        }
    }
}
