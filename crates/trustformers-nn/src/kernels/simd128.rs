//! WebAssembly SIMD128 helpers for the integer block dot products of the quantized kernels.

use std::arch::wasm32::*;

/// The 16 signed bytes at `p` (no alignment needed).
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[inline(always)]
pub unsafe fn load(p: *const i8) -> v128 {
    // SAFETY: the caller's guarantee; wasm loads need no alignment.
    unsafe { v128_load(p.cast()) }
}

/// Four partial sums of `a[i] * b[i]` over 16 signed bytes each.
#[inline(always)]
pub fn dot_i8x16(a: v128, b: v128) -> v128 {
    i32x4_add(
        i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b)),
        i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b)),
    )
}

/// The sum of four i32 lanes (exact: block sums are far from overflowing).
#[inline(always)]
pub fn hsum_i32x4(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v)
        + i32x4_extract_lane::<1>(v)
        + i32x4_extract_lane::<2>(v)
        + i32x4_extract_lane::<3>(v)
}
