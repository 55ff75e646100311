//! The integer prefill's AVX-512 VNNI micro-kernel (see the parent module): up to six rows
//! by two panels, per depth quad one load per panel, one broadcast per row and a
//! `vpdpbusd` per row and panel; per group, two fused multiply-adds per row and panel.
//! And the activation quantizer.

use super::{OutPtr, Tile, BLOCK, MR, NR, QUAD};
use std::arch::x86_64::*;

/// One tile (rows and width as `t` says), stored into `C`.
///
/// # Safety
/// AVX-512F, BW and VNNI must be available; the tile's rows and columns lie inside the
/// buffer behind `out` and belong to the caller.
pub(super) unsafe fn tile(t: &Tile<'_>, out: OutPtr) {
    // SAFETY: the caller's guarantees, for `R = t.rows`, `W = t.width`.
    unsafe {
        macro_rules! run {
            ($($r:literal)*) => {
                match (t.rows, t.width, t.group) {
                    $(($r, 2, 16) => kernel::<$r, 2, 16>(t, out),)*
                    $(($r, 2, _) => kernel::<$r, 2, 32>(t, out),)*
                    $(($r, _, 16) => kernel::<$r, 1, 16>(t, out),)*
                    $(($r, _, _) => kernel::<$r, 1, 32>(t, out),)*
                    (_, 2, 16) => kernel::<MR, 2, 16>(t, out),
                    (_, 2, _) => kernel::<MR, 2, 32>(t, out),
                    (_, _, 16) => kernel::<MR, 1, 16>(t, out),
                    _ => kernel::<MR, 1, 32>(t, out),
                }
            };
        }
        run!(1 2 3 4 5)
    }
}

/// `R` rows by `W` panels in groups of `G` depth steps.
///
/// # Safety
/// As for [`tile`], with `t.rows = R`, `t.width = W`, `t.group = G`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const R: usize, const W: usize, const G: usize>(t: &Tile<'_>, out: OutPtr) {
    let k = t.k;
    let (blocks, groups) = (k / BLOCK, k / G);
    let (q, d, s) = t.activations(G);
    let u: [*const u32; W] = std::array::from_fn(|h| t.panels[h].u.as_ptr());
    let scale: [*const f32; W] = std::array::from_fn(|h| t.panels[h].scale.as_ptr());
    let offset: [*const f32; W] = std::array::from_fn(|h| t.panels[h].offset.as_ptr());
    let mut f = [[_mm512_setzero_ps(); W]; R];
    // SAFETY (whole body): rows `t.i .. t.i + R` of the activations hold `k` bytes, `k /
    // 32` scales and `k / G` sums each; each panel `k * NR` bytes and `k / G * NR` scales
    // and offsets; the caller guarantees `C`'s extent.
    unsafe {
        for g in 0..groups {
            let mut acc = [[_mm512_setzero_si512(); W]; R];
            for p in (g * G..(g + 1) * G).step_by(QUAD) {
                let wv: [__m512i; W] =
                    std::array::from_fn(|h| _mm512_loadu_si512(u[h].add(p / QUAD * NR).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(q.add(r * k + p).cast::<i32>().read_unaligned());
                    for (acc, w) in acc.iter_mut().zip(&wv) {
                        *acc = _mm512_dpbusd_epi32(*acc, *w, x);
                    }
                }
            }
            let a: [__m512; W] = std::array::from_fn(|h| _mm512_loadu_ps(scale[h].add(g * NR)));
            let m: [__m512; W] = std::array::from_fn(|h| _mm512_loadu_ps(offset[h].add(g * NR)));
            for (r, (f, acc)) in f.iter_mut().zip(&acc).enumerate() {
                let dx = _mm512_set1_ps(*d.add(r * blocks + g * G / BLOCK));
                let sx = _mm512_set1_ps(*s.add(r * groups + g));
                for h in 0..W {
                    let sum = _mm512_cvtepi32_ps(acc[h]);
                    f[h] = _mm512_fmadd_ps(sum, _mm512_mul_ps(a[h], dx), f[h]);
                    f[h] = _mm512_fmadd_ps(m[h], sx, f[h]);
                }
            }
        }
        for h in 0..W {
            let col = t.col + h * NR;
            if col >= t.n {
                continue;
            }
            let cols = NR.min(t.n - col);
            let mask: __mmask16 = if cols == NR { !0 } else { (1u16 << cols) - 1 };
            let bias = _mm512_loadu_ps(t.bias.as_ptr().add(col));
            for (r, f) in f.iter().enumerate() {
                let dst = out.get().add((t.i + r) * t.n + col);
                _mm512_mask_storeu_ps(dst, mask, _mm512_add_ps(f[h], bias));
            }
        }
    }
}

/// [`super::quantize_block`] sixteen values at a time: the same bytes, scale and sums for
/// finite values (`cvtps` rounds to nearest, ties to even, as `round_ties_even`).
///
/// # Safety
/// AVX-512F and BW must be available; `x` and `q` hold 32 values, `sums` one or two.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_block(x: &[f32], q: &mut [i8], sums: &mut [f32]) -> f32 {
    debug_assert!(x.len() >= BLOCK && q.len() >= BLOCK && matches!(sums.len(), 1 | 2));
    // SAFETY (whole body): loads and stores stay inside the 32 values of `x` and `q`.
    unsafe {
        let v = [
            _mm512_loadu_ps(x.as_ptr()),
            _mm512_loadu_ps(x.as_ptr().add(16)),
        ];
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
        let d = amax / 127.0;
        let inv = _mm512_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let (lo, hi) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127));
        let ints = v.map(|v| {
            let r = _mm512_cvtps_epi32(_mm512_mul_ps(v, inv));
            _mm512_min_epi32(_mm512_max_epi32(r, lo), hi)
        });
        _mm_storeu_si128(q.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(ints[0]));
        _mm_storeu_si128(q.as_mut_ptr().add(16).cast(), _mm512_cvtepi32_epi8(ints[1]));
        if let [s0, s1] = sums {
            *s0 = d * _mm512_reduce_add_epi32(ints[0]) as f32;
            *s1 = d * _mm512_reduce_add_epi32(ints[1]) as f32;
        } else if let [s] = sums {
            *s = d * _mm512_reduce_add_epi32(_mm512_add_epi32(ints[0], ints[1])) as f32;
        }
        d
    }
}
