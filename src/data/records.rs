//! Reading dataset files (JSONL, JSON arrays, CSV, Parquet) one record at a time, each with the
//! line it starts on (for Parquet, its row number). Records are handed out as they are read, so memory follows the longest record,
//! not the file; a record over the size limit is reported without being held in memory whole.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// What one record of a file turned out to be.
pub type RecordItem = std::result::Result<SourceRecord, RecordProblem>;

/// Keys under which a JSON object may hold the records array.
const RECORDS_KEYS: [&str; 4] = ["data", "train", "examples", "records"];

/// Reads a dataset file record by record, in file order, choosing the reader by extension
/// (`.jsonl`, `.json`, `.csv`; other extensions are sniffed: a leading `[` is a JSON array,
/// otherwise JSON lines). A record longer than `max_record_bytes` is a problem, not a record.
/// `each` may stop the reading by returning an error.
pub fn for_each_record(path: &Path, max_record_bytes: usize, mut each: impl FnMut(RecordItem) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    skip_bom(&mut reader).map_err(|e| Error::io(path, e))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "parquet" => read_parquet(path, max_record_bytes, each),
        "csv" => read_csv(reader, path, max_record_bytes, each),
        "json" => read_json(path, max_record_bytes, &mut each),
        "jsonl" | "ndjson" => read_jsonl(reader, path, max_record_bytes, each),
        _ if starts_with_bracket(&mut reader).map_err(|e| Error::io(path, e))? => read_json(path, max_record_bytes, &mut each),
        _ => read_jsonl(reader, path, max_record_bytes, each),
    }
}

/// Drops a UTF-8 byte-order mark, which editors on Windows put at the start of text files.
fn skip_bom(reader: &mut impl BufRead) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    Ok(())
}

fn starts_with_bracket(reader: &mut impl BufRead) -> std::io::Result<bool> {
    Ok(reader.fill_buf()?.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'['))
}

/// One line of a JSON-lines file, or how long it was when over the limit.
enum Line {
    Text(Vec<u8>),
    TooLong(usize),
}

/// Reads up to and including the next `\n`, keeping at most `limit` bytes. `None` at the end.
fn read_line_bounded(reader: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Line>> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            let line = if total > limit { Line::TooLong(total) } else { Line::Text(kept) };
            return Ok((total > 0).then_some(line));
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        total += chunk.len();
        if total <= limit {
            kept.extend_from_slice(chunk);
        } else {
            kept = Vec::new();
        }
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(if total > limit { Line::TooLong(total) } else { Line::Text(kept) }));
        }
    }
}

fn too_long(bytes: usize, limit: usize) -> String {
    format!("record of {} is over the per-record limit of {} (see max_seq_len)", human_bytes(bytes), human_bytes(limit))
}

fn human_bytes(bytes: usize) -> String {
    if bytes >= 1 << 20 { format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64) } else { format!("{} KiB", bytes.div_ceil(1024)) }
}

fn read_jsonl(mut reader: impl BufRead, path: &Path, limit: usize, mut each: impl FnMut(RecordItem) -> Result<()>) -> Result<()> {
    let mut line_no = 0;
    while let Some(line) = read_line_bounded(&mut reader, limit).map_err(|e| Error::io(path, e))? {
        line_no += 1;
        let problem = |message: String| Err(RecordProblem { line: line_no, message });
        let item = match line {
            Line::TooLong(bytes) => problem(too_long(bytes, limit)),
            Line::Text(bytes) => match String::from_utf8(bytes) {
                Err(e) => problem(format!("invalid UTF-8 at byte {} of the line", e.utf8_error().valid_up_to() + 1)),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(fields)) => Ok(SourceRecord { line: line_no, fields }),
                    Ok(other) => problem(format!("expected a JSON object, found {}", kind(&other))),
                    Err(e) => problem(format!("invalid JSON: {e}")),
                },
            },
        };
        each(item)?;
    }
    Ok(())
}

/// A JSON array of objects, or an object holding one (`{"data": [...]}` or `{"train": [...]}`),
/// deserialized one element at a time from the memory-mapped file.
fn read_json(path: &Path, limit: usize, each: &mut dyn FnMut(RecordItem) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and lives only for this call; a file truncated while we read
    // it is the one way this can fault, as with every memory-mapped reader.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let bytes = map.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&map);
    let starts = element_starts(bytes);
    let mut elements = Elements { starts: &starts, index: 0, limit, each, stopped: None };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::Deserializer::deserialize_any(&mut deserializer, &mut elements).and_then(|()| deserializer.end());
    if let Some(stop) = elements.stopped {
        return Err(stop);
    }
    parsed.map_err(|e| {
        if e.line() == 0 {
            Error::invalid_file(path, e.to_string())
        } else {
            Error::InvalidRecord { path: path.to_path_buf(), line: e.line(), message: format!("invalid JSON: {e}") }
        }
    })
}

