//! CPU kernels for ggml weight formats behind [`Linear`](crate::Linear): Q4_1 and Q5_0, which
//! candle only has scalar code for, and Q8_0 (large output heads).
//!
//! They compute what llama.cpp computes: activations are quantized per 32-value block to 8
//! bits ([`BlockQ8`]), each weight block's dot product is summed in integers and scaled once.
//! An AVX2 path is chosen at run time; the portable path computes the same integer sums, so
//! both give the same result up to float rounding. Output rows are split over candle's
//! barrier pool, the same threads candle's own quantized kernels use, so the two never
//! compete for cores.

mod dequant;
pub mod fused;
pub mod gemm;
pub mod gemv;
pub mod int8;
mod q4_1;
mod q5_0;
mod q8_0;
pub mod qgemm;
mod qmatrix;
pub mod sdpa;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd128;

use candle_core::quantized::GgmlDType;
use std::sync::{Mutex, PoisonError};
use trustformers_core::{Error, Result};

pub use dequant::KQuantPanels;
pub use q4_1::BlockQ4_1;
pub use q5_0::BlockQ5_0;
pub use q8_0::BlockQ8_0;
pub use qmatrix::{for_qtensor, QMatrix};

/// Runs `f` on `xs`'s values as one row-major f32 slice: borrowed from the tensor's storage
/// when it is contiguous f32 on the CPU (the common case, and no copy), converted and
/// copied otherwise.
pub fn with_f32<R>(xs: &candle_core::Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    use candle_core::{CpuStorage, Storage};
    if xs.dtype() == candle_core::DType::F32 {
        let (storage, layout) = xs.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            if let Some(values) = values.get(start..end) {
                return f(values);
            }
        }
    }
    let values: Vec<f32> = xs
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    f(&values)
}

/// Values per block, for every format here.
pub const BLOCK: usize = 32;
/// Fewest output rows per parallel work item.
const ROWS_PER_TASK: usize = 16;
/// Work items per thread a matrix is cut into at most (more only cost locking: a 262k-row
/// output head would otherwise be 16k items).
const TASKS_PER_THREAD: usize = 32;

/// Threads of candle's barrier pool, which runs our kernels: the pool's own count, fixed
/// when it starts. (`candle_core::utils::get_num_threads` reads the environment on every
/// call, and without `RAYON_NUM_THREADS` parses `/proc/cpuinfo`: too slow per matmul.)
pub(crate) fn pool_threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// Output rows per work item for a matrix of `rows` rows.
fn rows_per_task(rows: usize) -> usize {
    let threads = pool_threads();
    ROWS_PER_TASK.max(rows.div_ceil(threads * TASKS_PER_THREAD))
}
/// Panels per work item when `panels` output panels are split over `threads` threads in
/// items of at most `most`: as equal as can be, and as many items as a multiple of twice the
/// threads, so that each thread gets the same share (72 panels on two threads are eight
/// items of nine, not four of sixteen and one of eight).
pub(crate) fn panels_per_item(panels: usize, threads: usize, most: usize) -> usize {
    let items = 2 * threads * panels.div_ceil(2 * threads * most);
    panels.div_ceil(items).max(1)
}

/// `bias` (`n` values; none is zeros) padded with zeros to `len >= n` values.
pub(crate) fn padded_bias(bias: Option<&[f32]>, n: usize, len: usize) -> Result<Vec<f32>> {
    let mut padded = vec![0f32; len.max(n)];
    if let Some(b) = bias {
        if b.len() != n {
            return Err(Error::InvalidInput(format!(
                "bias has {} values for {n} outputs",
                b.len()
            )));
        }
        padded[..n].copy_from_slice(b);
    }
    Ok(padded)
}

/// From this many activation rows (prefill) a matmul unpacks the weights a panel at a time
/// for the integer [`qgemm`](qgemm::qgemm) (or, on CPUs without its kernel, dequantizes them
/// into the f32 [`gemm`](gemm::gemm)) instead of running one dot product per weight row.
pub const GEMM_ROWS: usize = 32;

/// One activation block: `x ≈ d * qs`, and `s = d * Σ qs` (ggml's `block_q8_1`, with `d` and
/// `s` kept in f32).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ8 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; BLOCK],
}

impl BlockQ8 {
    /// ggml's `quantize_row_q8_1` for one block of 32 values.
    pub fn quantize(x: &[f32]) -> Self {
        let amax = x.iter().fold(0f32, |a, &v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; BLOCK];
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        Self {
            d,
            s: d * sum as f32,
            qs,
        }
    }
}

