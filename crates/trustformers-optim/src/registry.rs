//! Optimizers by their reference class names, with the reference constructors' keyword
//! arguments and parameter groups, and transformers' weight-decay grouping.

use crate::{Algorithm, Hyper, Optim, Optimizer, Param, ParamGroup};
use serde_json::{json, Value};
use trustformers_core::{Error, Result};

/// Reads hyper-parameters from the reference constructor's keyword arguments (`{"lr":
/// 1e-3, "betas": [0.9, 0.999]}`); an unknown argument or a value out of range is an error
/// naming it.
pub fn config_from_kwargs<C: Hyper>(name: &str, kwargs: &Value) -> Result<C> {
    let config: C = serde_json::from_value(kwargs.clone())
        .map_err(|e| Error::config(format!("{name} arguments"), e.to_string()))?;
    config.validate()?;
    Ok(config)
}

/// A parameter group as torch takes one: its parameters, and the constructor arguments it
/// overrides (`{"params": [...], "weight_decay": 0.0}`).
pub struct GroupSpec {
    pub params: Vec<Param>,
    pub overrides: Value,
}

/// `kwargs` with `overrides` on top (both JSON objects).
fn merged(kwargs: &Value, overrides: &Value) -> Result<Value> {
    let mut out = match kwargs {
        Value::Object(m) => m.clone(),
        Value::Null => serde_json::Map::new(),
        other => {
            return Err(Error::config(
                "optimizer arguments",
                format!("must be a JSON object, got {other}"),
            ))
        }
    };
    match overrides {
        Value::Object(m) => out.extend(m.clone()),
        Value::Null => {}
        other => {
            return Err(Error::config(
                "parameter group",
                format!("must be a JSON object, got {other}"),
            ))
        }
    }
    Ok(Value::Object(out))
}

