//! Our kernels as differentiable candle ops, for the training path.
//!
//! - Softmax over the last dimension as one op: one pass per row forward (`exp(x - max) /
//!   sum`, as torch computes it) and one backward (`y * (g - sum(g * y))`), where the
//!   composed ops take five and eight passes over the attention scores, each allocating a
//!   tensor of their size.
//! - `x W^T` for a frozen `W` (LoRA's base layers): our packed GEMM forward, and only the
//!   input's gradient backward (candle's matmul would compute the weight's too).

use crate::kernels::gemm::{self, PackedF32, Panels};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use trustformers_core::Result;

/// Rows per work item on the thread pool.
const ROWS_PER_TASK: usize = 64;

/// Runs `f(first_row, rows)` over `out` in chunks of whole rows of `n` values on candle's
/// thread pool.
pub(crate) fn par_rows(out: &mut [f32], n: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let tasks: Vec<(usize, Mutex<&mut [f32]>)> = out
        .chunks_mut(ROWS_PER_TASK * n.max(1))
        .enumerate()
        .map(|(i, chunk)| (i * ROWS_PER_TASK, Mutex::new(chunk)))
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
        for (first, chunk) in &tasks[range] {
            let mut chunk = chunk.lock().unwrap_or_else(PoisonError::into_inner);
            f(*first, &mut chunk);
        }
    });
}

fn values<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("softmax: f32 only"),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("softmax: contiguous tensors only"),
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax_last_dim_with_grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = l.shape().dims().last().copied().unwrap_or(1);
        let mut out = values(s, l)?.to_vec();
        par_rows(&mut out, n, |_, rows| {
            for row in rows.chunks_exact_mut(n.max(1)) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0f32;
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                for v in row.iter_mut() {
                    *v /= sum;
                }
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            res.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?,
        ))
    }
}

/// `y * (g - sum(g * y))` per row, for the softmax output `y` and its gradient `g`.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax_last_dim_grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!("softmax gradient: shapes differ");
        }
        let n = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        let (y, g) = (values(s1, l1)?, values(s2, l2)?);
        let mut out = g.to_vec();
        par_rows(&mut out, n, |first, rows| {
            for (i, row) in rows.chunks_exact_mut(n).enumerate() {
                let y = &y[(first + i) * n..][..n];
                let dot: f32 = row.iter().zip(y).map(|(g, y)| g * y).sum();
                for (g, &y) in row.iter_mut().zip(y) {
                    *g = y * (*g - dot);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `x W^T` for a frozen `W`: forward on our packed GEMM, backward `dX = dY W` only.
struct FrozenMatmul {
    w: Tensor,
    packed: Arc<PackedF32>,
}

impl candle_core::CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen_matmul"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (m, k) = l.shape().dims2()?;
        let (n, pk) = self.packed.dims();
        let x = match (s, l.contiguous_offsets()) {
            (candle_core::CpuStorage::F32(v), Some((a, b))) if pk == k => &v[a..b],
            _ => candle_core::bail!("frozen_matmul: contiguous f32 [m, {pk}] input expected"),
        };
        let y = gemm::gemm(x, m, self.packed.as_ref(), None).map_err(candle_core::Error::wrap)?;
        Ok((candle_core::CpuStorage::F32(y), (m, n).into()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

/// `xs W^T` for a frozen `W` (packed as `packed`), differentiable in `xs` only.
pub(crate) fn frozen_matmul(xs: &Tensor, w: &Tensor, packed: Arc<PackedF32>) -> Result<Tensor> {
    let (n, k) = packed.dims();
    if xs.dims().last() != Some(&k) {
        return Err(trustformers_core::Error::ShapeMismatch {
            name: "linear input".into(),
            expected: vec![k],
            actual: xs.dims().to_vec(),
        });
    }
    let (in_dims, _) = xs.dims().split_at(xs.rank().saturating_sub(1));
    let flat = xs.reshape((xs.elem_count() / k.max(1), k))?.contiguous()?;
    let op = FrozenMatmul {
        w: w.contiguous()?,
        packed,
    };
    let mut out_dims = in_dims.to_vec();
    out_dims.push(n);
    Ok(flat.apply_op1(op)?.reshape(out_dims)?)
}

/// Softmax over the last dimension, differentiable: one fused op for f32 on the CPU,
/// candle's composed ops otherwise.
pub fn softmax_last_dim(xs: &Tensor) -> candle_core::Result<Tensor> {
    if xs.dtype() == DType::F32 && xs.device().is_cpu() && xs.rank() > 0 {
        return xs.contiguous()?.apply_op1(Softmax);
    }
    candle_nn::ops::softmax(xs, candle_core::D::Minus1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::{max_abs_diff, random};
    use candle_core::{Device, Var};

    /// Values and gradient equal the composed ops' (with a masked entry as the causal mask
    /// gives).
    #[test]
    fn fused_softmax_and_its_gradient_equal_the_composed_ops() {
        let dev = Device::Cpu;
        let mut v = random(3 * 70 * 9, 4);
        v[5] = f32::MIN;
        let x = Var::from_tensor(&Tensor::from_vec(v, (3, 70, 9), &dev).unwrap()).unwrap();
        let probe = Tensor::from_vec(random(3 * 70 * 9, 5), (3, 70, 9), &dev).unwrap();
        let ours = softmax_last_dim(x.as_tensor()).unwrap();
        let theirs = candle_nn::ops::softmax(x.as_tensor(), candle_core::D::Minus1).unwrap();
        assert!(max_abs_diff(&ours, &theirs) < 1e-6);
        let grad = |y: &Tensor| {
            let g = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(x.as_tensor()).unwrap().clone()
        };
        assert!(max_abs_diff(&grad(&ours), &grad(&theirs)) < 1e-6);
    }
}
