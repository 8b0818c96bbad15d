//! From dataset files to tokenized training and validation examples, with a report of what was
//! skipped or truncated and where.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::columns;
use super::format::{DatasetFormat, Sample};
use super::labelled;
use super::records::{SourceRecord, for_each_record};
use super::render::render;
use crate::classify::LabelSet;
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;

/// What to do with a record that cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadRecords {
    /// Report it with its file and line, count it, and go on.
    #[default]
    Skip,
    /// Stop with an error naming its file and line.
    Stop,
}

/// What to do with a record longer than `max_seq_len` tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongRecords {
    /// Keep its first `max_seq_len` tokens.
    #[default]
    Truncate,
    /// Leave it out (reported like a bad record).
    Skip,
    /// Stop with an error naming its file and line.
    Error,
}

/// How a dataset is read and turned into examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The training file (JSONL, JSON or CSV).
    pub train_file: PathBuf,
    /// A separate validation file; otherwise `validation_fraction` of the training records.
    pub validation_file: Option<PathBuf>,
    pub validation_fraction: f64,
    /// The records' shape; detected from the first record when absent.
    pub format: Option<DatasetFormat>,
    pub max_seq_len: usize,
    /// Compute the loss on every token, not only on completions and assistant replies.
    pub train_on_prompt: bool,
    /// Concatenate short examples into sequences of `max_seq_len` tokens.
    pub packing: bool,
    pub bad_records: BadRecords,
    pub long_records: LongRecords,
    /// Fields read from columns of other names: `{"completion": "answer"}` reads the `answer`
    /// column as `completion` (see [`super::columns`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
}

/// Bytes a record may take per token of `max_seq_len` before it is left out unread: far more
/// than any tokenizer packs into a token, so only runaway records (a whole book on one line) hit it.
const RECORD_BYTES_PER_TOKEN: usize = 64;
/// The per-record limit never goes below this.
const MIN_RECORD_BYTES: usize = 1 << 20;

impl DataConfig {
    /// The largest record read: `max_seq_len` × 64 bytes, at least 1 MiB. Larger ones are
    /// skipped with their size, never held in memory whole.
    pub fn max_record_bytes(&self) -> usize {
        self.max_seq_len.saturating_mul(RECORD_BYTES_PER_TOKEN).max(MIN_RECORD_BYTES)
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            train_file: PathBuf::new(),
            validation_file: None,
            validation_fraction: 0.0,
            format: None,
            max_seq_len: 512,
            train_on_prompt: false,
            packing: false,
            bad_records: BadRecords::Skip,
            long_records: LongRecords::Truncate,
            columns: BTreeMap::new(),
        }
    }
}

/// A tokenized example: ids, and per id whether it is a training target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub trainable: Vec<bool>,
    /// The class id of a classification example.
    pub label: Option<u32>,
    /// Where it came from (the first record, for packed examples).
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A record left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub origin: Origin,
    pub reason: String,
}

/// What loading a dataset did.
#[derive(Clone, Debug, Default)]
pub struct DataReport {
    pub format: Option<DatasetFormat>,
    /// The columns of the training file's first readable record, as the file names them.
    pub columns: Vec<String>,
    pub records: usize,
    pub skipped: Vec<Skipped>,
    pub truncated: usize,
    pub train_examples: usize,
    pub validation_examples: usize,
    pub train_tokens: usize,
    pub trainable_tokens: usize,
    pub max_tokens: usize,
    pub mean_tokens: f64,
}

pub struct Dataset {
    pub train: Vec<Example>,
    pub validation: Vec<Example>,
    pub report: DataReport,
    /// The classes of a classification dataset.
    pub labels: Option<LabelSet>,
}

impl Dataset {
    /// Reads, renders and tokenizes the configured files. Fails, before any GPU work, when
    /// nothing is left to train on.
    pub fn load(config: &DataConfig, tokenizer: &TextTokenizer, seed: u64) -> Result<Self> {
        check_settings(config)?;
        let mut report = DataReport::default();
        let train = examples_from(&config.train_file, config, tokenizer, &mut report)?;
        let validation = match &config.validation_file {
            Some(path) => examples_from(path, config, tokenizer, &mut report)?,
            None => Vec::new(),
        };
        Self::split(train, validation, config, report, seed, None)
    }

    /// Reads a classification dataset: `text` (and an optional `text_pair`) with a `label` per
    /// record. The training file's labels become the classes; a validation label outside them
    /// is an error naming its line.
    pub fn load_labelled(config: &DataConfig, tokenizer: &TextTokenizer, seed: u64) -> Result<Self> {
        check_settings(config)?;
        let mut report = DataReport::default();
        let (train, labels) = labelled::read_training(&config.train_file, config, tokenizer, &mut report)?;
        let validation = match &config.validation_file {
            Some(path) => labelled::read_validation(path, config, tokenizer, &labels, &mut report)?,
            None => Vec::new(),
        };
        Self::split(train, validation, config, report, seed, Some(labels))
    }

