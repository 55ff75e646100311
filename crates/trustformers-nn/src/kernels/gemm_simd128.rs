//! The GEMM micro-kernel in WebAssembly's SIMD128 (see the parent module).

use super::{Init, NR};

/// [`super::kernel`] in WebAssembly's SIMD128: two rows at a time, four accumulators of
/// four lanes each (eight, with the panel's four vectors and the broadcast, stay within the
/// 16 vector registers the engines map SIMD128 to), a multiply and an add per step (SIMD128
/// has no fused multiply-add).
///
/// # Safety
/// As for [`super::kernel`].
#[inline(always)]
pub(super) unsafe fn kernel<const R: usize>(
    kc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    let mut r = 0;
    while r < R {
        let a = &a[r * lda..];
        // SAFETY: rows `r..` of `c` and `a` are within the caller's extents.
        unsafe {
            let c = c.add(r * ldc);
            if R - r >= 2 {
                rows::<2>(kc, a, lda, b, c, ldc, init);
            } else {
                rows::<1>(kc, a, lda, b, c, ldc, init);
            }
        }
        r += 2;
    }
}

/// [`kernel`] for `R2` (one or two) rows.
///
/// # Safety
/// As for [`super::kernel`] with `R = R2`.
#[inline(always)]
unsafe fn rows<const R2: usize>(
    kc: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    init: Init<'_>,
) {
    use std::arch::wasm32::*;
    const L: usize = NR / 4;
    let mut acc = [[f32x4_splat(0.0); L]; R2];
    // SAFETY (whole body): the caller guarantees NR values in each of `R2` rows of `c`, `a`
    // holds `(R2 - 1) * lda + kc` values and `b` `kc * NR`; wasm loads and stores need no
    // alignment.
    unsafe {
        for (r, row) in acc.iter_mut().enumerate() {
            for (l, v) in row.iter_mut().enumerate() {
                *v = match init {
                    Init::Bias(Some(bias)) => v128_load(bias.as_ptr().add(4 * l).cast()),
                    Init::Bias(None) => f32x4_splat(0.0),
                    Init::Load => v128_load(c.add(r * ldc + 4 * l).cast()),
                };
            }
        }
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for p in 0..kc {
            let bp = b.add(p * NR);
            let bv: [v128; L] = std::array::from_fn(|l| v128_load(bp.add(4 * l).cast()));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = f32x4_splat(*a.add(r * lda + p));
                for (v, &w) in row.iter_mut().zip(&bv) {
                    *v = f32x4_add(*v, f32x4_mul(av, w));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (l, v) in row.iter().enumerate() {
                v128_store(c.add(r * ldc + 4 * l).cast(), *v);
            }
        }
    }
}
