//! What a training run tells its front (CLI or GUI), and what the front can ask of it.

use std::path::PathBuf;
use std::sync::mpsc::Sender;

use serde::{Deserialize, Serialize};

use crate::generate::{ChatReply, GenerationSettings};
use crate::tokenizer::Message;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub total_steps: usize,
    /// Fractional epoch: 1.5 is half-way through the second epoch.
    pub epoch: f64,
    pub loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping; 0 when the update was skipped.
    pub grad_norm: f64,
    /// The gradients overflowed at the f16 loss scale, so this step updated nothing and the
    /// scale was halved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    pub tokens_per_second: f64,
    pub elapsed_seconds: f64,
    pub eta_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub step: usize,
    pub loss: f64,
    pub perplexity: f64,
    /// Fraction of target tokens the model ranks first.
    pub accuracy: f64,
    /// What the model wrote for the first validation records (`eval_generations`), scored
    /// against their replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationScores>,
    /// A classifier's scores on the whole validation set (`accuracy` is then the fraction of
    /// records it labels right).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<crate::classify::ClassificationScores>,
}

impl EvalMetrics {
    /// The score that says whether the run learned its task: a classifier's accuracy, or the
    /// exact match of the answers to validation records; `None` when neither was measured.
    pub fn headline(&self) -> Option<(&'static str, f64)> {
        match (&self.classification, &self.generation) {
            (Some(c), _) => Some(("accuracy", c.accuracy)),
            (None, Some(g)) => Some(("exact match", g.summary.exact_match)),
            (None, None) => None,
        }
    }
}

/// Greedy answers to a few validation records, and their scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationScores {
    pub summary: crate::eval::Summary,
    pub answers: Vec<crate::eval::Answer>,
}

/// Facts about a run, sent once before the first step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_dir: PathBuf,
    pub device: String,
    pub method: String,
    pub total_parameters: usize,
    pub trainable_parameters: usize,
    pub train_examples: usize,
    pub validation_examples: usize,
    pub skipped_records: usize,
    /// The first few records left out, as `file:line: reason`; all of them are in
    /// `RUN_DIR/skipped.jsonl`.
    pub first_skipped: Vec<String>,
    pub truncated_records: usize,
    pub total_steps: usize,
    /// The step a resumed run starts from (0 for a fresh run).
    pub start_step: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TrainEvent {
    /// Loading the model or the data, with a description.
    Preparing(String),
    Started(RunInfo),
    Step(StepMetrics),
    Eval(EvalMetrics),
    CheckpointSaved {
        step: usize,
        path: PathBuf,
    },
    Paused {
        step: usize,
    },
    Resumed {
        step: usize,
    },
    /// A generation requested while paused: the last user turn, and the reply or why there is
    /// none.
    Generated {
        prompt: String,
        reply: Result<ChatReply, String>,
    },
    Finished(RunSummary),
    /// The run stopped on an error; `last_checkpoint` is still loadable.
    Failed {
        error: String,
        last_checkpoint: Option<PathBuf>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub steps: usize,
    pub stopped_early: bool,
    /// The trained weights: a PEFT adapter folder for LoRA, a folder of the trained tensors
    /// otherwise.
    pub final_checkpoint: PathBuf,
    pub final_loss: Option<f64>,
    pub final_eval: Option<EvalMetrics>,
}

#[derive(Clone, Debug)]
pub enum TrainCommand {
    Pause,
    Resume,
    Stop,
    /// The model's next turn in `messages` as it is now; answered with [`TrainEvent::Generated`].
    /// Honoured between steps and while paused.
    Generate {
        messages: Vec<Message>,
        settings: GenerationSettings,
    },
}

/// Where events go. A closed channel (the front went away) does not stop the run.
#[derive(Clone)]
pub struct EventSink(Option<Sender<TrainEvent>>);

impl EventSink {
    pub fn new(sender: Sender<TrainEvent>) -> Self {
        Self(Some(sender))
    }

    pub fn none() -> Self {
        Self(None)
    }

    pub fn send(&self, event: TrainEvent) {
        if let Some(sender) = &self.0 {
            let _ = sender.send(event);
        }
    }
}
