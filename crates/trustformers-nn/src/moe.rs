//! Sparse mixture-of-experts feed-forward, one module for every family: a router scores
//! every expert per token, the `top_k` best run, and their outputs are summed with the
//! router's softmax weights (renormalised over the chosen experts when asked), plus, where
//! the model has one, a shared expert every token goes through (optionally scaled by a
//! sigmoid gate). Mixtral's `MixtralSparseMoeBlock`, Qwen2-MoE's and Qwen3-MoE's
//! `SparseMoeBlock`, GraniteMoE's `MoE` and gpt-oss's `MLP` (a router with a bias, experts
//! with biases and a clamped SwiGLU, MXFP4 weights dequantized at load) are settings of
//! [`MoeSpec`]. Only the experts a token chose are run, so decoding reads only their weights.

use crate::{Activation, GatedMlp, Linear};
use candle_core::{DType, Tensor};
use trustformers_core::{Error, Result, Weight, Weights};

/// Shape and routing of a mixture-of-experts block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoeSpec {
    pub num_experts: usize,
    /// Experts run per token.
    pub top_k: usize,
    /// Renormalise the chosen experts' weights to sum to one (Mixtral: always; a softmax over
    /// the chosen experts' logits, GraniteMoE's, is the same).
    pub norm_topk_prob: bool,
    /// Width of each routed expert (`moe_intermediate_size`; Mixtral's `intermediate_size`).
    pub intermediate_size: usize,
    /// An expert every token goes through besides the routed ones.
    pub shared_expert: Option<SharedExpert>,
    /// The router has a bias (gpt-oss).
    pub router_bias: bool,
    /// What each routed expert computes.
    pub expert: ExpertKind,
    /// How router logits become expert scores.
    pub scoring: RouterScoring,
    /// Group-limited routing: only the experts of the best groups compete.
    pub groups: Option<GroupRouting>,
    /// The router has `e_score_correction_bias` `[experts]`, added to the scores for choosing
    /// experts only, not for weighting them (DeepSeek-V3).
    pub correction_bias: bool,
    /// The chosen experts' weights are multiplied by this (`routed_scaling_factor`).
    pub routed_scaling_factor: f64,
    /// Each expert runs on its input times the routing weight, instead of its output being
    /// weighted (Llama 4).
    pub weight_inputs: bool,
    /// Stacked expert weights are stored `[experts, in, out]` (`x @ W`: Llama 4) instead of
    /// `[experts, out, in]`.
    pub stacked_in_out: bool,
}

/// How a router's logits become expert scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterScoring {
    /// A softmax over all experts (Mixtral, Qwen-MoE, DeepSeek-V2).
    Softmax,
    /// An independent sigmoid per expert (DeepSeek-V3).
    Sigmoid,
}

/// DeepSeek's group-limited routing: the experts form `n_group` equal groups, each group is
/// scored, and only the experts of the best `topk_group` groups may be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRouting {
    pub n_group: usize,
    pub topk_group: usize,
    pub group_score: GroupScore,
}

/// How a group of experts is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupScore {
    /// Its best expert's score (DeepSeek-V2's `group_limited_greedy`).
    Max,
    /// The sum of its two best experts' scores (DeepSeek-V3, with the correction bias).
    SumTop2,
}

/// What a routed expert computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpertKind {
    /// `down(act(gate(x)) * up(x))` without biases (Mixtral, Qwen-MoE, GraniteMoE).
    Gated,
    /// gpt-oss: biased projections, `gate` clamped above at `limit` and `up` to
    /// `[-limit, limit]`, then `down((up + 1) * gate * sigmoid(alpha * gate))`.
    ClampedSwiGlu { alpha: f64, limit: f64 },
}

/// The always-on expert of Qwen2-MoE (and DeepSeek, Llama 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedExpert {
    /// Its width (`shared_expert_intermediate_size`).
    pub intermediate_size: usize,
    /// Its output is scaled by `sigmoid(shared_expert_gate(x))` (Qwen2-MoE).
    pub gated: bool,
}

impl MoeSpec {
    /// `num_experts` plain SwiGLU experts of width `intermediate_size`, the top `top_k` by a
    /// softmax kept with their weights as they are; the other knobs off.
    pub fn new(num_experts: usize, top_k: usize, intermediate_size: usize) -> Self {
        Self {
            num_experts,
            top_k,
            norm_topk_prob: false,
            intermediate_size,
            shared_expert: None,
            router_bias: false,
            expert: ExpertKind::Gated,
            scoring: RouterScoring::Softmax,
            groups: None,
            correction_bias: false,
            routed_scaling_factor: 1.0,
            weight_inputs: false,
            stacked_in_out: false,
        }
    }