/// A ggml weight block format with an integer dot product against [`BlockQ8`].
pub trait WeightBlock: Copy + Send + Sync + 'static {
    const DTYPE: GgmlDType;
    /// Bytes of one block in a GGUF file.
    const BYTES: usize;
    /// The largest byte [`Self::unpack`] writes.
    const MAX_UNSIGNED: u8;
    /// Reads one block from its `BYTES` bytes.
    fn read(bytes: &[u8]) -> Self;
    /// The block's 32 values (ggml's `dequantize_row_*`).
    fn dequantize(&self, out: &mut [f32; BLOCK]);
    /// The block as unsigned bytes `u` (value `j` in byte `j % 4` of word `j / 4`,
    /// little-endian) and `(a, m)` with value `j` = `a * u[j] + m`, for the integer
    /// prefill ([`qgemm`]).
    fn unpack(&self, u: &mut [u32; BLOCK / 4]) -> (f32, f32);
    /// The same values with AVX2/FMA/F16C (prefill dequantizes every weight once per
    /// matmul).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dequantize_avx2(&self, out: &mut [f32; BLOCK]) {
        self.dequantize(out)
    }
    /// Σ over blocks of (weights · activations), portable code.
    fn dot(w: &[Self], x: &[BlockQ8]) -> f32;
    /// The same with AVX2/FMA/F16C.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2(w: &[Self], x: &[BlockQ8]) -> f32;
    /// [`Self::dot_avx2`] against four activation rows, for formats that can unpack each
    /// weight block once for all four (prefill). Gives the same four values.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot4_avx2(w: &[Self], x: [&[BlockQ8]; 4]) -> [f32; 4] {
        // SAFETY: the caller guarantees the CPU features.
        unsafe { x.map(|x| Self::dot_avx2(w, x)) }
    }
}

/// A matrix multiplication against quantized weights.
pub trait QuantMatmul: Send + Sync {
    /// `[rows, cols]` of the weight (a linear layer's `[out, in]`).
    fn dims(&self) -> (usize, usize);
    /// `y = x W^T` for `x` of `n * cols` values (row-major); returns `n * rows` values.
    fn matmul(&self, x: &[f32]) -> Result<Vec<f32>>;
    /// Row `r` of `W`, dequantized into `out` (`cols` values): an embedding lookup.
    fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()>;
    /// `out[i * n + t] = W[first + i] · x_t` for `n` activation rows already quantized to
    /// `cols / 32` blocks each (`xq`, row after row): [`matvec_many`]'s and
    /// [`QuantMatmul::matmul`]'s work item, `[weight rows, n]`. `first + out.len() / n`
    /// must not pass `rows`.
    fn dot_rows(&self, xq: &[BlockQ8], n: usize, first: usize, out: &mut [f32]);
}

/// `x W_i^T` for a few activation rows `x` (fewer than [`GEMM_ROWS`]: a decode step, of one
/// sequence or a batch) and several matrices of its width (q/k/v, gate/up projections): `x`
/// is quantized once and the rows of all the matrices are split over the pool in one
/// dispatch, instead of one per matrix. Each result is `[rows of x, rows of W_i]`, the
/// values [`QuantMatmul::matmul`] gives.
pub fn matvec_many(ms: &[&dyn QuantMatmul], x: &[f32]) -> Result<Vec<Vec<f32>>> {
    let cols = ms.first().map_or(0, |m| m.dims().1);
    if let Some(m) = ms.iter().find(|m| {
        m.dims().1 != cols
            || cols == 0
            || !x.len().is_multiple_of(cols)
            || !cols.is_multiple_of(BLOCK)
    }) {
        return Err(Error::InvalidInput(format!(
            "{} activation values for a [{}, {}] matrix",
            x.len(),
            m.dims().0,
            m.dims().1
        )));
    }
    let n = x.len() / cols;
    let xq: Vec<BlockQ8> = x.chunks_exact(BLOCK).map(BlockQ8::quantize).collect();
    // Computed as [rows of W_i, n] so each task owns a contiguous slice.
    let mut outs: Vec<Vec<f32>> = ms.iter().map(|m| vec![0f32; m.dims().0 * n]).collect();
    // Tasks of rows of one matrix each.
    let tasks: Vec<(usize, usize, Mutex<&mut [f32]>)> = outs
        .iter_mut()
        .enumerate()
        .flat_map(|(i, out)| {
            let per_task = rows_per_task(out.len() / n.max(1));
            out.chunks_mut(per_task * n)
                .enumerate()
                .map(move |(t, chunk)| (i, t * per_task, Mutex::new(chunk)))
        })
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
        for (m, first, chunk) in &tasks[range] {
            let mut chunk = chunk.lock().unwrap_or_else(PoisonError::into_inner);
            ms[*m].dot_rows(&xq, n, *first, &mut chunk);
        }
    });
    drop(tasks);
    Ok(outs.into_iter().map(|out| transpose(out, n)).collect())
}

