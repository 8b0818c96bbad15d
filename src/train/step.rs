//! One optimizer step: forward and backward over the micro-batches, global-norm clipping, AdamW.
//! The trainer and `wgtune bench` both run exactly this.

use std::time::{Duration, Instant};

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::loss::{Targets, classification_loss_sum, cross_entropy_sum, label_positions};
use super::optimizer::AdamW;
use super::recompute::LayerCheckpoints;
use crate::data::Batch;
use crate::model::{CausalLm, ForwardOptions};

/// Where a step's time went, and the most device memory it held. Measuring synchronises the
/// device between phases.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct StepTimings {
    pub forward: Duration,
    pub backward: Duration,
    pub optimizer: Duration,
    /// The allocator's reserved bytes at the end of the fullest phase (backends that report it).
    /// Pages stay reserved until a cleanup, so this is the high-water mark of the step.
    pub peak_reserved_bytes: Option<u64>,
    /// The live allocations at the end of the fullest phase: what the step itself needed, without
    /// the pages the allocator keeps for reuse.
    pub peak_in_use_bytes: Option<u64>,
}

pub struct StepInputs<'a> {
    pub batches: &'a [Batch],
    pub lr: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    pub max_grad_norm: f64,
    pub options: ForwardOptions,
    /// Rows of logits computed at once (see `loss::chunk_rows`).
    pub chunk: usize,
    /// Keep only each decoder layer's input and recompute the layer in the backward pass.
    pub gradient_checkpointing: bool,
    /// Seeds the step's dropout masks.
    pub seed: u64,
    /// The loss is multiplied by this before the backward pass and the gradients divided by it
    /// after (see `LossScale`); 1 in f32.
    pub loss_scale: f64,
    /// Whether a step whose gradients overflow is skipped rather than an error.
    pub skip_overflow: bool,
    /// A classifier's loss weight per class (`None`: every example counts the same).
    pub class_weights: Option<&'a [f32]>,
}

pub struct StepOutcome {
    pub model: CausalLm,
    /// Mean loss over every target of every micro-batch.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// The gradients overflowed at this loss scale and the model was left as it was.
    pub overflowed: bool,
}

/// The loss or the gradient is not finite; the model was left as it was.
#[derive(Debug)]
pub struct NonFiniteStep {
    /// Boxed: a model is large, and an error should not make every `Result` as large.
    pub model: Box<CausalLm>,
    pub loss: f64,
    pub grad_norm: f64,
}

pub fn optimizer_step(
    model: CausalLm,
    optimizer: &mut AdamW,
    inputs: &StepInputs,
    device: &Device,
    mut timings: Option<&mut StepTimings>,
) -> Result<StepOutcome, NonFiniteStep> {
    // The step's loss is the mean over all its targets, as one large batch would give.
    let window_targets: f64 = inputs.batches.iter().map(|b| b.loss_weight(inputs.class_weights)).sum();
    let mut accumulator = GradientsAccumulator::<CausalLm>::new();
    let mut loss_sum = 0.0;
    for (i, batch) in inputs.batches.iter().enumerate() {
        let Some((loss, grads)) = batch_gradients(&model, batch, window_targets, i, inputs, device, timings.as_deref_mut()) else {
            continue;
        };
        loss_sum += loss;
        accumulator.accumulate(&model, grads);
    }

    let clock = Phase::start(device, timings.is_some());
    let grads = accumulator.grads();
    let grad_norm = optimizer.grad_norm(&model, &grads) / inputs.loss_scale;
    if loss_sum.is_finite() && !grad_norm.is_finite() && inputs.skip_overflow {
        clock.stop(timings, |t| &mut t.optimizer);
        return Ok(StepOutcome { model, loss: loss_sum, grad_norm, overflowed: true });
    }
    if !loss_sum.is_finite() || !grad_norm.is_finite() {
        return Err(NonFiniteStep { model: Box::new(model), loss: loss_sum, grad_norm });
    }
    let clip = if inputs.max_grad_norm > 0.0 { (inputs.max_grad_norm / (grad_norm + 1e-6)).min(1.0) } else { 1.0 };
    let model = optimizer.step(model, grads, inputs.lr, clip / inputs.loss_scale);
    clock.stop(timings, |t| &mut t.optimizer);
    Ok(StepOutcome { model, loss: loss_sum, grad_norm, overflowed: false })
}

/// One micro-batch's loss divided by `divisor`, and the gradients of that loss times
/// `inputs.loss_scale`; `None` when the batch has no target. `index` is its place in the step,
/// for its dropout masks. A batch with labels trains the classification head (cross-entropy
/// over the classes), any other the language-model head.
pub fn batch_gradients(
    model: &CausalLm,
    batch: &Batch,
    divisor: f64,
    index: usize,
    inputs: &StepInputs,
    device: &Device,
    mut timings: Option<&mut StepTimings>,
) -> Option<(f64, GradientsParams)> {
    let targets = if batch.labels.is_empty() { Some(Targets::from_batch(batch, device)?) } else { None };
    let options = ForwardOptions {
        dropout_seed: (inputs.options.lora.dropout > 0.0).then_some(inputs.seed ^ ((index as u64) << 40)),
        ..inputs.options
    };
    let clock = Phase::start(device, timings.is_some());
    let ids = Tensor::<2, Int>::from_data(TensorData::new(batch.input_ids.clone(), [batch.batch_size, batch.len]), device);
    let (hidden, checkpoints) = if inputs.gradient_checkpointing {
        let checkpoints = LayerCheckpoints::forward(model, ids, options);
        (model.norm.forward(checkpoints.output(), options.fused), Some(checkpoints))
    } else {
        (model.hidden_states(ids, None, options), None)
    };
    let sum = match &targets {
        Some(targets) => {
            cross_entropy_sum(hidden, model.head().in_precision(options.compute), targets, inputs.chunk, false, options.fused).sum
        }
        None => classification_loss_sum(model.class_logits(hidden, label_positions(batch, device)), &batch.labels, inputs.class_weights),
    };
    let loss = sum.div_scalar(divisor);
    clock.stop(timings.as_deref_mut(), |t| &mut t.forward);

    let clock = Phase::start(device, timings.is_some());
    let grads = loss.clone().mul_scalar(inputs.loss_scale).backward();
    let loss = loss.into_scalar::<f32>() as f64;
    let grads = match checkpoints {
        Some(checkpoints) => checkpoints.backward(model, grads),
        None => GradientsParams::from_grads(grads, model),
    };
    clock.stop(timings, |t| &mut t.backward);
    Some((loss, grads))
}

/// Times a phase of a step, waiting for the device at both ends when measuring.
struct Phase<'a> {
    device: Option<&'a Device>,
    started: Instant,
}

impl<'a> Phase<'a> {
    fn start(device: &'a Device, measure: bool) -> Self {
        let device = measure.then_some(device);
        if let Some(d) = device {
            let _ = d.sync();
        }
        Self { device, started: Instant::now() }
    }

    fn stop(self, timings: Option<&mut StepTimings>, phase: impl Fn(&mut StepTimings) -> &mut Duration) {
        if let (Some(d), Some(timings)) = (self.device, timings) {
            let _ = d.sync();
            *phase(timings) += self.started.elapsed();
            if let Some(usage) = d.memory_pool_usage() {
                timings.peak_reserved_bytes = Some(timings.peak_reserved_bytes.unwrap_or(0).max(usage.bytes_reserved));
                timings.peak_in_use_bytes = Some(timings.peak_in_use_bytes.unwrap_or(0).max(usage.bytes_in_use));
            }
        }
    }
}
