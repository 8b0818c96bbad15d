//! Column mapping: a dataset whose columns have names of their own (`question`, `answer`,
//! `conversation`) read as one of the shapes wgtune knows (`--columns prompt=question,completion=answer`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The fields the dataset shapes read, which a mapping may fill.
pub const FIELDS: [&str; 11] =
    ["instruction", "input", "output", "system", "messages", "conversations", "prompt", "completion", "text", "text_pair", "label"];

/// Parses `FIELD=COLUMN,FIELD=COLUMN`.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, column) = pair
            .split_once('=')
            .map(|(f, c)| (f.trim(), c.trim()))
            .filter(|(f, c)| !f.is_empty() && !c.is_empty())
            .ok_or_else(|| Error::setting("data.columns", format!("`{pair}` is not FIELD=COLUMN (e.g. prompt=question)")))?;
        out.insert(field.to_string(), column.to_string());
    }
    check(&out)?;
    Ok(out)
}

/// A mapping as `--columns` takes it: `prompt=question, completion=answer`.
pub fn format(columns: &BTreeMap<String, String>) -> String {
    columns.iter().map(|(field, column)| format!("{field}={column}")).collect::<Vec<_>>().join(", ")
}

/// Checks that every mapped field is one the shapes read, and no column is used twice.
pub fn check(columns: &BTreeMap<String, String>) -> Result<()> {
    for field in columns.keys() {
        if !FIELDS.contains(&field.as_str()) {
            return Err(Error::setting("data.columns", format!("`{field}` is not a field wgtune reads ({})", FIELDS.join(", "))));
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(column) = columns.values().find(|c| !seen.insert(c.as_str())) {
        return Err(Error::setting("data.columns", format!("column `{column}` is mapped to two fields")));
    }
    Ok(())
}

/// The record with each mapped column renamed to its field (a column the record lacks is left
/// missing, and named by [`explain`] when its field is needed).
pub fn apply(columns: &BTreeMap<String, String>, mut fields: Map<String, Value>) -> Map<String, Value> {
    for (field, column) in columns {
        if let Some(value) = fields.remove(column) {
            fields.insert(field.clone(), value);
        }
    }
    fields
}

/// A record's error in the user's column names: "missing field `completion`" becomes "missing
/// column `answer` (mapped to `completion`)".
pub fn explain(columns: &BTreeMap<String, String>, message: String) -> String {
    for (field, column) in columns {
        let missing = format!("missing field `{field}`");
        if message.contains(&missing) {
            return message.replace(&missing, &format!("missing column `{column}` (mapped to `{field}`)"));
        }
        let named = format!("field `{field}`");
        if message.contains(&named) {
            return message.replace(&named, &format!("column `{column}` (mapped to `{field}`)"));
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_and_bad_ones_are_named() {
        let columns = parse("prompt=question, completion=answer").unwrap();
        assert_eq!(columns["completion"], "answer");
        let err = parse("answer=output").unwrap_err().to_string();
        assert!(err.contains("`answer` is not a field wgtune reads (instruction, input"), "{err}");
        assert!(parse("prompt").unwrap_err().to_string().contains("`prompt` is not FIELD=COLUMN"));
        assert!(parse("prompt=q,completion=q").unwrap_err().to_string().contains("column `q` is mapped to two fields"));
    }

    #[test]
    fn records_are_renamed_and_errors_use_the_column_names() {
        let columns = parse("prompt=question,completion=answer").unwrap();
        let record: Map<String, Value> = serde_json::from_str(r#"{"question": "Hi", "id": 3}"#).unwrap();
        let renamed = apply(&columns, record);
        assert_eq!(renamed["prompt"], "Hi");
        assert!(renamed.contains_key("id") && !renamed.contains_key("question"));
        assert_eq!(explain(&columns, "missing field `completion`".into()), "missing column `answer` (mapped to `completion`)");
        assert_eq!(
            explain(&columns, "field `prompt` is a number, expected text".into()),
            "column `question` (mapped to `prompt`) is a number, expected text"
        );
    }
}
