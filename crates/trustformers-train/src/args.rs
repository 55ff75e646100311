//! `TrainingArguments`: transformers' names and defaults for what the Trainer reads.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use trustformers_core::{Error, Result};

/// When to evaluate or save (`IntervalStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    #[default]
    No,
    Steps,
    Epoch,
}

/// The Trainer's settings, under transformers' `TrainingArguments` names, with its
/// defaults. Deserializes from the same JSON keys; unknown keys are an error naming them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingArguments {
    /// Where checkpoints (`checkpoint-N/`) and the final model go.
    pub output_dir: PathBuf,
    pub learning_rate: f64,
    pub per_device_train_batch_size: usize,
    pub per_device_eval_batch_size: usize,
    /// Micro-batches whose gradients add up to one optimizer step.
    pub gradient_accumulation_steps: usize,
    pub num_train_epochs: f64,
    /// Optimizer steps to take; overrides `num_train_epochs` when positive.
    pub max_steps: i64,
    /// Linear warmup steps; when 0, `warmup_ratio` of the total steps (rounded up).
    pub warmup_steps: u64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Gradients are clipped to this total L2 norm; 0 turns clipping off.
    pub max_grad_norm: f64,
    /// transformers' `SchedulerType` name (`linear`, `cosine`, `constant_with_warmup`, ...).
    pub lr_scheduler_type: String,
    /// Extra arguments of the schedule (`lr_scheduler_kwargs`).
    pub lr_scheduler_kwargs: Value,
    /// transformers' `OptimizerNames` value (see [`Self::optimizer`]).
    pub optim: String,
    pub logging_steps: u64,
    pub eval_strategy: Strategy,
    /// Steps between evaluations; `logging_steps` when absent, as in transformers.
    pub eval_steps: Option<u64>,
    pub save_strategy: Strategy,
    pub save_steps: u64,
    /// Keep at most this many checkpoints (the oldest go first; the best one stays).
    pub save_total_limit: Option<usize>,
    pub load_best_model_at_end: bool,
    /// `eval_loss` by default; `accuracy`, `perplexity` or any logged metric, with or
    /// without the `eval_` prefix.
    pub metric_for_best_model: Option<String>,
    /// Whether a larger metric is better; by default, unless the metric is a loss.
    pub greater_is_better: Option<bool>,
    pub seed: u64,
    /// The seed of the data order (and masking); `seed` when absent.
    pub data_seed: Option<u64>,
    /// Shuffle the training examples each epoch (transformers always does; `false` keeps
    /// the file order, as `trustformers train --no-shuffle`).
    pub shuffle: bool,
    /// A `checkpoint-N` directory to continue from.
    pub resume_from_checkpoint: Option<PathBuf>,
    /// Skip an optimizer step whose loss is not finite instead of stopping.
    pub skip_nonfinite_loss: bool,
    /// Recompute each layer's activations in backward instead of keeping them: less
    /// memory, about one more forward pass of compute.
    pub gradient_checkpointing: bool,
    /// bf16 compute with f32 master weights: refused for now (candle's CPU bf16 matmul is
    /// slower than its f32 one, see BENCHMARKS.md), rather than ignored.
    pub bf16: bool,
}

impl Default for TrainingArguments {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("trainer_output"),
            learning_rate: 5e-5,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            gradient_accumulation_steps: 1,
            num_train_epochs: 3.0,
            max_steps: -1,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            lr_scheduler_type: "linear".into(),
            lr_scheduler_kwargs: json!({}),
            optim: "adamw_torch".into(),
            logging_steps: 500,
            eval_strategy: Strategy::No,
            eval_steps: None,
            save_strategy: Strategy::Steps,
            save_steps: 500,
            save_total_limit: None,
            load_best_model_at_end: false,
            metric_for_best_model: None,
            greater_is_better: None,
            seed: 42,
            data_seed: None,
            shuffle: true,
            resume_from_checkpoint: None,
            skip_nonfinite_loss: false,
            gradient_checkpointing: false,
            bf16: false,
        }
    }
}

