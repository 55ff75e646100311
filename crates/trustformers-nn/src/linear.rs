//! One linear layer for dense and block-quantized weights, so no model is written twice.

use crate::kernels::fused::Act;
use crate::kernels::gemm::{self, PackedF32, Panels};
use crate::kernels::gemv;
use crate::kernels::int8::Int8Matrix;
use crate::kernels::qgemm::{self, IntPanels};
use crate::kernels::{self, KQuantPanels, QuantMatmul, GEMM_ROWS};
use crate::profile::{self, Part};
use crate::{Activation, Dropout};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor};
use std::sync::Arc;
use trustformers_core::{LoraAdapter, Result, Weight, Weights};

/// `y = x W^T + b`, with `W` dense (any float dtype) or ggml-quantized.
#[derive(Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
    /// A trainable LoRA adapter added to the output (PEFT's `lora.Linear`).
    lora: Option<LoraAdapter>,
}

#[derive(Clone)]
enum LinearWeight {
    Dense(Tensor),
    /// f32 on the CPU, packed for our GEMM.
    Packed(Arc<PackedF32>),
    /// Candle's kernels for decode; `prefill` unpacks panels for our integer GEMM (or
    /// dequantizes them into the f32 one) where we can read the format.
    Quantized {
        mm: QMatMul,
        prefill: Option<Arc<KQuantPanels>>,
    },
    /// Formats candle only has scalar code for, run by our kernels.
    Own(Arc<dyn QuantMatmul>),
    /// Quantized per output channel to int8, run with activations quantized per row on
    /// every call (onnxruntime's dynamic quantization; `--dtype q8`).
    Int8(Arc<Int8Matrix>),
    /// A frozen f32 weight under training (LoRA's base layers): our GEMM forward, and in
    /// the graph only the input's gradient (`grad W`), never the weight's.
    Frozen {
        w: Tensor,
        packed: Arc<PackedF32>,
    },
}

