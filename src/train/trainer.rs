//! The training loop: batches in, AdamW steps out, events to the front, checkpoints to disk.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::checkpoint::{self, TrainerState};
use super::config::{Task, TrainConfig};
use super::events::{EvalMetrics, EventSink, GenerationScores, RunInfo, RunSummary, StepMetrics, TrainCommand, TrainEvent};
use super::loss::{Targets, chunk_rows, cross_entropy_sum};
use super::loss_scale::LossScale;
use super::metrics::MetricsLog;
use super::optimizer::AdamW;
use super::run_dir::{self, RunStart};
use super::run_lock::RunLock;
use super::schedule::Schedule;
use super::step::{StepInputs, optimizer_step};
use crate::classify::{ClassificationScores, LabelSet, classify_examples};
use crate::data::{Batch, Dataset, Example, epoch_order};
use crate::device::ComputeDevice;
use crate::error::{Error, Result, panic_message};
use crate::fsutil;
use crate::method::trainable_parameters;
use crate::model::{CausalLm, ForwardOptions, LoraForward, ModelFolder, Precision};
use crate::tokenizer::TextTokenizer;

pub const RUN_CONFIG_FILE: &str = "run.toml";
pub const FINAL_DIR: &str = "final";
/// How many skipped records the fronts show; all of them are in `RUN_DIR/skipped.jsonl`.
const SKIPPED_SHOWN: usize = 5;

/// Trains as `config` says, reporting on `events` and obeying `commands`.
pub fn train(config: &TrainConfig, start: RunStart, events: &EventSink, commands: &Receiver<TrainCommand>) -> Result<RunSummary> {
    train_with_model(config, start, events, commands).map(|(summary, _)| summary)
}

/// [`train`], also returning the trained model as it is in memory. A panic inside the engine
/// (a driver failure, a bug) becomes an error naming the step, never an abort: the run directory
/// keeps its last checkpoint and stays resumable.
pub fn train_with_model(
    config: &TrainConfig,
    start: RunStart,
    events: &EventSink,
    commands: &Receiver<TrainCommand>,
) -> Result<(RunSummary, CausalLm)> {
    let mut last_checkpoint = None;
    let mut step = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Run::prepare(config, start, events).and_then(|mut run| {
            let result = run.train(commands, &mut step);
            last_checkpoint = run.last_checkpoint.clone();
            result.map(|summary| (summary, run.model))
        })
    }));
    let result = outcome.unwrap_or_else(|panic| {
        let place = match step {
            Some(step) => format!("at step {step}"),
            None => "while preparing the run".to_string(),
        };
        last_checkpoint = checkpoint::latest(&config.output_dir);
        Err(Error::Internal(format!("internal error {place}: {}", panic_message(panic.as_ref()))))
    });
    if let Err(e) = &result {
        events.send(TrainEvent::Failed { error: e.to_string(), last_checkpoint });
    }
    result
}

/// Continues the run in `run_dir` with the settings saved there.
pub fn resume_config(run_dir: &Path) -> Result<TrainConfig> {
    let mut config = TrainConfig::from_toml_file(&run_dir.join(RUN_CONFIG_FILE))?;
    config.output_dir = run_dir.to_path_buf();
    Ok(config)
}

struct Run<'a> {
    config: &'a TrainConfig,
    events: &'a EventSink,
    tokenizer: TextTokenizer,
    data: Dataset,
    device: ComputeDevice,
    model: CausalLm,
    optimizer: AdamW,
    loss_scale: LossScale,
    schedule: Schedule,
    state: TrainerState,
    total_steps: usize,
    batches_per_epoch: usize,
    chunk: usize,
    metrics: MetricsLog,
    last_checkpoint: Option<PathBuf>,
    base_model: String,
    /// The visiting order of the current epoch: (epoch, permutation).
    order: (usize, Vec<usize>),
    /// The id batches are padded with.
    pad_id: u32,
    /// A classifier's loss weight per class.
    class_weights: Option<Vec<f32>>,
    /// Held while the run lasts: no second run writes into its directory.
    _lock: RunLock,
}

