//! Checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! `RUN_DIR/checkpoint-000120/` holds the trained weights (a PEFT adapter for LoRA, otherwise
//! `trainable.safetensors` with checkpoint names and layouts), `optimizer.safetensors` (AdamW
//! moments), `trainer_state.json` (step and data position) and the run's `run.toml`. It is
//! written to a staging folder and renamed into place, so a crash leaves the previous checkpoint
//! intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::optimizer::AdamW;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::method::Method;
use crate::model::weights::{read_f32_tensors, write_f32_tensors};
use crate::model::{CausalLm, HostTensor, hf_name, is_transposed, module_path, transpose};
use crate::params::{named_parameters, set_parameters};
use crate::peft;

pub const TRAINABLE_FILE: &str = "trainable.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub(crate) const STATE_FILE: &str = "trainer_state.json";

/// Where the data loop stands, and the optimizer's step count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: usize,
    /// The epoch the next batch belongs to.
    pub epoch: usize,
    /// Index of the next batch within that epoch.
    pub batch_in_epoch: usize,
    pub last_loss: Option<f64>,
    /// The f16 loss scale, so that a resumed run does not overflow its way back down to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
}

pub fn checkpoint_dir(run_dir: &Path, step: usize) -> PathBuf {
    run_dir.join(format!("checkpoint-{step:06}"))
}

/// Writes a checkpoint and deletes all but the newest `keep` ones.
pub fn save(model: &CausalLm, config: &TrainConfig, optimizer: &AdamW, state: &TrainerState) -> Result<PathBuf> {
    let run_dir = &config.output_dir;
    let target = checkpoint_dir(run_dir, state.step);
    let staging = fsutil::Staging::new(&target)?;
    save_weights(model, &config.method, &config.model.display().to_string(), staging.path())?;

    let moments = optimizer.state_tensors();
    write_f32_tensors(&staging.join(OPTIMIZER_FILE), &moments)?;
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    fsutil::write_atomic(&staging.join(STATE_FILE), text.as_bytes())?;
    config.save_toml(&staging.join(super::trainer::RUN_CONFIG_FILE))?;
    staging.publish()?;
    prune(run_dir, config.keep_checkpoints.max(1))?;
    Ok(target)
}

/// Writes only what the method trains: a PEFT adapter, or the trained tensors.
pub fn save_weights(model: &CausalLm, method: &Method, base_model: &str, dir: &Path) -> Result<()> {
    match method {
        Method::Lora(settings) => peft::save_adapter(model, settings, base_model, dir),
        _ => {
            let tensors: Vec<(String, HostTensor)> = named_parameters(model)
                .into_iter()
                .filter(|p| p.trainable)
                .map(|p| {
                    let host = p.to_host();
                    let host = if is_transposed(&p.path) { transpose(&host) } else { host };
                    (hf_name(&p.path), host)
                })
                .collect();
            write_f32_tensors(&dir.join(TRAINABLE_FILE), &tensors)?;
            match &model.config.labels {
                Some(labels) => labels.save(dir, model.config.pad_token_id.unwrap_or(0)),
                None => Ok(()),
            }
        }
    }
}

/// Loads the weights [`save_weights`] wrote into a model prepared with the same method.
pub fn load_weights(model: CausalLm, method: &Method, dir: &Path) -> Result<CausalLm> {
    match method {
        Method::Lora(_) => Ok(peft::load_adapter(model, dir)?.0),
        _ => {
            let tensors = read_f32_tensors(&dir.join(TRAINABLE_FILE))?;
            let values: HashMap<String, HostTensor> = tensors
                .into_iter()
                .map(|(name, t)| {
                    let path = module_path(&name);
                    let t = if is_transposed(&path) { transpose(&t) } else { t };
                    (path, t)
                })
                .collect();
            let (model, replaced) = set_parameters(model, &values);
            if replaced.len() != values.len() {
                let missing: Vec<&String> = values.keys().filter(|k| !replaced.contains(k)).collect();
                return Err(Error::invalid_file(
                    dir.join(TRAINABLE_FILE),
                    format!("tensors that match no parameter of this model: {missing:?}"),
                ));
            }
            Ok(model)
        }
    }
}

/// Restores a checkpoint written by [`save`]: weights, optimizer moments and data position.
/// `model` must already have the run's method applied (LoRA attached, the rest frozen).
pub fn load(dir: &Path, model: CausalLm, method: &Method, optimizer: &mut AdamW, device: &Device) -> Result<(CausalLm, TrainerState)> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&state_path, e.to_string()))?;
    let model = match method {
        // The adapter is already attached: set its factors rather than attaching a second one.
        Method::Lora(_) => {
            let files = read_f32_tensors(&dir.join(peft::WEIGHTS_FILE))?;
            let values: HashMap<String, HostTensor> =
                files.into_iter().filter_map(|(name, t)| Some((peft::burn_path(&name)?, transpose(&t)))).collect();
            set_parameters(model, &values).0
        }
        _ => load_weights(model, method, dir)?,
    };
    let moments: HashMap<String, HostTensor> = read_f32_tensors(&dir.join(OPTIMIZER_FILE))?.into_iter().collect();
    optimizer.load_state(state.step, &moments, device);
    Ok((model, state))
}

/// The newest complete checkpoint of a run.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    list(run_dir).into_iter().last()
}

fn list(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("checkpoint-") && n[11..].chars().all(|c| c.is_ascii_digit()))
                && p.join(STATE_FILE).exists()
        })
        .collect();
    dirs.sort();
    dirs
}

/// Deletes all but the newest `keep` checkpoints, and what a killed run left half-written.
fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    let leftovers = std::fs::read_dir(run_dir).map_err(|e| Error::io(run_dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| (n.starts_with("checkpoint-") || n.starts_with(super::FINAL_DIR)) && fsutil::is_leftover(n))
    });
    for leftover in leftovers {
        std::fs::remove_dir_all(&leftover).map_err(|e| Error::io(&leftover, e))?;
    }
    let dirs = list(run_dir);
    for old in dirs.iter().take(dirs.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
    }
    Ok(())
}
