//! Exporting a fine-tuned model as a Hugging Face folder: the source's tensor names, shapes,
//! shard layout and dtype (or a chosen one), with its config, tokenizer and generation files.
//!
//! Tensors the fine-tuning did not touch are copied byte for byte from the source; those it did
//! (adapted or trained) are read back from the device, merged, and encoded in the target dtype.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::weights::{TensorSpec, write_safetensors};
use crate::model::{CausalLm, ModelFolder, WeightDtype, hf_name, is_transposed, transpose};
use crate::params::{NamedParam, named_parameters};

/// Files of a model folder that describe rather than hold weights, copied as they are.
fn is_weight_file(name: &str) -> bool {
    [".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack"].iter().any(|ext| name.ends_with(ext))
        || name.ends_with(".index.json")
}

/// Writes `model` with its adapters merged into `out`, mirroring `source`. `dtype` overrides the
/// stored dtype. `progress(done, total)` is called after each tensor.
pub fn export_merged(
    model: &CausalLm,
    source: &ModelFolder,
    out: &Path,
    dtype: Option<WeightDtype>,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    let staging = fsutil::staging_dir(out)?;
    let changed: HashMap<String, NamedParam> = named_parameters(model)
        .into_iter()
        .filter(|p| !p.is_adapter_factor() && (p.has_adapter() || p.trainable))
        .map(|p| (hf_name(&p.path), p))
        .collect();

    let weights = &source.weights;
    let total = weights.names().count();
    let mut done = 0;
    let mut total_size = 0usize;
    let mut weight_map = serde_json::Map::new();
    for file in weights.file_paths() {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or("model.safetensors").to_string();
        let mut names: Vec<&str> = weights.names().filter(|n| weights.file_of(n) == Some(file)).collect();
        names.sort();
        let specs = names
            .iter()
            .map(|name| {
                Ok(TensorSpec { name: name.to_string(), dtype: dtype.unwrap_or(weights.dtype(name)?), shape: weights.shape(name)? })
            })
            .collect::<Result<Vec<_>>>()?;
        for spec in &specs {
            total_size += spec.byte_len();
            weight_map.insert(spec.name.clone(), serde_json::Value::String(file_name.clone()));
        }
        let metadata = std::collections::BTreeMap::from([("format".to_string(), "pt".to_string())]);
        write_safetensors(&staging.join(&file_name), &specs, Some(&metadata), |spec| {
            let bytes = match changed.get(&spec.name) {
                Some(param) => {
                    let layout = |host| if is_transposed(&param.path) { transpose(&host) } else { host };
                    let values = match param.adapter_delta_to_host() {
                        // The source's own values plus the adapter's update, exact whatever
                        // precision the frozen weight was held in on the device.
                        Some(delta) => {
                            let base = weights.read(&spec.name, &spec.shape)?;
                            base.values.iter().zip(layout(delta).values).map(|(w, d)| w + d).collect()
                        }
                        None => layout(param.to_host()).values,
                    };
                    spec.dtype.encode(&values)
                }
                None if weights.dtype(&spec.name)? == spec.dtype => weights.raw(&spec.name)?.to_vec(),
                None => spec.dtype.encode(&weights.dtype(&spec.name)?.decode(weights.raw(&spec.name)?)),
            };
            done += 1;
            progress(done, total);
            Ok(bytes)
        })?;
    }

    let index_name = "model.safetensors.index.json";
    if source.path.join(index_name).exists() {
        let index = serde_json::json!({
            "metadata": { "total_size": total_size },
            "weight_map": weight_map,
        });
        let text = serde_json::to_string_pretty(&index).unwrap_or_default();
        fsutil::write_atomic(&staging.join(index_name), text.as_bytes())?;
    }
    copy_side_files(&source.path, &staging, dtype)?;
    fsutil::publish(&staging, out)
}

/// Copies config, tokenizer and generation files; records a changed dtype in `config.json`.
fn copy_side_files(from: &Path, to: &Path, dtype: Option<WeightDtype>) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if !path.is_file() || is_weight_file(name) || name.starts_with('.') {
            continue;
        }
        let target = to.join(name);
        if name == "config.json"
            && let Some(dtype) = dtype
        {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;
            if let Some(obj) = config.as_object_mut() {
                for key in ["torch_dtype", "dtype"] {
                    if obj.contains_key(key) || key == "torch_dtype" {
                        obj.insert(key.into(), serde_json::Value::String(dtype.torch_name().into()));
                    }
                }
            }
            let text = serde_json::to_string_pretty(&config).unwrap_or_default();
            fsutil::write_atomic(&target, text.as_bytes())?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}