    /// Checks the counts, naming the config field that is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.num_experts == 0 {
            return Err(Error::config("num_experts", "must be at least 1, got 0"));
        }
        if self.top_k == 0 || self.top_k > self.num_experts {
            return Err(Error::config(
                "num_experts_per_tok",
                format!(
                    "must be between 1 and the {} experts, got {}",
                    self.num_experts, self.top_k
                ),
            ));
        }
        if self.intermediate_size == 0 {
            return Err(Error::config(
                "moe_intermediate_size",
                "must be at least 1, got 0",
            ));
        }
        if let Some(g) = self.groups {
            if g.n_group == 0 || !self.num_experts.is_multiple_of(g.n_group) {
                return Err(Error::config(
                    "n_group",
                    format!(
                        "{} groups do not divide {} experts",
                        g.n_group, self.num_experts
                    ),
                ));
            }
            if g.topk_group == 0 || g.topk_group > g.n_group {
                return Err(Error::config(
                    "topk_group",
                    format!(
                        "must be between 1 and the {} groups, got {}",
                        g.n_group, g.topk_group
                    ),
                ));
            }
            let per_group = self.num_experts / g.n_group;
            if g.group_score == GroupScore::SumTop2 && per_group < 2 {
                return Err(Error::config(
                    "n_group",
                    format!("groups of {per_group} expert cannot be scored by their best two"),
                ));
            }
            if self.top_k > g.topk_group * per_group {
                return Err(Error::config(
                    "num_experts_per_tok",
                    format!(
                        "{} experts cannot be chosen from {} groups of {per_group}",
                        self.top_k, g.topk_group
                    ),
                ));
            }
        }
        if !self.routed_scaling_factor.is_finite() {
            return Err(Error::config(
                "routed_scaling_factor",
                "must be a finite number",
            ));
        }
        if let ExpertKind::ClampedSwiGlu { alpha, limit } = self.expert {
            if !(alpha.is_finite() && limit.is_finite() && limit > 0.0) {
                return Err(Error::config(
                    "swiglu_limit",
                    format!("alpha {alpha} and limit {limit} must be finite, the limit positive"),
                ));
            }
        }
        if self.shared_expert.is_some_and(|s| s.intermediate_size == 0) {
            return Err(Error::config(
                "shared_expert_intermediate_size",
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}

/// The shared expert and its gate.
#[derive(Clone)]
struct Shared {
    mlp: GatedMlp,
    gate: Option<Linear>,
}

/// One routed expert.
#[derive(Clone)]
enum Expert {
    Gated(GatedMlp),
    /// `gate_up`'s rows: all of gate, then all of up.
    Clamped {
        gate_up: Linear,
        down: Linear,
        alpha: f64,
        limit: f64,
    },
}

impl Expert {
    /// `xs`: `[tokens, hidden]` -> `[tokens, hidden]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gated(mlp) => mlp.forward(xs),
            Self::Clamped {
                gate_up,
                down,
                alpha,
                limit,
            } => {
                let y = gate_up.forward(xs)?;
                let inter = y.dim(1)? / 2;
                let gate = y.narrow(1, 0, inter)?.minimum(*limit)?;
                let up = y.narrow(1, inter, inter)?.clamp(-*limit, *limit)?;
                let glu = (&gate * candle_nn::ops::sigmoid(&gate.affine(*alpha, 0.0)?)?)?;
                down.forward(&((up + 1.0)? * glu)?)
            }
        }
    }
}