/// Each matrix times its own activation row (one token's inputs of different layers, as a
/// mixture of experts' down projections): every row is quantized once and the rows of all
/// the matrices are split over the pool in one dispatch. Result `i` is `W_i x_i`.
pub fn matvec_each(pairs: &[(&dyn QuantMatmul, &[f32])]) -> Result<Vec<Vec<f32>>> {
    if let Some((m, x)) = pairs.iter().find(|(m, x)| {
        let cols = m.dims().1;
        cols == 0 || x.len() != cols || !cols.is_multiple_of(BLOCK)
    }) {
        return Err(Error::InvalidInput(format!(
            "{} activation values for one row of a [{}, {}] matrix",
            x.len(),
            m.dims().0,
            m.dims().1
        )));
    }
    let xqs: Vec<Vec<BlockQ8>> = pairs
        .iter()
        .map(|(_, x)| x.chunks_exact(BLOCK).map(BlockQ8::quantize).collect())
        .collect();
    let mut outs: Vec<Vec<f32>> = pairs.iter().map(|(m, _)| vec![0f32; m.dims().0]).collect();
    let tasks: Vec<(usize, usize, Mutex<&mut [f32]>)> = outs
        .iter_mut()
        .enumerate()
        .flat_map(|(i, out)| {
            let per_task = rows_per_task(out.len());
            out.chunks_mut(per_task)
                .enumerate()
                .map(move |(t, chunk)| (i, t * per_task, Mutex::new(chunk)))
        })
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
        for (m, first, chunk) in &tasks[range] {
            let mut chunk = chunk.lock().unwrap_or_else(PoisonError::into_inner);
            pairs[*m].0.dot_rows(&xqs[*m], 1, *first, &mut chunk);
        }
    });
    drop(tasks);
    Ok(outs)
}

/// `[rows, n]` values as `[n, rows]`.
fn transpose(values: Vec<f32>, n: usize) -> Vec<f32> {
    if n <= 1 {
        return values;
    }
    let rows = values.len() / n;
    let mut out = vec![0f32; values.len()];
    for (r, row) in values.chunks_exact(n).enumerate() {
        for (t, &v) in row.iter().enumerate() {
            out[t * rows + r] = v;
        }
    }
    out
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One f16 to f32 with F16C (the `half` crate would detect the feature on every call).
///
/// # Safety
/// The CPU must support F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c")]
unsafe fn f16_to_f32(x: half::f16) -> f32 {
    use std::arch::x86_64::*;
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x.to_bits() as i32)))
}

/// Σ w·x of 32 signed bytes each, as eight i32 lane sums. `maddubs` wants u8 · i8, so it
/// multiplies |w| by x carrying w's sign.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8(
    w: std::arch::x86_64::__m256i,
    x: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_madd_epi16(
        _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)),
        _mm256_set1_epi16(1),
    )
}

/// `out[j] = d * v[j] + m` (multiplied, then added, as the portable dequantizers round) for
/// the 32 bytes `v`, signed or unsigned; `d` is `d[0]` for the first 16 values and `d[1]` for
/// the last 16.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_scaled(
    v: std::arch::x86_64::__m256i,
    signed: bool,
    d: [f32; 2],
    m: Option<f32>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let out = &mut out[..BLOCK];
    let halves = [_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)];
    for (i, bytes) in halves
        .into_iter()
        .flat_map(|h| [h, _mm_srli_si128::<8>(h)])
        .enumerate()
    {
        let ints = if signed {
            _mm256_cvtepi8_epi32(bytes)
        } else {
            _mm256_cvtepu8_epi32(bytes)
        };
        let mut values = _mm256_mul_ps(_mm256_set1_ps(d[i / 2]), _mm256_cvtepi32_ps(ints));
        if let Some(m) = m {
            values = _mm256_add_ps(values, _mm256_set1_ps(m));
        }
        // SAFETY: `out` holds 32 values; `8 * i + 8 <= 32`.
        unsafe { _mm256_storeu_ps(out[8 * i..].as_mut_ptr(), values) };
    }
}