/// Hands each element of the records array to `each`, with its line and size from `starts`.
struct Elements<'a> {
    /// (line, byte offset) where each element starts, and the array's end as the last entry.
    starts: &'a [(usize, usize)],
    index: usize,
    limit: usize,
    each: &'a mut dyn FnMut(RecordItem) -> Result<()>,
    /// The error `each` stopped the reading with.
    stopped: Option<Error>,
}

impl<'de> Visitor<'de> for &mut Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of records (or an object with a `data` array)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            let (line, start) = self.starts.get(self.index).copied().unwrap_or((0, 0));
            let end = self.starts.get(self.index + 1).map_or(start, |s| s.1);
            self.index += 1;
            let item = match value {
                _ if end.saturating_sub(start) > self.limit => Err(RecordProblem { line, message: too_long(end - start, self.limit) }),
                Value::Object(fields) => Ok(SourceRecord { line, fields }),
                other => Err(RecordProblem { line, message: format!("expected a JSON object, found {}", kind(&other)) }),
            };
            if let Err(e) = (self.each)(item) {
                self.stopped = Some(e);
                return Err(A::Error::custom("stopped"));
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if !found && RECORDS_KEYS.contains(&key.as_str()) {
                map.next_value_seed(&mut *self)?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !found {
            return Err(A::Error::custom("expected a JSON array of records (or an object with a `data` array)"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for &mut Elements<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

/// The line and byte offset at which each element of the records array starts, with the
/// array's closing bracket last: the top-level array, or the first one under one of
/// [`RECORDS_KEYS`] in a top-level object.
fn element_starts(bytes: &[u8]) -> Vec<(usize, usize)> {
    let records_depth = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => 2,
        _ => 1,
    };
    let mut starts = Vec::new();
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped, mut expecting, mut inside) = (false, false, false, false);
    // The last string that started at depth 1 (in a top-level object: the last key).
    let (mut string_start, mut last_key): (usize, &[u8]) = (0, b"");
    for (offset, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    in_string = false;
                    if depth == 1 {
                        last_key = &bytes[string_start..offset];
                    }
                }
                _ => {}
            }
            continue;
        }
        if expecting && !b.is_ascii_whitespace() && b != b']' {
            starts.push((line, offset));
            expecting = false;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = offset + 1;
            }
            b'[' | b'{' => {
                depth += 1;
                let records_key = records_depth == 1 || RECORDS_KEYS.iter().any(|k| k.as_bytes() == last_key);
                if b == b'[' && depth == records_depth && records_key && !inside && starts.is_empty() {
                    expecting = true;
                    inside = true;
                }
            }
            b']' | b'}' => {
                if inside && depth == records_depth && b == b']' {
                    starts.push((line, offset));
                    return starts;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if inside && depth == records_depth => expecting = true,
            _ => {}
        }
    }
    starts
}

fn read_csv(reader: impl Read, path: &Path, limit: usize, mut each: impl FnMut(RecordItem) -> Result<()>) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
    let headers = reader.headers().map_err(|e| Error::invalid_file(path, format!("cannot read the CSV header: {e}")))?.clone();
    let mut previous_end = reader.position().byte() as usize;
    for result in reader.records() {
        let item = match result {
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line() as usize);
                let start = row.position().map_or(previous_end, |p| p.byte() as usize);
                let bytes = row.as_byte_record().as_slice().len();
                previous_end = start + bytes;
                if bytes > limit {
                    Err(RecordProblem { line, message: too_long(bytes, limit) })
                } else {
                    let fields = headers.iter().zip(row.iter()).map(|(h, v)| (h.to_string(), Value::String(v.to_string()))).collect();
                    Ok(SourceRecord { line, fields })
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                let message = match e.kind() {
                    csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
                    _ => format!("invalid CSV row: {e}"),
                };
                Err(RecordProblem { line, message })
            }
        };
        each(item)?;
    }
    Ok(())
}

/// A Parquet file (a Hugging Face dataset's storage), row by row: each row a JSON object of its
/// columns (lists and structs as JSON arrays and objects), numbered from 1.
fn read_parquet(path: &Path, limit: usize, mut each: impl FnMut(RecordItem) -> Result<()>) -> Result<()> {
    use parquet::file::reader::SerializedFileReader;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // The parquet crate panics on some damaged files: a panic while it reads is the file's fault.
    let damaged = |e: String| format!("the file is damaged (the Parquet reader gave up: {e})");
    let reader = crate::third_party::catch_panic(|| SerializedFileReader::new(file))
        .map_err(damaged)
        .and_then(|reader| reader.map_err(|e| e.to_string()))
        .map_err(|e| Error::invalid_file(path, format!("not a readable Parquet file: {e}")))?;
    let mut rows = reader.into_iter();
    for line in 1.. {
        let unreadable = |message: String| Error::InvalidRecord {
            path: path.to_path_buf(),
            line,
            message: format!("unreadable Parquet row: {message}"),
        };
        let row = match crate::third_party::catch_panic(|| rows.next().map(|row| row.map(|r| r.to_json_value()))) {
            Err(e) => return Err(unreadable(damaged(e))),
            Ok(None) => break,
            Ok(Some(row)) => row.map_err(|e| unreadable(e.to_string()))?,
        };
        let item = match row {
            Value::Object(fields) => {
                let bytes = fields.values().map(|v| v.as_str().map_or(0, str::len)).sum::<usize>();
                if bytes > limit { Err(RecordProblem { line, message: too_long(bytes, limit) }) } else { Ok(SourceRecord { line, fields }) }
            }
            other => Err(RecordProblem { line, message: format!("expected a row of columns, found {}", kind(&other)) }),
        };
        each(item)?;
    }
    Ok(())
}

