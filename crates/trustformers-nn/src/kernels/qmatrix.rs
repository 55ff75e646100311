//! [`QMatrix`]: a ggml-format weight matrix (Q4_1, Q5_0, Q8_0) read in place from candle's
//! storage, multiplied by the mat-vec kernels for one or a few rows and by the integer GEMM
//! (`qgemm`) for a prompt.

use super::{
    gemm, has_avx2, matvec_many, qgemm, BlockQ4_1, BlockQ5_0, BlockQ8, BlockQ8_0, QuantMatmul,
    WeightBlock, BLOCK, GEMM_ROWS,
};
use candle_core::quantized::{GgmlDType, QTensor};
use std::borrow::Cow;
use std::sync::Arc;
use trustformers_core::{Error, Result};

/// A `[rows, cols]` matrix of `B` blocks.
pub struct QMatrix<B: WeightBlock> {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) blocks: Blocks<B>,
    pub(super) avx2: bool,
}

/// A matrix's blocks: its own copy, or candle's storage of a quantized tensor read in place
/// (our block types have ggml's layout), so a loaded weight is not held twice.
pub(super) enum Blocks<B> {
    Owned(Vec<B>),
    Shared {
        /// Keeps the storage `ptr` points into alive; candle never changes it.
        _owner: Arc<QTensor>,
        ptr: std::ptr::NonNull<B>,
        len: usize,
    },
}

// SAFETY: `Shared` only reads immutable data owned by a `QTensor` (itself `Send + Sync`)
// that it keeps alive; `B` is `Send + Sync`.
unsafe impl<B: Send + Sync> Send for Blocks<B> {}
// SAFETY: as above: nothing is ever written through `ptr`.
unsafe impl<B: Send + Sync> Sync for Blocks<B> {}

impl<B> std::ops::Deref for Blocks<B> {
    type Target = [B];

    fn deref(&self) -> &[B] {
        match self {
            Self::Owned(v) => v,
            // SAFETY: `from_qtensor` checked that `ptr` is aligned for `B` and starts `len`
            // initialised blocks of the storage `_owner` keeps alive and never mutates.
            Self::Shared { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }
}

impl<B: WeightBlock> QMatrix<B> {
    /// A `[rows, cols]` tensor of this format. A tensor in CPU memory is read where it lies
    /// (sharing `q`); others are copied.
    pub fn from_qtensor(q: &Arc<QTensor>) -> Result<Self> {
        if q.dtype() != B::DTYPE {
            return Err(Error::InvalidInput(format!(
                "expected a {:?} tensor, got {:?}",
                B::DTYPE,
                q.dtype()
            )));
        }
        let (rows, cols) = q.shape().dims2()?;
        let data = q.data()?;
        let len = Self::block_count(data.len(), rows, cols)?;
        let shared = match &data {
            Cow::Borrowed(bytes)
                if std::mem::size_of::<B>() == B::BYTES
                    && bytes.as_ptr().align_offset(std::mem::align_of::<B>()) == 0 =>
            {
                std::ptr::NonNull::new(bytes.as_ptr().cast_mut().cast::<B>())
            }
            _ => None,
        };
        let blocks = match shared {
            Some(ptr) => Blocks::Shared {
                _owner: q.clone(),
                ptr,
                len,
            },
            None => Blocks::Owned(data.chunks_exact(B::BYTES).map(B::read).collect()),
        };
        Ok(Self {
            rows,
            cols,
            blocks,
            avx2: has_avx2(),
        })
    }

    /// Reads `rows * cols / 32` blocks as a GGUF file stores them.
    pub fn from_bytes(bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        let n_blocks = Self::block_count(bytes.len(), rows, cols)?;
        let mut blocks = Vec::with_capacity(n_blocks);
        blocks.extend(bytes.chunks_exact(B::BYTES).map(B::read));
        Ok(Self {
            rows,
            cols,
            blocks: Blocks::Owned(blocks),
            avx2: has_avx2(),
        })
    }

    /// The number of blocks in a `[rows, cols]` matrix stored in `bytes` bytes.
    fn block_count(bytes: usize, rows: usize, cols: usize) -> Result<usize> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(Error::InvalidInput(format!(
                "a {:?} row must be a multiple of {BLOCK} values, got {cols}",
                B::DTYPE
            )));
        }
        rows.checked_mul(cols / BLOCK)
            .filter(|n| n.checked_mul(B::BYTES) == Some(bytes))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{bytes} bytes of {:?} data do not hold a [{rows}, {cols}] matrix",
                    B::DTYPE
                ))
            })
    }

    pub(super) fn dot(&self, w: &[B], x: &[BlockQ8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is only set when the CPU reports AVX2, FMA and F16C.
            return unsafe { B::dot_avx2(w, x) };
        }
        B::dot(w, x)
    }
}