/// Horizontal sum of 8 lanes.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn hsum(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::qmatrix::Blocks;
    use super::*;
    use candle_core::quantized::{QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};
    use std::sync::Arc;

    #[test]
    fn with_f32_reads_any_layout_in_row_major_order() {
        let t = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((4, 6))
            .unwrap();
        let cases = [
            // Contiguous (borrowed), a row range at an offset (borrowed), a transpose and a
            // column range (copied), and f16 (converted).
            t.clone(),
            t.narrow(0, 1, 2).unwrap(),
            t.t().unwrap(),
            t.narrow(1, 2, 3).unwrap(),
            t.to_dtype(candle_core::DType::F16).unwrap(),
        ];
        for case in cases {
            let want: Vec<f32> = case
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = with_f32(&case, |v| Ok(v.to_vec())).unwrap();
            assert_eq!(got, want, "{:?}", case.layout());
        }
    }

    /// The largest absolute difference between two tensors of one shape.
    pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        trustformers_core::numeric::max_abs_diff(a, b).unwrap()
    }

    /// `x W^T` in f32 for `n` rows `x` and the dequantized `q`, row-major.
    pub(crate) fn dequantized_product(q: &QTensor, x: &[f32], n: usize) -> Vec<f32> {
        let wd = q.dequantize(&Device::Cpu).unwrap();
        let xt = Tensor::from_vec(x.to_vec(), (n, x.len() / n), &Device::Cpu).unwrap();
        xt.matmul(&wd.t().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// Values in [-1, 1) from a small LCG: deterministic, no dependency.
    pub(crate) fn random(n: usize, seed: u64) -> Vec<f32> {
        // A small LCG: deterministic, no dependency.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The kernel against dequantize + f32 matmul (no further from it than candle's ggml
    /// kernels, which quantize activations the same way), and the portable path against the
    /// SIMD one.
    fn check<B: WeightBlock>() {
        // Six activation rows: one group of four through `dot4_avx2`, two through `dot`.
        let (rows, cols, n) = (70, 256, 6);
        let w = Tensor::from_vec(random(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
        let q = Arc::new(QTensor::quantize(&w, B::DTYPE).unwrap());
        let m = QMatrix::<B>::from_qtensor(&q).unwrap();
        assert!(matches!(m.blocks, Blocks::Shared { .. }), "read in place");
        let x = random(n * cols, 2);
        let got = m.matmul(&x).unwrap();

        let want = dequantized_product(&q, &x, n);
        let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).unwrap();
        let worst = |v: &[f32]| {
            v.iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        };
        let candle: Vec<f32> = QMatMul::from_qtensor(QTensor::quantize(&w, B::DTYPE).unwrap())
            .unwrap()
            .forward(&xt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (ours, ggml) = (worst(&got), worst(&candle));
        // Only the 8-bit activation rounding separates either from f32: at most half a step
        // (|x|max / 254) per value times |w| <= 1, summed over `cols` values.
        assert!(
            ours < cols as f32 / 254.0 * 0.1,
            "{:?}: max diff {ours}",
            B::DTYPE
        );
        assert!(
            ours <= ggml * 1.1 + 1e-6,
            "{:?}: {ours} vs candle's {ggml}",
            B::DTYPE
        );

        let per_row = cols / BLOCK;
        let xq: Vec<BlockQ8> = x.chunks_exact(BLOCK).map(BlockQ8::quantize).collect();
        for t in 0..n {
            for r in 0..rows {
                let w = &m.blocks[r * per_row..(r + 1) * per_row];
                let xs = &xq[t * per_row..(t + 1) * per_row];
                let (a, b) = (m.dot(w, xs), B::dot(w, xs));
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
                assert_eq!(got[t * rows + r], a);
            }
        }
    }

    /// One dispatch over several matrices (of different formats and heights), with one input
    /// or one each, gives each matrix's own mat-vec exactly.
    #[test]
    fn matvec_many_equals_one_matvec_per_matrix() {
        let cols = 96;
        let matrix = |rows: usize, dtype: GgmlDType, seed: u64| {
            let w =
                Tensor::from_vec(random(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
            for_qtensor(&Arc::new(QTensor::quantize(&w, dtype).unwrap()))
                .unwrap()
                .unwrap()
        };
        let ms = [
            matrix(37, GgmlDType::Q4_1, 1),
            matrix(5, GgmlDType::Q8_0, 2),
            matrix(64, GgmlDType::Q5_0, 3),
        ];
        let x = random(cols, 4);
        let refs: Vec<&dyn QuantMatmul> = ms.iter().map(|m| m.as_ref()).collect();
        let got = matvec_many(&refs, &x).unwrap();
        for (m, got) in ms.iter().zip(&got) {
            assert_eq!(got, &m.matmul(&x).unwrap());
        }
        assert!(matvec_many(&refs, &x[..64]).is_err());
        // Each matrix on its own input, in one dispatch: the same as one mat-vec each.
        let xs: Vec<Vec<f32>> = (0..ms.len()).map(|i| random(cols, 10 + i as u64)).collect();
        let pairs: Vec<(&dyn QuantMatmul, &[f32])> = refs
            .iter()
            .zip(&xs)
            .map(|(m, x)| (*m, x.as_slice()))
            .collect();
        for ((m, x), got) in ms.iter().zip(&xs).zip(matvec_each(&pairs).unwrap()) {
            assert_eq!(got, m.matmul(x).unwrap());
        }
        assert!(matvec_each(&[(refs[0], &x[..64])]).is_err());
    }

    #[test]
    fn q4_1_matches_the_dequantized_matmul() {
        check::<BlockQ4_1>();
    }

    #[test]
    fn q5_0_matches_the_dequantized_matmul() {
        check::<BlockQ5_0>();
    }

    #[test]
    fn q8_0_matches_the_dequantized_matmul() {
        check::<BlockQ8_0>();
    }

    /// An embedding lookup's rows equal candle's dequantization of the table.
    #[test]
    fn dequantized_rows_equal_candles() {
        let (rows, cols) = (5, 96);
        let w = Tensor::from_vec(random(rows * cols, 9), (rows, cols), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let want = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let m = for_qtensor(&Arc::new(q)).unwrap().unwrap();
            let mut row = vec![0f32; cols];
            for (r, want) in want.iter().enumerate() {
                m.dequantize_row(r, &mut row).unwrap();
                assert_eq!(&row, want, "{dtype:?} row {r}");
            }
        }
    }

    /// From `GEMM_ROWS` activation rows the matmul unpacks panels, through `Linear` as the
    /// models call it, for every format we read: the integer kernel's values exactly where
    /// this CPU runs it, otherwise the dequantized weights times the activations in f32.
    #[test]
    fn prefill_rows_take_the_panel_kernels() {
        use crate::Linear;
        use trustformers_core::Weight;
        let (rows, cols, n) = (37, 512, GEMM_ROWS + 5);
        let w = Tensor::from_vec(random(rows * cols, 3), (rows, cols), &Device::Cpu).unwrap();
        let xv = random(n * cols, 4);
        let x = Tensor::from_vec(xv.clone(), (n, cols), &Device::Cpu).unwrap();
        let bias = Tensor::from_vec(random(rows, 5), rows, &Device::Cpu).unwrap();
        let bv: Vec<f32> = bias.to_vec1().unwrap();
        for dtype in [
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let q = std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap());
            let layer = Linear::from_weight(Weight::Quantized(q.clone()), Some(bias.clone()));
            let got = layer.unwrap().forward(&x).unwrap();
            let panels: Box<dyn qgemm::IntPanels> = match dtype {
                GgmlDType::Q4_1 => Box::new(QMatrix::<BlockQ4_1>::from_qtensor(&q).unwrap()),
                GgmlDType::Q5_0 => Box::new(QMatrix::<BlockQ5_0>::from_qtensor(&q).unwrap()),
                GgmlDType::Q8_0 => Box::new(QMatrix::<BlockQ8_0>::from_qtensor(&q).unwrap()),
                _ => Box::new(KQuantPanels::new(q.clone()).unwrap().unwrap()),
            };
            if let Some(simd) = qgemm::kernel_for(panels.as_ref()) {
                let want = qgemm::qgemm(simd, &xv, n, panels.as_ref(), Some(&bv)).unwrap();
                let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(got, want, "{dtype:?}");
                continue;
            }
            let want = x
                .matmul(&q.dequantize(&Device::Cpu).unwrap().t().unwrap())
                .unwrap()
                .broadcast_add(&bias)
                .unwrap();
            let diff = max_abs_diff(&got, &want);
            // f32 sums in another order, not 8-bit activations.
            assert!(diff < 1e-4, "{dtype:?}: {diff}");
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        type M = QMatrix<BlockQ4_1>;
        assert!(M::from_bytes(&[0; 20], 1, 33).is_err());
        assert!(M::from_bytes(&[0; 19], 1, 32).is_err());
        assert!(M::from_bytes(&[0; 20], usize::MAX, 32).is_err());
        let m = M::from_bytes(&[0; 40], 2, 32).unwrap();
        assert!(m.matmul(&[0.0; 33]).is_err());
        assert!(m.dequantize_row(2, &mut [0.0; 32]).is_err());
        assert!(m.dequantize_row(1, &mut [0.0; 31]).is_err());
        assert_eq!(m.matmul(&[1.0; 64]).unwrap(), vec![0.0; 4]);
        assert!(QMatrix::<BlockQ5_0>::from_bytes(&[0; 23], 1, 32).is_err());
    }
}