impl Linear {
    /// Loads `weight` `[out_dim, in_dim]` and, when `bias`, `bias` `[out_dim]` under `vb`.
    pub fn new(vb: &Weights, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get_weight((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        let mut layer = match weight {
            // Frozen under LoRA (a weight in `modules_to_save` is a trainable Var).
            Weight::Dense(w)
                if vb.freezes_base()
                    && !w.track_op()
                    && w.dtype() == DType::F32
                    && w.device().is_cpu() =>
            {
                let w = w.contiguous()?;
                let values: Vec<f32> = w.flatten_all()?.to_vec1()?;
                let packed = Arc::new(PackedF32::new(&values, out_dim, in_dim)?);
                Self {
                    weight: LinearWeight::Frozen { w, packed },
                    bias,
                    lora: None,
                }
            }
            // Under LoRA the other frozen weights stay tensors: the input's gradient must
            // pass through them.
            Weight::Dense(w) if vb.freezes_base() && !w.track_op() => Self::shared_dense(w, bias),
            // Quantized straight from the loaded tensor (not packed for the f32 GEMM first).
            Weight::Dense(w) if vb.int8_linears() => Self::shared_dense(w, bias).to_int8()?,
            weight => Self::from_weight(weight, bias)?,
        };
        layer.lora = vb.lora_adapter(in_dim, out_dim)?;
        Ok(layer)
    }

    /// A layer over a dense table shared with an embedding: kept as it is, not packed,
    /// so the two share one copy.
    pub fn shared_dense(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: LinearWeight::Dense(weight),
            bias,
            lora: None,
        }
    }

    /// A layer over a quantized matrix our kernels run, shared with an embedding.
    pub fn from_kernel(weight: Arc<dyn QuantMatmul>, bias: Option<Tensor>) -> Self {
        Self {
            weight: LinearWeight::Own(weight),
            bias,
            lora: None,
        }
    }

    /// Builds a layer from an already-loaded weight.
    pub fn from_weight(weight: Weight, bias: Option<Tensor>) -> Result<Self> {
        let weight = match weight {
            // A trainable weight stays a tensor, so its matmul is in the graph.
            Weight::Dense(t) if crate::differentiable(&[&t]) => LinearWeight::Dense(t),
            Weight::Dense(t) if t.dtype() == DType::F32 && t.device().is_cpu() && t.rank() == 2 => {
                let (n, k) = t.dims2()?;
                let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
                LinearWeight::Packed(Arc::new(PackedF32::new(&values, n, k)?))
            }
            Weight::Dense(t) => LinearWeight::Dense(t),
            Weight::Quantized(q) => match kernels::for_qtensor(&q)? {
                Some(own) => LinearWeight::Own(Arc::from(own)),
                None => LinearWeight::Quantized {
                    prefill: KQuantPanels::new(q.clone())?.map(Arc::new),
                    mm: QMatMul::from_arc(q)?,
                },
            },
        };
        Ok(Self {
            weight,
            bias,
            lora: None,
        })
    }

    /// This layer with its f32 weight quantized per output channel to int8, run with
    /// activations quantized per row on every call (onnxruntime's `quantize_dynamic`). A
    /// layer already ggml-quantized stays as it is (its kernels quantize the activations
    /// too); a trainable one, or one under a LoRA adapter, is refused.
    pub fn to_int8(&self) -> Result<Self> {
        if self.is_trainable() {
            return Err(trustformers_core::Error::InvalidInput(
                "a trainable linear layer cannot be quantized to int8".into(),
            ));
        }
        let weight = match &self.weight {
            LinearWeight::Dense(w) => {
                let w = w.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
                let (n, k) = w.dims2()?;
                let values: Vec<f32> = w.flatten_all()?.to_vec1()?;
                LinearWeight::Int8(Arc::new(Int8Matrix::quantize(&values, n, k)?))
            }
            LinearWeight::Packed(w) | LinearWeight::Frozen { packed: w, .. } => {
                let (n, k) = w.dims();
                LinearWeight::Int8(Arc::new(Int8Matrix::quantize(&w.unpack(), n, k)?))
            }
            other => other.clone(),
        };
        Ok(Self {
            weight,
            bias: self.bias.clone(),
            lora: None,
        })
    }

    /// Whether the weight or bias is trainable (in an autograd graph).
    pub fn is_trainable(&self) -> bool {
        let weight = matches!(&self.weight, LinearWeight::Dense(w) if crate::differentiable(&[w]));
        let bias = self
            .bias
            .as_ref()
            .is_some_and(|b| crate::differentiable(&[b]));
        weight || bias || self.lora.is_some()
    }

    /// Whether the weight is kept ggml-quantized.
    pub fn is_quantized(&self) -> bool {
        matches!(
            self.weight,
            LinearWeight::Quantized { .. } | LinearWeight::Own(_)
        )
    }

    /// # Shapes
    /// `xs`: `[..., in_dim]` -> `[..., out_dim]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = self.forward_base(xs)?;
        match &self.lora {
            // scale * B (A dropout(x)), as PEFT adds it.
            Some(l) => {
                let dropped = Dropout::new(l.dropout, "lora_dropout")?.forward(xs)?;
                let down = dropped.broadcast_matmul(&l.a.t()?)?;
                let up = down.broadcast_matmul(&l.b.t()?)?;
                Ok((ys + (up * l.scale)?)?)
            }
            None => Ok(ys),
        }
    }