/// Dequantizes an MXFP4 expert tensor as transformers does: `{name}_blocks`
/// `[experts, rows, cols / 32, 16]` bytes holding two FP4 (e2m1) values each, low nibble
/// first, and `{name}_scales` `[experts, rows, cols / 32]` power-of-two exponents biased by
/// 127 -> `[experts, rows, cols]` f32.
fn mxfp4(vb: &Weights, name: &str, experts: usize, rows: usize, cols: usize) -> Result<Tensor> {
    const FP4: [f32; 16] = [
        0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
    ];
    if !cols.is_multiple_of(32) {
        return Err(Error::InvalidInput(format!(
            "{}: MXFP4 rows of {cols} values are not whole blocks of 32",
            vb.path(name)
        )));
    }
    let groups = cols / 32;
    let bytes = |t: Tensor| -> Result<Vec<u8>> {
        Ok(t.to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|x| x as u8)
            .collect())
    };
    let blocks = bytes(vb.get((experts, rows, groups, 16), &format!("{name}_blocks"))?)?;
    let scales = bytes(vb.get((experts, rows, groups), &format!("{name}_scales"))?)?;
    let mut out = Vec::with_capacity(blocks.len() * 2);
    for (block, &scale) in blocks.chunks_exact(16).zip(&scales) {
        let scale = (2f64).powi(i32::from(scale) - 127) as f32;
        for &b in block {
            out.push(FP4[usize::from(b & 0x0f)] * scale);
            out.push(FP4[usize::from(b >> 4)] * scale);
        }
    }
    Ok(Tensor::from_vec(out, (experts, rows, cols), vb.device())?.to_dtype(vb.dtype())?)
}

/// gpt-oss's experts: `gate_up_proj` `[E, H, 2I]` (x @ W; gate and up interleaved, gate on
/// the even columns) and `down_proj` `[E, I, H]`, or their MXFP4 `_blocks` / `_scales`
/// (`[E, 2I, H]` and `[E, H, I]` once unpacked), with `gate_up_proj_bias` `[E, 2I]` and
/// `down_proj_bias` `[E, H]`; or llama.cpp's layout, gate and up apart
/// (`gate_proj.weight` / `up_proj.weight` `[E, I, H]`, `down_proj.weight` `[E, H, I]`, each
/// with its `.bias`).
fn clamped_experts(
    vb: &Weights,
    e: usize,
    inter: usize,
    hidden: usize,
    alpha: f64,
    limit: f64,
) -> Result<Vec<Expert>> {
    // Every layout comes to `gate_up` `[E, 2I, H]` with rows [all of gate; all of up] (and
    // its bias `[E, 2I]`), `down` `[E, H, I]` (and `[E, H]`).
    let (gate_up, gate_up_bias, down, down_bias) = if vb.contains("gate_proj.weight") {
        let gate_up = Tensor::cat(
            &[
                vb.get((e, inter, hidden), "gate_proj.weight")?,
                vb.get((e, inter, hidden), "up_proj.weight")?,
            ],
            1,
        )?;
        let bias = Tensor::cat(
            &[
                vb.get((e, inter), "gate_proj.bias")?,
                vb.get((e, inter), "up_proj.bias")?,
            ],
            1,
        )?;
        (
            gate_up,
            bias,
            vb.get((e, hidden, inter), "down_proj.weight")?,
            vb.get((e, hidden), "down_proj.bias")?,
        )
    } else {
        let (gate_up, down) = if vb.contains("gate_up_proj_blocks") {
            (
                mxfp4(vb, "gate_up_proj", e, 2 * inter, hidden)?,
                mxfp4(vb, "down_proj", e, hidden, inter)?,
            )
        } else {
            (
                vb.get((e, hidden, 2 * inter), "gate_up_proj")?
                    .transpose(1, 2)?,
                vb.get((e, inter, hidden), "down_proj")?.transpose(1, 2)?,
            )
        };
        // Interleaved (gate on the even rows) -> [all of gate; all of up].
        let order: Vec<u32> = (0..inter as u32)
            .map(|i| 2 * i)
            .chain((0..inter as u32).map(|i| 2 * i + 1))
            .collect();
        let order = Tensor::from_vec(order, 2 * inter, vb.device())?;
        (
            gate_up.contiguous()?.index_select(&order, 1)?,
            vb.get((e, 2 * inter), "gate_up_proj_bias")?
                .index_select(&order, 1)?,
            down,
            vb.get((e, hidden), "down_proj_bias")?,
        )
    };
    (0..e)
        .map(|i| -> Result<Expert> {
            Ok(Expert::Clamped {
                gate_up: Linear::from_weight(
                    Weight::Dense(gate_up.get(i)?.contiguous()?),
                    Some(gate_up_bias.get(i)?),
                )?,
                down: Linear::from_weight(
                    Weight::Dense(down.get(i)?.contiguous()?),
                    Some(down_bias.get(i)?),
                )?,
                alpha,
                limit,
            })
        })
        .collect()
}

