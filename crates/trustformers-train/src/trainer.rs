//! The Trainer: transformers' training loop (`Trainer._inner_training_loop`) over a
//! [`Trainable`] model. Per optimizer step: `gradient_accumulation_steps` micro-batches,
//! each loss scaled as transformers scales it (by the step's label count for losses that
//! take `num_items_in_batch`, by the number of micro-batches otherwise), gradients summed,
//! clipped to `max_grad_norm`, one optimizer step, one schedule step. Logs, evaluations and
//! checkpoints follow `TrainingArguments`; checkpoints use transformers' layout and resume
//! bit-identically.

use crate::args::{Strategy, TrainingArguments};
use crate::checkpoint::{SaveSpec, TrainerState};
use crate::collate::{Batch, Example};
use crate::loss::IGNORE_INDEX;
use crate::task::{Labels, TaskModel, TrainBatch, Trainable};
use crate::ClassLabels;
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Map, Value};

use trustformers_core::{Error, Result};
use trustformers_models::EncoderTask;
use trustformers_nn::checkpoint;
use trustformers_nn::dropout::{self, DropoutRng};
use trustformers_optim::{
    by_name_with_groups, clip_grad_norm, get_scheduler, transformers_groups, LambdaLr, Optim, Param,
};

/// Turns examples into a padded batch. `batch_seed` differs for every batch of a run and is
/// the same on resume: collators that draw random numbers (masked LM) seed from it.
pub type Collator = Box<dyn Fn(&[Example], u64) -> Result<Batch> + Send>;

/// Called with every log entry (training logs, evaluations, the final summary).
pub type LogCallback = Box<dyn FnMut(&Value) + Send>;

/// Called after every optimizer step.
pub type StepCallback = Box<dyn FnMut(&StepReport) + Send>;

/// Asked after every optimizer step whether to stop.
pub type StopCheck = Box<dyn Fn() -> bool + Send>;

/// What a progress display gets after each optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub step: u64,
    pub max_steps: u64,
    /// This step's loss (its micro-batches' scaled losses added up).
    pub loss: f64,
    /// The learning rate the step used.
    pub learning_rate: f64,
    /// Input tokens (padding included) per second since the run started.
    pub tokens_per_second: f64,
}

/// The training loop and everything it owns.
pub struct Trainer {
    pub(crate) args: TrainingArguments,
    pub(crate) model: Trainable,
    pub(crate) params: Vec<Param>,
    pub(crate) optimizer: Box<dyn Optim>,
    pub(crate) schedule: LambdaLr,
    pub(crate) collator: Collator,
    pub(crate) train: Vec<Example>,
    pub(crate) eval: Vec<Example>,
    pub(crate) save: SaveSpec,
    pub(crate) state: TrainerState,
    pub(crate) on_log: Option<LogCallback>,
    pub(crate) on_step: Option<StepCallback>,
    /// Asked after every step; `true` saves a checkpoint and ends the run (Ctrl-C).
    pub(crate) stop: Option<StopCheck>,
    /// Micro-batches per epoch and optimizer steps per epoch.
    pub(crate) batches_per_epoch: usize,
    pub(crate) steps_per_epoch: u64,
}

/// Rows of `[batch, length]` inputs as a tensor.
fn rows(values: &[u32], batch: usize, length: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, (batch, length), device)?)
}

