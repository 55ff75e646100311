//! The cache of an encoder-decoder model: the decoder's self-attention keys and values,
//! which grow by one position per step, and the cross-attention keys and values, computed
//! once per layer from the encoder output and reused at every step (transformers'
//! `EncoderDecoderCache`).

use super::KvCache;
use candle_core::{DType, Tensor};
use trustformers_core::Result;

/// Self-attention cache, cross-attention keys/values per layer, and the encoder output
/// they were computed from.
#[derive(Debug, Clone)]
pub struct EncoderDecoderCache {
    self_attn: KvCache,
    /// `(keys, values)`, `[batch, kv_heads, source_len, head_dim]` each, per decoder layer.
    cross: Vec<Option<(Tensor, Tensor)>>,
    /// `[batch, source_len, hidden]`.
    encoder_output: Option<Tensor>,
    /// `[batch, source_len]` 0/1 padding mask of the encoder input.
    encoder_mask: Option<Tensor>,
}

impl EncoderDecoderCache {
    /// An empty cache for `num_layers` decoder layers whose self-attention keeps keys and
    /// values as `dtype` (f32 or f16).
    pub fn new(num_layers: usize, dtype: DType) -> Result<Self> {
        Ok(Self {
            self_attn: KvCache::with_dtype(num_layers, dtype)?,
            cross: vec![None; num_layers],
            encoder_output: None,
            encoder_mask: None,
        })
    }

    /// Bytes the cache holds: self-attention, cross-attention and the encoder output.
    pub fn memory_bytes(&self) -> usize {
        let cross: usize = self
            .cross
            .iter()
            .flatten()
            .map(|(k, v)| super::tensor_bytes(k) + super::tensor_bytes(v))
            .sum();
        let encoder = self.encoder_output.iter().chain(&self.encoder_mask);
        self.self_attn.memory_bytes() + cross + encoder.map(super::tensor_bytes).sum::<usize>()
    }

    /// The decoder's self-attention cache.
    pub fn self_attn(&self) -> &KvCache {
        &self.self_attn
    }

    /// The decoder's self-attention cache, to append to.
    pub fn self_attn_mut(&mut self) -> &mut KvCache {
        &mut self.self_attn
    }

    /// Keeps the encoder's output (and its input's padding mask) for the decoder; any
    /// cross-attention keys and values of an earlier output are dropped.
    ///
    /// # Shapes
    /// `output`: `[batch, source_len, hidden]`; `mask`: `[batch, source_len]`.
    pub fn set_encoder_output(&mut self, output: Tensor, mask: Option<Tensor>) {
        self.cross.iter_mut().for_each(|c| *c = None);
        self.encoder_output = Some(output);
        self.encoder_mask = mask;
    }

    /// The encoder output, once set.
    pub fn encoder_output(&self) -> Option<&Tensor> {
        self.encoder_output.as_ref()
    }

    /// The encoder input's padding mask, if it had one.
    pub fn encoder_mask(&self) -> Option<&Tensor> {
        self.encoder_mask.as_ref()
    }

    /// Layer `layer`'s cross-attention keys and values: computed by `project` from the
    /// encoder output the first time, read from the cache afterwards.
    pub fn cross_attention(
        &mut self,
        layer: usize,
        project: impl FnOnce(&Tensor) -> Result<(Tensor, Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        if self.cross.len() <= layer {
            self.cross.resize(layer + 1, None);
        }
        if let Some(kv) = &self.cross[layer] {
            return Ok(kv.clone());
        }
        let output = self.encoder_output.as_ref().ok_or_else(|| {
            trustformers_core::Error::InvalidInput(
                "the decoder ran before the encoder: no encoder output in the cache".into(),
            )
        })?;
        let kv = project(output)?;
        self.cross[layer] = Some(kv.clone());
        Ok(kv)
    }

    /// Decoder positions seen so far.
    pub fn seq_len(&self) -> usize {
        self.self_attn.seq_len()
    }

    /// Keeps batch rows `rows` of everything cached (see [`KvCache::select_rows`]).
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        self.self_attn.select_rows(rows)?;
        let pick = |t: &Tensor| -> Result<Tensor> {
            let idx = Tensor::new(rows, t.device())?;
            Ok(t.index_select(&idx, 0)?)
        };
        for (k, v) in self.cross.iter_mut().flatten() {
            *k = pick(k)?;
            *v = pick(v)?;
        }
        if let Some(out) = &mut self.encoder_output {
            *out = pick(out)?;
        }
        if let Some(mask) = &mut self.encoder_mask {
            *mask = pick(mask)?;
        }
        Ok(())
    }

    /// Empties the cache, the encoder output included.
    pub fn clear(&mut self) {
        self.self_attn.clear();
        self.cross.iter_mut().for_each(|c| *c = None);
        self.encoder_output = None;
        self.encoder_mask = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    fn rows(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn cross_attention_is_computed_once_and_follows_selected_rows() {
        let dev = Device::Cpu;
        let mut cache = EncoderDecoderCache::new(2, DType::F32).unwrap();
        let missing = cache.cross_attention(0, |o| Ok((o.clone(), o.clone())));
        assert!(missing.is_err(), "no encoder output yet");
        // Two rows of a [2, 1, 1] encoder output: 1 and 2.
        let out = Tensor::new(&[[[1f32]], [[2f32]]], &dev).unwrap();
        cache.set_encoder_output(out, None);
        let mut calls = 0;
        for _ in 0..3 {
            cache
                .cross_attention(1, |o| {
                    calls += 1;
                    Ok(((o * 10.0)?, (o * 100.0)?))
                })
                .unwrap();
        }
        assert_eq!(calls, 1);
        cache.select_rows(&[1, 1, 0]).unwrap();
        let (k, v) = cache.cross_attention(1, |_| unreachable!()).unwrap();
        assert_eq!(rows(&k), [20.0, 20.0, 10.0]);
        assert_eq!(rows(&v), [200.0, 200.0, 100.0]);
        assert_eq!(rows(cache.encoder_output().unwrap()), [2.0, 2.0, 1.0]);
        assert_eq!(cache.seq_len(), 0);
        cache.clear();
        assert!(cache.encoder_output().is_none());
    }
}
