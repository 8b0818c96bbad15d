//! The labels of a classification dataset, in the order that gives them their ids, and the
//! `labels.json` a trained classifier carries so that every front names its classes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Written beside a classifier's weights (checkpoints, `final/`, exported adapters).
pub const LABELS_FILE: &str = "labels.json";

/// Class names by id: `names[id]`. Integer labels keep their numeric order (0, 1, 2, … stay
/// their own ids, as in Hugging Face datasets' `ClassLabel`); any other labels are sorted as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSet {
    pub names: Vec<String>,
}

/// What `labels.json` is read for: `id2label` as transformers writes it in `config.json` (the file
/// also holds `label2id`), and the padding id the pooling rule skipped.
#[derive(Deserialize)]
struct LabelsFile {
    id2label: BTreeMap<String, String>,
    pad_token_id: u32,
}

impl LabelSet {
    /// The distinct labels among `values`, ordered.
    pub fn collect<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let distinct: BTreeSet<&str> = values.into_iter().collect();
        let mut names: Vec<String> = distinct.into_iter().map(str::to_string).collect();
        if names.iter().all(|n| n.parse::<i64>().is_ok()) {
            names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
        }
        Self { names }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn id(&self, label: &str) -> Option<u32> {
        self.names.iter().position(|n| n == label).map(|i| i as u32)
    }

    pub fn name(&self, id: usize) -> &str {
        self.names.get(id).map_or("?", String::as_str)
    }

    /// `{"0": "negative", …}`, as `config.json` holds it.
    pub fn id2label(&self) -> Value {
        Value::Object(self.names.iter().enumerate().map(|(i, n)| (i.to_string(), Value::String(n.clone()))).collect())
    }

    /// `{"negative": 0, …}`.
    pub fn label2id(&self) -> Value {
        Value::Object(self.names.iter().enumerate().map(|(i, n)| (n.clone(), Value::from(i))).collect::<Map<_, _>>())
    }

    /// The classes of an `id2label` map (`config.json`'s or `labels.json`'s), whose ids must run
    /// from 0 and name at least two classes; the error says which field is wrong.
    pub fn from_id2label(id2label: &BTreeMap<String, String>) -> std::result::Result<Self, String> {
        if id2label.len() < 2 {
            return Err("field `id2label` names fewer than two classes".into());
        }
        let names = (0..id2label.len())
            .map(|id| {
                id2label
                    .get(&id.to_string())
                    .cloned()
                    .ok_or_else(|| format!("field `id2label` has no id {id}: ids must run from 0 to {}", id2label.len() - 1))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self { names })
    }

    pub fn save(&self, dir: &Path, pad_token_id: u32) -> Result<()> {
        let file = serde_json::json!({ "id2label": self.id2label(), "label2id": self.label2id(), "pad_token_id": pad_token_id });
        let text = serde_json::to_string_pretty(&file).unwrap_or_default();
        crate::fsutil::write_atomic(&dir.join(LABELS_FILE), text.as_bytes())
    }

    /// The labels saved in `dir` and the padding id they were trained with, `None` when it
    /// holds no `labels.json` (a causal-LM run).
    pub fn load(dir: &Path) -> Result<Option<(Self, u32)>> {
        let path = dir.join(LABELS_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let file: LabelsFile = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;
        let labels = Self::from_id2label(&file.id2label).map_err(|e| Error::invalid_file(&path, e))?;
        Ok(Some((labels, file.pad_token_id)))
    }
}

/// The label of a record, as text: a string, or an integer written in decimal. Anything else is
/// refused with what was found, naming the field.
pub fn label_of(fields: &Map<String, Value>, field: &str) -> std::result::Result<String, String> {
    match fields.get(field) {
        None | Some(Value::Null) => Err(format!("missing field `{field}` (the class of the text)")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("field `{field}` is empty")),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(Value::Number(n)) => Err(format!("field `{field}` is the number {n}: a label is a string or an integer")),
        Some(other) => Err(format!("field `{field}` is {}: a label is a string or an integer", crate::data::json_kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_labels_keep_their_numeric_order_and_text_is_sorted() {
        assert_eq!(LabelSet::collect(["10", "2", "0", "2"]).names, ["0", "2", "10"]);
        assert_eq!(LabelSet::collect(["price", "delivery", "Battery"]).names, ["Battery", "delivery", "price"]);
    }

    #[test]
    fn labels_are_strings_or_integers() {
        let record = |v: Value| json!({ "label": v }).as_object().cloned().unwrap();
        assert_eq!(label_of(&record(json!(" good ")), "label"), Ok("good".into()));
        assert_eq!(label_of(&record(json!(3)), "label"), Ok("3".into()));
        assert!(label_of(&record(json!(0.5)), "label").unwrap_err().contains("the number 0.5"));
        assert!(label_of(&record(json!(["a"])), "label").unwrap_err().contains("an array"));
        assert!(label_of(&record(json!("")), "label").unwrap_err().contains("empty"));
        assert!(label_of(&Map::new(), "label").unwrap_err().contains("missing field `label`"));
    }

    #[test]
    fn labels_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let labels = LabelSet::collect(["b", "a", "c"]);
        labels.save(dir.path(), 7).unwrap();
        assert_eq!(LabelSet::load(dir.path()).unwrap(), Some((labels, 7)));
        assert_eq!(LabelSet::load(&dir.path().join("none")).unwrap(), None);
    }
}