impl Trainer {
    /// Sets up a run: checks the arguments and the data against the model before any step,
    /// builds the optimizer (transformers' two weight-decay groups) and the schedule.
    pub fn new(
        args: TrainingArguments,
        model: Trainable,
        train: Vec<Example>,
        eval: Vec<Example>,
        collator: Collator,
        save: SaveSpec,
    ) -> Result<Self> {
        args.validate()?;
        if train.is_empty() {
            return Err(Error::InvalidInput("the training set is empty".into()));
        }
        if args.eval_strategy != Strategy::No && eval.is_empty() {
            return Err(Error::config(
                "eval_strategy",
                "evaluation was asked for but there is no validation set",
            ));
        }
        let limit = model.model.max_positions();
        if let Some(e) = train
            .iter()
            .chain(&eval)
            .find(|e| e.input_ids.len() > limit)
        {
            return Err(Error::InvalidInput(format!(
                "an example of {} tokens does not fit the model's {limit} positions \
                 (truncate the texts or lower the block size)",
                e.input_ids.len()
            )));
        }
        let params: Vec<Param> = model
            .parameters
            .iter()
            .map(|(name, var)| Param::new(name.clone(), var.clone()))
            .collect();
        // transformers excludes LayerNorm modules' parameters from weight decay by module
        // type; in every architecture here those are the modules holding a 1-D `weight`.
        let norms: Vec<String> = params
            .iter()
            .filter(|p| p.var.rank() == 1 && p.name.ends_with(".weight"))
            .filter_map(|p| p.name.strip_suffix(".weight").map(str::to_owned))
            .collect();
        let norm_refs: Vec<&str> = norms.iter().map(String::as_str).collect();
        let (name, kwargs) = args.optimizer()?;
        let groups = transformers_groups(params.clone(), args.weight_decay, &norm_refs)
            .into_iter()
            .filter(|g| !g.params.is_empty())
            .collect();
        let mut optimizer = by_name_with_groups(name, groups, &kwargs)?;
        let batches_per_epoch = train.len().div_ceil(args.per_device_train_batch_size);
        let ga = args.gradient_accumulation_steps;
        let steps_per_epoch = (batches_per_epoch.div_ceil(ga)).max(1) as u64;
        let max_steps = if args.max_steps > 0 {
            args.max_steps as u64
        } else {
            (args.num_train_epochs * steps_per_epoch as f64).ceil() as u64
        };
        let warmup = if args.warmup_steps > 0 {
            args.warmup_steps
        } else {
            (max_steps as f64 * args.warmup_ratio).ceil() as u64
        };
        let schedule = get_scheduler(
            &args.lr_scheduler_type,
            args.learning_rate,
            Some(warmup),
            Some(max_steps),
            &args.lr_scheduler_kwargs,
        )?;
        let schedule = LambdaLr::new(optimizer.as_mut(), schedule)?;
        Ok(Self {
            state: TrainerState {
                max_steps,
                ..Default::default()
            },
            args,
            model,
            params,
            optimizer,
            schedule,
            collator,
            train,
            eval,
            save,
            on_log: None,
            on_step: None,
            stop: None,
            batches_per_epoch,
            steps_per_epoch,
        })
    }

    /// Calls `f` with every log entry as it is made.
    pub fn on_log(mut self, f: impl FnMut(&Value) + Send + 'static) -> Self {
        self.on_log = Some(Box::new(f));
        self
    }

    /// Calls `f` after every optimizer step (a progress bar).
    pub fn on_step(mut self, f: impl FnMut(&StepReport) + Send + 'static) -> Self {
        self.on_step = Some(Box::new(f));
        self
    }

    /// Asks `stop` after every step; once it says `true`, the trainer saves
    /// `checkpoint-{step}` and returns (resume from it later).
    pub fn stop_when(mut self, stop: impl Fn() -> bool + Send + 'static) -> Self {
        self.stop = Some(Box::new(stop));
        self
    }

    /// The state so far (`log_history` among it).
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// The model being trained.
    pub fn model(&self) -> &Trainable {
        &self.model
    }

    /// The training examples' order in `epoch`: file order, or a permutation seeded by
    /// `data_seed` and the epoch.
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        if self.args.shuffle {
            let mut rng = rand::rngs::StdRng::seed_from_u64(
                self.args
                    .data_seed()
                    .wrapping_add(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            );
            order.shuffle(&mut rng);
        }
        order
    }

