//! Small numeric helpers shared by generation, pipelines and tests: one softmax, one
//! log-softmax, one tensor comparison.

use crate::Result;
use candle_core::Tensor;

/// Numerically stable softmax of a row of f32 scores, computed in f32 like numpy's and
/// torch's on f32 logits. A row of `-inf` only gives zeros.
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; scores.len()];
    }
    let exp: Vec<f32> = scores.iter().map(|&s| (s - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Log-softmax of a row of f32 scores. A row of `-inf` only is returned as it is.
pub fn log_softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return scores.to_vec();
    }
    let log_sum = scores.iter().map(|&s| (s - max).exp()).sum::<f32>().ln();
    scores.iter().map(|&s| (s - max) - log_sum).collect()
}

/// The largest absolute difference between two tensors of one shape, in f32.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    if a.dims() != b.dims() {
        return Err(crate::Error::InvalidInput(format!(
            "cannot compare tensors of shapes {:?} and {:?}",
            a.dims(),
            b.dims()
        )));
    }
    let d = (a.to_dtype(candle_core::DType::F32)? - b.to_dtype(candle_core::DType::F32)?)?;
    Ok(d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    #[test]
    fn softmax_and_log_softmax_agree_and_handle_masked_rows() {
        let p = softmax(&[1.0, 2.0, 3.0]);
        let lp = log_softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        for (p, lp) in p.iter().zip(&lp) {
            assert!((p.ln() - lp).abs() < 1e-6);
        }
        assert_eq!(softmax(&[f32::NEG_INFINITY; 2]), [0.0, 0.0]);
        assert_eq!(log_softmax(&[f32::NEG_INFINITY]), [f32::NEG_INFINITY]);
    }

    #[test]
    fn max_abs_diff_needs_one_shape() {
        let a = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[1.5f32, 1.0], &Device::Cpu).unwrap();
        assert_eq!(max_abs_diff(&a, &b).unwrap(), 1.0);
        assert!(max_abs_diff(&a, &b.unsqueeze(0).unwrap()).is_err());
    }
}