    /// Holds out the validation fraction (without a validation file), packs, and fills in the
    /// report's totals.
    fn split(
        mut train: Vec<Example>,
        mut validation: Vec<Example>,
        config: &DataConfig,
        mut report: DataReport,
        seed: u64,
        labels: Option<LabelSet>,
    ) -> Result<Self> {
        if train.is_empty() {
            return Err(nothing_to_train_on(&config.train_file, &report));
        }
        if config.validation_file.is_none() && config.validation_fraction > 0.0 && train.len() >= 2 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            train.shuffle(&mut rng);
            let n = train.len();
            let held_out = ((n as f64 * config.validation_fraction).round() as usize).clamp(1, n - 1);
            validation = train.split_off(n - held_out);
        }
        if config.packing {
            train = pack(train, config.max_seq_len);
            validation = pack(validation, config.max_seq_len);
        }

        report.train_examples = train.len();
        report.validation_examples = validation.len();
        report.train_tokens = train.iter().map(|e| e.ids.len()).sum();
        report.trainable_tokens = train.iter().map(|e| e.trainable.iter().filter(|t| **t).count()).sum();
        report.max_tokens = train.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        report.mean_tokens = report.train_tokens as f64 / train.len().max(1) as f64;
        Ok(Self { train, validation, report, labels })
    }
}

/// How many readable records a file holds (for sizing a run before it is tokenized).
pub fn count_records(path: &Path, config: &DataConfig) -> Result<usize> {
    let mut count = 0;
    for_each_record(path, config.max_record_bytes(), |item| {
        count += usize::from(item.is_ok());
        Ok(())
    })?;
    Ok(count)
}

/// The columns of a file's first readable record, as the file names them: what a mapping can
/// choose from, even when no record reads as a known shape yet.
pub fn file_columns(path: &Path, config: &DataConfig) -> Result<Vec<String>> {
    let mut columns = Vec::new();
    let read = for_each_record(path, config.max_record_bytes(), |item| match item {
        Ok(record) => {
            columns = record.fields.keys().cloned().collect();
            Err(Error::Stopped)
        }
        Err(_) => Ok(()),
    });
    match read {
        Ok(()) | Err(Error::Stopped) => Ok(columns),
        Err(e) => Err(e),
    }
}

fn check_settings(config: &DataConfig) -> Result<()> {
    if config.max_seq_len < 2 {
        return Err(Error::setting("max_seq_len", "must be at least 2"));
    }
    if !(0.0..1.0).contains(&config.validation_fraction) {
        return Err(Error::setting("validation_fraction", "must be in [0, 1)"));
    }
    columns::check(&config.columns)
}

fn nothing_to_train_on(path: &Path, report: &DataReport) -> Error {
    let mut message = format!("nothing to train on: {} records read", report.records);
    if !report.skipped.is_empty() {
        message.push_str(&format!(", {} skipped", report.skipped.len()));
        for s in report.skipped.iter().take(3) {
            message.push_str(&format!("\n  {}: {}", s.origin, s.reason));
        }
    }
    Error::EmptyDataset { path: path.to_path_buf(), message }
}

/// A file that gave no record to evaluate, with the first reason one was left out.
pub(crate) fn nothing_to_evaluate(path: &Path, skipped: &[Skipped]) -> Error {
    let first = skipped.first().map(|s| format!(": {} at line {}", s.reason, s.origin.line)).unwrap_or_default();
    Error::EmptyDataset { path: path.to_path_buf(), message: format!("no record to evaluate{first}") }
}

fn examples_from(path: &Path, config: &DataConfig, tokenizer: &TextTokenizer, report: &mut DataReport) -> Result<Vec<Example>> {
    let file: Arc<Path> = Arc::from(path);
    let skip = |line: usize, reason: String, report: &mut DataReport| skip_record(config, &file, line, reason, report);
    // Each file's shape is detected on its own, from its first readable record (a chat training
    // set may come with an alpaca validation set).
    let mut format = config.format;
    let mut examples = Vec::new();
    for_each_record(path, config.max_record_bytes(), |item| {
        let mut record = match item {
            Ok(record) => record,
            Err(problem) => return skip(problem.line, problem.message, report),
        };
        if report.columns.is_empty() {
            report.columns = record.fields.keys().cloned().collect();
        }
        record.fields = columns::apply(&config.columns, record.fields);
        report.records += 1;
        let format = record_format(&mut format, &record, path)?;
        report.format.get_or_insert(format);
        if config.format.is_none() && format == DatasetFormat::Text && record.fields.contains_key(labelled::LABEL) {
            return Err(Error::InvalidRecord {
                path: path.to_path_buf(),
                line: record.line,
                message: "the record has `text` and `label` fields, a classification dataset: train a classifier on it with \
                          --task classification (or pass --format text to train a language model on the text alone)"
                    .into(),
            });
        }
        let example = format
            .sample(&record.fields)
            .map_err(|e| columns::explain(&config.columns, e))
            .and_then(|sample| render(&sample, tokenizer, config.train_on_prompt).map_err(|e| e.to_string()))
            .and_then(|text| tokenizer.tokenize(&text).map_err(|e| e.to_string()));
        let mut tokens = match example {
            Ok(t) => t,
            Err(reason) => return skip(record.line, reason, report),
        };
        if let Some(reason) = fit_length(&mut tokens.ids, &mut tokens.trainable, config, path, record.line, report)? {
            return skip(record.line, reason, report);
        }
        // Position 0 predicts nothing, so a target there does not count.
        if !tokens.trainable.iter().skip(1).any(|t| *t) {
            return skip(record.line, "no tokens to train on (no reply, or cut off by max_seq_len)".into(), report);
        }
        examples.push(Example {
            ids: tokens.ids,
            trainable: tokens.trainable,
            label: None,
            origin: Origin { file: file.clone(), line: record.line },
        });
        Ok(())
    })?;
    Ok(examples)
}