/// The router and its experts.
#[derive(Clone)]
pub struct SparseMoe {
    router: Linear,
    /// `e_score_correction_bias`, when the router has one.
    correction_bias: Option<Vec<f32>>,
    experts: Vec<Expert>,
    shared: Option<Shared>,
    spec: MoeSpec,
}

impl SparseMoe {
    /// Loads the block of one decoder layer from `layer` (e.g. `model.layers.3`), in any of
    /// the layouts checkpoints ship:
    /// - the block under `mlp` (Qwen-MoE, transformers 5) or `block_sparse_moe` (Mixtral,
    ///   GraniteMoE);
    /// - the router as `gate`, `router` or `router.layer`;
    /// - the experts stacked (`experts.gate_up_proj` `[E, 2I, H]` + `experts.down_proj`
    ///   `[E, H, I]`, or GraniteMoE's `input_linear` + `output_linear`) or one by one
    ///   (`experts.{e}.w1/w3/w2`, `experts.{e}.gate_proj/up_proj/down_proj`);
    /// - the shared expert as `shared_expert.{gate,up,down}_proj` with `shared_expert_gate`.
    pub fn load(layer: &Weights, spec: MoeSpec, hidden: usize, act: Activation) -> Result<Self> {
        spec.validate()?;
        let (e, inter) = (spec.num_experts, spec.intermediate_size);
        let block = ["mlp", "block_sparse_moe", "feed_forward"]
            .into_iter()
            .map(|b| layer.pp(b))
            .find(|b| {
                ["gate.weight", "router.weight", "router.layer.weight"]
                    .iter()
                    .any(|r| b.contains(r))
            })
            .ok_or_else(|| Error::MissingTensor {
                name: layer.path("mlp.gate.weight"),
            })?;
        let router_vb = if block.contains("gate.weight") {
            block.pp("gate")
        } else if block.contains("router.layer.weight") {
            block.pp("router").pp("layer")
        } else {
            block.pp("router")
        };
        let stacked = |gate_up: &str, down: &str, vb: &Weights| -> Result<Vec<GatedMlp>> {
            let (gate_up, down) = if spec.stacked_in_out {
                (
                    vb.get((e, hidden, 2 * inter), gate_up)?.transpose(1, 2)?,
                    vb.get((e, inter, hidden), down)?.transpose(1, 2)?,
                )
            } else {
                (
                    vb.get((e, 2 * inter, hidden), gate_up)?,
                    vb.get((e, hidden, inter), down)?,
                )
            };
            (0..e)
                .map(|i| -> Result<GatedMlp> {
                    Ok(GatedMlp::from_layers(
                        Linear::from_weight(Weight::Dense(gate_up.get(i)?.contiguous()?), None)?,
                        Linear::from_weight(Weight::Dense(down.get(i)?.contiguous()?), None)?,
                        act,
                    ))
                })
                .collect()
        };
        let gated = |experts: Vec<GatedMlp>| experts.into_iter().map(Expert::Gated).collect();
        let experts_vb = block.pp("experts");
        let experts: Vec<Expert> = if let ExpertKind::ClampedSwiGlu { alpha, limit } = spec.expert {
            clamped_experts(&experts_vb, e, inter, hidden, alpha, limit)?
        } else if experts_vb.contains("gate_up_proj") {
            gated(stacked("gate_up_proj", "down_proj", &experts_vb)?)
        } else if block.contains("input_linear.weight") {
            gated(stacked(
                "input_linear.weight",
                "output_linear.weight",
                &block,
            )?)
        } else {
            let [gate, up, down] = if experts_vb.pp(0).contains("w1.weight") {
                ["w1", "w3", "w2"]
            } else {
                ["gate_proj", "up_proj", "down_proj"]
            };
            gated(
                (0..e)
                    .map(|i| {
                        let x = experts_vb.pp(i);
                        GatedMlp::from_separate(
                            Linear::new(&x.pp(gate), hidden, inter, false)?,
                            Linear::new(&x.pp(up), hidden, inter, false)?,
                            Linear::new(&x.pp(down), inter, hidden, false)?,
                            act,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        let shared = spec
            .shared_expert
            .map(|s| -> Result<Shared> {
                // DeepSeek names them in the plural.
                let name = match block.contains("shared_experts.gate_proj.weight") {
                    true => "shared_experts",
                    false => "shared_expert",
                };
                Ok(Shared {
                    mlp: GatedMlp::new(&block.pp(name), hidden, s.intermediate_size, false, act)?,
                    gate: s
                        .gated
                        .then(|| Linear::new(&block.pp("shared_expert_gate"), hidden, 1, false))
                        .transpose()?,
                })
            })
            .transpose()?;
        let correction_bias = spec
            .correction_bias
            .then(|| -> Result<Vec<f32>> {
                // llama.cpp's `exp_probs_b.bias` arrives as `e_score_correction.bias`.
                let name = if router_vb.contains("e_score_correction.bias") {
                    "e_score_correction.bias"
                } else {
                    "e_score_correction_bias"
                };
                Ok(router_vb
                    .get(e, name)?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?)
            })
            .transpose()?;
        Ok(Self {
            correction_bias,
            router: Linear::new(&router_vb, hidden, e, spec.router_bias)?,
            experts,
            shared,
            spec,
        })
    }

    /// The experts one token goes to, from its scores `p`: the `top_k` best by score (plus
    /// the correction bias when the router has one), among the experts of the best groups
    /// when routing is group-limited. Ties keep the lower index first, as `torch.topk`.
    fn choose(&self, p: &[f32]) -> Vec<usize> {
        let mut choice: Vec<f32> = match &self.correction_bias {
            Some(bias) => p.iter().zip(bias).map(|(s, b)| s + b).collect(),
            None => p.to_vec(),
        };
        let by_score = |v: &[f32]| {
            let mut order: Vec<usize> = (0..v.len()).collect();
            order.sort_by(|&i, &j| v[j].total_cmp(&v[i]).then(i.cmp(&j)));
            order
        };
        if let Some(g) = self.spec.groups {
            let size = choice.len() / g.n_group;
            let group_scores: Vec<f32> = choice
                .chunks_exact(size)
                .map(|group| {
                    let best = by_score(group);
                    match g.group_score {
                        GroupScore::Max => group[best[0]],
                        GroupScore::SumTop2 => group[best[0]] + group[best[1]],
                    }
                })
                .collect();
            let kept = &by_score(&group_scores)[..g.topk_group];
            for (gi, group) in choice.chunks_exact_mut(size).enumerate() {
                if !kept.contains(&gi) {
                    group.iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
                }
            }
        }
        let mut order = by_score(&choice);
        order.truncate(self.spec.top_k);
        order
    }

    /// The chosen experts on one token `x` `[1, hidden]`, weighted and summed, in f32: the
    /// gate and up projections of every chosen plain expert run as one batch of mat-vecs
    /// (one quantization of `x`, one dispatch), as llama.cpp's `mul_mat_id` does.
    fn one_token(&self, x: &Tensor, routed: &[(Vec<u32>, Vec<f32>)]) -> Result<Tensor> {
        let chosen: Vec<(&Expert, f32)> = self
            .experts
            .iter()
            .zip(routed)
            .filter_map(|(e, (tokens, w))| {
                w.first().filter(|_| !tokens.is_empty()).map(|&w| (e, w))
            })
            .collect();
        let mut out = Tensor::zeros(x.dims(), DType::F32, x.device())?;
        // Every chosen expert's MLP (with separate gate and up layers) and weight.
        let plain: Option<Vec<(&GatedMlp, f32)>> = chosen
            .iter()
            .map(|(e, w)| match e {
                Expert::Gated(mlp) if mlp.gate_up().is_some() => Some((mlp, *w)),
                _ => None,
            })
            .collect();
        if let Some(plain) = plain.filter(|p| p.len() > 1) {
            let layers: Vec<&Linear> = plain
                .iter()
                .filter_map(|(mlp, _)| mlp.gate_up())
                .flat_map(|(g, u)| [g, u])
                .collect();
            let outs = Linear::forward_many(&layers, x)?;
            let hidden = plain
                .iter()
                .zip(outs.chunks_exact(2))
                .map(|((mlp, _), pair)| mlp.gated(&pair[0], &pair[1]))
                .collect::<Result<Vec<_>>>()?;
            let downs: Vec<(&Linear, &Tensor)> = plain
                .iter()
                .map(|(mlp, _)| mlp.down())
                .zip(&hidden)
                .collect();
            for ((_, w), y) in plain.iter().zip(Linear::forward_each(&downs)?) {
                out = (out + y.affine(f64::from(*w), 0.0)?.to_dtype(DType::F32)?)?;
            }
            return Ok(out);
        }
        for (expert, w) in chosen {
            let y = expert.forward(x)?.affine(f64::from(w), 0.0)?;
            out = (out + y.to_dtype(DType::F32)?)?;
        }
        Ok(out)
    }

    /// # Shapes
    /// `xs`: `[batch, seq, hidden]` -> `[batch, seq, hidden]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        let flat = xs.reshape((b * s, h))?;
        let logits = self.router.forward(&flat)?.to_dtype(DType::F32)?;
        let training = crate::differentiable(&[&logits]);
        let scores_t = match self.spec.scoring {
            RouterScoring::Softmax if training => crate::autograd::softmax_last_dim(&logits)?,
            RouterScoring::Softmax => candle_nn::ops::softmax_last_dim(&logits)?,
            RouterScoring::Sigmoid => candle_nn::ops::sigmoid(&logits)?,
        };
        let scores: Vec<Vec<f32>> = scores_t.to_vec2()?;
        let scale = self.spec.routed_scaling_factor as f32;
        // Per expert: the tokens routed to it and their weights.
        let mut routed: Vec<(Vec<u32>, Vec<f32>)> =
            vec![(Vec::new(), Vec::new()); self.experts.len()];
        for (token, p) in scores.iter().enumerate() {
            let chosen = self.choose(p);
            let total: f32 = chosen.iter().map(|&i| p[i]).sum();
            for &i in &chosen {
                let w = if self.spec.norm_topk_prob {
                    p[i] / total
                } else {
                    p[i]
                };
                routed[i].0.push(token as u32);
                routed[i].1.push(w * scale);
            }
        }
        // Training: the routing weights as tensor ops over `scores_t`, so the router gets its
        // gradient (the choice of experts itself has none, as in torch).
        let routing = if training {
            let experts = self.experts.len();
            let mut chosen = vec![0f32; scores.len() * experts];
            for (i, (tokens, _)) in routed.iter().enumerate() {
                for &t in tokens {
                    chosen[t as usize * experts + i] = 1.0;
                }
            }
            let chosen = Tensor::from_vec(chosen, (scores.len(), experts), xs.device())?;
            let kept = (&scores_t * chosen)?;
            let kept = if self.spec.norm_topk_prob {
                kept.broadcast_div(&kept.sum_keepdim(1)?)?
            } else {
                kept
            };
            Some(kept.affine(f64::from(scale), 0.0)?)
        } else {
            None
        };
        let mut out = Tensor::zeros((b * s, h), DType::F32, xs.device())?;
        // One token (decode): its experts run on it directly, no gather or scatter.
        let single = b * s == 1 && routing.is_none();
        if single && !self.spec.weight_inputs {
            out = self.one_token(&flat, &routed)?;
        } else if single {
            for (expert, (tokens, weights)) in self.experts.iter().zip(&routed) {
                let Some(&w) = weights.first().filter(|_| !tokens.is_empty()) else {
                    continue;
                };
                let y = if self.spec.weight_inputs {
                    expert.forward(&flat.affine(f64::from(w), 0.0)?)?
                } else {
                    expert.forward(&flat)?.affine(f64::from(w), 0.0)?
                };
                out = (out + y.to_dtype(DType::F32)?)?;
            }
        }
        for (i, (expert, (tokens, weights))) in self.experts.iter().zip(routed).enumerate() {
            if single || tokens.is_empty() {
                continue;
            }
            let n = tokens.len();
            let idx = Tensor::from_vec(tokens, n, xs.device())?;
            let w = match &routing {
                Some(r) => r.index_select(&idx, 0)?.narrow(1, i, 1)?,
                None => Tensor::from_vec(weights, (n, 1), xs.device())?,
            };
            let input = flat.index_select(&idx, 0)?;
            let y = if self.spec.weight_inputs {
                let w = w.to_dtype(input.dtype())?;
                expert
                    .forward(&input.broadcast_mul(&w)?)?
                    .to_dtype(DType::F32)?
            } else {
                expert
                    .forward(&input)?
                    .to_dtype(DType::F32)?
                    .broadcast_mul(&w)?
            };
            out = out.index_add(&idx, &y, 0)?;
        }
        let mut out = out.to_dtype(xs.dtype())?;
        if let Some(shared) = &self.shared {
            let mut y = shared.mlp.forward(&flat)?;
            if let Some(gate) = &shared.gate {
                y = y.broadcast_mul(&candle_nn::ops::sigmoid(&gate.forward(&flat)?)?)?;
            }
            out = (out + y)?;
        }
        Ok(out.reshape((b, s, h))?)
    }
}
