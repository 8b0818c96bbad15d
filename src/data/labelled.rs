//! Classification datasets: records of `text` (and an optional `text_pair`) with a `label`,
//! tokenized as transformers tokenizes a classifier's input.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::columns;
use super::dataset::{DataConfig, DataReport, Example, Origin, fit_length, nothing_to_evaluate, skip_record};
use super::format::DatasetFormat;
use super::records::{SourceRecord, for_each_record};
use crate::classify::{LabelSet, label_of};
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;

pub const TEXT: &str = "text";
pub const TEXT_PAIR: &str = "text_pair";
pub const LABEL: &str = "label";

/// A classification file on its own, as evaluation reads it: its examples, with class ids from
/// `labels` (a trained classifier's) or else from the file's own labels, and what was skipped.
pub fn read_labelled_file(
    path: &Path,
    config: &DataConfig,
    tokenizer: &TextTokenizer,
    labels: Option<&LabelSet>,
) -> Result<(Vec<Example>, LabelSet, DataReport)> {
    let mut report = DataReport::default();
    let (examples, labels) = match labels {
        Some(labels) => (read_validation(path, config, tokenizer, labels, &mut report)?, labels.clone()),
        None => read_training(path, config, tokenizer, &mut report)?,
    };
    if examples.is_empty() {
        return Err(nothing_to_evaluate(path, &report.skipped));
    }
    Ok((examples, labels, report))
}

/// Whether a file's first readable record is a classification record (it has a `label`).
pub fn is_labelled_file(path: &Path, config: &DataConfig) -> Result<bool> {
    let mut found = false;
    let read = for_each_record(path, config.max_record_bytes(), |item| match item {
        Ok(record) => {
            found = columns::apply(&config.columns, record.fields).contains_key(LABEL);
            Err(Error::Stopped)
        }
        Err(_) => Ok(()),
    });
    match read {
        Ok(()) | Err(Error::Stopped) => Ok(found),
        Err(e) => Err(e),
    }
}

/// A file's examples with their classes, which its labels define.
pub(super) fn read_training(
    path: &Path,
    config: &DataConfig,
    tokenizer: &TextTokenizer,
    report: &mut DataReport,
) -> Result<(Vec<Example>, LabelSet)> {
    let read = read_file(path, config, tokenizer, report)?;
    let labels = LabelSet::collect(read.iter().map(|(_, label)| label.as_str()));
    if labels.len() == 1 {
        return Err(Error::invalid_file(
            path,
            format!("every record has the label `{}`: a classifier needs at least two classes", labels.names[0]),
        ));
    }
    let examples = read.into_iter().map(|(mut example, label)| {
        example.label = labels.id(&label);
        example
    });
    Ok((examples.collect(), labels))
}

/// A validation file's examples; a label the training file does not have is an error.
pub(super) fn read_validation(
    path: &Path,
    config: &DataConfig,
    tokenizer: &TextTokenizer,
    labels: &LabelSet,
    report: &mut DataReport,
) -> Result<Vec<Example>> {
    read_file(path, config, tokenizer, report)?
        .into_iter()
        .map(|(mut example, label)| {
            example.label = Some(labels.id(&label).ok_or_else(|| Error::InvalidRecord {
                path: path.to_path_buf(),
                line: example.origin.line,
                message: format!(
                    "field `{LABEL}`: `{label}` is not a class of the training file {} ({})",
                    config.train_file.display(),
                    labels.names.join(", ")
                ),
            })?);
            Ok(example)
        })
        .collect()
}

/// Every readable record of a file, tokenized, with its label as written.
fn read_file(path: &Path, config: &DataConfig, tokenizer: &TextTokenizer, report: &mut DataReport) -> Result<Vec<(Example, String)>> {
    let file: Arc<Path> = Arc::from(path);
    let mut first = true;
    let mut out = Vec::new();
    for_each_record(path, config.max_record_bytes(), |item| {
        let mut record = match item {
            Ok(record) => record,
            Err(problem) => return skip_record(config, &file, problem.line, problem.message, report),
        };
        if report.columns.is_empty() {
            report.columns = record.fields.keys().cloned().collect();
        }
        record.fields = columns::apply(&config.columns, record.fields);
        report.records += 1;
        if std::mem::take(&mut first) {
            check_shape(&record, path, &config.columns)?;
        }
        let read = fields(&record).map_err(|e| columns::explain(&config.columns, e)).and_then(|(text, pair, label)| {
            let ids = tokenizer.encode_classification(&text, pair.as_deref()).map_err(|e| e.to_string())?;
            Ok((ids, label))
        });
        let (mut ids, label) = match read {
            Ok(read) => read,
            Err(reason) => return skip_record(config, &file, record.line, reason, report),
        };
        if ids.is_empty() {
            return skip_record(config, &file, record.line, format!("field `{TEXT}` makes no tokens"), report);
        }
        let mut trainable = vec![false; ids.len()];
        if let Some(reason) = fit_length(&mut ids, &mut trainable, config, path, record.line, report)? {
            return skip_record(config, &file, record.line, reason, report);
        }
        let origin = Origin { file: file.clone(), line: record.line };
        out.push((Example { ids, trainable, label: None, origin }, label));
        Ok(())
    })?;
    Ok(out)
}

/// A file for another task is refused at its first record, naming what it has.
fn check_shape(first: &SourceRecord, path: &Path, mapping: &BTreeMap<String, String>) -> Result<()> {
    if first.fields.contains_key(LABEL) {
        return Ok(());
    }
    let keys: Vec<&str> = first.fields.keys().map(String::as_str).collect();
    let label = match mapping.get(LABEL) {
        Some(column) => format!("column `{column}` (mapped to `{LABEL}`)"),
        None => format!("`{LABEL}` field"),
    };
    let message = match DatasetFormat::detect(&first.fields).filter(|f| *f != DatasetFormat::Text) {
        Some(format) => format!(
            "no {label}: the fields [{}] make a {format} dataset, for --task causal-lm; a classification dataset has \
             `{TEXT}` and `{LABEL}` fields",
            keys.join(", ")
        ),
        None => format!(
            "no {label} in the fields [{}]: a classification dataset has `{TEXT}` and `{LABEL}` fields (or map yours with \
             --columns text=COLUMN,label=COLUMN)",
            keys.join(", ")
        ),
    };
    Err(Error::InvalidRecord { path: path.to_path_buf(), line: first.line, message })
}

/// The text, the optional second text and the label of one record.
fn fields(record: &SourceRecord) -> std::result::Result<(String, Option<String>, String), String> {
    let text = match record.fields.get(TEXT) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(serde_json::Value::String(_)) => return Err(format!("field `{TEXT}` is empty")),
        Some(other) => return Err(format!("field `{TEXT}` is {}, not a string", super::json_kind(other))),
        None => return Err(format!("missing field `{TEXT}`")),
    };
    let pair = match record.fields.get(TEXT_PAIR) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("field `{TEXT_PAIR}` is {}, not a string", super::json_kind(other))),
    };
    Ok((text, pair, label_of(&record.fields, LABEL)?))
}
