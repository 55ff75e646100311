//! The integer prefill's AVX2 micro-kernel (see the parent module), for weights whose
//! bytes stay below 128: `vpmaddubsw` multiplies unsigned weight bytes by signed activation
//! bytes into pairs of 16-bit sums, which cannot saturate (`2 * 127 * 127 < 2^15`), and
//! `vpmaddwd` by ones adds the pairs into the same 32-bit sums `vpdpbusd` makes. Small
//! weights let several depth quads' pair sums add up in 16 bits first (eight for 4-bit
//! formats: `8 * 2 * 15 * 127 < 2^15`), so `vpmaddwd` runs once per run of them. Up to four
//! rows by one panel (two registers of eight columns). And the activation quantizer.

use super::{OutPtr, Tile, BLOCK, NR, QUAD};
use std::arch::x86_64::*;

/// Rows of `A` per AVX2 tile.
pub(super) const MR_AVX2: usize = 4;

/// Depth quads whose 16-bit pair sums can add up without overflow for weight bytes up to
/// `max`, at most `most`: each quad adds at most `2 * max * 127`.
pub(super) fn quads_in_16_bits(max: u8, most: usize) -> usize {
    let per_quad = 2 * 127 * usize::from(max.max(1));
    (i16::MAX as usize / per_quad).clamp(1, most)
}

/// One tile (rows as `t` says, each of its panels in turn), stored into `C`.
///
/// # Safety
/// AVX2 and FMA must be available; every weight byte of the tile's panels is below 128;
/// the tile's rows and columns lie inside the buffer behind `out` and belong to the
/// caller.
pub(super) unsafe fn tile(t: &Tile<'_>, out: OutPtr) {
    for h in 0..t.width {
        // SAFETY: the caller's guarantees, for `R = t.rows`.
        unsafe {
            match (t.rows, t.group) {
                (1, 16) => kernel::<1, 16>(t, h, out),
                (2, 16) => kernel::<2, 16>(t, h, out),
                (3, 16) => kernel::<3, 16>(t, h, out),
                (_, 16) => kernel::<MR_AVX2, 16>(t, h, out),
                (1, _) => kernel::<1, 32>(t, h, out),
                (2, _) => kernel::<2, 32>(t, h, out),
                (3, _) => kernel::<3, 32>(t, h, out),
                _ => kernel::<MR_AVX2, 32>(t, h, out),
            }
        }
    }
}

