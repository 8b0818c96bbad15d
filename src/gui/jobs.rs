//! Work the app hands to background threads, and the replies that come back over a channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::data::{DataConfig, DataReport, Dataset, Segment, segments};
use crate::device::{ComputeDevice, DeviceChoice};
use crate::error::catch_panic;
use crate::gguf::GgmlType;
use crate::model::{ModelConfig, ModelFolder, WeightDtype};
use crate::session::LoadedModel;
use crate::train::Task;

use super::evaluate_panel::Evaluation;
use super::picker::{FilePicker, PickKind};
use super::playground::Slot;

/// What the model panel shows about a model folder.
#[derive(Clone, Debug)]
pub struct ModelSummary {
    pub path: PathBuf,
    pub config: ModelConfig,
    /// How the weights are stored: a dtype, or a GGUF type.
    pub storage: String,
    pub parameters: usize,
    pub has_chat_template: bool,
    /// The frozen base that keeps a quantized GGUF's own precision (dense for anything else).
    pub native_base_quant: crate::model::BaseQuant,
}

impl ModelSummary {
    /// Reads a model folder, a GGUF file, an `ollama:NAME` model, or a Hugging Face model id
    /// (downloaded first unless cached, with `progress`).
    pub fn read(spec: &Path, progress: impl FnMut(&crate::download::DownloadProgress)) -> Result<Self, String> {
        let path = &crate::hub::resolve_model_with(spec, progress).map_err(|e| e.to_string())?;
        let folder = ModelFolder::open(path).map_err(|e| e.to_string())?;
        let tokenizer = folder.tokenizer().map_err(|e| e.to_string())?;
        Ok(Self {
            path: path.to_path_buf(),
            parameters: folder.config.num_parameters(),
            storage: folder.storage(),
            has_chat_template: tokenizer.has_chat_template(),
            native_base_quant: folder.native_base_quant(),
            config: folder.config,
        })
    }
}

/// What the dataset panel shows: the loading report and the first examples as the model sees them.
#[derive(Clone, Debug)]
pub struct DatasetPreview {
    pub report: DataReport,
    /// The first examples, each with its class for a classification dataset.
    pub examples: Vec<(Vec<Segment>, Option<String>)>,
    /// A classification dataset's classes.
    pub classes: Option<Vec<String>>,
}

impl DatasetPreview {
    pub fn read(model: &Path, data: &DataConfig, task: Task, seed: u64) -> Result<Self, String> {
        let tokenizer = ModelFolder::open(model).and_then(|folder| folder.tokenizer()).map_err(|e| e.to_string())?;
        let dataset = match task {
            Task::CausalLm => Dataset::load(data, &tokenizer, seed),
            Task::Classification => Dataset::load_labelled(data, &tokenizer, seed),
        }
        .map_err(|e| e.to_string())?;
        let class = |e: &crate::data::Example| Some(dataset.labels.as_ref()?.name(e.label? as usize).to_string());
        let examples = dataset
            .train
            .iter()
            .take(5)
            .map(|e| Ok((segments(&tokenizer, e)?, class(e))))
            .collect::<crate::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        Ok(Self { report: dataset.report, examples, classes: dataset.labels.map(|l| l.names) })
    }
}

/// What an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// Merged weights as a Hugging Face folder.
    Merged,
    /// The LoRA adapter in PEFT's format.
    Adapter,
    /// Merged weights as one GGUF file.
    Gguf,
    /// The LoRA adapter as llama.cpp's adapter GGUF.
    GgufAdapter,
    /// A folder with `model.gguf` and a `Modelfile` for `ollama create`.
    Ollama,
    /// A recipe that trains the same run on a GPU cluster.
    Recipe(crate::recipe::RecipeTarget),
}

impl ExportKind {
    /// What the app says it exported.
    pub fn description(self) -> &'static str {
        match self {
            Self::Merged => "merged weights",
            Self::Adapter => "the adapter",
            Self::Gguf => "the GGUF model",
            Self::GgufAdapter => "the GGUF adapter",
            Self::Ollama => "the Ollama model",
            Self::Recipe(crate::recipe::RecipeTarget::Trl) => "the TRL recipe",
            Self::Recipe(crate::recipe::RecipeTarget::Axolotl) => "the Axolotl recipe",
        }
    }

    /// Whether the target is one file rather than a folder.
    pub fn is_file(self) -> bool {
        matches!(self, Self::Gguf | Self::GgufAdapter)
    }
}

/// Where an export goes, and whether the user agreed to replace what is there.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportTarget {
    pub path: PathBuf,
    pub kind: ExportKind,
    pub overwrite: bool,
}