    /// The layer without its adapter.
    fn forward_base(&self, xs: &Tensor) -> Result<Tensor> {
        let _timing = profile::scope(Part::Linear);
        let ys = match &self.weight {
            // A frozen table (a tied head under LoRA): no gradient for it.
            LinearWeight::Dense(w)
                if crate::differentiable(&[xs])
                    && !crate::differentiable(&[w])
                    && w.dtype() == DType::F32
                    && xs.dtype() == DType::F32
                    && w.device().is_cpu() =>
            {
                let (n, k) = w.dims2()?;
                let values: Vec<f32> = w.flatten_all()?.to_vec1()?;
                crate::autograd::frozen_matmul(xs, w, Arc::new(PackedF32::new(&values, n, k)?))?
            }
            // A few rows against a row-major f32 table (a tied head while decoding): stream
            // the table once in order.
            LinearWeight::Dense(w)
                if rows_of(xs) <= gemv::MAX_ROWS
                    && w.dtype() == DType::F32
                    && w.device().is_cpu()
                    && w.rank() == 2
                    && !crate::differentiable(&[xs, w]) =>
            {
                let (n, k) = w.dims2()?;
                let rows = rows_of(xs);
                let mut out_dims = xs.dims().to_vec();
                if let Some(last) = out_dims.last_mut() {
                    *last = n;
                }
                let ys = kernels::with_f32(w, |wv| {
                    kernels::with_f32(xs, |x| gemv::gemv_rows(x, rows, wv, n, k))
                })?;
                Tensor::from_vec(ys, out_dims, xs.device())?.to_dtype(xs.dtype())?
            }
            LinearWeight::Dense(w) => {
                let (in_dims, last) = xs.dims().split_at(xs.rank().saturating_sub(1));
                let rows: usize = in_dims.iter().product();
                let flat = xs.reshape((rows, last.iter().product::<usize>()))?;
                let ys = flat.matmul(&w.t()?)?;
                let mut out_dims = in_dims.to_vec();
                out_dims.push(w.dim(0)?);
                ys.reshape(out_dims)?
            }
            LinearWeight::Packed(w) => {
                return gemm_forward(w.as_ref(), xs, self.bias.as_ref(), None)
            }
            LinearWeight::Int8(w) => return int8_forward(w, xs, self.bias.as_ref(), None),
            LinearWeight::Frozen { w, packed } if crate::differentiable(&[xs]) => {
                crate::autograd::frozen_matmul(xs, w, packed.clone())?
            }
            LinearWeight::Frozen { packed, .. } => gemm_forward(packed.as_ref(), xs, None, None)?,
            LinearWeight::Quantized {
                prefill: Some(w), ..
            } if rows_of(xs) >= GEMM_ROWS => match qgemm::kernel_for(w.as_ref()) {
                Some(simd) => {
                    let w = w.as_ref();
                    return kernel_forward(
                        IntPanels::dims(w),
                        xs,
                        self.bias.as_ref(),
                        |x, rows, b| qgemm::qgemm(simd, x, rows, w, b),
                    );
                }
                None => gemm_forward(w.as_ref(), xs, None, None)?,
            },
            LinearWeight::Quantized { mm, .. } => {
                // ggml kernels take and return f32 activations.
                let dtype = xs.dtype();
                let ys = mm.forward(&xs.to_dtype(DType::F32)?)?;
                ys.to_dtype(dtype)?
            }
            LinearWeight::Own(m) => {
                let (out_dim, in_dim) = m.dims();
                let (in_dims, _) = xs.dims().split_at(xs.rank().saturating_sub(1));
                if xs.dims().last() != Some(&in_dim) {
                    return Err(trustformers_core::Error::ShapeMismatch {
                        name: "linear input".into(),
                        expected: vec![in_dim],
                        actual: xs.dims().to_vec(),
                    });
                }
                let mut out_dims = in_dims.to_vec();
                out_dims.push(out_dim);
                let ys = kernels::with_f32(xs, |x| m.matmul(x))?;
                Tensor::from_vec(ys, out_dims, xs.device())?.to_dtype(xs.dtype())?
            }
        };
        match &self.bias {
            Some(b) => Ok(ys.broadcast_add(b)?),
            None => Ok(ys),
        }
    }
}