enum Control {
    Continue,
    Stop,
}

impl<'a> Run<'a> {
    fn prepare(config: &'a TrainConfig, start: RunStart, events: &'a EventSink) -> Result<Self> {
        config.validate()?;
        run_dir::check(config, start)?;
        // One writer per run directory: an existing one is locked now, before a second run there
        // loads anything; a new one once it is created below.
        let run_dir = &config.output_dir;
        let early_lock = if run_dir.is_dir() { Some(RunLock::acquire(run_dir)?) } else { None };
        events.send(TrainEvent::Preparing(format!("Reading {}", config.model.display())));
        let folder = ModelFolder::open(&config.model)?;
        let tokenizer = folder.tokenizer()?;
        if let Some(lora) = config.method.lora() {
            lora.validate_for(&folder.config)?;
        }
        events.send(TrainEvent::Preparing(format!("Tokenizing {}", config.data.train_file.display())));
        // The data is checked before any GPU work: a dataset with nothing to train on is an error now.
        let data = match config.task {
            Task::CausalLm if folder.config.labels.is_some() => {
                return Err(Error::invalid_file(
                    &config.model,
                    "this model is a sequence classifier (it has a `score` head, no language-model head): train it with --task classification",
                ));
            }
            Task::CausalLm => Dataset::load(&config.data, &tokenizer, config.seed)?,
            Task::Classification => Dataset::load_labelled(&config.data, &tokenizer, config.seed)?,
        };
        // A classifier reads each sequence at its last token that is not padding, the config's
        // `pad_token_id` as transformers reads it.
        let pad_id = match config.task {
            Task::Classification => folder.config.pad_token_id.unwrap_or(tokenizer.pad_token_id),
            Task::CausalLm => tokenizer.pad_token_id,
        };
        if let (Some(theirs), Some(ours)) = (&folder.config.labels, &data.labels)
            && theirs != ours
        {
            return Err(Error::invalid_file(
                &config.model,
                format!("this classifier's classes ({}) are not the dataset's ({})", theirs.names.join(", "), ours.names.join(", ")),
            ));
        }
        let vocab_size = folder.config.vocab_size;
        let examples = data.train.iter().chain(&data.validation);
        if let Some((example, id)) = examples.flat_map(|e| e.ids.iter().map(move |id| (e, *id))).find(|(_, id)| *id as usize >= vocab_size)
        {
            return Err(Error::InvalidRecord {
                path: example.origin.file.to_path_buf(),
                line: example.origin.line,
                message: format!(
                    "token id {id} is outside the model's vocabulary of {vocab_size}: the tokenizer and the model do not match"
                ),
            });
        }

        let device = ComputeDevice::open(config.device)?;
        device.check_precision(config.precision)?;
        // The batches the data really makes: no longer than its longest example, no more
        // sequences than it has.
        let longest = data.report.max_tokens.next_multiple_of(crate::data::LENGTH_MULTIPLE);
        let sized = TrainConfig { batch_size: config.batch_size.min(data.train.len()), ..config.clone() };
        if let Some(adapter) = &device.adapter {
            crate::inspect::check_bindings(&folder.config, &sized, longest, adapter, &device.description)?;
        }
        if let Some(limit) = device.memory_limit {
            crate::inspect::check_fits(
                &folder.config,
                &sized,
                crate::kernels::is_wgpu(&device.device),
                longest,
                limit,
                &device.description,
            )?;
        }
        events.send(TrainEvent::Preparing(format!("Loading weights on {}", device.description)));
        device.device.seed(config.seed);
        crate::seed::seed_initial_weights(config.seed);
        let model = folder.load_in(&device.autodiff(), config.method.storage_precision(config.precision), config.base_quant)?;
        let model = match &data.labels {
            Some(labels) if model.score.is_none() => model.into_classifier(labels.clone(), pad_id),
            _ => model,
        };
        let model = config.method.apply(model)?;
        let class_weights = data.labels.as_ref().and_then(|labels| {
            let mut counts = vec![0usize; labels.len()];
            data.train.iter().filter_map(|e| e.label).for_each(|l| counts[l as usize] += 1);
            config.class_weights.weights(&counts)
        });

        fsutil::create_dir(run_dir)?;
        let lock = match early_lock {
            Some(lock) => lock,
            None => RunLock::acquire(run_dir)?,
        };
        if start == RunStart::Overwrite {
            run_dir::clear(run_dir)?;
        }
        run_dir::write_skipped(run_dir, &data.report.skipped)?;
        let mut optimizer = AdamW::new(&config.optim, config.fused_kernels);
        let mut state = TrainerState::default();
        let mut model = model;
        let mut last_checkpoint = None;
        match checkpoint::latest(run_dir).filter(|_| start == RunStart::Resume) {
            Some(dir) => {
                events.send(TrainEvent::Preparing(format!("Resuming from {}", dir.display())));
                let (m, s) = checkpoint::load(&dir, model, &config.method, &mut optimizer, &device.autodiff())?;
                model = m;
                state = s;
                last_checkpoint = Some(dir);
            }
            None if start == RunStart::Resume => events.send(TrainEvent::Preparing(format!(
                "{} has no checkpoint yet (the run stopped before its first): starting it again from step 0 with its run.toml",
                run_dir.display()
            ))),
            None => {}
        }
        config.save_toml(&run_dir.join(RUN_CONFIG_FILE))?;
        let metrics = MetricsLog::open(run_dir, state.step)?;

        let batches_per_epoch = data.train.len().div_ceil(config.batch_size);
        let steps_per_epoch = batches_per_epoch.div_ceil(config.grad_accumulation).max(1);
        let total_steps = config.max_steps.unwrap_or(config.epochs.saturating_mul(steps_per_epoch));
        let schedule = Schedule::new(&config.optim, total_steps);
        let chunk = chunk_rows(folder.config.vocab_size, device.max_buffer_bytes);
        let base_model = config.model.display().to_string();

        let run = Self {
            config,
            events,
            tokenizer,
            data,
            device,
            model,
            optimizer,
            loss_scale: LossScale::resume(config.precision, state.loss_scale),
            schedule,
            state,
            total_steps,
            batches_per_epoch,
            chunk,
            metrics,
            last_checkpoint,
            base_model,
            order: (0, Vec::new()),
            pad_id,
            class_weights,
            _lock: lock,
        };
        run.events.send(TrainEvent::Started(run.info()));
        Ok(run)
    }

