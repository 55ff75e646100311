//! CPU kernels for weight formats candle runs slowly, behind [`Linear`](crate::Linear).

pub mod q4_1;