/// Every record of `path` that reads as a sample, by the line it starts on, read as
/// [`Dataset::load`] reads them (columns mapped, the format given or detected from the first
/// record): what a recipe for another trainer writes back out, for the examples the split kept.
pub fn read_samples(path: &Path, config: &DataConfig) -> Result<std::collections::HashMap<usize, Sample>> {
    let mut format = config.format;
    let mut samples = std::collections::HashMap::new();
    for_each_record(path, config.max_record_bytes(), |item| {
        let Ok(mut record) = item else { return Ok(()) };
        record.fields = columns::apply(&config.columns, record.fields);
        let format = record_format(&mut format, &record, path)?;
        if let Ok(sample) = format.sample(&record.fields) {
            samples.insert(record.line, sample);
        }
        Ok(())
    })?;
    Ok(samples)
}

/// Leaves a bad record out with its reason, or stops on it when `bad_records` says so.
pub(super) fn skip_record(config: &DataConfig, file: &Arc<Path>, line: usize, reason: String, report: &mut DataReport) -> Result<()> {
    if config.bad_records == BadRecords::Stop {
        return Err(Error::InvalidRecord { path: file.to_path_buf(), line, message: reason });
    }
    report.skipped.push(Skipped { origin: Origin { file: file.clone(), line }, reason });
    Ok(())
}

/// Cuts a record's tokens to `max_seq_len` as `long_records` says: `Some(reason)` when the
/// record is to be skipped instead, an error when it is to stop the run.
pub(super) fn fit_length(
    ids: &mut Vec<u32>,
    trainable: &mut Vec<bool>,
    config: &DataConfig,
    path: &Path,
    line: usize,
    report: &mut DataReport,
) -> Result<Option<String>> {
    if ids.len() <= config.max_seq_len {
        return Ok(None);
    }
    let message = format!("{} tokens, longer than max_seq_len {}", ids.len(), config.max_seq_len);
    match config.long_records {
        LongRecords::Error => Err(Error::InvalidRecord { path: path.to_path_buf(), line, message }),
        LongRecords::Skip => Ok(Some(message)),
        LongRecords::Truncate => {
            ids.truncate(config.max_seq_len);
            trainable.truncate(config.max_seq_len);
            report.truncated += 1;
            Ok(None)
        }
    }
}

/// The format of a file's `record`: the one given (or found) already, else the one this first
/// readable record shows, kept for the rest of the file; an error naming its fields when it
/// shows none.
pub(crate) fn record_format(format: &mut Option<DatasetFormat>, record: &SourceRecord, path: &Path) -> Result<DatasetFormat> {
    if let Some(format) = *format {
        return Ok(format);
    }
    Ok(*format.insert(detect_format(record, path)?))
}

/// The format of a file from its first readable record, or an error naming the fields it has.
fn detect_format(first: &SourceRecord, path: &Path) -> Result<DatasetFormat> {
    DatasetFormat::detect(&first.fields).ok_or_else(|| {
        let keys: Vec<&str> = first.fields.keys().map(String::as_str).collect();
        Error::InvalidRecord {
            path: path.to_path_buf(),
            line: first.line,
            message: format!(
                "cannot tell the dataset format from the fields [{}]; expected `messages`, `conversations`, \
                 `instruction`+`output`, `prompt`+`completion` or `text` (or pass --format)",
                keys.join(", ")
            ),
        }
    })
}

/// Greedily concatenates whole examples into sequences of at most `max_len` tokens.
fn pack(examples: Vec<Example>, max_len: usize) -> Vec<Example> {
    let mut packed: Vec<Example> = Vec::new();
    for example in examples {
        match packed.last_mut() {
            Some(last) if last.ids.len() + example.ids.len() <= max_len => {
                last.ids.extend(example.ids);
                last.trainable.extend(example.trainable);
            }
            _ => packed.push(example),
        }
    }
    packed
}