    /// A collated batch as the model's inputs.
    fn to_batch(&self, examples: &[Example], seed: u64) -> Result<TrainBatch> {
        let b = (self.collator)(examples, seed)?;
        let device = &Device::Cpu;
        let labels = match b.labels {
            None => return Err(Error::InvalidInput("the collator gave no labels".into())),
            Some(l) if l.len() == b.batch * b.length && self.per_token_labels() => {
                Labels::Tokens(l)
            }
            Some(l) if l.len() == 2 * b.batch && self.answers_spans() => Labels::Spans {
                start: l.iter().step_by(2).copied().collect(),
                end: l.iter().skip(1).step_by(2).copied().collect(),
            },
            Some(l) if l.len() == b.batch && !self.per_token_labels() && !self.answers_spans() => {
                Labels::Classes(ClassLabels::Indices(l))
            }
            Some(l) => {
                return Err(Error::InvalidInput(format!(
                    "{} labels for a batch of {} examples of {} tokens",
                    l.len(),
                    b.batch,
                    b.length
                )))
            }
        };
        Ok(TrainBatch {
            input_ids: rows(&b.input_ids, b.batch, b.length, device)?,
            attention_mask: Some(rows(&b.attention_mask, b.batch, b.length, device)?),
            token_type_ids: b
                .token_type_ids
                .as_deref()
                .map(|t| rows(t, b.batch, b.length, device))
                .transpose()?,
            position_ids: None,
            labels,
        })
    }

    /// Whether the head labels answer spans (`[start, end]` per example).
    fn answers_spans(&self) -> bool {
        matches!(&self.model.model, TaskModel::Encoder { model, .. }
            if model.task() == EncoderTask::QuestionAnswering)
    }

    fn per_token_labels(&self) -> bool {
        match &self.model.model {
            TaskModel::CausalLm(_) => true,
            TaskModel::Encoder { model, .. } => matches!(
                model.task(),
                EncoderTask::MaskedLm | EncoderTask::TokenClassification
            ),
        }
    }