impl<B: WeightBlock> QuantMatmul for QMatrix<B> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        if r >= self.rows || out.len() != self.cols {
            return Err(Error::InvalidInput(format!(
                "row {r} of a [{}, {}] matrix into {} values",
                self.rows,
                self.cols,
                out.len()
            )));
        }
        let per_row = self.cols / BLOCK;
        let mut values = [0f32; BLOCK];
        for (block, out) in self.blocks[r * per_row..(r + 1) * per_row]
            .iter()
            .zip(out.chunks_exact_mut(BLOCK))
        {
            block.dequantize(&mut values);
            out.copy_from_slice(&values);
        }
        Ok(())
    }

    fn dot_rows(&self, xq: &[BlockQ8], n: usize, first: usize, out: &mut [f32]) {
        let per_row = self.cols / BLOCK;
        for (i, row_out) in out.chunks_exact_mut(n.max(1)).enumerate() {
            let w = &self.blocks[(first + i) * per_row..(first + i + 1) * per_row];
            let x = |t: usize| &xq[t * per_row..(t + 1) * per_row];
            // Four activation rows at a time share each unpacked weight block.
            #[allow(unused_mut)]
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            if self.avx2 {
                for out4 in row_out.chunks_exact_mut(4) {
                    let t = done;
                    // SAFETY: `avx2` is only set when the CPU reports AVX2, FMA and F16C.
                    let v = unsafe { B::dot4_avx2(w, [x(t), x(t + 1), x(t + 2), x(t + 3)]) };
                    out4.copy_from_slice(&v);
                    done += 4;
                }
            }
            for (t, o) in row_out.iter_mut().enumerate().skip(done) {
                *o = self.dot(w, x(t));
            }
        }
    }

    fn matmul(&self, x: &[f32]) -> Result<Vec<f32>> {
        if self.cols == 0 || !x.len().is_multiple_of(self.cols) {
            return Err(Error::InvalidInput(format!(
                "{} activation values are not a whole number of rows of {}",
                x.len(),
                self.cols
            )));
        }
        let n = x.len() / self.cols;
        if n >= GEMM_ROWS {
            return match qgemm::kernel_for(self) {
                Some(simd) => qgemm::qgemm(simd, x, n, self, None),
                None => gemm::gemm(x, n, self, None),
            };
        }
        let me: &dyn QuantMatmul = self;
        matvec_many(&[me], x)?
            .pop()
            .ok_or_else(|| Error::InvalidInput("no matrix was multiplied".into()))
    }
}

/// Our kernel for `q` when we have one for its format and shape.
pub fn for_qtensor(q: &Arc<QTensor>) -> Result<Option<Box<dyn QuantMatmul>>> {
    if q.shape().rank() != 2 {
        return Ok(None);
    }
    Ok(match q.dtype() {
        GgmlDType::Q4_1 => Some(Box::new(QMatrix::<BlockQ4_1>::from_qtensor(q)?)),
        GgmlDType::Q5_0 => Some(Box::new(QMatrix::<BlockQ5_0>::from_qtensor(q)?)),
        GgmlDType::Q8_0 => Some(Box::new(QMatrix::<BlockQ8_0>::from_qtensor(q)?)),
        _ => None,
    })
}
