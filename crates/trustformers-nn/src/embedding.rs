//! Token embedding lookup over a dense or quantized table.

use candle_core::{DType, Tensor};
use trustformers_core::{Error, Result, Weight, Weights};

/// A `[vocab_size, hidden_size]` lookup table.
#[derive(Clone)]
pub struct Embedding {
    table: Weight,
    vocab_size: usize,
    dtype: DType,
}

impl Embedding {
    /// Loads `weight` `[vocab_size, hidden_size]` under `vb`.
    pub fn new(vb: &Weights, vocab_size: usize, hidden_size: usize) -> Result<Self> {
        let table = vb.get_weight((vocab_size, hidden_size), "weight")?;
        Ok(Self {
            table,
            vocab_size,
            dtype: vb.dtype(),
        })
    }

    /// The table, to tie an output projection to it.
    pub fn weight(&self) -> &Weight {
        &self.table
    }

    /// # Shapes
    /// `ids`: `[batch, seq]` integer ids -> `[batch, seq, hidden_size]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let ids = ids.to_dtype(DType::U32)?;
        let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.vocab_size {
            return Err(Error::InvalidInput(format!(
                "token id {max} is out of range for a vocabulary of {}",
                self.vocab_size
            )));
        }
        match &self.table {
            Weight::Dense(w) => {
                let mut dims = ids.dims().to_vec();
                dims.push(w.dim(1)?);
                Ok(w.index_select(&ids.flatten_all()?, 0)?.reshape(dims)?)
            }
            Weight::Quantized(q) => Ok(q.embedding(&ids)?.to_dtype(self.dtype)?),
        }
    }
}
