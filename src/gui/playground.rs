//! The playground's generator: a thread that keeps the base and the fine-tuned model loaded and
//! answers conversations, streaming each reply as it grows, so the window never waits on a
//! forward pass.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::SystemTime;

use crate::device::DeviceChoice;
use crate::error::catch_panic;
use crate::generate::{ChatReply, GenerationSettings};
use crate::session::LoadedModel;
use crate::tokenizer::Message;

use super::jobs::{Reply, ReplySender};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    Base,
    Tuned,
}

struct Request {
    slot: Slot,
    model: PathBuf,
    trained: Option<PathBuf>,
    device: DeviceChoice,
    messages: Vec<Message>,
    settings: GenerationSettings,
    /// Set by the Stop button: the reply ends at the next token.
    stop: Arc<AtomicBool>,
}

/// Identifies a loaded model: the trained weights' folder is re-read when it changes.
type Key = (PathBuf, Option<(PathBuf, Option<SystemTime>)>, DeviceChoice);

pub struct Playground {
    requests: Sender<Request>,
}

impl Playground {
    pub fn new(replies: ReplySender) -> Self {
        let (tx, rx) = channel::<Request>();
        std::thread::spawn(move || {
            let mut loaded: Vec<(Key, LoadedModel)> = Vec::new();
            for request in rx {
                let stream = |text: &str| {
                    replies.send(Reply::Streaming { slot: request.slot, text: text.to_string() });
                    !request.stop.load(Ordering::Relaxed)
                };
                let result = catch_panic("while generating", || answer(&mut loaded, &request, stream)).map_err(|e| {
                    // After a panic a loaded model may be half-updated: load afresh next time.
                    if matches!(e, crate::Error::Internal(_)) {
                        loaded.clear();
                    }
                    e.to_string()
                });
                replies.send(Reply::Generated { slot: request.slot, result });
            }
        });
        Self { requests: tx }
    }

    /// Asks for the next turn of `messages`; the reply streams back as [`Reply::Streaming`] and
    /// ends with [`Reply::Generated`], early once `stop` is set.
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        &self,
        slot: Slot,
        model: PathBuf,
        trained: Option<PathBuf>,
        device: DeviceChoice,
        messages: Vec<Message>,
        settings: GenerationSettings,
        stop: Arc<AtomicBool>,
    ) {
        let _ = self.requests.send(Request { slot, model, trained, device, messages, settings, stop });
    }
}

/// Answers one request, loading its model first unless it is one of the (at most two) kept.
fn answer(loaded: &mut Vec<(Key, LoadedModel)>, request: &Request, on_text: impl FnMut(&str) -> bool) -> crate::Result<ChatReply> {
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let key: Key = (request.model.clone(), request.trained.clone().map(|t| (t.clone(), modified(&t))), request.device);
    let index = match loaded.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            let model = LoadedModel::load(&request.model, request.device)?;
            let model = match &request.trained {
                Some(t) => model.with_trained(t)?,
                None => model,
            };
            // Keep the base and one fine-tuned model at most.
            if loaded.len() >= 2 {
                loaded.remove(0);
            }
            loaded.push((key, model));
            loaded.len() - 1
        }
    };
    loaded[index].1.reply(&request.messages, &request.settings, on_text)
}
