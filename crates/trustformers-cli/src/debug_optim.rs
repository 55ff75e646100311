//! `trustformers debug optim`: an optimizer (and optionally a learning-rate schedule) run
//! on saved parameters and gradients, every step's parameters written out, so that any
//! reference (torch, transformers, timm) can be compared step by step.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use trustformers::optim::{by_name, get_scheduler, torch_scheduler, LambdaLr, Param};

#[derive(Args)]
pub struct OptimArgs {
    /// The optimizer, by its reference's class name (SGD, Adam, AdamW, NAdam, ...).
    #[arg(long)]
    optimizer: String,
    /// The reference constructor's keyword arguments as JSON, e.g.
    /// '{"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.01}'.
    #[arg(long, default_value = "{}")]
    config: String,
    /// safetensors file with the initial parameters by name (f32).
    #[arg(long)]
    params: PathBuf,
    /// safetensors file with every step's gradients as `{step}/{name}` (step 0..S-1); a
    /// parameter without a gradient at a step is skipped, as torch skips `grad is None`.
    #[arg(long)]
    grads: PathBuf,
    /// How many steps to take.
    #[arg(long)]
    steps: usize,
    /// Where to write every step's parameters (`{step}/{name}`) and the learning rate used
    /// at each step (`lr`, f64).
    #[arg(long)]
    out: PathBuf,
    /// A transformers learning-rate schedule (linear, cosine, ...) or torch's StepLR,
    /// MultiStepLR or ExponentialLR; it steps after each optimizer step, as in a training
    /// loop.
    #[arg(long)]
    scheduler: Option<String>,
    /// The schedule's own keyword arguments as JSON (`scheduler_specific_kwargs`).
    #[arg(long, default_value = "{}")]
    scheduler_config: String,
    #[arg(long)]
    num_warmup_steps: Option<u64>,
    #[arg(long)]
    num_training_steps: Option<u64>,
}

fn json(flag: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("--{flag} is not JSON: {text}"))
}

pub fn run(args: &OptimArgs) -> Result<()> {
    let device = Device::Cpu;
    let config = json("config", &args.config)?;
    let initial = candle_core::safetensors::load(&args.params, &device)
        .with_context(|| format!("reading {}", args.params.display()))?;
    let grads: HashMap<String, Tensor> = candle_core::safetensors::load(&args.grads, &device)
        .with_context(|| format!("reading {}", args.grads.display()))?;
    let mut names: Vec<&String> = initial.keys().collect();
    names.sort();
    let params = names
        .iter()
        .map(|name| -> Result<Param> {
            let t = &initial[*name];
            if t.dtype() != DType::F32 {
                bail!(
                    "parameter `{name}` is {:?}; the optimizers step f32 parameters",
                    t.dtype()
                );
            }
            Ok(Param::new(name.as_str(), Var::from_tensor(t)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut opt = by_name(&args.optimizer, params.clone(), &config)?;
    let mut schedule = match &args.scheduler {
        Some(name) => {
            let lr_init = opt.learning_rates().first().copied().unwrap_or_default();
            let kwargs = json("scheduler-config", &args.scheduler_config)?;
            let schedule = if ["StepLR", "MultiStepLR", "ExponentialLR"].contains(&name.as_str()) {
                torch_scheduler(name, &kwargs)?
            } else {
                get_scheduler(
                    name,
                    lr_init,
                    args.num_warmup_steps,
                    args.num_training_steps,
                    &kwargs,
                )?
            };
            Some(LambdaLr::new(opt.as_mut(), schedule)?)
        }
        None => None,
    };
    // Schedule-free optimizers step in train mode (nothing for the others).
    opt.train()?;
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut lrs = Vec::with_capacity(args.steps);
    for step in 0..args.steps {
        let mut store = candle_core::backprop::GradStore::default();
        for p in &params {
            if let Some(g) = grads.get(&format!("{step}/{}", p.name)) {
                store.insert(p.var.as_tensor(), g.clone());
            }
        }
        if store.get_ids().next().is_none() {
            bail!(
                "{} holds no gradient for step {step} (keys `{step}/{{name}}`)",
                args.grads.display()
            );
        }
        lrs.push(opt.learning_rates().first().copied().unwrap_or_default());
        opt.step(&store)
            .with_context(|| format!("{} step {step}", args.optimizer))?;
        for p in &params {
            // A copy: the variable's storage is updated in place by the next step.
            out.insert(format!("{step}/{}", p.name), p.var.as_tensor().copy()?);
        }
        if let Some(s) = &mut schedule {
            s.step(opt.as_mut())?;
        }
    }
    out.insert("lr".into(), Tensor::new(lrs, &device)?);
    candle_core::safetensors::save(&out, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
