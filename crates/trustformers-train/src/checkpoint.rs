//! The Trainer's checkpoints in transformers' layout: `checkpoint-{step}/` with the model
//! (or, with LoRA, the adapter as PEFT saves it), config and tokenizer files, the optimizer
//! and schedule state, `trainer_state.json` and `training_args.json`; pruning past
//! `save_total_limit`, and resuming.

use crate::args::TrainingArguments;
use crate::trainer::Trainer;
use candle_core::{Device, Tensor};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use trustformers_core::{Error, Result};

/// What a checkpoint directory gets besides the weights: the model's config.json contents
/// and the files to copy next to it (tokenizer files).
#[derive(Debug, Clone, Default)]
pub struct SaveSpec {
    pub config: Value,
    pub extra_files: Vec<PathBuf>,
    /// With LoRA: `adapter_config.json`'s contents. Saves then write the adapter as PEFT
    /// does (`adapter_model.safetensors` + `adapter_config.json`), not the model.
    pub adapter_config: Option<Value>,
}

impl SaveSpec {
    /// The weights file a save writes.
    pub(crate) fn weights_file(&self) -> &'static str {
        if self.adapter_config.is_some() {
            "adapter_model.safetensors"
        } else {
            "model.safetensors"
        }
    }
}

/// transformers' `TrainerState`, written as `trainer_state.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainerState {
    pub global_step: u64,
    pub epoch: f64,
    pub max_steps: u64,
    pub log_history: Vec<Value>,
    pub best_metric: Option<f64>,
    pub best_model_checkpoint: Option<PathBuf>,
    /// Sum of every micro-batch loss so far (for `train_loss`).
    pub(crate) total_loss: f64,
}

impl TrainerState {
    pub(crate) fn to_json(&self, args: &TrainingArguments) -> Value {
        json!({
            "global_step": self.global_step,
            "epoch": self.epoch,
            "max_steps": self.max_steps,
            "logging_steps": args.logging_steps,
            "eval_steps": args.eval_steps.unwrap_or(args.logging_steps),
            "save_steps": args.save_steps,
            "train_batch_size": args.per_device_train_batch_size,
            "num_train_epochs": args.num_train_epochs,
            "best_metric": self.best_metric,
            "best_model_checkpoint": self.best_model_checkpoint,
            "log_history": self.log_history,
            "total_flos": 0,
            "is_local_process_zero": true,
            "is_world_process_zero": true,
            "trustformers_total_loss": self.total_loss,
        })
    }

    /// Reads `trainer_state.json` (`v`, from the file `path`): missing or mistyped fields are
    /// errors naming the file.
    pub fn from_json(path: &Path, v: &Value) -> Result<Self> {
        let field = |name: &str| {
            v.get(name)
                .ok_or_else(|| Error::InvalidInput(format!("{}: no `{name}`", path.display())))
        };
        let as_u64 = |name: &str| -> Result<u64> {
            field(name)?.as_u64().ok_or_else(|| {
                Error::InvalidInput(format!("{}: `{name}` is not a step count", path.display()))
            })
        };
        Ok(Self {
            global_step: as_u64("global_step")?,
            epoch: field("epoch")?.as_f64().unwrap_or(0.0),
            max_steps: as_u64("max_steps")?,
            log_history: field("log_history")?
                .as_array()
                .cloned()
                .unwrap_or_default(),
            best_metric: v.get("best_metric").and_then(Value::as_f64),
            best_model_checkpoint: v
                .get("best_model_checkpoint")
                .and_then(Value::as_str)
                .map(PathBuf::from),
            total_loss: v
                .get("trustformers_total_loss")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
        })
    }
}

impl Trainer {
    /// Writes `output_dir/checkpoint-{step}` and prunes old ones past `save_total_limit`.
    pub(crate) fn save_checkpoint(&mut self, metrics: Option<&Map<String, Value>>) -> Result<()> {
        let dir = self
            .args
            .output_dir
            .join(format!("checkpoint-{}", self.state.global_step));
        if let Some(m) = metrics {
            let (name, greater) = self.args.best_metric();
            if let Some(v) = m.get(&name).and_then(Value::as_f64) {
                let better = match self.state.best_metric {
                    None => true,
                    Some(best) if greater => v > best,
                    Some(best) => v < best,
                };
                if better {
                    self.state.best_metric = Some(v);
                    self.state.best_model_checkpoint = Some(dir.clone());
                }
            }
        }
        self.save_pretrained(&dir)?;
        self.optimizer.save(&dir.join("optimizer"))?;
        let json_file = |name: &str, v: &Value| -> Result<()> {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(v)
                .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
        };
        json_file(
            "scheduler.json",
            &json!({ "last_epoch": self.state.global_step, "lrs": self.schedule.learning_rates() }),
        )?;
        json_file("trainer_state.json", &self.state.to_json(&self.args))?;
        json_file(
            "training_args.json",
            &serde_json::to_value(&self.args).map_err(|e| Error::InvalidInput(e.to_string()))?,
        )?;
        self.prune_checkpoints()
    }