    /// Runs the loop to `max_steps` (continuing `resume_from_checkpoint` when set) and
    /// returns the final summary (`train_loss`, `train_runtime`, ...).
    pub fn train(&mut self) -> Result<Value> {
        let started = std::time::Instant::now();
        if let Some(dir) = self.args.resume_from_checkpoint.clone() {
            self.resume(&dir)?;
        }
        let ga = self.args.gradient_accumulation_steps;
        let bs = self.args.per_device_train_batch_size;
        let epochs = self.state.max_steps.div_ceil(self.steps_per_epoch);
        let mut logged_loss = 0.0f64;
        let mut last_logged = self.state.global_step;
        let mut grad_norm = None;
        let mut tokens = 0usize;
        'epochs: for epoch in 0..epochs {
            let first_step = epoch * self.steps_per_epoch;
            if self.state.global_step >= first_step + self.steps_per_epoch {
                continue;
            }
            let order = self.order(epoch);
            let batches: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
            for (step_in_epoch, group) in batches.chunks(ga).enumerate() {
                let step = first_step + step_in_epoch as u64;
                if step < self.state.global_step {
                    continue;
                }
                let micro: Vec<TrainBatch> = group
                    .iter()
                    .enumerate()
                    .map(|(i, idx)| {
                        let examples: Vec<Example> =
                            idx.iter().map(|&i| self.train[i].clone()).collect();
                        let seed = self
                            .args
                            .data_seed()
                            .wrapping_mul(1_000_003)
                            .wrapping_add(step * ga as u64 + i as u64);
                        self.to_batch(&examples, seed)
                    })
                    .collect::<Result<_>>()?;
                let num_items = self.model.model.counts_items().then(|| {
                    micro
                        .iter()
                        .map(|b| counted_labels(b, &self.model.model))
                        .sum::<usize>() as f64
                });
                let mut grads: Option<candle_core::backprop::GradStore> = None;
                let mut step_loss = 0.0f64;
                let mut finite = true;
                for (i, batch) in micro.iter().enumerate() {
                    tokens += batch.input_ids.elem_count();
                    // Training mode: dropout draws from a generator seeded by `seed` and the
                    // micro-batch's index, so a resumed run draws the same masks.
                    let mut rng = DropoutRng::new(
                        self.args
                            .seed
                            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                            .wrapping_add(step * ga as u64 + i as u64),
                    );
                    let forward_backward = || -> Result<_> {
                        let mut loss = self.model.model.loss(batch, num_items)?;
                        if num_items.is_none() {
                            loss = (loss / micro.len() as f64)?;
                        }
                        let value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
                        if !value.is_finite() {
                            return Ok((value, None));
                        }
                        Ok((value, Some(checkpoint::backward(&loss)?)))
                    };
                    let (value, g) = dropout::training(&mut rng, || {
                        if self.args.gradient_checkpointing {
                            checkpoint::checkpointing(forward_backward)
                        } else {
                            forward_backward()
                        }
                    })?;
                    let Some(g) = g else {
                        finite = false;
                        break;
                    };
                    step_loss += value;
                    grads = Some(match grads {
                        None => g,
                        Some(mut acc) => {
                            for p in &self.params {
                                let t = p.var.as_tensor();
                                if let Some(new) = g.get(t) {
                                    let sum = match acc.get(t) {
                                        Some(old) => (old + new)?,
                                        None => new.clone(),
                                    };
                                    acc.insert(t, sum);
                                }
                            }
                            acc
                        }
                    });
                }
                let Some(mut grads) = grads.filter(|_| finite) else {
                    if self.args.skip_nonfinite_loss {
                        self.log(json!({"skipped_step": step + 1, "reason": "non-finite loss"}));
                        self.state.global_step += 1;
                        self.schedule.step(self.optimizer.as_mut())?;
                        continue;
                    }
                    return Err(Error::InvalidInput(format!(
                        "the loss is not finite at step {} (epoch {epoch}); nothing of this \
                         step was applied and the last checkpoint is intact \
                         (skip_nonfinite_loss skips such steps)",
                        step + 1
                    )));
                };
                if self.args.max_grad_norm > 0.0 {
                    grad_norm = Some(clip_grad_norm(
                        &self.params,
                        &mut grads,
                        self.args.max_grad_norm,
                        2.0,
                        false,
                    )?);
                }
                let lr = self.current_lr();
                self.optimizer.step(&grads)?;
                self.schedule.step(self.optimizer.as_mut())?;
                self.state.global_step += 1;
                self.state.total_loss += step_loss;
                logged_loss += step_loss;
                let done_batches = ((step_in_epoch + 1) * ga).min(self.batches_per_epoch);
                self.state.epoch =
                    epoch as f64 + done_batches as f64 / self.batches_per_epoch as f64;
                let global = self.state.global_step;
                let tokens_per_second = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
                if let Some(f) = self.on_step.as_mut() {
                    f(&StepReport {
                        step: global,
                        max_steps: self.state.max_steps,
                        loss: step_loss,
                        learning_rate: lr,
                        tokens_per_second,
                    });
                }
                if global.is_multiple_of(self.args.logging_steps) {
                    let steps = (global - last_logged).max(1) as f64;
                    let mut entry = Map::new();
                    entry.insert("loss".into(), json!(logged_loss / steps));
                    if let Some(n) = grad_norm {
                        entry.insert("grad_norm".into(), json!(n));
                    }
                    // The rate this step used, as transformers 5 logs it.
                    entry.insert("learning_rate".into(), json!(lr));
                    entry.insert("tokens_per_second".into(), json!(tokens_per_second));
                    entry.insert("epoch".into(), json!(self.state.epoch));
                    entry.insert("step".into(), json!(global));
                    self.log(Value::Object(entry));
                    logged_loss = 0.0;
                    last_logged = global;
                }
                let eval_every = self.args.eval_steps.unwrap_or(self.args.logging_steps);
                let evaluated =
                    self.args.eval_strategy == Strategy::Steps && global.is_multiple_of(eval_every);
                let metrics = if evaluated {
                    Some(self.evaluate()?)
                } else {
                    None
                };
                if self.args.save_strategy == Strategy::Steps
                    && global.is_multiple_of(self.args.save_steps)
                {
                    self.save_checkpoint(metrics.as_ref())?;
                }
                let saved = self.args.save_strategy == Strategy::Steps
                    && global.is_multiple_of(self.args.save_steps);
                if self.stop.as_ref().is_some_and(|stop| stop()) {
                    if !saved {
                        self.save_checkpoint(metrics.as_ref())?;
                    }
                    self.log(json!({ "interrupted_at_step": global }));
                    break 'epochs;
                }
                if global >= self.state.max_steps {
                    // transformers ends the epoch (its evaluation and save) here too.
                    self.end_of_epoch()?;
                    break 'epochs;
                }
            }
            self.end_of_epoch()?;
        }
        if self.args.load_best_model_at_end {
            if let Some(best) = self.state.best_model_checkpoint.clone() {
                self.load_weights(&best.join(self.save.weights_file()))?;
            }
        }
        let runtime = started.elapsed().as_secs_f64();
        let summary = json!({
            "train_runtime": runtime,
            "train_samples_per_second": self.state.global_step as f64
                * (self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps) as f64
                / runtime.max(1e-9),
            "train_steps_per_second": self.state.global_step as f64 / runtime.max(1e-9),
            "train_loss": self.state.total_loss / self.state.global_step.max(1) as f64,
            "epoch": self.state.epoch,
            "step": self.state.global_step,
        });
        self.log(summary.clone());
        Ok(summary)
    }

    /// Evaluation and saving at the end of an epoch (`epoch` strategies).
    fn end_of_epoch(&mut self) -> Result<()> {
        let metrics = if self.args.eval_strategy == Strategy::Epoch {
            Some(self.evaluate()?)
        } else {
            None
        };
        if self.args.save_strategy == Strategy::Epoch {
            self.save_checkpoint(metrics.as_ref())?;
        }
        Ok(())
    }

    fn current_lr(&self) -> f64 {
        self.schedule
            .learning_rates()
            .first()
            .copied()
            .unwrap_or(0.0)
    }

    pub(crate) fn log(&mut self, entry: Value) {
        if let Some(f) = self.on_log.as_mut() {
            f(&entry);
        }
        self.state.log_history.push(entry);
    }

    /// Loss over the validation set (each batch weighted by its size, as transformers'
    /// evaluation loop averages), with `accuracy` for classification and `perplexity`
    /// for language modelling; logged and returned.
    pub fn evaluate(&mut self) -> Result<Map<String, Value>> {
        let started = std::time::Instant::now();
        let (mut loss_sum, mut examples, mut correct, mut predicted) =
            (0.0, 0usize, 0usize, 0usize);
        let chunks: Vec<Vec<Example>> = self
            .eval
            .chunks(self.args.per_device_eval_batch_size)
            .map(<[Example]>::to_vec)
            .collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let batch = self.to_batch(chunk, u64::MAX - i as u64)?;
            let (loss, hits) = self.model.model.eval_batch(&batch)?;
            loss_sum += loss * chunk.len() as f64;
            examples += chunk.len();
            if let Some((c, n)) = hits {
                correct += c;
                predicted += n;
            }
        }
        let eval_loss = loss_sum / examples.max(1) as f64;
        let mut m = Map::new();
        m.insert("eval_loss".into(), json!(eval_loss));
        if predicted > 0 {
            m.insert(
                "eval_accuracy".into(),
                json!(correct as f64 / predicted as f64),
            );
        }
        if self.per_token_labels() {
            m.insert("eval_perplexity".into(), json!(eval_loss.exp()));
        }
        m.insert(
            "eval_runtime".into(),
            json!(started.elapsed().as_secs_f64()),
        );
        m.insert("epoch".into(), json!(self.state.epoch));
        m.insert("step".into(), json!(self.state.global_step));
        self.log(Value::Object(m.clone()));
        Ok(m)
    }
}

/// Labels that count toward `num_items_in_batch` (transformers' `_get_num_items_in_batch`):
/// per-token labels other than -100, after the shift for a causal LM.
fn counted_labels(batch: &TrainBatch, model: &TaskModel) -> usize {
    let seq = batch.input_ids.dims().last().copied().unwrap_or(0).max(1);
    match &batch.labels {
        Labels::Tokens(l) => match model {
            TaskModel::CausalLm(_) => l
                .chunks(seq)
                .map(|row| row.iter().skip(1).filter(|&&x| x != IGNORE_INDEX).count())
                .sum(),
            TaskModel::Encoder { .. } => l.iter().filter(|&&x| x != IGNORE_INDEX).count(),
        },
        Labels::Classes(ClassLabels::Indices(l)) => l.len(),
        Labels::Classes(ClassLabels::Values(v)) => v.len(),
        Labels::Spans { start, .. } => start.len(),
    }
}
