//! Handing a run to a cluster trainer: the same model, records, split and settings as a recipe
//! for TRL (on torchrun) or Axolotl, for the GPUs and nodes a laptop does not have. wgtune grows
//! no distributed trainer of its own: Burn's data parallelism needs CUDA, and these are the
//! engines people trust for it. What they train comes back as a PEFT adapter (or a model
//! folder), which every wgtune command takes as `--trained`.

mod axolotl;
mod launch;
mod plan;
mod records;
mod trl;
mod yaml;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use plan::{BaseModel, split_batch};
pub use records::Form;

use crate::data::{DataConfig, Dataset, Origin, read_samples};
use crate::error::{Error, Result};
use crate::fsutil::{self, Staging};
use crate::model::ModelFolder;
use crate::train::TrainConfig;
use plan::Plan;
use records::Writer;

/// Where the records are (`train.jsonl`, `validation.jsonl`), in the recipe's folder.
const DATA_DIR: &str = "data";
/// Where the target writes its checkpoints and the final adapter or weights.
const OUTPUT_DIR: &str = "output";

/// Where a recipe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipeTarget {
    /// TRL's SFT trainer, launched with torchrun (DDP, or FSDP for full fine-tuning).
    Trl,
    /// Axolotl, launched with `axolotl train` (DDP, or DeepSpeed ZeRO-3 for full fine-tuning).
    Axolotl,
}

impl RecipeTarget {
    pub fn name(self) -> &'static str {
        match self {
            Self::Trl => "trl",
            Self::Axolotl => "axolotl",
        }
    }

    /// The configuration file the recipe writes.
    pub fn config_file(self) -> &'static str {
        match self {
            Self::Trl => "trl.yaml",
            Self::Axolotl => "axolotl.yaml",
        }
    }
}

impl std::str::FromStr for RecipeTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trl" => Ok(Self::Trl),
            "axolotl" => Ok(Self::Axolotl),
            other => Err(format!("unknown recipe target `{other}` (trl, axolotl)")),
        }
    }
}

impl std::fmt::Display for RecipeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What `write_recipe` wrote.
#[derive(Clone, Debug)]
pub struct RecipeSummary {
    pub dir: PathBuf,
    pub train_records: usize,
    pub validation_records: usize,
    pub form: Form,
    pub micro_batch: usize,
    pub accumulation: usize,
}

/// Writes the recipe for `run` (its `run.toml` settings) into `dir`: the records, the target's
/// configuration, `launch.sh` and a README, all at once (nothing is left half-written).
/// `world_size` is the number of processes (GPUs) the batch is split for.
pub fn write_recipe(run: &TrainConfig, target: RecipeTarget, world_size: usize, dir: &Path, overwrite: bool) -> Result<RecipeSummary> {
    plan::check_supported(run)?;
    let (micro_batch, accumulation) = split_batch(run, world_size)?;
    let model_path = crate::hub::resolve_model(&run.model)?;
    fsutil::check_target(dir, &[&model_path, &run.data.train_file], overwrite, "--overwrite")?;
    let folder = ModelFolder::open(&model_path)?;
    let tokenizer = folder.tokenizer()?;

    // The split the run trained with: the same records kept and held out, unpacked.
    let data_config = DataConfig { packing: false, ..run.data.clone() };
    let dataset = Dataset::load(&data_config, &tokenizer, run.seed)?;
    let writer = Writer { target, tokenizer: &tokenizer, all_tokens: run.data.train_on_prompt };
    let train = records_of(&dataset.train, &data_config, &writer)?;
    let validation = records_of(&dataset.validation, &data_config, &writer)?;
    let form = train.first().map(|(form, _)| *form).unwrap_or(records::Form::Text);
    if let Some((other, _)) = train.iter().chain(&validation).find(|(f, _)| *f != form) {
        return Err(Error::setting(
            "data",
            format!(
                "the records come out as both {} and {}, which one dataset cannot mix; export the files apart",
                form.name(),
                other.name()
            ),
        ));
    }

    let plan = Plan { run, model: &folder.config, base: BaseModel::of(&run.model), world_size, micro_batch, accumulation, form };
    let has_validation = !validation.is_empty();
    let staging = Staging::new(dir)?;
    let data_dir = staging.join(DATA_DIR);
    fsutil::create_dir(&data_dir)?;
    let train_count = write_jsonl(&data_dir.join("train.jsonl"), &train)?;
    let validation_count = if has_validation { write_jsonl(&data_dir.join("validation.jsonl"), &validation)? } else { 0 };

    let header = format!(
        "{} recipe written by wgtune {} from the run of {} on {}.\nLaunch with ./launch.sh (see README.md).",
        target.name(),
        crate::VERSION,
        run.model.display(),
        run.data.train_file.display()
    );
    let entries = match target {
        RecipeTarget::Trl => trl::entries(&plan, has_validation),
        RecipeTarget::Axolotl => axolotl::entries(&plan, has_validation),
    };
    fsutil::write_atomic(&staging.join(target.config_file()), yaml::document(&header, &entries).as_bytes())?;
    if target == RecipeTarget::Axolotl && run.method.lora().is_none() {
        let zero3 = serde_json::to_string_pretty(&axolotl::zero3()).map_err(|e| Error::Internal(e.to_string()))?;
        fsutil::write_atomic(&staging.join(axolotl::ZERO3_FILE), zero3.as_bytes())?;
    }
    // The run's settings beside the output, for the Runs tab when the output comes back.
    run.save_toml(&staging.join(crate::train::RUN_CONFIG_FILE))?;
    let script = launch::script(target, world_size);
    let script_path = staging.join(launch::SCRIPT);
    fsutil::write_atomic(&script_path, script.as_bytes())?;
    launch::make_executable(&script_path)?;
    let summary = RecipeSummary {
        dir: dir.to_path_buf(),
        train_records: train_count,
        validation_records: validation_count,
        form,
        micro_batch,
        accumulation,
    };
    fsutil::write_atomic(&staging.join("README.md"), launch::readme(&plan, target, &entries, &summary).as_bytes())?;
    staging.publish()?;
    Ok(summary)
}

/// The records of `examples` (by their origins) in the target's form.
fn records_of(examples: &[crate::data::Example], config: &DataConfig, writer: &Writer) -> Result<Vec<(Form, serde_json::Value)>> {
    let mut by_file: std::collections::HashMap<PathBuf, std::collections::HashMap<usize, crate::data::Sample>> = Default::default();
    let mut out = Vec::new();
    for Origin { file, line } in examples.iter().map(|e| &e.origin) {
        if !by_file.contains_key(file.as_ref()) {
            by_file.insert(file.to_path_buf(), read_samples(file, config)?);
        }
        let sample = by_file[file.as_ref()]
            .get(line)
            .ok_or_else(|| Error::Internal(format!("{}:{line}: trained, but no longer reads as a record", file.display())))?;
        let form = writer.form(sample);
        out.extend(writer.records(sample)?.into_iter().map(|record| (form, record)));
    }
    Ok(out)
}

/// Writes one JSON object per line; returns how many.
fn write_jsonl(path: &Path, records: &[(Form, serde_json::Value)]) -> Result<usize> {
    fsutil::write_file_with(path, |out, path| {
        for (_, record) in records {
            writeln!(out, "{record}").map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    })?;
    Ok(records.len())
}

#[cfg(test)]
mod tests;
