//! `Y = X W^T` for a few rows of `X` against a dense f32 `W` `[n, k]` kept row-major (a head
//! tied to the embedding table, which the lookup needs in that layout): each output is the
//! dot product of a contiguous row of `W` with the inputs, so `W` streams from memory once,
//! in order, split by rows over candle's barrier pool. Decoding is bound by reading `W`;
//! this reads it at the speed of memory where a GEMM would go through its packing.

use super::gemm::{use_avx2, OutPtr};
use trustformers_core::{Error, Result};

/// Most rows of `X` this is used for (beyond that the GEMM's register blocking wins).
pub const MAX_ROWS: usize = 4;
/// Rows of `W` per work item.
const ROWS_PER_TASK: usize = 256;

/// `x` `[m, k]` row-major times `w` `[n, k]` row-major, transposed: `[m, n]`.
pub fn gemv_rows(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Result<Vec<f32>> {
    if m.checked_mul(k) != Some(x.len()) || n.checked_mul(k) != Some(w.len()) {
        return Err(Error::InvalidInput(format!(
            "gemv: {} input values for {m} rows and {} weight values for [{n}, {k}]",
            x.len(),
            w.len()
        )));
    }
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    let out = OutPtr(y.spare_capacity_mut().as_mut_ptr().cast::<f32>());
    let tasks = n.div_ceil(ROWS_PER_TASK);
    let avx2 = use_avx2();
    candle_core::utils::barrier_pool().execute_chunked(tasks, |range| {
        for t in range {
            let rows = t * ROWS_PER_TASK..n.min((t + 1) * ROWS_PER_TASK);
            for j in rows {
                let wj = &w[j * k..(j + 1) * k];
                for i in 0..m {
                    let v = dot_f32(avx2, &x[i * k..(i + 1) * k], wj);
                    // SAFETY: `i * n + j < m * n`, the capacity of `y`; each (i, j) is
                    // written by the one task that owns row `j`, and `y` outlives the pool
                    // call.
                    unsafe { out.get().add(i * n + j).write(v) };
                }
            }
        }
    });
    // SAFETY: the tasks cover rows 0..n, and each writes all `m` outputs of its rows.
    unsafe { y.set_len(m * n) };
    Ok(y)
}

/// `a . b` (equal lengths).
fn dot_f32(avx2: bool, a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only true when the CPU has AVX2 and FMA.
        return unsafe { dot_avx2(a, b) };
    }
    let _ = avx2;
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] = super::fused::fmadd(x[l], y[l], lanes[l]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut p = 0;
    // SAFETY (whole body): every load reads `p .. p + 8 <= n` values of both slices.
    unsafe {
        while p + 32 <= n {
            for (u, acc) in acc.iter_mut().enumerate() {
                let (x, y) = (
                    _mm256_loadu_ps(pa.add(p + 8 * u)),
                    _mm256_loadu_ps(pb.add(p + 8 * u)),
                );
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            p += 32;
        }
        while p + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(p)),
                _mm256_loadu_ps(pb.add(p)),
                acc[0],
            );
            p += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        let tail: f32 = (p..n).map(|i| *pa.add(i) * *pb.add(i)).sum();
        lanes.iter().sum::<f32>() + tail
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn equals_the_plain_sums() {
        let (m, n, k) = (3, 600, 77);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 11 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let y = gemv_rows(&x, m, &w, n, k).unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| x[i * k + p] * w[j * k + p]).sum();
                assert!((y[i * n + j] - want).abs() < 1e-4, "({i}, {j})");
            }
        }
        assert!(gemv_rows(&x, m, &w, n, k + 1).is_err());
    }
}
