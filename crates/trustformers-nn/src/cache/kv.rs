//! Per-layer key/value cache for incremental decoding.
//!
//! f32 keys and values on the CPU live in buffers with room for more positions, written in
//! place: a decode step copies only its own keys and values, and attention reads the cache
//! where it lies. A buffer keeps them in f32 or, like llama.cpp's default cache, in f16
//! (half the memory, and half the bytes decode attention reads). Other dtypes and devices
//! keep tensors, concatenated per step.

use crate::kernels::sdpa::KvRows;
use candle_core::{DType, Device, Tensor};
use half::f16;
use half::slice::HalfFloatSliceExt;
use half::vec::HalfBitsVecExt;
use trustformers_core::{Error, Result};

/// Keys and values of every layer seen so far, `[batch, kv_heads, seq, head_dim]` each.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    /// What buffered layers store: f32 or f16.
    dtype: DType,
}

impl Default for KvCache {
    fn default() -> Self {
        Self::new(0)
    }
}

#[derive(Debug, Clone)]
enum LayerKv {
    Buffer(KvBuffer),
    Tensors(Tensor, Tensor),
    /// One tensor `[batch, 1, seq, dim]` standing for both keys and values (multi-head
    /// latent attention's latents).
    Latent(Tensor),
}

/// One layer's keys and values, `[batch, kv_heads, capacity, head_dim]` each, of which the
/// first `len` positions are filled.
#[derive(Debug, Clone)]
pub struct KvBuffer {
    k: Store,
    v: Store,
    batch: usize,
    heads: usize,
    head_dim: usize,
    len: usize,
    capacity: usize,
}

/// A buffer's keys or values, in the cache's dtype.
#[derive(Debug, Clone)]
enum Store {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Store {
    fn new(dtype: DType) -> Self {
        match dtype {
            DType::F16 => Self::F16(Vec::new()),
            _ => Self::F32(Vec::new()),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::F32(x) => std::mem::size_of_val(x.as_slice()),
            Self::F16(x) => std::mem::size_of_val(x.as_slice()),
        }
    }

    fn rows(&self) -> KvRows<'_> {
        match self {
            Self::F32(x) => KvRows::F32(x),
            Self::F16(x) => KvRows::F16(x),
        }
    }

    /// Moves the first `filled` values of each `old_stride`-value block into a new store
    /// of `blocks` blocks `new_stride` apart.
    fn regrow(&mut self, blocks: usize, old_stride: usize, new_stride: usize, filled: usize) {
        fn regrow<T: Copy>(
            old: &[T],
            mut new: Vec<T>,
            old_stride: usize,
            new_stride: usize,
            filled: usize,
        ) -> Vec<T> {
            if old_stride > 0 {
                for (dst, src) in new
                    .chunks_exact_mut(new_stride)
                    .zip(old.chunks_exact(old_stride))
                {
                    dst[..filled].copy_from_slice(&src[..filled]);
                }
            }
            new
        }
        // Zeroed allocations (calloc): pages of positions not yet written stay unmapped,
        // so room made for later positions costs no memory until it is used.
        let n = blocks * new_stride;
        match self {
            Self::F32(x) => *x = regrow(x, vec![0f32; n], old_stride, new_stride, filled),
            Self::F16(x) => {
                let zeros: Vec<f16> = vec![0u16; n].reinterpret_into();
                *x = regrow(x, zeros, old_stride, new_stride, filled)
            }
        }
    }

    /// Writes `src` from value `at` on, rounded to the store's dtype.
    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Self::F32(x) => x[at..at + src.len()].copy_from_slice(src),
            Self::F16(x) => x[at..at + src.len()].convert_from_f32_slice(src),
        }
    }

    /// The first `filled` values of each `stride`-value block, as f32.
    fn filled(&self, stride: usize, filled: usize) -> Vec<f32> {
        let blocks = |n: usize| n.checked_div(stride).unwrap_or(0);
        let mut out = Vec::new();
        match self {
            Self::F32(x) => {
                out.reserve(blocks(x.len()) * filled);
                for block in x.chunks_exact(stride.max(1)) {
                    out.extend_from_slice(&block[..filled]);
                }
            }
            Self::F16(x) => {
                out.resize(blocks(x.len()) * filled, 0.0);
                for (dst, block) in out
                    .chunks_exact_mut(filled.max(1))
                    .zip(x.chunks_exact(stride.max(1)))
                {
                    block[..filled].convert_to_f32_slice(dst);
                }
            }
        }
        out
    }

    /// Blocks `rows` (of `block` values each), in that order; `batch` names the row count
    /// in the error for a row out of range.
    fn pick(&self, rows: &[u32], block: usize, batch: usize) -> Result<Self> {
        fn pick<T: Copy>(x: &[T], rows: &[u32], block: usize, batch: usize) -> Result<Vec<T>> {
            let mut out = Vec::with_capacity(rows.len() * block);
            for &r in rows {
                let r = r as usize;
                let src = x.get(r * block..(r + 1) * block).ok_or_else(|| {
                    Error::InvalidInput(format!("row {r} of a cache of {batch} rows"))
                })?;
                out.extend_from_slice(src);
            }
            Ok(out)
        }
        Ok(match self {
            Self::F32(x) => Self::F32(pick(x, rows, block, batch)?),
            Self::F16(x) => Self::F16(pick(x, rows, block, batch)?),
        })
    }
}

