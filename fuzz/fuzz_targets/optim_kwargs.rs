//! Any bytes as an optimizer's or a scheduler's keyword arguments (the JSON of `trustformers
//! debug optim --config` and of `lr_scheduler_kwargs`): every optimizer and scheduler either
//! refuses them with an error or is built and takes a few steps without a panic.
#![no_main]

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use libfuzzer_sys::fuzz_target;
use trustformers_optim::schedule::SCHEDULERS;
use trustformers_optim::{
    by_name, get_scheduler, torch_scheduler, CyclicLr, OneCycleLr, Param, ReduceLrOnPlateau,
    OPTIMIZERS,
};

fn params() -> Option<Vec<Param>> {
    let w =
        Var::from_tensor(&Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25]], &Device::Cpu).ok()?).ok()?;
    let b = Var::zeros(2, DType::F32, &Device::Cpu).ok()?;
    Some(vec![Param::new("w", w), Param::new("b", b)])
}

fn grads(params: &[Param]) -> Option<GradStore> {
    let mut grads = GradStore::default();
    for p in params {
        grads.insert(p.var.as_tensor(), p.var.as_tensor().affine(0.5, 0.1).ok()?);
    }
    Some(grads)
}

fuzz_target!(|data: &[u8]| {
    let Ok(kwargs) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Some(params) = params() else { return };
    let Some(grads) = grads(&params) else { return };
    for name in OPTIMIZERS {
        if let Ok(mut opt) = by_name(name, params.clone(), &kwargs) {
            for _ in 0..3 {
                let _ = opt.step(&grads);
            }
        }
    }
    for name in SCHEDULERS {
        if let Ok(schedule) = get_scheduler(name, 1e-3, Some(10), Some(100), &kwargs) {
            for step in [0, 1, 10, 99, 100, 1_000, u64::MAX] {
                let _ = schedule.factor(step);
            }
        }
    }
    for name in ["StepLR", "MultiStepLR", "ExponentialLR"] {
        if let Ok(schedule) = torch_scheduler(name, &kwargs) {
            for step in [0, 1, 10, 1_000, u64::MAX] {
                let _ = schedule.factor(step);
            }
        }
    }
    if let Ok(mut plateau) = ReduceLrOnPlateau::new(&kwargs) {
        if let Ok(mut opt) = by_name("SGD", params.clone(), &serde_json::json!({"lr": 0.1})) {
            for metric in [1.0, 1.0, 0.5, f64::NAN, 2.0] {
                let _ = plateau.step(opt.as_mut(), metric);
            }
        }
    }
    let sgd = serde_json::json!({"lr": 0.1, "momentum": 0.9});
    if let Ok(mut opt) = by_name("SGD", params.clone(), &sgd) {
        if let Ok(mut cycle) = OneCycleLr::new(opt.as_mut(), &kwargs) {
            for _ in 0..3 {
                let _ = cycle.step(opt.as_mut());
            }
        }
        if let Ok(mut cycle) = CyclicLr::new(opt.as_mut(), &kwargs) {
            for _ in 0..3 {
                let _ = cycle.step(opt.as_mut());
            }
        }
    }
});