fn boxed<A: Algorithm + 'static>(groups: Vec<GroupSpec>, kwargs: &Value) -> Result<Box<dyn Optim>> {
    let groups = groups
        .into_iter()
        .map(|g| -> Result<ParamGroup<A::Config>> {
            Ok(ParamGroup {
                config: config_from_kwargs::<A::Config>(A::NAME, &merged(kwargs, &g.overrides)?)?,
                params: g.params,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(Optimizer::<A>::with_groups(groups)?))
}

/// transformers' rule for which parameters get weight decay (`Trainer.get_decay_parameter_names`):
/// none inside a LayerNorm module (`layer_norms`: their module names, since names alone do
/// not say which modules are LayerNorms, e.g. GPT-2's `ln_1`), and none whose lowercased name
/// holds `bias`, `layernorm`, `rmsnorm`, a `norm` component or a `_norm` suffix.
pub fn decays_weight(name: &str, layer_norms: &[&str]) -> bool {
    let in_layer_norm = layer_norms.iter().any(|m| {
        name.strip_prefix(m)
            .is_some_and(|rest| rest.starts_with('.'))
    });
    let n = name.to_lowercase();
    let parts: Vec<&str> = n.split('.').collect();
    let excluded = n.contains("bias")
        || n.contains("layernorm")
        || n.contains("rmsnorm")
        || parts.contains(&"norm")
        || parts.iter().any(|p| p.ends_with("_norm"));
    !in_layer_norm && !excluded
}

/// The Trainer's two parameter groups: those that decay, with `weight_decay`, and the
/// others (see [`decays_weight`]), with none.
pub fn transformers_groups(
    params: Vec<Param>,
    weight_decay: f64,
    layer_norms: &[&str],
) -> Vec<GroupSpec> {
    let (decay, no_decay): (Vec<Param>, Vec<Param>) = params
        .into_iter()
        .partition(|p| decays_weight(&p.name, layer_norms));
    vec![
        GroupSpec {
            params: decay,
            overrides: json!({ "weight_decay": weight_decay }),
        },
        GroupSpec {
            params: no_decay,
            overrides: json!({ "weight_decay": 0.0 }),
        },
    ]
}

/// The names [`by_name`] knows: the references' class names.
pub const OPTIMIZERS: &[&str] = &[
    "SGD",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "ASGD",
    "Adafactor",
];

/// The optimizer named as its reference's class (`"AdamW"`), over one group of `params`,
/// with the reference constructor's keyword arguments.
pub fn by_name(name: &str, params: Vec<Param>, kwargs: &Value) -> Result<Box<dyn Optim>> {
    let group = GroupSpec {
        params,
        overrides: json!({}),
    };
    by_name_with_groups(name, vec![group], kwargs)
}

/// [`by_name`] over parameter groups, each with the arguments it overrides.
pub fn by_name_with_groups(
    name: &str,
    params: Vec<GroupSpec>,
    kwargs: &Value,
) -> Result<Box<dyn Optim>> {
    use crate::torch::*;
    match name {
        "SGD" => boxed::<Sgd>(params, kwargs),
        "Adam" => boxed::<Adam>(params, kwargs),
        "AdamW" => boxed::<AdamW>(params, kwargs),
        "Adamax" => boxed::<Adamax>(params, kwargs),
        "NAdam" => boxed::<NAdam>(params, kwargs),
        "RAdam" => boxed::<RAdam>(params, kwargs),
        "Adagrad" => boxed::<Adagrad>(params, kwargs),
        "Adadelta" => boxed::<Adadelta>(params, kwargs),
        "RMSprop" => boxed::<RmsProp>(params, kwargs),
        "Rprop" => boxed::<Rprop>(params, kwargs),
        "ASGD" => boxed::<Asgd>(params, kwargs),
        "Adafactor" => boxed::<Adafactor>(params, kwargs),
        "transformers.Adafactor" => boxed::<HfAdafactor>(params, kwargs),
        "Lion" => boxed::<crate::timm::Lion>(params, kwargs),
        "AdaBelief" => boxed::<crate::timm::AdaBelief>(params, kwargs),
        "Adan" => boxed::<crate::timm::Adan>(params, kwargs),
        "Lars" => boxed::<crate::timm::Lars>(params, kwargs),
        "Lamb" => boxed::<crate::timm::Lamb>(params, kwargs),
        "MADGRAD" => boxed::<crate::timm::Madgrad>(params, kwargs),
        "NvNovoGrad" => boxed::<crate::timm::NvNovoGrad>(params, kwargs),
        "AdamP" => boxed::<crate::timm::AdamP>(params, kwargs),
        "SGDP" => boxed::<crate::timm::Sgdp>(params, kwargs),
        "Lookahead" => Ok(Box::new(crate::timm::Lookahead::from_kwargs(
            params, kwargs,
        )?)),
        "AdamWScheduleFree" => boxed::<crate::schedulefree::AdamWScheduleFree>(params, kwargs),
        other => Err(Error::InvalidInput(format!(
            "unknown optimizer `{other}`; known: {}",
            OPTIMIZERS.join(", ")
        ))),
    }
}

fn defaults_of<A: Algorithm>() -> Result<Value> {
    serde_json::to_value(A::Config::default()).map_err(|e| Error::InvalidInput(e.to_string()))
}

/// The constructor defaults of the optimizer named `name`, as keyword arguments.
pub fn default_kwargs(name: &str) -> Result<Value> {
    use crate::torch::*;
    match name {
        "SGD" => defaults_of::<Sgd>(),
        "Adam" => defaults_of::<Adam>(),
        "AdamW" => defaults_of::<AdamW>(),
        "Adamax" => defaults_of::<Adamax>(),
        "NAdam" => defaults_of::<NAdam>(),
        "RAdam" => defaults_of::<RAdam>(),
        "Adagrad" => defaults_of::<Adagrad>(),
        "Adadelta" => defaults_of::<Adadelta>(),
        "RMSprop" => defaults_of::<RmsProp>(),
        "Rprop" => defaults_of::<Rprop>(),
        "ASGD" => defaults_of::<Asgd>(),
        "Adafactor" => defaults_of::<Adafactor>(),
        "transformers.Adafactor" => defaults_of::<HfAdafactor>(),
        "Lion" => defaults_of::<crate::timm::Lion>(),
        "AdaBelief" => defaults_of::<crate::timm::AdaBelief>(),
        "Adan" => defaults_of::<crate::timm::Adan>(),
        "Lars" => defaults_of::<crate::timm::Lars>(),
        "Lamb" => defaults_of::<crate::timm::Lamb>(),
        "MADGRAD" => defaults_of::<crate::timm::Madgrad>(),
        "NvNovoGrad" => defaults_of::<crate::timm::NvNovoGrad>(),
        "AdamP" => defaults_of::<crate::timm::AdamP>(),
        "SGDP" => defaults_of::<crate::timm::Sgdp>(),
        "Lookahead" => Ok(json!({"alpha": 0.5, "k": 6})),
        "AdamWScheduleFree" => defaults_of::<crate::schedulefree::AdamWScheduleFree>(),
        other => Err(Error::InvalidInput(format!(
            "unknown optimizer `{other}`; known: {}",
            OPTIMIZERS.join(", ")
        ))),
    }
}
