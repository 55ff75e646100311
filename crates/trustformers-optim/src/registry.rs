//! Optimizers by their reference class names, with the reference constructors' keyword
//! arguments and parameter groups, and transformers' weight-decay grouping.

use crate::{schedulefree, timm, torch};
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

/// Every algorithm by its reference's class name: `$then!` receives the table (`"SGD" =>
/// Sgd, ...`). Lookahead wraps another optimizer and is not in it.
macro_rules! algorithms {
    ($then:ident) => {
        $then! {
            "SGD" => torch::Sgd,
            "Adam" => torch::Adam,
            "AdamW" => torch::AdamW,
            "Adamax" => torch::Adamax,
            "NAdam" => torch::NAdam,
            "RAdam" => torch::RAdam,
            "Adagrad" => torch::Adagrad,
            "Adadelta" => torch::Adadelta,
            "RMSprop" => torch::RmsProp,
            "Rprop" => torch::Rprop,
            "ASGD" => torch::Asgd,
            "Adafactor" => torch::Adafactor,
            "transformers.Adafactor" => torch::HfAdafactor,
            "Lion" => timm::Lion,
            "AdaBelief" => timm::AdaBelief,
            "Adan" => timm::Adan,
            "Lars" => timm::Lars,
            "Lamb" => timm::Lamb,
            "MADGRAD" => timm::Madgrad,
            "NvNovoGrad" => timm::NvNovoGrad,
            "AdamP" => timm::AdamP,
            "SGDP" => timm::Sgdp,
            "AdamWScheduleFree" => schedulefree::AdamWScheduleFree,
        }
    };
}

macro_rules! names {
    ($($name:literal => $algorithm:ty,)*) => {
        /// The names [`by_name`] knows: the references' class names.
        pub const OPTIMIZERS: &[&str] = &[$($name,)* "Lookahead"];
    };
}
algorithms!(names);

fn unknown(name: &str) -> Error {
    Error::InvalidInput(format!(
        "unknown optimizer `{name}`; known: {}",
        OPTIMIZERS.join(", ")
    ))
}

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
    macro_rules! build {
        ($($name:literal => $algorithm:ty,)*) => {
            match name {
                $($name => boxed::<$algorithm>(params, kwargs),)*
                "Lookahead" => Ok(Box::new(timm::Lookahead::from_kwargs(params, kwargs)?)),
                other => Err(unknown(other)),
            }
        };
    }
    algorithms!(build)
}

fn defaults_of<A: Algorithm>() -> Result<Value> {
    serde_json::to_value(A::Config::default()).map_err(|e| Error::InvalidInput(e.to_string()))
}

/// The constructor defaults of the optimizer named `name`, as keyword arguments.
pub fn default_kwargs(name: &str) -> Result<Value> {
    macro_rules! defaults {
        ($($name:literal => $algorithm:ty,)*) => {
            match name {
                $($name => defaults_of::<$algorithm>(),)*
                "Lookahead" => Ok(timm::Lookahead::default_kwargs()),
                other => Err(unknown(other)),
            }
        };
    }
    algorithms!(defaults)
}
