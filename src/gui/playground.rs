//! The playground's generator: a thread that keeps the base and the fine-tuned model loaded and
//! answers prompts, so the window never waits on a forward pass.

use std::path::PathBuf;
use std::sync::mpsc::{Sender, channel};
use std::time::SystemTime;

use crate::device::DeviceChoice;
use crate::generate::GenerationSettings;
use crate::session::LoadedModel;

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
    prompt: String,
    settings: GenerationSettings,
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
                let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                let key: Key = (
                    request.model.clone(),
                    request.trained.clone().map(|t| {
                        let m = modified(&t);
                        (t, m)
                    }),
                    request.device,
                );
                let position = loaded.iter().position(|(k, _)| *k == key);
                let model = match position {
                    Some(i) => Ok(&loaded[i].1),
                    None => {
                        let result = LoadedModel::load(&request.model, request.device).and_then(|m| match &request.trained {
                            Some(t) => m.with_trained(t),
                            None => Ok(m),
                        });
                        result.map(|m| {
                            // Keep the base and one fine-tuned model at most.
                            if loaded.len() >= 2 {
                                loaded.remove(0);
                            }
                            loaded.push((key, m));
                            &loaded.last().expect("just pushed").1
                        })
                    }
                };
                let result = model.and_then(|m| m.generate(&request.prompt, &request.settings)).map_err(|e| e.to_string());
                replies.send(Reply::Generated { slot: request.slot, prompt: request.prompt, result });
            }
        });
        Self { requests: tx }
    }

    pub fn generate(
        &self,
        slot: Slot,
        model: PathBuf,
        trained: Option<PathBuf>,
        device: DeviceChoice,
        prompt: String,
        settings: GenerationSettings,
    ) {
        let _ = self.requests.send(Request { slot, model, trained, device, prompt, settings });
    }
}