pub enum Reply {
    Device {
        description: String,
        on_wgpu: bool,
        /// The wgpu adapter's limits, for the status bar's account of the kernels.
        adapter: Option<crate::device::AdapterLimits>,
        /// The most memory a run can have there (see `ComputeDevice::memory_limit`).
        memory: Option<u64>,
    },
    /// What the picker chose, and how long the dialog was open.
    Picked(PickKind, Option<PathBuf>, std::time::Duration),
    Model(Result<ModelSummary, String>),
    /// A model being downloaded by id: where it stands.
    Download(crate::download::DownloadProgress),
    /// Model ids the Hub found for a search.
    Searched(Result<Vec<String>, String>),
    /// The preview, the training file's columns (read even when no record has a known shape), and
    /// the files read (a dataset id's split, downloaded, in place of the id).
    Dataset(Result<DatasetPreview, String>, Vec<String>, DataConfig),
    /// A dataset being downloaded by id: where it stands.
    DatasetDownload(crate::download::DownloadProgress),
    /// A playground reply so far, as it streams in.
    Streaming {
        slot: Slot,
        text: String,
    },
    /// A playground reply, whole (or stopped), or why there is none.
    Generated {
        slot: Slot,
        result: Result<crate::generate::ChatReply, String>,
    },
    ExportProgress {
        done: usize,
        total: usize,
    },
    Exported(Result<PathBuf, String>),
    EvalProgress {
        model: &'static str,
        done: usize,
        total: usize,
    },
    Evaluated(Result<Evaluation, String>),
    Runs(Vec<crate::train::RunRecord>),
}

/// Runs closures on threads and collects their replies; wakes the UI when one arrives.
pub struct Jobs {
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
    repaint: Arc<dyn Fn() + Send + Sync>,
    picker: Arc<dyn FilePicker>,
}

impl Jobs {
    pub fn new(picker: Arc<dyn FilePicker>, repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = channel();
        Self { tx, rx, repaint, picker }
    }

    pub fn sender(&self) -> ReplySender {
        ReplySender { tx: self.tx.clone(), repaint: self.repaint.clone() }
    }

    pub fn spawn(&self, job: impl FnOnce(&ReplySender) + Send + 'static) {
        let sender = self.sender();
        std::thread::spawn(move || job(&sender));
    }

    pub fn pick(&self, kind: PickKind) {
        let picker = self.picker.clone();
        self.spawn(move |reply| {
            let opened = std::time::Instant::now();
            let path = picker.pick(kind);
            reply.send(Reply::Picked(kind, path, opened.elapsed()))
        });
    }

    pub fn describe_device(&self, choice: DeviceChoice) {
        self.spawn(move |reply| {
            let (text, on_wgpu, adapter, memory) = match ComputeDevice::open(choice) {
                Ok(d) => (d.description, crate::kernels::is_wgpu(&d.device), d.adapter, d.memory_limit),
                Err(e) => (format!("no device: {e}"), false, None, None),
            };
            reply.send(Reply::Device { description: text, on_wgpu, adapter, memory });
        });
    }

    pub fn read_model(&self, path: PathBuf) {
        self.spawn(move |reply| {
            let progress = |p: &crate::download::DownloadProgress| reply.send(Reply::Download(p.clone()));
            reply.send(Reply::Model(guarded("while reading the model", || ModelSummary::read(&path, progress))))
        });
    }

    pub fn search_models(&self, query: String) {
        self.spawn(move |reply| {
            let hub = crate::download::Hub::from_env();
            reply.send(Reply::Searched(crate::download::search_models(&query, &hub).map_err(|e| e.to_string())))
        });
    }

    pub fn read_dataset(&self, model: PathBuf, data: DataConfig, task: Task, seed: u64) {
        self.spawn(move |reply| {
            let mut data = data;
            // A Hub id (`owner/name`) is its `train` (or, for validation, `validation`) split.
            let progress = |p: &crate::download::DownloadProgress| reply.send(Reply::DatasetDownload(p.clone()));
            let downloaded = crate::hub::resolve_dataset_with(&data.train_file, None, "train", progress).and_then(|train| {
                data.train_file = train;
                match &data.validation_file {
                    Some(file) => {
                        crate::hub::resolve_dataset_with(file, None, "validation", progress).map(|v| data.validation_file = Some(v))
                    }
                    None => Ok(()),
                }
            });
            if let Err(e) = downloaded {
                return reply.send(Reply::Dataset(Err(e.to_string()), Vec::new(), data));
            }
            let columns = crate::data::file_columns(&data.train_file, &data).unwrap_or_default();
            let preview = guarded("while reading the dataset", || DatasetPreview::read(&model, &data, task, seed));
            reply.send(Reply::Dataset(preview, columns, data))
        });
    }

