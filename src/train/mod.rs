//! Training: settings, the loop, loss, optimizer, schedule, checkpoints and the events the fronts
//! consume.

pub mod checkpoint;
mod config;
mod events;
mod imported;
mod loss;
mod loss_scale;
mod metrics;
mod optimizer;
mod recompute;
mod run_dir;
mod run_lock;
mod runs;
mod schedule;
mod spawn;
mod step;
mod trainer;

pub use config::{ClassWeights, OptimizerConfig, ScheduleKind, Task, TrainConfig};
pub use events::{EvalMetrics, EventSink, GenerationScores, RunInfo, RunSummary, StepMetrics, TrainCommand, TrainEvent};
pub use imported::{TRAINER_STATE, read_trainer_output, trainer_weights};
pub use loss::{LossSum, Targets, chunk_rows, classification_loss_sum, cross_entropy_sum};
pub use loss_scale::LossScale;
pub use metrics::{METRICS_FILE, read_metrics};
pub use optimizer::AdamW;
pub use run_dir::{RunStart, SKIPPED_FILE, output_dir_in_use};
pub use run_lock::{LOCK_FILE, RunLock};
pub use runs::{RunRecord, delete_run, list_runs, rename_run, run_name, run_weights, unused_run_dir};
pub use schedule::Schedule;
pub use spawn::{TrainingHandle, spawn};
pub use step::{NonFiniteStep, StepInputs, StepOutcome, StepTimings, batch_gradients, optimizer_step};
pub use trainer::{FINAL_DIR, RUN_CONFIG_FILE, resume_config, train, train_with_model};
