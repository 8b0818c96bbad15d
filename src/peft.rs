//! PEFT-format LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`, with PEFT's
//! tensor names and layouts, so `PeftModel.from_pretrained` loads what we write and we load
//! what PEFT writes.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::method::{LORA_TARGETS, LoraSettings, attach_lora, train_score_head};
use crate::model::weights::write_f32_tensors;
use crate::model::{CausalLm, HostTensor, WeightFiles, transpose};
use crate::params::{named_parameters, set_parameters};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// A classifier's head, saved whole beside the adapter (PEFT's `modules_to_save`).
const SCORE: &str = "score.weight";

/// PEFT's name for a Burn adapter path: `layers.0.self_attn.q_proj.weight.lora.a` becomes
/// `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`.
pub fn peft_name(path: &str) -> Option<String> {
    if path == SCORE {
        return Some(format!("base_model.model.{SCORE}"));
    }
    let (module, factor) = if let Some(m) = path.strip_suffix(".weight.lora.a") {
        (m, "lora_A")
    } else if let Some(m) = path.strip_suffix(".weight.lora.b") {
        (m, "lora_B")
    } else {
        return None;
    };
    Some(format!("base_model.model.model.{module}.{factor}.weight"))
}

/// The inverse of [`peft_name`].
pub fn burn_path(peft: &str) -> Option<String> {
    if peft == format!("base_model.model.{SCORE}") {
        return Some(SCORE.to_string());
    }
    let rest = peft.strip_prefix("base_model.model.model.")?;
    let (module, factor) = if let Some(m) = rest.strip_suffix(".lora_A.weight") {
        (m, "a")
    } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
        (m, "b")
    } else {
        return None;
    };
    Some(format!("{module}.weight.lora.{factor}"))
}

/// Writes the model's adapters in PEFT format into `dir` (which must exist).
pub fn save_adapter(model: &CausalLm, settings: &LoraSettings, base_model: &str, dir: &Path) -> Result<()> {
    let settings = &settings.for_model(&model.config);
    let mut tensors: Vec<(String, HostTensor)> = named_parameters(model)
        .into_iter()
        .filter_map(|p| {
            let name = peft_name(&p.path)?;
            // Burn keeps a: [in, r] and b: [r, out]; PEFT keeps A: [r, in] and B: [out, r].
            Some((name, transpose(&p.to_host())))
        })
        .collect();
    if tensors.is_empty() {
        return Err(Error::setting("method", "this model has no LoRA adapter to save"));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_f32_tensors(&dir.join(WEIGHTS_FILE), &tensors)?;
    let config = adapter_config(settings, base_model, model.score.is_some());
    let text = serde_json::to_string_pretty(&config).unwrap_or_default();
    crate::fsutil::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
    match &model.config.labels {
        Some(labels) => labels.save(dir, model.config.pad_token_id.unwrap_or(0)),
        None => Ok(()),
    }
}

/// PEFT's config; a classifier's is a `SEQ_CLS` adapter that saves the `score` head whole.
fn adapter_config(settings: &LoraSettings, base_model: &str, classifier: bool) -> Value {
    let (task_type, modules_to_save) = if classifier { ("SEQ_CLS", json!(["score"])) } else { ("CAUSAL_LM", Value::Null) };
    json!({
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model,
        "r": settings.rank,
        "lora_alpha": settings.alpha,
        "lora_dropout": settings.dropout,
        "target_modules": settings.target_modules,
        "use_rslora": settings.rslora,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_dora": false,
        "modules_to_save": modules_to_save,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    })
}

/// The number of classes of a PEFT `SEQ_CLS` adapter's saved head (`modules_to_save`), for an
/// adapter written without our `labels.json`; `None` for any other adapter.
pub fn saved_head_classes(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join(CONFIG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let config: Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;
    if config.get("task_type").and_then(Value::as_str) != Some("SEQ_CLS") {
        return Ok(None);
    }
    let weights_path = dir.join(WEIGHTS_FILE);
    let files = WeightFiles::open_files(std::slice::from_ref(&weights_path), &weights_path)?;
    let name = format!("base_model.model.{SCORE}");
    if !files.contains(&name) {
        return Err(Error::MissingTensor { path: weights_path, name });
    }
    Ok(files.shape(&name)?.first().copied())
}

/// Reads an adapter's settings from its `adapter_config.json`, refusing what wgtune cannot
/// reproduce (DoRA, per-module ranks, other PEFT types).
pub fn read_adapter_config(dir: &Path) -> Result<LoraSettings> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let config: Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;
    let field = |name: &str| config.get(name).filter(|v| !v.is_null());
    let bad = |message: String| Error::invalid_file(&path, message);

    let peft_type = field("peft_type").and_then(Value::as_str).unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(bad(format!("peft_type `{peft_type}` is not supported (only LORA)")));
    }
    if field("use_dora").and_then(Value::as_bool) == Some(true) {
        return Err(bad("DoRA adapters (use_dora) are not supported".into()));
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if field(key).and_then(Value::as_object).is_some_and(|o| !o.is_empty()) {
            return Err(bad(format!("`{key}` (per-module ranks) is not supported")));
        }
    }
    if field("layers_to_transform").is_some() {
        return Err(bad("`layers_to_transform` is not supported".into()));
    }
    let rank = field("r").and_then(Value::as_u64).ok_or_else(|| bad("missing `r`".into()))? as usize;
    let alpha = field("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0);
    let target_modules: Vec<String> = match field("target_modules") {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) if s == "all-linear" => LORA_TARGETS.iter().map(|s| s.to_string()).collect(),
        Some(Value::String(s)) => LORA_TARGETS.iter().filter(|t| s.contains(*t)).map(|t| t.to_string()).collect(),
        _ => return Err(bad("missing `target_modules`".into())),
    };
    let settings = LoraSettings {
        rank,
        alpha,
        dropout: field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        target_modules,
        rslora: field("use_rslora").and_then(Value::as_bool).unwrap_or(false),
    };
    settings.validate().map_err(|e| bad(format!("{e} (wgtune adapts {})", LORA_TARGETS.join(", "))))?;
    Ok(settings)
}

