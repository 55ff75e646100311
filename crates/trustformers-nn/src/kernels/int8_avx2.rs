//! The int8 kernel in AVX2 (see the parent module): `vpmaddubsw` with the sign trick.

use super::{MR, MR_VNNI, NR, QUAD};
use std::arch::x86_64::*;

/// `rows` rows of signed `a` by one panel.
///
/// # Safety
/// AVX2 must be available; `a` holds `rows * kq` bytes, `b` `kq * NR`.
pub(super) unsafe fn tile(
    rows: usize,
    kq: usize,
    a: &[u8],
    b: &[i8],
    acc: &mut [[[i32; NR]; 2]; MR_VNNI],
) {
    debug_assert!(a.len() >= rows * kq && b.len() >= kq * NR);
    let (a, b) = (a.as_ptr(), b.as_ptr());
    // SAFETY: the caller's guarantees, for `R = rows`.
    unsafe {
        match rows {
            1 => kernel::<1>(kq, a, b, acc),
            2 => kernel::<2>(kq, a, b, acc),
            3 => kernel::<3>(kq, a, b, acc),
            _ => kernel::<MR>(kq, a, b, acc),
        }
    }
}

/// `R` rows by one panel (two registers of eight columns): per depth quad, each row's
/// four activations broadcast, their magnitudes multiplied by the weights carrying their
/// signs (`|x| * sign(x) w = x w`, pairs at most 2 * 127 * 127, no saturation).
///
/// # Safety
/// As for [`tile`] with `rows = R`.
#[target_feature(enable = "avx2")]
unsafe fn kernel<const R: usize>(
    kq: usize,
    a: *const u8,
    b: *const i8,
    out: &mut [[[i32; NR]; 2]; MR_VNNI],
) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    // SAFETY (whole body): the caller guarantees the extents of `a` and `b`.
    unsafe {
        for p in (0..kq).step_by(QUAD) {
            let lo = _mm256_loadu_si256(b.add(p * NR).cast());
            let hi = _mm256_loadu_si256(b.add(p * NR + NR / 2 * QUAD).cast());
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_epi32(a.add(r * kq + p).cast::<i32>().read_unaligned());
                let ax = _mm256_abs_epi8(x);
                for (v, w) in row.iter_mut().zip([lo, hi]) {
                    let pairs = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, x));
                    *v = _mm256_add_epi32(*v, _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        for (row, dst) in acc.iter().zip(out.iter_mut()) {
            _mm256_storeu_si256(dst[0].as_mut_ptr().cast(), row[0]);
            _mm256_storeu_si256(dst[0].as_mut_ptr().add(NR / 2).cast(), row[1]);
        }
    }
}