    /// Loads the base model with the trained weights in `trained` and writes `target`;
    /// `overwrite` once the user agreed to replace what is there. `dtype` is the merged folder's,
    /// `gguf_type` the GGUF weight matrices'.
    pub fn export(&self, model: PathBuf, trained: PathBuf, target: ExportTarget, dtype: Option<WeightDtype>, gguf_type: GgmlType) {
        let ExportTarget { path: out, kind, overwrite } = target;
        self.spawn(move |reply| {
            let result = catch_panic("while exporting", || {
                let model = LoadedModel::load(&model, DeviceChoice::Cpu)?.with_trained(&trained)?;
                let progress = |done, total| reply.send(Reply::ExportProgress { done, total });
                match kind {
                    ExportKind::Merged => model.export_merged(&out, dtype, overwrite, progress),
                    ExportKind::Adapter => model.export_adapter(&out, overwrite),
                    ExportKind::Gguf => model.export_gguf(&out, gguf_type, overwrite, progress),
                    ExportKind::GgufAdapter => model.export_gguf_adapter(&out, overwrite),
                    ExportKind::Ollama => model.export_ollama(&out, gguf_type, overwrite, progress),
                    ExportKind::Recipe(_) => unreachable!("recipes are written by Jobs::write_recipe"),
                }
            })
            .map(|_| out)
            .map_err(|e| e.to_string());
            reply.send(Reply::Exported(result));
        });
    }

    /// Writes the recipe for `run` (its settings) to `target`, its batch split over `world_size`
    /// processes.
    pub fn write_recipe(
        &self,
        run: crate::train::TrainConfig,
        recipe: crate::recipe::RecipeTarget,
        world_size: usize,
        target: ExportTarget,
    ) {
        let ExportTarget { path: out, overwrite, .. } = target;
        self.spawn(move |reply| {
            let result = catch_panic("while writing the recipe", || crate::recipe::write_recipe(&run, recipe, world_size, &out, overwrite))
                .map(|_| out)
                .map_err(|e| e.to_string());
            reply.send(Reply::Exported(result));
        });
    }

    /// Asks the records of `file` of the base model, then of it with the trained weights in
    /// `trained`, and scores both.
    pub fn evaluate(&self, model: PathBuf, trained: PathBuf, data: DataConfig, file: PathBuf, device: DeviceChoice, max_new_tokens: usize) {
        self.spawn(move |reply| {
            let result = catch_panic("while evaluating", || {
                let base = LoadedModel::load(&model, device)?;
                if let Some(labels) = crate::session::trained_labels(&trained)? {
                    let (examples, labels, _) = crate::data::read_labelled_file(&file, &data, &base.tokenizer, Some(&labels))?;
                    reply.send(Reply::EvalProgress { model: "Base model", done: 0, total: examples.len() });
                    let base_report = crate::classify::evaluate_classifier(&base.model, &base.tokenizer, &examples, &labels)?;
                    reply.send(Reply::EvalProgress { model: "Fine-tuned", done: 0, total: examples.len() });
                    let tuned = base.with_trained(&trained)?;
                    let tuned_report = crate::classify::evaluate_classifier(&tuned.model, &tuned.tokenizer, &examples, &labels)?;
                    return Ok(Evaluation::Classification { base: base_report, tuned: tuned_report, labels });
                }
                let (cases, _) = crate::eval::load_cases(&file, &data, &base.tokenizer, None)?;
                let progress = |model| move |done, total| reply.send(Reply::EvalProgress { model, done, total });
                let base_report = crate::eval::evaluate(&base.model, &base.tokenizer, &cases, max_new_tokens, progress("Base model"))?;
                let tuned = base.with_trained(&trained)?;
                let tuned_report = crate::eval::evaluate(&tuned.model, &tuned.tokenizer, &cases, max_new_tokens, progress("Fine-tuned"))?;
                Ok(Evaluation::Generation { base: base_report, tuned: tuned_report })
            });
            reply.send(Reply::Evaluated(result.map_err(|e| e.to_string())));
        });
    }

    /// Reads the runs under `folder`.
    pub fn list_runs(&self, folder: PathBuf) {
        self.spawn(move |reply| reply.send(Reply::Runs(crate::train::list_runs(&folder))));
    }

    pub fn poll(&self) -> Vec<Reply> {
        self.rx.try_iter().collect()
    }
}

/// [`catch_panic`] for jobs whose errors are already text.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_panic(what, || f().map_err(crate::Error::Internal)).map_err(|e| e.to_string())
}

#[derive(Clone)]
pub struct ReplySender {
    tx: Sender<Reply>,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl ReplySender {
    pub fn send(&self, reply: Reply) {
        let _ = self.tx.send(reply);
        (self.repaint)();
    }
}
