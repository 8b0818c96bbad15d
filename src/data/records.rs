//! Reading dataset files (JSONL, JSON arrays, CSV) into records that remember their line.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One record of a dataset file, as a JSON object, with the line it starts on (1-based).
#[derive(Clone, Debug)]
pub struct SourceRecord {
    pub line: usize,
    pub fields: Map<String, Value>,
}

/// A record that could not be read, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordProblem {
    pub line: usize,
    pub message: String,
}

/// Everything read from one file: the good records and the bad ones.
#[derive(Debug, Default)]
pub struct FileRecords {
    pub records: Vec<SourceRecord>,
    pub problems: Vec<RecordProblem>,
}

/// Reads a dataset file, choosing the reader by extension (`.jsonl`, `.json`, `.csv`; other
/// extensions are sniffed: a leading `[` is a JSON array, otherwise JSON lines).
pub fn read_file(path: &Path) -> Result<FileRecords> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "csv" => read_csv(&text, path),
        "json" => read_json(&text, path),
        "jsonl" | "ndjson" => Ok(read_jsonl(&text)),
        _ if text.trim_start().starts_with('[') => read_json(&text, path),
        _ => Ok(read_jsonl(&text)),
    }
}

fn read_jsonl(text: &str) -> FileRecords {
    let mut out = FileRecords::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(fields)) => out.records.push(SourceRecord { line: line_no, fields }),
            Ok(other) => {
                out.problems.push(RecordProblem { line: line_no, message: format!("expected a JSON object, found {}", kind(&other)) })
            }
            Err(e) => out.problems.push(RecordProblem { line: line_no, message: format!("invalid JSON: {e}") }),
        }
    }
    out
}

/// A JSON array of objects, or an object holding one (`{"data": [...]}` or `{"train": [...]}`).
fn read_json(text: &str, path: &Path) -> Result<FileRecords> {
    let raw: Value = serde_json::from_str(text).map_err(|e| Error::InvalidRecord {
        path: path.to_path_buf(),
        line: e.line(),
        message: format!("invalid JSON: {e}"),
    })?;
    let items: &Vec<Value> = match &raw {
        Value::Array(items) => items,
        Value::Object(o) => ["data", "train", "examples", "records"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_array))
            .ok_or_else(|| Error::invalid_file(path, "expected a JSON array of records (or an object with a `data` array)"))?,
        other => {
            return Err(Error::invalid_file(path, format!("expected a JSON array of records, found {}", kind(other))));
        }
    };
    let starts = element_lines(text, items.len());
    let mut out = FileRecords::default();
    for (item, line) in items.iter().zip(starts) {
        match item {
            Value::Object(fields) => out.records.push(SourceRecord { line, fields: fields.clone() }),
            other => out.problems.push(RecordProblem { line, message: format!("expected a JSON object, found {}", kind(other)) }),
        }
    }
    Ok(out)
}

/// The line on which each element of the records array in `text` (valid JSON) starts.
fn element_lines(text: &str, count: usize) -> Vec<usize> {
    let bytes = text.as_bytes();
    let records_depth = array_depth(bytes);
    let mut lines = Vec::with_capacity(count);
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped, mut expecting) = (false, false, false);
    for &b in bytes {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if expecting && !b.is_ascii_whitespace() && b != b']' {
            lines.push(line);
            expecting = false;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if b == b'[' && depth == records_depth && lines.is_empty() {
                    expecting = true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == records_depth => expecting = true,
            _ => {}
        }
    }
    lines.resize(count, line);
    lines
}

/// Depth of the records array: 1 for a top-level array, 2 for `{"data": [...]}`.
fn array_depth(bytes: &[u8]) -> usize {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => 2,
        _ => 1,
    }
}

fn read_csv(text: &str, path: &Path) -> Result<FileRecords> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| Error::invalid_file(path, format!("cannot read the CSV header: {e}")))?.clone();
    let mut out = FileRecords::default();
    for result in reader.records() {
        match result {
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line() as usize);
                let fields = headers.iter().zip(row.iter()).map(|(h, v)| (h.to_string(), Value::String(v.to_string()))).collect();
                out.records.push(SourceRecord { line, fields });
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                out.problems.push(RecordProblem { line, message: format!("invalid CSV row: {e}") });
            }
        }
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_reports_bad_lines_by_number() {
        let out = read_jsonl("{\"text\": \"a\"}\n\n{oops\n[1]\n{\"text\": \"b\"}\n");
        assert_eq!(out.records.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(out.problems.len(), 2);
        assert_eq!(out.problems[0].line, 3);
        assert!(out.problems[0].message.contains("invalid JSON"));
        assert_eq!(out.problems[1].line, 4);
        assert!(out.problems[1].message.contains("an array"));
    }

    #[test]
    fn json_array_records_know_their_lines() {
        let text = "[\n  {\"text\": \"a, [b]\"},\n  {\n    \"text\": \"c\"\n  },\n  3\n]";
        let out = read_json(text, Path::new("x.json")).unwrap();
        assert_eq!(out.records.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(out.problems[0].line, 6);
    }

    #[test]
    fn json_object_with_data_array() {
        let text = "{\"data\": [\n{\"text\": \"a\"},\n{\"text\": \"b\"}]}";
        let out = read_json(text, Path::new("x.json")).unwrap();
        assert_eq!(out.records.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn csv_rows_become_string_fields() {
        let out = read_csv("prompt,completion\n\"a, b\",c\nd,e,f\n", Path::new("x.csv")).unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].fields["prompt"], Value::String("a, b".into()));
        assert_eq!(out.records[0].line, 2);
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].line, 3);
    }
}