/// What a JSON value is, for messages ("a number", "an array").
pub(crate) fn kind(v: &Value) -> &'static str {
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

    const LIMIT: usize = 1 << 20;

    fn read_all(path: &Path, max_record_bytes: usize) -> Result<Vec<RecordItem>> {
        let mut items = Vec::new();
        for_each_record(path, max_record_bytes, |item| {
            items.push(item);
            Ok(())
        })?;
        Ok(items)
    }

    fn read(name: &str, text: &[u8]) -> (Vec<usize>, Vec<RecordProblem>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        read_limited(&path, LIMIT)
    }

    fn read_limited(path: &Path, limit: usize) -> (Vec<usize>, Vec<RecordProblem>) {
        let (mut lines, mut problems) = (Vec::new(), Vec::new());
        for item in read_all(path, limit).unwrap() {
            match item {
                Ok(r) => lines.push(r.line),
                Err(p) => problems.push(p),
            }
        }
        (lines, problems)
    }

    #[test]
    fn jsonl_reports_bad_lines_by_number() {
        let (lines, problems) = read("d.jsonl", b"{\"text\": \"a\"}\n\n{oops\n[1]\n{\"text\": \"b\"}\n");
        assert_eq!(lines, vec![1, 5]);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, 3);
        assert!(problems[0].message.contains("invalid JSON"));
        assert_eq!(problems[1].line, 4);
        assert!(problems[1].message.contains("an array"));
    }

    #[test]
    fn a_bom_is_skipped_and_invalid_utf8_costs_one_line() {
        let (lines, problems) = read("d.jsonl", b"\xEF\xBB\xBF{\"text\": \"a\"}\n{\"text\": \"\xFF\"}\n{\"text\": \"c\"}");
        assert_eq!(lines, vec![1, 3]);
        assert_eq!(problems, vec![RecordProblem { line: 2, message: "invalid UTF-8 at byte 11 of the line".into() }]);
        let (lines, _) = read("d.csv", b"\xEF\xBB\xBFtext\na\n");
        assert_eq!(lines, vec![2]);
        let (lines, _) = read("d.json", b"\xEF\xBB\xBF[{\"text\": \"a\"}]");
        assert_eq!(lines, vec![1]);
    }

    #[test]
    fn a_record_over_the_limit_is_reported_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let long = format!("{{\"text\": \"{}\"}}", "x".repeat(5000));
        std::fs::write(&path, format!("{{\"text\": \"a\"}}\n{long}\n{{\"text\": \"b\"}}\n")).unwrap();
        let (lines, problems) = read_limited(&path, 4096);
        assert_eq!(lines, vec![1, 3]);
        assert_eq!(problems[0].line, 2);
        assert!(problems[0].message.contains("over the per-record limit of 4 KiB"), "{}", problems[0].message);
        let path = dir.path().join("d.json");
        std::fs::write(&path, format!("[{{\"text\": \"a\"}},\n{long}]")).unwrap();
        let (lines, problems) = read_limited(&path, 4096);
        assert_eq!((lines, problems[0].line), (vec![1], 2));
    }

    #[test]
    fn json_array_records_know_their_lines() {
        let (lines, problems) = read("x.json", b"[\n  {\"text\": \"a, [b]\"},\n  {\n    \"text\": \"c\"\n  },\n  3\n]");
        assert_eq!(lines, vec![2, 3]);
        assert_eq!(problems[0].line, 6);
    }

    #[test]
    fn json_object_with_data_array() {
        let (lines, _) = read("x.json", b"{\"tags\": [\"x\"],\n\"data\": [\n{\"text\": \"a\"},\n{\"text\": \"b\"}]}");
        assert_eq!(lines, vec![3, 4]);
    }

    #[test]
    fn csv_rows_become_string_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "prompt,completion\n\"a, b\",c\nd,e,f\n").unwrap();
        let items = read_all(&path, LIMIT).unwrap();
        let record = items[0].as_ref().unwrap();
        assert_eq!(record.fields["prompt"], Value::String("a, b".into()));
        assert_eq!(record.line, 2);
        assert_eq!(items[1].as_ref().unwrap_err().line, 3);
    }
}
