//! Gradient checkpointing: a block's activations are recomputed in backward instead of kept
//! from forward (torch's `torch.utils.checkpoint`, transformers' `gradient_checkpointing`).
//!
//! Inside [`checkpointing`], [`checkpoint`]`(x, f)` runs `f(x)` and keeps only its output:
//! the graph of `f` (every intermediate activation) is dropped at once, and the output is one
//! custom op on `x`. Its backward runs `f` again on a copy of `x` with the same dropout masks
//! (the generator's state at the block's entry is kept, as torch's `preserve_rng_state`),
//! backpropagates the incoming gradient through that one block, returns the gradient of `x`
//! and sets aside the gradients of the weights `f` used. [`backward`] runs a loss's backward
//! and adds those set-aside gradients to the returned store.
//!
//! Peak memory is then one block's activations plus each block's input, for about one extra
//! forward pass of compute.

use crate::dropout::{self, DropoutRng};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, TensorId, Var};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use trustformers_core::Result;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    /// Weight gradients found while recomputing blocks, by weight.
    static SET_ASIDE: RefCell<Option<HashMap<TensorId, Tensor>>> = const { RefCell::new(None) };
}

/// Runs `f` with gradient checkpointing on: [`checkpoint`] recomputes instead of keeping.
/// Per thread, like [`dropout::training`].
pub fn checkpointing<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENABLED.set(self.0);
        }
    }
    let _restore = Restore(ENABLED.replace(true));
    f()
}

/// Whether [`checkpoint`] recomputes on this thread now.
pub fn is_enabled() -> bool {
    ENABLED.get()
}

/// `loss.backward()`, plus the weight gradients of the blocks [`checkpoint`] recomputed.
pub fn backward(loss: &Tensor) -> Result<GradStore> {
    struct Restore(Option<HashMap<TensorId, Tensor>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SET_ASIDE.set(self.0.take());
        }
    }
    let restore = Restore(SET_ASIDE.replace(Some(HashMap::new())));
    let mut grads = loss.backward()?;
    let aside = SET_ASIDE.replace(None).unwrap_or_default();
    drop(restore);
    for (id, g) in aside {
        let sum = match grads.get_id(id) {
            Some(old) => (old + g)?,
            None => g,
        };
        grads.insert_id(id, sum);
    }
    Ok(grads)
}

/// A block the checkpoint op can rerun: its input -> its output.
pub type Block = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// `block(x)`, recomputed in backward when [`checkpointing`] is on and `x` or the block's
/// weights are trainable; plain `block(x)` otherwise. Everything else the block reads (masks,
/// rotary tables) must be constant: only `x` and the weights get gradients.
///
/// # Shapes
/// `x`: any -> what `block` returns.
pub fn checkpoint(x: &Tensor, block: Block) -> Result<Tensor> {
    if !is_enabled() || !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        return block(x);
    }
    let rng = dropout::current_rng();
    let out = block(x)?;
    if !out.track_op() {
        return Ok(out);
    }
    // An input outside the graph (frozen embeddings under LoRA) still needs a node, or the
    // backward pass would never reach the block's weights.
    let x = if x.track_op() {
        x.clone()
    } else {
        Var::from_tensor(x)?.as_tensor().clone()
    };
    let op = Recompute {
        block,
        rng,
        out: Mutex::new(Some(out.detach())),
    };
    Ok(x.apply_op1_arc(Arc::new(Box::new(op)))?)
}

struct Recompute {
    block: Block,
    /// The dropout generator at the block's entry, to draw the same masks again.
    rng: Option<DropoutRng>,
    /// The output of the forward pass, handed to the graph once.
    out: Mutex<Option<Tensor>>,
}

impl CustomOp1 for Recompute {
    fn name(&self) -> &'static str {
        "gradient_checkpoint"
    }

    fn cpu_fwd(&self, _s: &CpuStorage, _l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = self
            .out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| candle_core::Error::Msg("checkpoint: forward ran twice".into()))?;
        let values = out.flatten_all()?.to_vec1::<f32>()?;
        Ok((CpuStorage::F32(values), out.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let to_candle = |e: trustformers_core::Error| candle_core::Error::Msg(e.to_string());
        let x = Var::from_tensor(&arg.detach())?;
        // The recomputation keeps its graph (that is the point) and draws the same masks.
        let rerun = || {
            let enabled = ENABLED.replace(false);
            let y = (self.block)(x.as_tensor());
            ENABLED.set(enabled);
            y
        };
        let y = match self.rng {
            Some(mut rng) => dropout::training(&mut rng, rerun),
            None => rerun(),
        }
        .map_err(to_candle)?;
        // Only the weights' gradients are kept (not the block's intermediate ones).
        let weights: Vec<TensorId> = y
            .sorted_nodes()
            .iter()
            .filter(|t| t.is_variable() && t.id() != x.as_tensor().id())
            .map(|t| t.id())
            .collect();
        let grads = (y * grad.detach())?.sum_all()?.backward()?;
        SET_ASIDE.with_borrow_mut(|aside| -> candle_core::Result<()> {
            let Some(aside) = aside else {
                return Err(candle_core::Error::Msg(
                    "checkpoint: a backward pass outside nn::checkpoint::backward would lose \
                     the block's weight gradients"
                        .into(),
                ));
            };
            for id in weights {
                if let Some(g) = grads.get_id(id) {
                    let sum = match aside.remove(&id) {
                        Some(old) => (old + g)?,
                        None => g.clone(),
                    };
                    aside.insert(id, sum);
                }
            }
            Ok(())
        })?;
        let gx = grads.get(x.as_tensor()).cloned();
        Ok(gx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{DType, Device};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `sum(tanh(x W) * 2)` through a checkpoint: the gradients of `x` and `W` are the
    /// plain ones, and the block ran twice (forward, then recomputed in backward).
    #[test]
    fn recomputes_with_the_same_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 4), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1., (4, 5), &dev).unwrap()).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let block = {
            let (w, runs) = (w.as_tensor().clone(), runs.clone());
            Arc::new(move |x: &Tensor| -> Result<Tensor> {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok((x.matmul(&w)?.tanh()? * 2.0)?)
            }) as Block
        };
        let plain = backward(&block(x.as_tensor()).unwrap().sum_all().unwrap()).unwrap();
        runs.store(0, Ordering::SeqCst);
        let y = checkpointing(|| checkpoint(x.as_tensor(), block.clone())).unwrap();
        assert_eq!(y.sorted_nodes().len(), 2, "only x and the checkpoint node");
        let grads = backward(&y.sum_all().unwrap()).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        for t in [x.as_tensor(), w.as_tensor()] {
            let (a, b) = (plain.get(t).unwrap(), grads.get(t).unwrap());
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        }
        // A bare `backward()` would drop W's gradient: it is refused.
        let y = checkpointing(|| checkpoint(x.as_tensor(), block.clone())).unwrap();
        assert!(y.sum_all().unwrap().backward().is_err());
        // Outside `checkpointing`, the block just runs.
        let y = checkpoint(x.as_tensor(), block).unwrap();
        assert!(y.sorted_nodes().len() > 2);
        assert_eq!(y.dtype(), DType::F32);
    }
}
