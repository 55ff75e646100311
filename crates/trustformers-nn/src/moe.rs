//! Sparse mixture-of-experts feed-forward (Mixtral's `MixtralSparseMoeBlock`): a router
//! scores every expert per token, the `top_k` best run, and their outputs are summed with the
//! router's softmax weights (renormalised over the chosen experts when asked).

use crate::{Activation, GatedMlp, Linear};
use candle_core::{DType, Tensor};
use trustformers_core::{Error, Result, Weight, Weights};

/// Shape of a mixture-of-experts block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoeSpec {
    pub num_experts: usize,
    /// Experts run per token.
    pub top_k: usize,
    /// Renormalise the chosen experts' weights to sum to one (Mixtral: always).
    pub norm_topk_prob: bool,
}

/// The router and its experts.
#[derive(Clone)]
pub struct SparseMoe {
    router: Linear,
    experts: Vec<GatedMlp>,
    spec: MoeSpec,
}

impl SparseMoe {
    /// Loads the block of one decoder layer from `layer` (e.g. `model.layers.3`): the
    /// transformers 5 layout (`mlp.gate`, `mlp.experts.gate_up_proj` `[E, 2I, H]`,
    /// `mlp.experts.down_proj` `[E, H, I]`) or the Hub's original one
    /// (`block_sparse_moe.gate`, `block_sparse_moe.experts.{e}.w1/w3/w2`).
    pub fn load(
        layer: &Weights,
        spec: MoeSpec,
        hidden: usize,
        intermediate: usize,
        act: Activation,
    ) -> Result<Self> {
        if spec.top_k == 0 || spec.top_k > spec.num_experts {
            return Err(Error::config(
                "num_experts_per_tok",
                format!(
                    "must be between 1 and the {} experts, got {}",
                    spec.num_experts, spec.top_k
                ),
            ));
        }
        let e = spec.num_experts;
        let fused = layer.pp("mlp").pp("experts");
        let (router_vb, experts) = if fused.contains("gate_up_proj") {
            let gate_up = fused.get((e, 2 * intermediate, hidden), "gate_up_proj")?;
            let down = fused.get((e, hidden, intermediate), "down_proj")?;
            let experts = (0..e)
                .map(|i| -> Result<GatedMlp> {
                    Ok(GatedMlp::from_layers(
                        Linear::from_weight(Weight::Dense(gate_up.get(i)?), None)?,
                        Linear::from_weight(Weight::Dense(down.get(i)?), None)?,
                        act,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            (layer.pp("mlp").pp("gate"), experts)
        } else {
            let moe = layer.pp("block_sparse_moe");
            let experts = (0..e)
                .map(|i| {
                    let x = moe.pp("experts").pp(i);
                    GatedMlp::from_separate(
                        Linear::new(&x.pp("w1"), hidden, intermediate, false)?,
                        Linear::new(&x.pp("w3"), hidden, intermediate, false)?,
                        Linear::new(&x.pp("w2"), intermediate, hidden, false)?,
                        act,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            (moe.pp("gate"), experts)
        };
        Ok(Self {
            router: Linear::new(&router_vb, hidden, e, false)?,
            experts,
            spec,
        })
    }

    /// # Shapes
    /// `xs`: `[batch, seq, hidden]` -> `[batch, seq, hidden]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        let flat = xs.reshape((b * s, h))?;
        let logits = self.router.forward(&flat)?.to_dtype(DType::F32)?;
        let training = crate::differentiable(&[&logits]);
        let probs_t = if training {
            crate::autograd::softmax_last_dim(&logits)?
        } else {
            candle_nn::ops::softmax_last_dim(&logits)?
        };
        let probs: Vec<Vec<f32>> = probs_t.to_vec2()?;
        // Per expert: the tokens routed to it and their weights.
        let mut routed: Vec<(Vec<u32>, Vec<f32>)> =
            vec![(Vec::new(), Vec::new()); self.experts.len()];
        for (token, p) in probs.iter().enumerate() {
            let mut order: Vec<usize> = (0..p.len()).collect();
            // torch.topk: largest first; equal scores keep the lower index first.
            order.sort_by(|&i, &j| p[j].total_cmp(&p[i]).then(i.cmp(&j)));
            let chosen = &order[..self.spec.top_k];
            let total: f32 = chosen.iter().map(|&i| p[i]).sum();
            for &i in chosen {
                let w = if self.spec.norm_topk_prob {
                    p[i] / total
                } else {
                    p[i]
                };
                routed[i].0.push(token as u32);
                routed[i].1.push(w);
            }
        }
        // Training: the routing weights as tensor ops over `probs_t`, so the router gets its
        // gradient (the choice of experts itself has none, as in torch).
        let routing = if training {
            let experts = self.experts.len();
            let mut chosen = vec![0f32; probs.len() * experts];
            for (i, (tokens, _)) in routed.iter().enumerate() {
                for &t in tokens {
                    chosen[t as usize * experts + i] = 1.0;
                }
            }
            let chosen = Tensor::from_vec(chosen, (probs.len(), experts), xs.device())?;
            let kept = (&probs_t * chosen)?;
            Some(if self.spec.norm_topk_prob {
                kept.broadcast_div(&kept.sum_keepdim(1)?)?
            } else {
                kept
            })
        } else {
            None
        };
        let mut out = Tensor::zeros((b * s, h), DType::F32, xs.device())?;
        for (i, (expert, (tokens, weights))) in self.experts.iter().zip(routed).enumerate() {
            if tokens.is_empty() {
                continue;
            }
            let n = tokens.len();
            let idx = Tensor::from_vec(tokens, n, xs.device())?;
            let w = match &routing {
                Some(r) => r.index_select(&idx, 0)?.narrow(1, i, 1)?,
                None => Tensor::from_vec(weights, (n, 1), xs.device())?,
            };
            let y = expert.forward(&flat.index_select(&idx, 0)?)?;
            let y = y.to_dtype(DType::F32)?.broadcast_mul(&w)?;
            out = out.index_add(&idx, &y, 0)?;
        }
        Ok(out.to_dtype(xs.dtype())?.reshape((b, s, h))?)
    }
}
