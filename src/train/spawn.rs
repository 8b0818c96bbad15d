//! Running training on its own thread, for fronts that must stay responsive.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::config::TrainConfig;
use super::events::{EventSink, RunSummary, TrainCommand, TrainEvent};
use super::run_dir::RunStart;
use super::trainer::train;
use crate::error::{Error, Result};

pub struct TrainingHandle {
    pub events: Receiver<TrainEvent>,
    pub commands: Sender<TrainCommand>,
    thread: Option<JoinHandle<Result<RunSummary>>>,
}

/// Starts training on a background thread. A panic inside the engine (a driver failure, say)
/// is reported by [`train`] as a [`TrainEvent::Failed`] rather than taking the front down with it.
pub fn spawn(config: TrainConfig, start: RunStart) -> TrainingHandle {
    let (event_tx, event_rx) = channel();
    let (command_tx, command_rx) = channel();
    let thread = std::thread::Builder::new()
        .name("wgtune-train".into())
        .spawn(move || {
            let sink = EventSink::new(event_tx);
            train(&config, start, &sink, &command_rx)
        })
        .ok();
    TrainingHandle { events: event_rx, commands: command_tx, thread }
}

impl TrainingHandle {
    pub fn send(&self, command: TrainCommand) {
        let _ = self.commands.send(command);
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the run to end and returns its outcome.
    pub fn join(mut self) -> Result<RunSummary> {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(Error::Device("the training thread panicked".into()))),
            None => Err(Error::Device("could not start the training thread".into())),
        }
    }
}