impl Linear {
    /// One layer computing `layers`' outputs side by side (q, k and v as one GEMM, so the
    /// input is read once and the thread pool called once), when all of them run on our f32
    /// GEMM with the same input size; `None` otherwise.
    pub fn stack(layers: &[&Linear]) -> Result<Option<Linear>> {
        if layers.iter().any(|l| l.lora.is_some()) {
            return Ok(None);
        }
        let int8: Option<Vec<&Int8Matrix>> = layers
            .iter()
            .map(|l| match &l.weight {
                LinearWeight::Int8(w) => Some(w.as_ref()),
                _ => None,
            })
            .collect();
        if let Some(weight) = int8.as_deref().and_then(Int8Matrix::stack) {
            let dims: Vec<usize> = int8.iter().flatten().map(|w| w.dims().0).collect();
            return Ok(Some(Self {
                weight: LinearWeight::Int8(Arc::new(weight)),
                bias: stacked_bias(layers, &dims)?,
                lora: None,
            }));
        }
        let packed: Option<Vec<&PackedF32>> = layers
            .iter()
            .map(|l| match &l.weight {
                LinearWeight::Packed(w) => Some(w.as_ref()),
                _ => None,
            })
            .collect();
        let Some(weight) = packed.as_deref().and_then(PackedF32::stack) else {
            return Ok(None);
        };
        let dims: Vec<usize> = packed.iter().flatten().map(|w| w.dims().0).collect();
        Ok(Some(Self {
            weight: LinearWeight::Packed(Arc::new(weight)),
            bias: stacked_bias(layers, &dims)?,
            lora: None,
        }))
    }

    /// `act(self.forward(xs))`. When this layer runs on our f32 GEMM, the activation is
    /// applied to each block of the output while it is still in cache (no second pass).
    ///
    /// # Shapes
    /// `xs`: `[..., in_dim]` -> `[..., out_dim]`.
    pub fn forward_activated(&self, xs: &Tensor, act: Activation) -> Result<Tensor> {
        if let (Some(kind), None) = (act.fused(), &self.lora) {
            match &self.weight {
                LinearWeight::Packed(w) => {
                    let _timing = profile::scope(Part::Linear);
                    return gemm_forward(w.as_ref(), xs, self.bias.as_ref(), Some(kind));
                }
                LinearWeight::Int8(w) => {
                    let _timing = profile::scope(Part::Linear);
                    return int8_forward(w, xs, self.bias.as_ref(), Some(kind));
                }
                _ => {}
            }
        }
        act.forward(&self.forward(xs)?)
    }