impl TrainingArguments {
    /// Refuses settings no run can take, naming the argument.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(Error::config(name, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive(
            "per_device_train_batch_size",
            self.per_device_train_batch_size,
        )?;
        positive(
            "per_device_eval_batch_size",
            self.per_device_eval_batch_size,
        )?;
        positive(
            "gradient_accumulation_steps",
            self.gradient_accumulation_steps,
        )?;
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            return Err(Error::config(
                "learning_rate",
                "must be a finite number >= 0",
            ));
        }
        if self.max_steps <= 0
            && !(self.num_train_epochs.is_finite() && self.num_train_epochs > 0.0)
        {
            return Err(Error::config(
                "num_train_epochs",
                "must be positive when max_steps is not set",
            ));
        }
        if self.bf16 {
            return Err(Error::config(
                "bf16",
                "bf16 mixed precision is not supported yet: training runs in f32 (on the CPU, \
                 candle's bf16 matmul is slower than its f32 one)",
            ));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(Error::config("warmup_ratio", "must lie in [0, 1]"));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(Error::config(
                "max_grad_norm",
                "must be a finite number >= 0",
            ));
        }
        if self.logging_steps == 0 {
            return Err(Error::config("logging_steps", "must be at least 1"));
        }
        if self.save_strategy == Strategy::Steps && self.save_steps == 0 {
            return Err(Error::config("save_steps", "must be at least 1"));
        }
        if self.eval_strategy == Strategy::Steps && self.eval_steps == Some(0) {
            return Err(Error::config("eval_steps", "must be at least 1"));
        }
        if self.load_best_model_at_end {
            if self.eval_strategy == Strategy::No {
                return Err(Error::config(
                    "load_best_model_at_end",
                    "needs an eval_strategy other than `no`",
                ));
            }
            if self.save_strategy != self.eval_strategy {
                return Err(Error::config(
                    "load_best_model_at_end",
                    "requires the save and eval strategy to match",
                ));
            }
        }
        Ok(())
    }

    /// The seed of the data order.
    pub fn data_seed(&self) -> u64 {
        self.data_seed.unwrap_or(self.seed)
    }

    /// The metric that picks the best checkpoint, with its `eval_` prefix, and whether
    /// larger is better.
    pub fn best_metric(&self) -> (String, bool) {
        let name = self.metric_for_best_model.as_deref().unwrap_or("loss");
        let name = if name.starts_with("eval_") {
            name.to_string()
        } else {
            format!("eval_{name}")
        };
        let greater = self
            .greater_is_better
            .unwrap_or(!(name.ends_with("loss") || name.ends_with("perplexity")));
        (name, greater)
    }

    /// The optimizer `optim` names, as a `trustformers-optim` class name and the keyword
    /// arguments transformers' `Trainer.get_optimizer_cls_and_kwargs` passes it (weight
    /// decay goes to the parameter groups).
    pub fn optimizer(&self) -> Result<(&'static str, Value)> {
        let lr = self.learning_rate;
        let adam = json!({
            "lr": lr,
            "betas": [self.adam_beta1, self.adam_beta2],
            "eps": self.adam_epsilon,
        });
        Ok(match self.optim.as_str() {
            "adamw_torch" | "adamw_torch_fused" | "adamw_hf" => ("AdamW", adam),
            "adafactor" => (
                "transformers.Adafactor",
                json!({ "lr": lr, "scale_parameter": false, "relative_step": false }),
            ),
            "sgd" => ("SGD", json!({ "lr": lr })),
            "adagrad" => ("Adagrad", json!({ "lr": lr })),
            "rmsprop" => ("RMSprop", json!({ "lr": lr })),
            "lion_32bit" | "lion" => (
                "Lion",
                json!({ "lr": lr, "betas": [self.adam_beta1, self.adam_beta2] }),
            ),
            other => {
                return Err(Error::config(
                    "optim",
                    format!(
                        "`{other}` is not supported; known: adamw_torch, adamw_torch_fused, \
                         adamw_hf, adafactor, sgd, adagrad, rmsprop, lion_32bit"
                    ),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_transformers_names_and_refuses_unknown_ones() {
        let args: TrainingArguments =
            serde_json::from_value(json!({"learning_rate": 1e-3, "eval_strategy": "steps"}))
                .unwrap();
        assert_eq!(args.learning_rate, 1e-3);
        assert_eq!(args.eval_strategy, Strategy::Steps);
        assert_eq!(args.per_device_train_batch_size, 8);
        let err = serde_json::from_value::<TrainingArguments>(json!({"learning_rat": 1.0}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("learning_rat"), "{err}");
    }

    #[test]
    fn refuses_impossible_settings() {
        let bad = |args: TrainingArguments, field: &str| {
            let err = args.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        };
        bad(
            TrainingArguments {
                gradient_accumulation_steps: 0,
                ..Default::default()
            },
            "gradient_accumulation_steps",
        );
        bad(
            TrainingArguments {
                load_best_model_at_end: true,
                ..Default::default()
            },
            "load_best_model_at_end",
        );
        let err = TrainingArguments {
            optim: "adamw_8bit".into(),
            ..Default::default()
        }
        .optimizer()
        .unwrap_err()
        .to_string();
        assert!(err.contains("optim") && err.contains("adamw_8bit"), "{err}");
    }

    #[test]
    fn best_metric_direction_follows_its_name() {
        let args = TrainingArguments::default();
        assert_eq!(args.best_metric(), ("eval_loss".to_string(), false));
        let args = TrainingArguments {
            metric_for_best_model: Some("accuracy".into()),
            ..Default::default()
        };
        assert_eq!(args.best_metric(), ("eval_accuracy".to_string(), true));
    }
}
