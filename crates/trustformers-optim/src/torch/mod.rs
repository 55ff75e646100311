//! `torch.optim`'s optimizers, each as its `_single_tensor_*` implementation computes it on
//! the CPU: the same state, the same order of operations, hyper-parameters computed in f64
//! and handed to the element-wise kernels as f32.

mod adafactor;
mod adagrad;
mod adam;
mod rprop;
mod sgd;

pub use adafactor::*;
pub use adagrad::*;
pub use adam::*;
pub use rprop::*;
pub use sgd::*;
