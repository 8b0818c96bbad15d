//! Training: settings, the loop, loss, optimizer, schedule, checkpoints and the events the fronts
//! consume.

pub mod checkpoint;
mod config;
mod events;
mod loss;
mod metrics;
mod optimizer;
mod schedule;
mod spawn;
mod step;
mod trainer;

pub use config::{OptimizerConfig, ScheduleKind, TrainConfig};
pub use events::{EvalMetrics, EventSink, RunInfo, RunSummary, StepMetrics, TrainCommand, TrainEvent};
pub use loss::{chunk_rows, cross_entropy_sum, LossSum, Targets};
pub use metrics::{read_metrics, METRICS_FILE};
pub use optimizer::AdamW;
pub use schedule::Schedule;
pub use spawn::{spawn, TrainingHandle};
pub use step::{optimizer_step, NonFiniteStep, StepInputs, StepOutcome, StepTimings};
pub use trainer::{resume_config, train, train_with_model, FINAL_DIR, RUN_CONFIG_FILE};
