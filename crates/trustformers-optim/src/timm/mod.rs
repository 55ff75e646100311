//! `timm.optim`'s optimizers, each as its single-tensor implementation computes it on the
//! CPU (timm picks that path for CPU tensors).

mod adabelief;
mod adamp;
mod adan;
mod lamb;
mod lars;
mod lion;
mod lookahead;
mod madgrad;
mod nvnovograd;

pub use adabelief::*;
pub use adamp::*;
pub use adan::*;
pub use lamb::*;
pub use lars::*;
pub use lion::*;
pub use lookahead::*;
pub use madgrad::*;
pub use nvnovograd::*;