    fn info(&self) -> RunInfo {
        RunInfo {
            run_dir: self.config.output_dir.clone(),
            device: self.device.description.clone(),
            method: self.config.method.name().to_string(),
            total_parameters: self.model.num_params(),
            trainable_parameters: trainable_parameters(&self.model),
            train_examples: self.data.train.len(),
            validation_examples: self.data.validation.len(),
            skipped_records: self.data.report.skipped.len(),
            first_skipped: self.data.report.skipped.iter().take(SKIPPED_SHOWN).map(|s| format!("{}: {}", s.origin, s.reason)).collect(),
            truncated_records: self.data.report.truncated,
            total_steps: self.total_steps,
            start_step: self.state.step,
        }
    }

    /// Runs the steps; `current_step` follows the step in progress, for a panic's report.
    fn train(&mut self, commands: &Receiver<TrainCommand>, current_step: &mut Option<usize>) -> Result<RunSummary> {
        let started = Instant::now();
        let mut recent: Vec<(usize, f64)> = Vec::new();
        let mut stopped_early = false;
        let mut last_eval = None;
        let mut last_saved = self.state.step;
        if self.state.step == 0 && self.config.eval_every > 0 {
            // The untrained model's validation loss: where the validation curve starts.
            self.evaluate()?;
        }
        while self.state.step < self.total_steps {
            if let Control::Stop = self.obey(commands, false)? {
                stopped_early = true;
                break;
            }
            let step_started = Instant::now();
            *current_step = Some(self.state.step + 1);
            let (loss, grad_norm, lr, tokens) = self.step()?;
            let skipped = grad_norm.is_none();
            self.state.step += 1;
            self.state.last_loss = Some(loss);

            recent.push((tokens, step_started.elapsed().as_secs_f64()));
            if recent.len() > 10 {
                recent.remove(0);
            }
            let (tok, secs) = recent.iter().fold((0, 0.0), |acc, r| (acc.0 + r.0, acc.1 + r.1));
            let per_step = secs / recent.len() as f64;
            let metrics = StepMetrics {
                step: self.state.step,
                total_steps: self.total_steps,
                epoch: self.state.epoch as f64 + self.state.batch_in_epoch as f64 / self.batches_per_epoch.max(1) as f64,
                loss,
                lr,
                grad_norm: grad_norm.unwrap_or(0.0),
                skipped,
                tokens_per_second: tok as f64 / secs.max(1e-9),
                elapsed_seconds: started.elapsed().as_secs_f64(),
                eta_seconds: per_step * (self.total_steps - self.state.step) as f64,
            };
            self.metrics.step(&metrics)?;
            self.events.send(TrainEvent::Step(metrics));

            let step = self.state.step;
            if self.config.eval_every > 0 && step.is_multiple_of(self.config.eval_every) && step < self.total_steps {
                last_eval = self.evaluate()?;
            }
            if self.config.save_every > 0 && step.is_multiple_of(self.config.save_every) && step < self.total_steps {
                self.save()?;
                last_saved = step;
            }
        }
        if !stopped_early {
            last_eval = self.evaluate()?.or(last_eval);
        }
        if self.state.step > last_saved || self.last_checkpoint.is_none() {
            self.save()?;
        }
        let final_dir = self.config.output_dir.join(FINAL_DIR);
        let staging = fsutil::Staging::new(&final_dir)?;
        checkpoint::save_weights(&self.model, &self.config.method, &self.base_model, staging.path())?;
        staging.publish()?;

        let summary = RunSummary {
            run_dir: self.config.output_dir.clone(),
            steps: self.state.step,
            stopped_early,
            final_checkpoint: final_dir,
            final_loss: self.state.last_loss,
            final_eval: last_eval,
        };
        self.events.send(TrainEvent::Finished(summary.clone()));
        Ok(summary)
    }