    fn prune_checkpoints(&self) -> Result<()> {
        let Some(limit) = self.args.save_total_limit else {
            return Ok(());
        };
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.args.output_dir)
            .map_err(|e| Error::io(&self.args.output_dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name.strip_prefix("checkpoint-")?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        found.sort();
        let best = self.state.best_model_checkpoint.as_ref();
        let mut excess = found.len().saturating_sub(limit.max(1));
        for (_, path) in found {
            if excess == 0 {
                break;
            }
            if Some(&path) == best {
                continue;
            }
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            excess -= 1;
        }
        Ok(())
    }

    /// Writes the model as transformers' `save_pretrained` does: `model.safetensors` with
    /// every parameter under its checkpoint name, `config.json`, and the tokenizer files;
    /// with LoRA, the adapter as PEFT's `save_pretrained` does.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tensors: HashMap<String, Tensor> = self
            .model
            .parameters
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect();
        let weights = dir.join(self.save.weights_file());
        candle_core::safetensors::save(&tensors, &weights)
            .map_err(|e| Error::InvalidInput(format!("writing {}: {e}", weights.display())))?;
        let (config, contents) = match &self.save.adapter_config {
            Some(adapter) => (dir.join("adapter_config.json"), adapter),
            None => (dir.join("config.json"), &self.save.config),
        };
        let text = serde_json::to_string_pretty(contents)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", config.display())))?;
        std::fs::write(&config, text).map_err(|e| Error::io(&config, e))?;
        for file in &self.save.extra_files {
            if let Some(name) = file.file_name() {
                let to = dir.join(name);
                // Copying a file onto itself would empty it.
                let same = matches!(
                    (file.canonicalize(), to.canonicalize()),
                    (Ok(a), Ok(b)) if a == b
                );
                if !same {
                    std::fs::copy(file, &to).map_err(|e| Error::io(file, e))?;
                }
            }
        }
        Ok(())
    }

    /// Sets every parameter to the values in a `model.safetensors` this model wrote.
    pub(crate) fn load_weights(&self, path: &Path) -> Result<()> {
        let saved = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| Error::InvalidInput(format!("reading {}: {e}", path.display())))?;
        for (name, var) in self.model.parameters.iter() {
            let t = saved.get(name).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{} has no `{name}`: it is not a checkpoint of this model",
                    path.display()
                ))
            })?;
            if t.dims() != var.dims() {
                return Err(Error::ShapeMismatch {
                    name: format!("{name} in {}", path.display()),
                    expected: var.dims().to_vec(),
                    actual: t.dims().to_vec(),
                });
            }
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        if saved.len() != self.model.parameters.len() {
            return Err(Error::InvalidInput(format!(
                "{} holds {} tensors, the model {}: it is not a checkpoint of this model",
                path.display(),
                saved.len(),
                self.model.parameters.len()
            )));
        }
        Ok(())
    }

    /// Continues from a `checkpoint-N` directory: weights, optimizer state, schedule and
    /// the trainer state; the data order is a function of the seed and the epoch, so the
    /// same batches follow.
    pub(crate) fn resume(&mut self, dir: &Path) -> Result<()> {
        self.load_weights(&dir.join(self.save.weights_file()))?;
        self.optimizer.load(&dir.join("optimizer"))?;
        let path = dir.join("trainer_state.json");
        let state = trustformers_core::config::read_json(&path)?;
        let state = TrainerState::from_json(&path, &state)?;
        if state.max_steps != self.state.max_steps {
            return Err(Error::InvalidInput(format!(
                "{} was made for {} steps, this run has {}: resume with the same data and \
                 arguments",
                dir.display(),
                state.max_steps,
                self.state.max_steps
            )));
        }
        for _ in 0..state.global_step {
            self.schedule.step(self.optimizer.as_mut())?;
        }
        self.state = state;
        Ok(())
    }
}
