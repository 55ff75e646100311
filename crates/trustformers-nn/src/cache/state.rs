//! The recurrent state of state-space and recurrent models (Mamba's convolution and SSM
//! states, RWKV's token-shift and WKV states): a fixed set of tensors per layer, replaced at
//! every step, so memory per sequence does not grow with its length.

use candle_core::{DType, Tensor};
use trustformers_core::{Error, Result};

/// Per-layer state tensors, `[batch, ...]` each, and how many positions they summarise.
#[derive(Debug, Clone)]
pub struct RecurrentState {
    layers: Vec<Option<Vec<Tensor>>>,
    seen: usize,
    dtype: DType,
}

impl RecurrentState {
    /// An empty state for `num_layers` layers, kept as `dtype`.
    pub fn new(num_layers: usize, dtype: DType) -> Self {
        Self {
            layers: vec![None; num_layers],
            seen: 0,
            dtype,
        }
    }

    /// Bytes the states hold.
    pub fn memory_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .flatten()
            .map(super::tensor_bytes)
            .sum()
    }

    /// What the states are kept as.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Layer `layer`'s states, `None` before its first step.
    pub fn get(&self, layer: usize) -> Option<&[Tensor]> {
        self.layers.get(layer).and_then(|l| l.as_deref())
    }

    /// Replaces layer `layer`'s states.
    pub fn set(&mut self, layer: usize, states: Vec<Tensor>) -> Result<()> {
        let n = self.layers.len();
        let slot = self.layers.get_mut(layer).ok_or_else(|| {
            Error::InvalidInput(format!(
                "recurrent state for layer {layer} of a {n}-layer model"
            ))
        })?;
        *slot = Some(states);
        Ok(())
    }

    /// Records that `tokens` more positions went through every layer.
    pub fn advance(&mut self, tokens: usize) {
        self.seen += tokens;
    }

    /// Positions summarised so far.
    pub fn seq_len(&self) -> usize {
        self.seen
    }

    /// Keeps batch rows `rows` of every state (see [`super::KvCache::select_rows`]).
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        for t in self.layers.iter_mut().flatten().flatten() {
            let idx = Tensor::new(rows, t.device())?;
            *t = t.index_select(&idx, 0)?;
        }
        Ok(())
    }

    /// Back to the state before any input.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.seen = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    #[test]
    fn states_are_replaced_per_layer_and_follow_selected_rows() {
        let mut state = RecurrentState::new(2, DType::F32);
        assert!(state.get(0).is_none());
        let t = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap();
        state.set(1, vec![t]).unwrap();
        assert!(state.set(2, vec![]).is_err(), "layer out of range");
        state.advance(5);
        state.select_rows(&[1, 0, 1]).unwrap();
        let got: Vec<Vec<f32>> = state.get(1).unwrap()[0].to_vec2().unwrap();
        assert_eq!(got, [[3., 4.], [1., 2.], [3., 4.]]);
        assert_eq!(state.seq_len(), 5);
        state.clear();
        assert_eq!(state.seq_len(), 0);
        assert!(state.get(1).is_none());
    }
}