/// `R` rows by panel `h` of the tile, in groups of `G` depth steps.
///
/// # Safety
/// As for [`tile`], with `t.rows = R`, `t.group = G`.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize, const G: usize>(t: &Tile<'_>, h: usize, out: OutPtr) {
    let col = t.col + h * NR;
    if col >= t.n {
        return;
    }
    let k = t.k;
    let (blocks, groups) = (k / BLOCK, k / G);
    let (q, d, s) = t.activations(G);
    let panel = t.panels[h];
    let (u, scale, offset) = (
        panel.u.as_ptr(),
        panel.scale.as_ptr(),
        panel.offset.as_ptr(),
    );
    let ones = _mm256_set1_epi16(1);
    let run = t.run;
    debug_assert!(run >= 1 && (G / QUAD).is_multiple_of(run));
    let mut f = [[_mm256_setzero_ps(); 2]; R];
    // SAFETY (whole body): rows `t.i .. t.i + R` of the activations hold `k` bytes, `k /
    // 32` scales and `k / G` sums each; the panel `k / 4 * NR` words and `k / G * NR`
    // scales and offsets; the caller guarantees `C`'s extent.
    unsafe {
        for g in 0..groups {
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            for p0 in (g * G..(g + 1) * G).step_by(QUAD * run) {
                let mut pairs = [[_mm256_setzero_si256(); 2]; R];
                for p in (p0..p0 + QUAD * run).step_by(QUAD) {
                    let w = u.add(p / QUAD * NR);
                    let wv = [
                        _mm256_loadu_si256(w.cast()),
                        _mm256_loadu_si256(w.add(8).cast()),
                    ];
                    for (r, pairs) in pairs.iter_mut().enumerate() {
                        let x = _mm256_set1_epi32(q.add(r * k + p).cast::<i32>().read_unaligned());
                        for (sum, w) in pairs.iter_mut().zip(&wv) {
                            *sum = _mm256_add_epi16(*sum, _mm256_maddubs_epi16(*w, x));
                        }
                    }
                }
                for (acc, pairs) in acc.iter_mut().zip(&pairs) {
                    for (acc, sum) in acc.iter_mut().zip(pairs) {
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(*sum, ones));
                    }
                }
            }
            let a = [
                _mm256_loadu_ps(scale.add(g * NR)),
                _mm256_loadu_ps(scale.add(g * NR + 8)),
            ];
            let m = [
                _mm256_loadu_ps(offset.add(g * NR)),
                _mm256_loadu_ps(offset.add(g * NR + 8)),
            ];
            for (r, (f, acc)) in f.iter_mut().zip(&acc).enumerate() {
                let dx = _mm256_set1_ps(*d.add(r * blocks + g * G / BLOCK));
                let sx = _mm256_set1_ps(*s.add(r * groups + g));
                for e in 0..2 {
                    let sum = _mm256_cvtepi32_ps(acc[e]);
                    f[e] = _mm256_fmadd_ps(sum, _mm256_mul_ps(a[e], dx), f[e]);
                    f[e] = _mm256_fmadd_ps(m[e], sx, f[e]);
                }
            }
        }
        let cols = NR.min(t.n - col);
        let bias = [
            _mm256_loadu_ps(t.bias.as_ptr().add(col)),
            _mm256_loadu_ps(t.bias.as_ptr().add(col + 8)),
        ];
        for (r, f) in f.iter().enumerate() {
            let mut row = [0f32; NR];
            _mm256_storeu_ps(row.as_mut_ptr(), _mm256_add_ps(f[0], bias[0]));
            _mm256_storeu_ps(row.as_mut_ptr().add(8), _mm256_add_ps(f[1], bias[1]));
            let dst = out.get().add((t.i + r) * t.n + col);
            std::ptr::copy_nonoverlapping(row.as_ptr(), dst, cols);
        }
    }
}

/// [`super::quantize_block`] eight values at a time: the same bytes, scale and sums for
/// finite values (`cvtps` rounds to nearest, ties to even, as `round_ties_even`).
///
/// # Safety
/// AVX2 must be available; `x` and `q` hold 32 values, `sums` one or two.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_block(x: &[f32], q: &mut [i8], sums: &mut [f32]) -> f32 {
    debug_assert!(x.len() >= BLOCK && q.len() >= BLOCK && matches!(sums.len(), 1 | 2));
    // SAFETY (whole body): loads and stores stay inside the 32 values of `x` and `q`.
    unsafe {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
        let sign = _mm256_set1_ps(-0.0);
        let abs = v.map(|v| _mm256_andnot_ps(sign, v));
        let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)));
        let d = amax / 127.0;
        let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
        let ints = v.map(|v| {
            let r = _mm256_cvtps_epi32(_mm256_mul_ps(v, inv));
            _mm256_min_epi32(_mm256_max_epi32(r, lo), hi)
        });
        // 32 lanes to 32 bytes: pack pairs to 16 bits, then to 8, then undo the lane
        // interleaving of the packs.
        let words = [
            _mm256_packs_epi32(ints[0], ints[1]),
            _mm256_packs_epi32(ints[2], ints[3]),
        ];
        let bytes = _mm256_packs_epi16(words[0], words[1]);
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(q.as_mut_ptr().cast(), bytes);
        let sum8 = |a: __m256i, b: __m256i| {
            let v = _mm256_add_epi32(a, b);
            let v = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
            _mm_cvtsi128_si32(_mm_add_epi32(v, _mm_shuffle_epi32::<1>(v)))
        };
        if let [s0, s1] = sums {
            *s0 = d * sum8(ints[0], ints[1]) as f32;
            *s1 = d * sum8(ints[2], ints[3]) as f32;
        } else if let [s] = sums {
            let all = sum8(ints[0], ints[1]) + sum8(ints[2], ints[3]);
            *s = d * all as f32;
        }
        d
    }
}