/// Positions a buffer first makes room for.
const MIN_CAPACITY: usize = 64;

impl KvBuffer {
    fn new(batch: usize, heads: usize, head_dim: usize, dtype: DType) -> Self {
        Self {
            k: Store::new(dtype),
            v: Store::new(dtype),
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
    pub fn keys(&self) -> KvRows<'_> {
        self.k.rows()
    }

    /// All value blocks, laid out as [`Self::keys`].
    pub fn values(&self) -> KvRows<'_> {
        self.v.rows()
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
            let blocks = self.batch * self.heads;
            let (old, new, filled) = (self.capacity * d, capacity * d, self.len * d);
            self.k.regrow(blocks, old, new, filled);
            self.v.regrow(blocks, old, new, filled);
            self.capacity = capacity;
        }
        let stride = self.capacity * d;
        let at = self.len * d;
        for (block, (k, v)) in k
            .chunks_exact(seq * d)
            .zip(v.chunks_exact(seq * d))
            .enumerate()
        {
            self.k.write(block * stride + at, k);
            self.v.write(block * stride + at, v);
        }
        self.len = needed;
        Ok(())
    }

    /// The filled positions as two f32 `[batch, kv_heads, len, head_dim]` tensors.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let (stride, filled) = (self.head_stride(), self.len * self.head_dim);
        let dims = (self.batch, self.heads, self.len, self.head_dim);
        Ok((
            Tensor::from_vec(self.k.filled(stride, filled), dims, device)?,
            Tensor::from_vec(self.v.filled(stride, filled), dims, device)?,
        ))
    }

    /// Keeps batch rows `rows`, in that order.
    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let block = self.heads * self.head_stride();
        self.k = self.k.pick(rows, block, self.batch)?;
        self.v = self.v.pick(rows, block, self.batch)?;
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
    /// An empty cache for a model with `num_layers` layers, keeping keys and values in f32.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            dtype: DType::F32,
        }
    }

    /// An empty cache that keeps f32 keys and values on the CPU as `dtype`: `F32`, or `F16`
    /// (half the memory; each value rounded to f16 as llama.cpp's default cache does).
    pub fn with_dtype(num_layers: usize, dtype: DType) -> Result<Self> {
        match dtype {
            DType::F32 | DType::F16 => Ok(Self {
                dtype,
                ..Self::new(num_layers)
            }),
            other => Err(Error::InvalidInput(format!(
                "a KV cache keeps f32 or f16, not {other:?}"
            ))),
        }
    }

    /// What the cache keeps f32 keys and values as.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Bytes the cache holds (buffers at their capacity).
    pub fn memory_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|layer| match layer {
                LayerKv::Buffer(b) => b.k.bytes() + b.v.bytes(),
                LayerKv::Tensors(k, v) => super::tensor_bytes(k) + super::tensor_bytes(v),
                LayerKv::Latent(x) => super::tensor_bytes(x),
            })
            .sum()
    }

    /// Number of cached positions (0 when empty).
    pub fn seq_len(&self) -> usize {
        match self.layers.iter().flatten().next() {
            Some(LayerKv::Buffer(b)) => b.len,
            Some(LayerKv::Tensors(k, _)) | Some(LayerKv::Latent(k)) => k.dim(2).unwrap_or(0),
            None => 0,
        }
    }

    /// Number of positions layer `layer` holds (0 when it holds none yet).
    pub fn layer_len(&self, layer: usize) -> usize {
        match self.layers.get(layer).and_then(Option::as_ref) {
            Some(LayerKv::Buffer(b)) => b.len,
            Some(LayerKv::Tensors(k, _)) | Some(LayerKv::Latent(k)) => k.dim(2).unwrap_or(0),
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
        // Keys in an autograd graph stay tensors, so attention's gradient reaches them.
        let buffered = k.dtype() == DType::F32
            && v.dtype() == DType::F32
            && k.device().is_cpu()
            && !crate::differentiable(&[k, v]);
        let slot = &mut self.layers[layer];
        if slot.is_none() && buffered {
            *slot = Some(LayerKv::Buffer(KvBuffer::new(b, h, d, self.dtype)));
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
            Some(LayerKv::Latent(_)) => Err(Error::InvalidInput(format!(
                "layer {layer} of the cache holds latents, not keys and values"
            ))),
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

    /// Appends this step's latents `x` `[batch, 1, seq, dim]` for `layer` (multi-head latent
    /// attention keeps one tensor per layer, no separate keys and values) and returns all of
    /// them so far.
    pub fn append_latent(&mut self, layer: usize, x: &Tensor) -> Result<Tensor> {
        if self.layers.len() <= layer {
            self.layers.resize(layer + 1, None);
        }
        let all = match &self.layers[layer] {
            None => x.clone(),
            Some(LayerKv::Latent(past)) => {
                let (pd, xd) = (past.dims(), x.dims());
                if pd.len() != 4 || xd.len() != 4 || (pd[0], pd[1], pd[3]) != (xd[0], xd[1], xd[3])
                {
                    return Err(Error::ShapeMismatch {
                        name: format!("layer {layer} latents"),
                        expected: pd.to_vec(),
                        actual: xd.to_vec(),
                    });
                }
                Tensor::cat(&[past, x], 2)?
            }
            Some(_) => {
                return Err(Error::InvalidInput(format!(
                    "layer {layer} of the cache holds keys and values, not latents"
                )))
            }
        };
        self.layers[layer] = Some(LayerKv::Latent(all.clone()));
        Ok(all)
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
                LayerKv::Latent(x) => {
                    *x = x.index_select(&Tensor::new(rows, x.device())?, 0)?;
                }
            }
        }
        Ok(())
    }

    /// Empties the cache.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
    }

    /// Keeps the first `len` cached positions: a prefix that another sequence shares. A
    /// buffer keeps its memory; the positions past `len` are written over as it grows again.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        let have = self.seq_len();
        if len > have {
            return Err(Error::InvalidInput(format!(
                "cannot keep {len} positions of a cache holding {have}"
            )));
        }
        for layer in self.layers.iter_mut().flatten() {
            match layer {
                LayerKv::Buffer(b) => b.len = len,
                LayerKv::Tensors(k, v) => {
                    *k = k.narrow(2, 0, len)?.contiguous()?;
                    *v = v.narrow(2, 0, len)?.contiguous()?;
                }
                LayerKv::Latent(x) => *x = x.narrow(2, 0, len)?.contiguous()?,
            }
        }
        Ok(())
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

    /// An f16 cache holds each value rounded to f16, through growths and row selection,
    /// and refuses dtypes it cannot keep.
    #[test]
    fn f16_buffer_keeps_rounded_values() {
        let rounded = |t: &Tensor| {
            t.to_dtype(DType::F16)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
        };
        let mut cache = KvCache::with_dtype(2, DType::F16).unwrap();
        assert_eq!(cache.dtype(), DType::F16);
        let (mut want_k, mut want_v) = (tensor((2, 3, 70, 8), 1), tensor((2, 3, 70, 8), 2));
        cache.append(1, &want_k, &want_v).unwrap();
        for step in 0..80 {
            let (k, v) = (
                tensor((2, 3, 1, 8), 10 + step),
                tensor((2, 3, 1, 8), 500 + step),
            );
            want_k = Tensor::cat(&[&want_k, &k], 2).unwrap();
            want_v = Tensor::cat(&[&want_v, &v], 2).unwrap();
            let (got_k, got_v) = cache.append(1, &k, &v).unwrap();
            assert_same(&got_k, &rounded(&want_k));
            assert_same(&got_v, &rounded(&want_v));
        }
        match cache
            .append_view(1, &tensor((2, 3, 1, 8), 3), &tensor((2, 3, 1, 8), 4))
            .unwrap()
        {
            KvView::Buffer(b) => assert!(matches!(b.keys(), KvRows::F16(_))),
            KvView::Tensors(..) => panic!("f32 keys on the CPU are buffered"),
        }
        cache.select_rows(&[1]).unwrap();
        assert_eq!(cache.seq_len(), 151);
        assert!(KvCache::with_dtype(1, DType::BF16).is_err());
        assert_eq!(KvCache::new(1).dtype(), DType::F32);
    }
}