    /// Handles pending commands; with `paused`, waits for one that resumes or stops.
    fn obey(&mut self, commands: &Receiver<TrainCommand>, mut paused: bool) -> Result<Control> {
        loop {
            let command = if paused {
                match commands.recv() {
                    Ok(c) => c,
                    Err(_) => return Ok(Control::Stop),
                }
            } else {
                match commands.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(Control::Continue),
                }
            };
            match command {
                TrainCommand::Pause if !paused => {
                    paused = true;
                    self.events.send(TrainEvent::Paused { step: self.state.step });
                }
                TrainCommand::Resume if paused => {
                    self.events.send(TrainEvent::Resumed { step: self.state.step });
                    return Ok(Control::Continue);
                }
                TrainCommand::Stop => return Ok(Control::Stop),
                TrainCommand::Generate { messages, settings } => {
                    let reply = crate::generate::reply(&self.model, &self.tokenizer, &messages, &settings, |_| true);
                    let prompt = messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone()).unwrap_or_default();
                    self.events.send(TrainEvent::Generated { prompt, reply: reply.map_err(|e| e.to_string()) });
                }
                TrainCommand::Pause | TrainCommand::Resume => {}
            }
        }
    }

    /// The micro-batches of the next optimizer step, advancing the data position.
    fn next_batches(&mut self) -> Vec<(Batch, usize)> {
        let mut out = Vec::new();
        for _ in 0..self.config.grad_accumulation {
            if self.state.batch_in_epoch >= self.batches_per_epoch {
                self.state.epoch += 1;
                self.state.batch_in_epoch = 0;
            }
            if self.order.0 != self.state.epoch || self.order.1.is_empty() {
                self.order = (self.state.epoch, epoch_order(self.data.train.len(), self.config.seed, self.state.epoch));
            }
            let order = &self.order.1;
            let start = self.state.batch_in_epoch * self.config.batch_size;
            let end = (start + self.config.batch_size).min(order.len());
            let examples: Vec<&Example> = order[start..end].iter().map(|&i| &self.data.train[i]).collect();
            let tokens = examples.iter().map(|e| e.ids.len()).sum();
            out.push((Batch::new(&examples, self.pad_id), tokens));
            self.state.batch_in_epoch += 1;
            // An epoch's last, partial accumulation window ends with the epoch.
            if self.state.batch_in_epoch >= self.batches_per_epoch {
                break;
            }
        }
        out
    }

    /// One optimizer step; returns (loss, grad norm before clipping or `None` when the gradients
    /// overflowed and the update was skipped, lr, tokens).
    fn step(&mut self) -> Result<(f64, Option<f64>, f64, usize)> {
        let batches = self.next_batches();
        let tokens = batches.iter().map(|(_, t)| t).sum();
        let batches: Vec<Batch> = batches.into_iter().map(|(b, _)| b).collect();
        let lr = self.schedule.lr(self.state.step);
        let inputs = StepInputs {
            batches: &batches,
            lr,
            max_grad_norm: self.config.optim.max_grad_norm,
            options: self.forward_options(true),
            chunk: self.chunk,
            gradient_checkpointing: self.config.gradient_checkpointing,
            // Seeding per step makes dropout identical whether or not the run was resumed.
            seed: self.config.seed.wrapping_add(self.state.step as u64 + 1),
            loss_scale: self.loss_scale.value(),
            skip_overflow: self.loss_scale.can_skip_overflow(),
            class_weights: self.class_weights.as_deref(),
        };
        let model = self.model.clone();
        match optimizer_step(model, &mut self.optimizer, &inputs, &self.device.autodiff(), None) {
            Ok(outcome) => {
                self.model = outcome.model;
                self.loss_scale.update(outcome.overflowed);
                let grad_norm = (!outcome.overflowed).then_some(outcome.grad_norm);
                Ok((outcome.loss, grad_norm, lr, tokens))
            }
            Err(bad) => Err(self.non_finite(bad.loss, bad.grad_norm, lr)),
        }
    }

    fn non_finite(&self, loss: f64, grad_norm: f64, lr: f64) -> Error {
        let what = if !loss.is_finite() { format!("the loss became {loss}") } else { format!("the gradient norm became {grad_norm}") };
        let kept = match &self.last_checkpoint {
            Some(dir) => format!("the last good checkpoint is {}", dir.display()),
            None => "no checkpoint had been written yet".to_string(),
        };
        let remedy = match self.config.precision {
            Precision::F16 => "lower the learning rate, check the data, or train in f32 (the model's values may not fit in f16)",
            Precision::F32 => "lower the learning rate or check the data",
        };
        Error::NonFinite(format!("training stopped at step {}: {what} (learning rate {lr:.3e}); {remedy}; {kept}", self.state.step + 1))
    }

    fn forward_options(&self, training: bool) -> ForwardOptions {
        let dropout = match (training, self.config.method.lora()) {
            (true, Some(lora)) => lora.dropout,
            _ => 0.0,
        };
        ForwardOptions {
            lora: LoraForward { dropout, materialize: self.config.materialize_lora },
            fused: self.config.fused_kernels,
            dropout_seed: None,
            compute: self.config.precision,
        }
    }

    /// Loss, perplexity and next-token accuracy on the validation set (for a classifier: loss,
    /// accuracy, precision, recall and F1 of its labels).
    fn evaluate(&mut self) -> Result<Option<EvalMetrics>> {
        if self.data.validation.is_empty() {
            return Ok(None);
        }
        let metrics = match &self.data.labels {
            Some(labels) => Some(self.classifier_metrics(labels)?),
            None => self.language_model_metrics()?,
        };
        if let Some(metrics) = &metrics {
            self.metrics.eval(metrics)?;
            self.events.send(TrainEvent::Eval(metrics.clone()));
        }
        Ok(metrics)
    }

    /// A classifier's validation loss (unweighted), accuracy, precision, recall and F1.
    fn classifier_metrics(&self, labels: &LabelSet) -> Result<EvalMetrics> {
        let predictions =
            classify_examples(&self.model, &self.data.validation, self.pad_id, self.config.batch_size, self.forward_options(false))?;
        let truth = self.data.validation.iter().map(|e| e.label.unwrap_or(0));
        let pairs: Vec<(u32, u32)> = truth.zip(predictions.iter().map(|p| p.label())).collect();
        let loss = pairs.iter().zip(&predictions).map(|((t, _), p)| -(p.probabilities[*t as usize].max(1e-30) as f64).ln()).sum::<f64>()
            / pairs.len() as f64;
        let scores = ClassificationScores::from_pairs(labels, pairs);
        Ok(EvalMetrics {
            step: self.state.step,
            loss,
            perplexity: loss.exp(),
            accuracy: scores.accuracy,
            generation: None,
            classification: Some(scores),
        })
    }

    /// A language model's validation loss, perplexity and next-token accuracy, and its answers to
    /// the first records; `None` when no record has a target.
    fn language_model_metrics(&self) -> Result<Option<EvalMetrics>> {
        let model = self.model.valid();
        let device = self.device.device.clone();
        let options = self.forward_options(false);
        let (mut sum, mut correct, mut count) = (0.0f64, 0i64, 0usize);
        for chunk in self.data.validation.chunks(self.config.batch_size) {
            let examples: Vec<&Example> = chunk.iter().collect();
            let batch = Batch::new(&examples, self.tokenizer.pad_token_id);
            let Some(targets) = Targets::from_batch(&batch, &device) else { continue };
            let hidden = model.hidden_states(input_tensor(&batch, &device), None, options);
            let loss = cross_entropy_sum(hidden, model.head().in_precision(options.compute), &targets, self.chunk, true, false);
            sum += loss.sum.into_scalar::<f32>() as f64;
            correct += loss.correct.map(|c| c.into_scalar::<i64>()).unwrap_or(0);
            count += targets.len();
        }
        if count == 0 {
            return Ok(None);
        }
        let loss = sum / count as f64;
        let generation = self.answer_validation_records(&model)?;
        Ok(Some(EvalMetrics {
            step: self.state.step,
            loss,
            perplexity: loss.exp(),
            accuracy: correct as f64 / count as f64,
            generation,
            classification: None,
        }))
    }

    /// Greedy answers to the first `eval_generations` validation records, scored against their
    /// replies, each up to twice its reply's length (plus a few tokens).
    fn answer_validation_records(&self, model: &CausalLm) -> Result<Option<GenerationScores>> {
        let records = &self.data.validation[..self.config.eval_generations.min(self.data.validation.len())];
        let cases = crate::eval::cases_from_examples(records, &self.tokenizer)?;
        if cases.is_empty() {
            return Ok(None);
        }
        let lengths = cases.iter().map(|c| self.tokenizer.encode(&c.reference, false).map(|ids| ids.len())).collect::<Result<Vec<_>>>()?;
        let max_new_tokens = 2 * lengths.into_iter().max().unwrap_or(0) + 4;
        let report = crate::eval::evaluate(model, &self.tokenizer, &cases, max_new_tokens, |_, _| {})?;
        Ok(Some(GenerationScores { summary: report.summary, answers: report.answers }))
    }

    fn save(&mut self) -> Result<()> {
        self.state.loss_scale = self.loss_scale.saved();
        let path = checkpoint::save(&self.model, self.config, &self.optimizer, &self.state)?;
        self.events.send(TrainEvent::CheckpointSaved { step: self.state.step, path: path.clone() });
        self.last_checkpoint = Some(path);
        Ok(())
    }
}

fn input_tensor(batch: &Batch, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(batch.input_ids.clone(), [batch.batch_size, batch.len]), device)
}
