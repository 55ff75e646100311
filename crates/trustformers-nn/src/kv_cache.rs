//! Per-layer key/value cache for incremental decoding.
//!
//! f32 keys and values on the CPU live in buffers with room for more positions, written in
//! place: a decode step copies only its own keys and values, and attention reads the cache
//! where it lies. Other dtypes and devices keep tensors, concatenated per step.

use candle_core::{DType, Device, Tensor};
use trustformers_core::{Error, Result};

/// Keys and values of every layer seen so far, `[batch, kv_heads, seq, head_dim]` each.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
}

#[derive(Debug, Clone)]
enum LayerKv {
    Buffer(KvBuffer),
    Tensors(Tensor, Tensor),
}

/// One layer's f32 keys and values, `[batch, kv_heads, capacity, head_dim]` each, of which
/// the first `len` positions are filled.
#[derive(Debug, Clone)]
pub struct KvBuffer {
    k: Vec<f32>,
    v: Vec<f32>,
    batch: usize,
    heads: usize,
    head_dim: usize,
    len: usize,
    capacity: usize,
}

/// Positions a buffer first makes room for.
const MIN_CAPACITY: usize = 64;

impl KvBuffer {
    fn new(batch: usize, heads: usize, head_dim: usize) -> Self {
        Self {
            k: Vec::new(),
            v: Vec::new(),
            batch,
            heads,
            head_dim,
            len: 0,
            capacity: 0,
        }
    }

    /// `(batch, kv_heads, len, head_dim)`.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (self.batch, self.heads, self.len, self.head_dim)
    }

    /// Values between the starts of consecutive (batch, head) blocks in [`Self::keys`] and
    /// [`Self::values`]; each block's first `len * head_dim` values are filled.
    pub fn head_stride(&self) -> usize {
        self.capacity * self.head_dim
    }

    /// All key blocks, `batch * kv_heads` of [`Self::head_stride`] values.
    pub fn keys(&self) -> &[f32] {
        &self.k
    }

    /// All value blocks, laid out as [`Self::keys`].
    pub fn values(&self) -> &[f32] {
        &self.v
    }

    /// Appends `k`, `v` (`[batch, kv_heads, seq, head_dim]` values each, row-major).
    fn push(&mut self, k: &[f32], v: &[f32], seq: usize) -> Result<()> {
        let d = self.head_dim;
        let needed = self.len.checked_add(seq).ok_or_else(|| {
            Error::InvalidInput(format!("{} + {seq} cached positions overflow", self.len))
        })?;
        if needed > self.capacity {
            // Doubling keeps the copies of earlier positions to a constant per position.
            let capacity = needed.max(2 * self.capacity).max(MIN_CAPACITY);
            let grow = |old: &[f32]| -> Vec<f32> {
                let mut new = vec![0f32; self.batch * self.heads * capacity * d];
                if self.capacity > 0 {
                    for (dst, src) in new
                        .chunks_exact_mut(capacity * d)
                        .zip(old.chunks_exact(self.capacity * d))
                    {
                        dst[..self.len * d].copy_from_slice(&src[..self.len * d]);
                    }
                }
                new
            };
            self.k = grow(&self.k);
            self.v = grow(&self.v);
            self.capacity = capacity;
        }
        let stride = self.capacity * d;
        let at = self.len * d;
        for (block, (k, v)) in k
            .chunks_exact(seq * d)
            .zip(v.chunks_exact(seq * d))
            .enumerate()
        {
            let start = block * stride + at;
            self.k[start..start + seq * d].copy_from_slice(k);
            self.v[start..start + seq * d].copy_from_slice(v);
        }
        self.len = needed;
        Ok(())
    }

    /// The filled positions as two `[batch, kv_heads, len, head_dim]` tensors.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let filled = |x: &[f32]| -> Vec<f32> {
            x.chunks_exact(self.head_stride().max(1))
                .flat_map(|block| &block[..self.len * self.head_dim])
                .copied()
                .collect()
        };
        let dims = (self.batch, self.heads, self.len, self.head_dim);
        Ok((
            Tensor::from_vec(filled(&self.k), dims, device)?,
            Tensor::from_vec(filled(&self.v), dims, device)?,
        ))
    }

    /// Keeps batch rows `rows`, in that order.
    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let block = self.heads * self.head_stride();
        let pick = |x: &[f32]| -> Result<Vec<f32>> {
            let mut out = Vec::with_capacity(rows.len() * block);
            for &r in rows {
                let r = r as usize;
                let src = x.get(r * block..(r + 1) * block).ok_or_else(|| {
                    Error::InvalidInput(format!("row {r} of a cache of {} rows", self.batch))
                })?;
                out.extend_from_slice(src);
            }
            Ok(out)
        };
        self.k = pick(&self.k)?;
        self.v = pick(&self.v)?;
        self.batch = rows.len();
        Ok(())
    }
}