/// Attaches the adapter in `dir` to `model`. Every adapted module must have both factors in the
/// file, with the shapes the model expects.
pub fn load_adapter(model: CausalLm, dir: &Path) -> Result<(CausalLm, LoraSettings)> {
    let settings = read_adapter_config(dir)?;
    // Before any factor is allocated at the file's rank.
    settings.validate_for(&model.config).map_err(|e| Error::invalid_file(dir.join(CONFIG_FILE), e.to_string()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let files = WeightFiles::open_files(std::slice::from_ref(&weights_path), &weights_path)?;
    // A classifier's head trains beside the adapter, as in the run that wrote it.
    let model = train_score_head(attach_lora(model, &settings, true));
    let expected: HashMap<String, Vec<usize>> =
        named_parameters(&model).into_iter().filter(|p| p.is_adapter_factor() || p.path == SCORE).map(|p| (p.path, p.shape)).collect();

    let mut values = HashMap::new();
    for name in files.names() {
        let Some(path) = burn_path(name) else { continue };
        let Some(shape) = expected.get(&path) else {
            if path == SCORE {
                return Err(Error::invalid_file(
                    &weights_path,
                    format!("holds a classification head (`{name}`) but no {} names its classes", crate::classify::LABELS_FILE),
                ));
            }
            return Err(Error::invalid_file(&weights_path, format!("tensor `{name}` belongs to no module this adapter's config targets")));
        };
        let peft_shape = vec![shape[1], shape[0]];
        values.insert(path, transpose(&files.read(name, &peft_shape)?));
    }
    for path in expected.keys() {
        if !values.contains_key(path) {
            return Err(Error::MissingTensor { path: weights_path.clone(), name: peft_name(path).unwrap_or_else(|| path.clone()) });
        }
    }
    let (model, _) = set_parameters(model, &values);
    Ok((model, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        let path = "layers.12.mlp.down_proj.weight.lora.b";
        let name = peft_name(path).unwrap();
        assert_eq!(name, "base_model.model.model.layers.12.mlp.down_proj.lora_B.weight");
        assert_eq!(burn_path(&name).unwrap(), path);
        assert_eq!(peft_name("layers.0.mlp.down_proj.weight"), None);
        assert_eq!(peft_name("score.weight").unwrap(), "base_model.model.score.weight");
        assert_eq!(burn_path("base_model.model.score.weight").unwrap(), "score.weight");
    }
}
