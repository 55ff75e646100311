//! Token embedding lookup over a dense or quantized table.

use crate::kernels::{self, QuantMatmul};
use crate::profile::{self, Part};
use crate::Linear;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;
use trustformers_core::{Error, Result, Weight, Weights};

/// A `[vocab_size, hidden_size]` lookup table.
#[derive(Clone)]
pub struct Embedding {
    table: Table,
    vocab_size: usize,
    dtype: DType,
    device: Device,
    /// The row that gets no gradient in training (torch's `padding_idx`).
    padding_idx: Option<u32>,
}

#[derive(Clone)]
enum Table {
    Dense(Tensor),
    /// Quantized, in candle's storage.
    Quantized(Arc<candle_core::quantized::QTensor>),
    /// Quantized in a format our kernels run: one copy serves the lookup and a tied head.
    Own(Arc<dyn QuantMatmul>),
}

impl Embedding {
    /// Loads `weight` `[vocab_size, hidden_size]` under `vb`.
    pub fn new(vb: &Weights, vocab_size: usize, hidden_size: usize) -> Result<Self> {
        let table = match vb.get_weight((vocab_size, hidden_size), "weight")? {
            Weight::Dense(t) => Table::Dense(t),
            Weight::Quantized(q) => match kernels::for_qtensor(&q)? {
                Some(own) => Table::Own(Arc::from(own)),
                None => Table::Quantized(q),
            },
        };
        Ok(Self {
            table,
            vocab_size,
            dtype: vb.dtype(),
            device: vb.device().clone(),
            padding_idx: None,
        })
    }

    /// The same table, with row `padding_idx` left out of the gradient as torch's
    /// `nn.Embedding(padding_idx=...)` does (its lookups are unchanged).
    pub fn with_padding_idx(mut self, padding_idx: Option<u32>) -> Self {
        self.padding_idx = padding_idx;
        self
    }

    /// The dtype lookups return.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Where the table lives.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An output projection tied to this table (`x W^T` with `W` the table), sharing its
    /// storage rather than copying it.
    pub fn tied_linear(&self, bias: Option<Tensor>) -> Result<Linear> {
        match &self.table {
            Table::Dense(t) => Ok(Linear::shared_dense(t.clone(), bias)),
            Table::Quantized(q) => Linear::from_weight(Weight::Quantized(q.clone()), bias),
            Table::Own(m) => Ok(Linear::from_kernel(m.clone(), bias)),
        }
    }

    /// # Shapes
    /// `ids`: `[batch, seq]` integer ids -> `[batch, seq, hidden_size]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Embedding);
        let ids = ids.to_dtype(DType::U32)?;
        let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.vocab_size {
            return Err(Error::InvalidInput(format!(
                "token id {max} is out of range for a vocabulary of {}",
                self.vocab_size
            )));
        }
        match &self.table {
            Table::Dense(w) => {
                let mut dims = ids.dims().to_vec();
                dims.push(w.dim(1)?);
                let flat = ids.flatten_all()?;
                let rows = w.index_select(&flat, 0)?;
                let rows = match self.padding_idx {
                    Some(pad) if crate::differentiable(&[w]) => {
                        // Padding rows: the same values, detached from the graph.
                        let keep = flat.ne(pad)?.to_dtype(rows.dtype())?.unsqueeze(1)?;
                        let padded = rows.detach().broadcast_mul(&keep.affine(-1.0, 1.0)?)?;
                        (rows.broadcast_mul(&keep)? + padded)?
                    }
                    _ => rows,
                };
                Ok(rows.reshape(dims)?)
            }
            Table::Quantized(q) => Ok(q.embedding(&ids)?.to_dtype(self.dtype)?),
            Table::Own(m) => {
                let hidden = m.dims().1;
                let rows = ids.flatten_all()?.to_vec1::<u32>()?;
                let mut values = vec![0f32; rows.len() * hidden];
                for (&r, out) in rows.iter().zip(values.chunks_exact_mut(hidden.max(1))) {
                    m.dequantize_row(r as usize, out)?;
                }
                let mut dims = ids.dims().to_vec();
                dims.push(hidden);
                Ok(Tensor::from_vec(values, dims, ids.device())?.to_dtype(self.dtype)?)
            }
        }
    }
}