/// A layer's keys and values after [`KvCache::append_view`].
pub enum KvView<'a> {
    /// `[batch, kv_heads, seq, head_dim]` tensors.
    Tensors(Tensor, Tensor),
    /// The layer's buffer, read in place.
    Buffer(&'a KvBuffer),
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn seq_len(&self) -> usize {
        match self.layers.iter().flatten().next() {
            Some(LayerKv::Buffer(b)) => b.len,
            Some(LayerKv::Tensors(k, _)) => k.dim(2).unwrap_or(0),
            None => 0,
        }
    }

    /// Appends this step's `k`, `v` for `layer` and returns all keys and values so far.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        match self.append_view(layer, k, v)? {
            KvView::Tensors(k, v) => Ok((k, v)),
            KvView::Buffer(b) => b.to_tensors(k.device()),
        }
    }

    /// [`Self::append`] without copying a buffered layer out: f32 keys and values on the
    /// CPU are written into the layer's buffer, which is returned for attention to read.
    pub fn append_view(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<KvView<'_>> {
        if self.layers.len() <= layer {
            self.layers.resize(layer + 1, None);
        }
        let (b, h, s, d) = k.dims4()?;
        if v.dims() != k.dims() {
            return Err(Error::ShapeMismatch {
                name: format!("layer {layer} values"),
                expected: k.dims().to_vec(),
                actual: v.dims().to_vec(),
            });
        }
        let buffered = k.dtype() == DType::F32 && v.dtype() == DType::F32 && k.device().is_cpu();
        let slot = &mut self.layers[layer];
        if slot.is_none() && buffered {
            *slot = Some(LayerKv::Buffer(KvBuffer::new(b, h, d)));
        }
        match slot {
            Some(LayerKv::Buffer(buf)) => {
                if !buffered || (buf.batch, buf.heads, buf.head_dim) != (b, h, d) {
                    return Err(Error::ShapeMismatch {
                        name: format!("layer {layer} keys (f32 [batch, kv_heads, seq, head_dim])"),
                        expected: vec![buf.batch, buf.heads, s, buf.head_dim],
                        actual: k.dims().to_vec(),
                    });
                }
                let values = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1()?) };
                buf.push(&values(k)?, &values(v)?, s)?;
                Ok(KvView::Buffer(buf))
            }
            Some(LayerKv::Tensors(pk, pv)) => {
                let (k, v) = (Tensor::cat(&[&*pk, k], 2)?, Tensor::cat(&[&*pv, v], 2)?);
                *slot = Some(LayerKv::Tensors(k.clone(), v.clone()));
                Ok(KvView::Tensors(k, v))
            }
            None => {
                *slot = Some(LayerKv::Tensors(k.clone(), v.clone()));
                Ok(KvView::Tensors(k.clone(), v.clone()))
            }
        }
    }

    /// Keeps batch rows `rows` (in that order, repeats allowed): how beam search follows the
    /// beams it continues, and how one prefilled prompt is copied to several beams.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        for layer in self.layers.iter_mut().flatten() {
            match layer {
                LayerKv::Buffer(b) => b.select_rows(rows)?,
                LayerKv::Tensors(k, v) => {
                    let idx = Tensor::new(rows, k.device())?;
                    *k = k.index_select(&idx, 0)?;
                    *v = v.index_select(&idx, 0)?;
                }
            }
        }
        Ok(())
    }

    /// Empties the cache.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::kernels::tests::random;

    fn tensor(dims: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let n = dims.0 * dims.1 * dims.2 * dims.3;
        Tensor::from_vec(random(n, seed), dims, &Device::Cpu).unwrap()
    }

    fn assert_same(a: &Tensor, b: &Tensor) {
        assert_eq!(a.dims(), b.dims());
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.flatten_all().unwrap().to_vec1().unwrap(),
            b.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(a, b);
    }

    /// Buffered appends (through several growths) and row selection give what concatenating
    /// and indexing the tensors gives.
    #[test]
    fn buffer_equals_concatenation() {
        let mut cache = KvCache::new(1);
        let (mut want_k, mut want_v) = (tensor((2, 3, 5, 4), 1), tensor((2, 3, 5, 4), 2));
        cache.append(0, &want_k, &want_v).unwrap();
        for step in 0..150 {
            let (k, v) = (
                tensor((2, 3, 1, 4), 10 + step),
                tensor((2, 3, 1, 4), 500 + step),
            );
            want_k = Tensor::cat(&[&want_k, &k], 2).unwrap();
            want_v = Tensor::cat(&[&want_v, &v], 2).unwrap();
            let (got_k, got_v) = cache.append(0, &k, &v).unwrap();
            assert_same(&got_k, &want_k);
            assert_same(&got_v, &want_v);
        }
        assert_eq!(cache.seq_len(), 155);
        cache.select_rows(&[1, 1, 0]).unwrap();
        let idx = Tensor::new(&[1u32, 1, 0], &Device::Cpu).unwrap();
        let (k, v) = (tensor((3, 3, 1, 4), 7), tensor((3, 3, 1, 4), 8));
        let (got_k, got_v) = cache.append(0, &k, &v).unwrap();
        let want_k = Tensor::cat(&[&want_k.index_select(&idx, 0).unwrap(), &k], 2).unwrap();
        let want_v = Tensor::cat(&[&want_v.index_select(&idx, 0).unwrap(), &v], 2).unwrap();
        assert_same(&got_k, &want_k);
        assert_same(&got_v, &want_v);
        assert!(cache.select_rows(&[3]).is_err());
        // A step whose shape does not match the buffer is refused.
        assert!(cache
            .append(0, &tensor((3, 2, 1, 4), 9), &tensor((3, 2, 1, 4), 9))
            .is_err());
        cache.clear();
        assert_eq!(cache.seq_len(), 0);
    }
}