    /// Each layer's output for the same input (q/k/v, gate/up). Below [`GEMM_ROWS`]
    /// activation rows (decode steps, of one sequence or a batch), layers our quantized
    /// kernels run share one quantization of the input and one dispatch to the thread pool
    /// ([`kernels::matvec_many`]); otherwise the layers run one by one.
    pub fn forward_many(layers: &[&Linear], xs: &Tensor) -> Result<Vec<Tensor>> {
        let _timing = profile::scope(Part::Linear);
        let own: Option<Vec<&dyn QuantMatmul>> = layers
            .iter()
            .map(|l| match &l.weight {
                LinearWeight::Own(m) => Some(m.as_ref()),
                _ => None,
            })
            .collect();
        let plain = layers.iter().all(|l| l.lora.is_none());
        let Some(own) = own.filter(|_| plain && layers.len() > 1 && rows_of(xs) < GEMM_ROWS) else {
            return layers.iter().map(|l| l.forward(xs)).collect();
        };
        let outs = kernels::with_f32(xs, |x| kernels::matvec_many(&own, x))?;
        outs.into_iter()
            .zip(layers)
            .map(|(y, layer)| {
                let mut dims = xs.dims().to_vec();
                if let Some(last) = dims.last_mut() {
                    *last = y.len() / rows_of(xs).max(1);
                }
                let y = Tensor::from_vec(y, dims, xs.device())?.to_dtype(xs.dtype())?;
                Ok(match &layer.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            })
            .collect()
    }
}

impl Linear {
    /// Each layer on its own one-row input (one token's inputs of different layers: a
    /// mixture of experts' down projections). Layers our quantized kernels run take one
    /// dispatch to the thread pool for all of them ([`kernels::matvec_each`]); otherwise
    /// they run one by one.
    pub fn forward_each(pairs: &[(&Linear, &Tensor)]) -> Result<Vec<Tensor>> {
        let _timing = profile::scope(Part::Linear);
        let own: Option<Vec<&dyn QuantMatmul>> = pairs
            .iter()
            .map(|(l, x)| match &l.weight {
                LinearWeight::Own(m) if l.lora.is_none() && rows_of(x) == 1 => Some(m.as_ref()),
                _ => None,
            })
            .collect();
        let Some(own) = own.filter(|o| o.len() > 1) else {
            return pairs.iter().map(|(l, x)| l.forward(x)).collect();
        };
        let inputs = pairs
            .iter()
            .map(|(_, x)| {
                Ok(x.to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?)
            })
            .collect::<Result<Vec<Vec<f32>>>>()?;
        let args: Vec<(&dyn QuantMatmul, &[f32])> = own
            .iter()
            .zip(&inputs)
            .map(|(m, x)| (*m, x.as_slice()))
            .collect();
        let outs = kernels::matvec_each(&args)?;
        outs.into_iter()
            .zip(pairs)
            .map(|(y, (layer, x))| {
                let mut dims = x.dims().to_vec();
                if let Some(last) = dims.last_mut() {
                    *last = y.len();
                }
                let y = Tensor::from_vec(y, dims, x.device())?.to_dtype(x.dtype())?;
                Ok(match &layer.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            })
            .collect()
    }
}

/// Rows of a `[..., in_dim]` input.
fn rows_of(xs: &Tensor) -> usize {
    xs.dims()
        .split_last()
        .map_or(0, |(_, rows)| rows.iter().product())
}

/// The stacked layers' biases end to end (zeros for a layer without one; `dims`: each
/// layer's outputs), or `None` when none has one.
fn stacked_bias(layers: &[&Linear], dims: &[usize]) -> Result<Option<Tensor>> {
    if layers.iter().all(|l| l.bias.is_none()) {
        return Ok(None);
    }
    let parts = layers
        .iter()
        .zip(dims)
        .map(|(l, &n)| match &l.bias {
            Some(b) => Ok(b.to_dtype(DType::F32)?),
            None => Ok(Tensor::zeros(n, DType::F32, &Device::Cpu)?),
        })
        .collect::<Result<Vec<Tensor>>>()?;
    Ok(Some(Tensor::cat(&parts, 0)?))
}

/// `xs W^T (+ bias)`, then `act` if given, through the int8 kernels, in `xs`'s dtype.
fn int8_forward(
    w: &Int8Matrix,
    xs: &Tensor,
    bias: Option<&Tensor>,
    act: Option<Act>,
) -> Result<Tensor> {
    kernel_forward(w.dims(), xs, bias, |x, rows, b| w.matmul(x, rows, b, act))
}

/// `xs W^T (+ bias)`, then `act` if given, through our GEMM, in `xs`'s dtype.
fn gemm_forward(
    w: &dyn Panels,
    xs: &Tensor,
    bias: Option<&Tensor>,
    act: Option<Act>,
) -> Result<Tensor> {
    kernel_forward(w.dims(), xs, bias, |x, rows, b| match act {
        Some(act) => gemm::gemm_activated(x, rows, w, b, act),
        None => gemm::gemm(x, rows, w, b),
    })
}

/// A `[..., in_dim]` input through `run` (`x` `[rows, in_dim]` row-major and the bias to
/// `[rows, out_dim]`) for a weight of `dims` (`(out_dim, in_dim)`), in `xs`'s dtype.
fn kernel_forward(
    (out_dim, in_dim): (usize, usize),
    xs: &Tensor,
    bias: Option<&Tensor>,
    run: impl Fn(&[f32], usize, Option<&[f32]>) -> Result<Vec<f32>>,
) -> Result<Tensor> {
    if xs.dims().last() != Some(&in_dim) {
        return Err(trustformers_core::Error::ShapeMismatch {
            name: "linear input".into(),
            expected: vec![in_dim],
            actual: xs.dims().to_vec(),
        });
    }
    let rows = rows_of(xs);
    let mut out_dims = xs.dims().to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = out_dim;
    }
    let ys = kernels::with_f32(xs, |x| match bias {
        Some(b) => kernels::with_f32(b, |b| run(x, rows, Some(b))),
        None => run(x, rows, None),
    })?;
    Ok(Tensor::from_vec(ys, out_dims, &Device::Cpu)?.to_dtype(xs.dtype())?)
}
