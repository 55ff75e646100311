//! `timm.optim.Lookahead`.

use crate::ops::{add_alpha, check};
use trustformers_core::{Error, Result};

/// `timm.optim.Lookahead` (Zhang et al.) around any optimizer: every `k` steps the slow
/// weights move `alpha` of the way to the fast ones, and the fast weights restart from
/// them. As in timm, the slow weights start as the fast weights at the first sync.
pub struct Lookahead {
    inner: Box<dyn crate::Optim>,
    params: Vec<crate::Param>,
    alpha: f64,
    k: u64,
    step: u64,
    slow: Vec<Option<Vec<f32>>>,
}

impl Lookahead {
    /// Wraps `inner`, which steps `params`; `alpha` in [0, 1], `k` at least 1.
    pub fn new(
        inner: Box<dyn crate::Optim>,
        params: Vec<crate::Param>,
        alpha: f64,
        k: u64,
    ) -> Result<Self> {
        check(
            (0.0..=1.0).contains(&alpha),
            "alpha",
            format!("Invalid slow update rate: {alpha}"),
        )?;
        check(k >= 1, "k", format!("Invalid lookahead steps: {k}"))?;
        let slow = vec![None; params.len()];
        Ok(Self {
            inner,
            params,
            alpha,
            k,
            step: 0,
            slow,
        })
    }

    /// timm's defaults: `alpha` 0.5, `k` 6.
    pub const DEFAULTS: (f64, u64) = (0.5, 6);

    /// [`Self::DEFAULTS`] as keyword arguments.
    pub fn default_kwargs() -> serde_json::Value {
        let (alpha, k) = Self::DEFAULTS;
        serde_json::json!({"alpha": alpha, "k": k})
    }

    /// From keyword arguments: `optimizer` (the inner one's name, over `groups` with their
    /// overrides), `optimizer_kwargs`, `alpha` and `k` ([`Self::DEFAULTS`]).
    pub fn from_kwargs(groups: Vec<crate::GroupSpec>, kwargs: &serde_json::Value) -> Result<Self> {
        let params: Vec<crate::Param> = groups.iter().flat_map(|g| g.params.clone()).collect();
        let name = kwargs
            .get("optimizer")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                Error::config("optimizer", "Lookahead needs the inner optimizer's name")
            })?;
        if let Some(k) = kwargs.as_object().and_then(|m| {
            m.keys()
                .find(|k| !["optimizer", "optimizer_kwargs", "alpha", "k"].contains(&k.as_str()))
        }) {
            return Err(Error::config(
                k.clone(),
                "Lookahead takes optimizer, optimizer_kwargs, alpha, k",
            ));
        }
        let empty = serde_json::json!({});
        let inner = crate::by_name_with_groups(
            name,
            groups,
            kwargs.get("optimizer_kwargs").unwrap_or(&empty),
        )?;
        let alpha = match kwargs.get("alpha") {
            None => Self::DEFAULTS.0,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| Error::config("alpha", format!("must be a number, got {v}")))?,
        };
        let k = match kwargs.get("k") {
            None => Self::DEFAULTS.1,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| Error::config("k", format!("must be a step count, got {v}")))?,
        };
        Self::new(inner, params, alpha, k)
    }
}

impl crate::Optim for Lookahead {
    fn name(&self) -> &'static str {
        "Lookahead"
    }

    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.inner.step(grads)?;
        self.step += 1;
        if !self.step.is_multiple_of(self.k) {
            return Ok(());
        }
        let alpha = self.alpha as f32;
        for (param, slow) in self.params.iter().zip(self.slow.iter_mut()) {
            if grads.get(param.var.as_tensor()).is_none() {
                continue;
            }
            let fast =
                trustformers_nn::kernels::with_f32(param.var.as_tensor(), |p| Ok(p.to_vec()))?;
            let slow = slow.get_or_insert_with(|| fast.clone());
            for (s, f) in slow.iter_mut().zip(&fast) {
                *s = add_alpha(*s, f - *s, alpha);
            }
            let t = candle_core::Tensor::from_slice(slow, param.var.shape(), param.var.device())?;
            param.var.set(&t)?;
        }
        Ok(())
    }

    fn learning_rates(&self) -> Vec<f64> {
        self.inner.learning_rates()
    }

    fn set_learning_rates(&mut self, lrs: &[f64]) -> Result<()> {
        self.inner.set_learning_rates(lrs)
    }

    fn save(&self, prefix: &std::path::Path) -> Result<()> {
        self.inner.save(prefix)?;
        let mut tensors = std::collections::HashMap::new();
        for (param, slow) in self.params.iter().zip(&self.slow) {
            if let Some(v) = slow {
                let t = candle_core::Tensor::from_slice(v, v.len(), &candle_core::Device::Cpu)?;
                tensors.insert(format!("{}.lookahead_slow_buff", param.name), t);
            }
        }
        let mut path = prefix.as_os_str().to_owned();
        path.push(".lookahead.safetensors");
        let path = std::path::PathBuf::from(path);
        // The step count rides in the tensors file as a one-value tensor.
        tensors.insert(
            "lookahead_step".into(),
            candle_core::Tensor::new(&[self.step as f64], &candle_core::Device::Cpu)?,
        );
        candle_core::safetensors::save(&tensors, &path)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
    }

    fn load(&mut self, prefix: &std::path::Path) -> Result<()> {
        self.inner.load(prefix)?;
        let mut path = prefix.as_os_str().to_owned();
        path.push(".lookahead.safetensors");
        let path = std::path::PathBuf::from(path);
        let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
        self.step = tensors
            .get("lookahead_step")
            .and_then(|t| t.to_vec1::<f64>().ok())
            .and_then(|v| v.first().copied())
            .ok_or_else(|| Error::config(path.display().to_string(), "no lookahead_step"))?
            as u64;
        for (param, slow) in self.params.iter().zip(self.slow.iter_mut()) {
            *slow = match tensors.get(&format!("{}.lookahead_slow_buff", param.name)) {
                Some(t) => {
                    let v = t.to_vec1::<f32>()?;
                    if v.len() != param.var.elem_count() {
                        return Err(Error::config(
                            path.display().to_string(),
                            format!("`{}`'s slow weights have {} values", param.name, v.len()),
                        ));
                    }
                    Some(v)
                }
                None => None,
            };
        }
        Ok(())
    }

    fn momenta(&self) -> Vec<Option<f64>> {
        self.inner.momenta()
    }

    fn set_momenta(&mut self, momenta: &[f64]) -> Result<()> {
        self.inner.set_momenta(momenta)
    }

    fn train(&mut self) -> Result<()> {
        self.inner.train()
    }

    fn eval(&mut self) -> Result<()> {
        self.inner.eval()
    }
}
