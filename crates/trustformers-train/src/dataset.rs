//! Training data from files as Hugging Face `datasets` reads them: JSON Lines (one object
//! per line), CSV (a header row, then one row per example), plain text (one example per
//! line, in the column `text`, empty lines included) and Parquet (what `datasets` saves and
//! the Hub serves: one row per example, lists and structs as JSON arrays and objects).
//! Every error names the file, and the line (and column) or row where it can.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use trustformers_core::{Error, Result};

/// Rows of named values, and the file they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub path: PathBuf,
    pub rows: Vec<Map<String, Value>>,
}

fn utf8(path: &Path, bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })
}

fn error(path: &Path, reason: String) -> Error {
    Error::Json {
        path: path.to_path_buf(),
        reason,
    }
}

impl Dataset {
    /// By the file's extension: `.jsonl`/`.json` (JSON Lines), `.csv`, `.txt`, `.parquet`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, bytes)
    }

    /// The contents of the file `path` names (its extension says the format).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => Self::parse_parquet(path, bytes),
            _ => Self::parse(path, &utf8(path, &bytes)?),
        }
    }

    /// `text` read as the file `path` names (its extension says the format).
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "json") => Self::parse_jsonl(path, text),
            Some("csv") => Self::parse_csv(path, text),
            Some("txt") => Self::parse_text(path, text),
            _ => Err(error(
                path,
                "unknown data format: use a .jsonl, .json (JSON Lines), .csv, .txt or .parquet \
                 file"
                    .into(),
            )),
        }
    }

    /// One JSON object per line; blank lines are skipped.
    fn parse_jsonl(path: &Path, text: &str) -> Result<Self> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|e| error(path, format!("line {}, column {}: {e}", i + 1, e.column())))?;
            match value {
                Value::Object(row) => rows.push(row),
                other => {
                    return Err(error(
                        path,
                        format!("line {}: expected a JSON object, found {other}", i + 1),
                    ))
                }
            }
        }
        Self::new(path, rows)
    }

    /// A header row, then one row per example; every value a string, as `datasets` reads a
    /// CSV file before casting.
    fn parse_csv(path: &Path, text: &str) -> Result<Self> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| error(path, format!("the header row: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                error(path, format!("line {line}: {e}"))
            })?;
            rows.push(
                header
                    .iter()
                    .zip(record.iter())
                    .map(|(k, v)| (k.clone(), Value::String(v.to_owned())))
                    .collect(),
            );
        }
        Self::new(path, rows)
    }

    /// One example per row of a Parquet file, each column's value as JSON (strings, numbers,
    /// lists, structs as objects). The reader runs isolated: a malformed file it would panic
    /// on is an error here, not a crash.
    fn parse_parquet(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let read = move || -> std::result::Result<Vec<Map<String, Value>>, String> {
            let reader =
                SerializedFileReader::new(bytes::Bytes::from(bytes)).map_err(|e| e.to_string())?;
            let declared = reader.metadata().file_metadata().num_rows();
            let mut rows = Vec::with_capacity(usize::try_from(declared).unwrap_or(0).min(1 << 16));
            for (i, row) in reader
                .get_row_iter(None)
                .map_err(|e| e.to_string())?
                .enumerate()
            {
                let row = row.map_err(|e| format!("row {}: {e}", i + 1))?;
                match row.to_json_value() {
                    Value::Object(map) => rows.push(map),
                    other => return Err(format!("row {}: {other} is not a record", i + 1)),
                }
            }
            Ok(rows)
        };
        let rows = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
            .map_err(|_| error(path, "malformed Parquet file (the reader gave up)".into()))?
            .map_err(|e| error(path, format!("Parquet: {e}")))?;
        Self::new(path, rows)
    }

    /// One example per line, in the column `text` (empty lines too, as `datasets` keeps
    /// them).
    fn parse_text(path: &Path, text: &str) -> Result<Self> {
        let rows = text
            .lines()
            .map(|l| Map::from_iter([("text".to_owned(), Value::String(l.to_owned()))]))
            .collect();
        Self::new(path, rows)
    }

    fn new(path: &Path, rows: Vec<Map<String, Value>>) -> Result<Self> {
        if rows.is_empty() {
            return Err(error(path, "the file holds no examples".into()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none (never, for a dataset read from a file).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn get(&self, row: usize, column: &str) -> Result<&Value> {
        let r = self.rows.get(row).ok_or_else(|| {
            error(
                &self.path,
                format!("no example {row} (of {})", self.rows.len()),
            )
        })?;
        r.get(column).ok_or_else(|| {
            let known: Vec<&str> = r.keys().map(String::as_str).collect();
            error(
                &self.path,
                format!(
                    "example {}: no column `{column}` (it has {})",
                    row + 1,
                    known.join(", ")
                ),
            )
        })
    }

    /// Column `column` as text, for every example.
    pub fn texts(&self, column: &str) -> Result<Vec<String>> {
        (0..self.rows.len())
            .map(|i| match self.get(i, column)? {
                Value::String(s) => Ok(s.clone()),
                other => Err(error(
                    &self.path,
                    format!("example {}: `{column}` is {other}, not a string", i + 1),
                )),
            })
            .collect()
    }

    /// Column `column` as class indices below `num_labels`: integers, or strings naming
    /// `label_names` (a CSV file's labels are strings).
    pub fn class_labels(
        &self,
        column: &str,
        num_labels: usize,
        label_names: &[String],
    ) -> Result<Vec<i64>> {
        (0..self.rows.len())
            .map(|i| {
                let v = self.get(i, column)?;
                label_index(v, num_labels, label_names).ok_or_else(|| {
                    self.bad_label(i, &format!("label {v}"), num_labels, label_names)
                })
            })
            .collect()
    }

    fn bad_label(&self, row: usize, what: &str, num_labels: usize, names: &[String]) -> Error {
        error(
            &self.path,
            format!(
                "example {}: {what} is not one of the {num_labels} classes{}",
                row + 1,
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                }
            ),
        )
    }

    /// Column `column` as a list per example (`tokens`, `ner_tags`).
    fn lists(&self, column: &str) -> Result<Vec<&Vec<Value>>> {
        (0..self.rows.len())
            .map(|i| match self.get(i, column)? {
                Value::Array(a) => Ok(a),
                other => Err(error(
                    &self.path,
                    format!("example {}: `{column}` is {other}, not a list", i + 1),
                )),
            })
            .collect()
    }

    /// Column `column` as a list of words per example (token classification's `tokens`).
    pub fn word_lists(&self, column: &str) -> Result<Vec<Vec<String>>> {
        self.lists(column)?
            .into_iter()
            .enumerate()
            .map(|(i, words)| {
                words
                    .iter()
                    .map(|w| match w {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(error(
                            &self.path,
                            format!("example {}: `{column}` holds {other}, not a word", i + 1),
                        )),
                    })
                    .collect()
            })
            .collect()
    }

    /// Column `column` as one class index per word (`ner_tags`): integers below
    /// `num_labels`, or names from `label_names`.
    pub fn word_labels(
        &self,
        column: &str,
        num_labels: usize,
        label_names: &[String],
    ) -> Result<Vec<Vec<i64>>> {
        self.lists(column)?
            .into_iter()
            .enumerate()
            .map(|(i, tags)| {
                tags.iter()
                    .map(|v| {
                        label_index(v, num_labels, label_names).ok_or_else(|| {
                            self.bad_label(
                                i,
                                &format!("`{column}` value {v}"),
                                num_labels,
                                label_names,
                            )
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// The distinct labels of a list column when they are names, sorted
    /// (`run_ner.py`'s `get_label_list`); `None` when they are integers.
    pub fn word_label_names(&self, column: &str) -> Result<Option<Vec<String>>> {
        let mut names = std::collections::BTreeSet::new();
        for tags in self.lists(column)? {
            for v in tags {
                match v {
                    Value::String(s) => {
                        names.insert(s.clone());
                    }
                    _ => return Ok(None),
                }
            }
        }
        Ok((!names.is_empty()).then(|| names.into_iter().collect()))
    }

    /// SQuAD's `answers` column: `{"text": [...], "answer_start": [...]}` per example, as
    /// (character offset of the answer in the context, answer text) pairs; none for an
    /// unanswerable question (SQuAD v2).
    pub fn answers(&self, column: &str) -> Result<Vec<Vec<(usize, String)>>> {
        (0..self.rows.len())
            .map(|i| {
                let bad =
                    |why: &str| error(&self.path, format!("example {}: `{column}` {why}", i + 1));
                let v = self.get(i, column)?;
                let texts = v
                    .get("text")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("has no `text` list"))?;
                let starts = v
                    .get("answer_start")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("has no `answer_start` list"))?;
                if texts.len() != starts.len() {
                    return Err(bad("has as many `text` as `answer_start` entries"));
                }
                texts
                    .iter()
                    .zip(starts)
                    .map(|(t, s)| {
                        let text = t
                            .as_str()
                            .ok_or_else(|| bad("has a `text` that is not a string"))?;
                        let start = s.as_u64().ok_or_else(|| {
                            bad("has an `answer_start` that is not a character offset")
                        })?;
                        Ok((start as usize, text.to_owned()))
                    })
                    .collect()
            })
            .collect()
    }
}

/// A class index below `num_labels` from an integer, a string holding one, or a name in
/// `names`.
fn label_index(v: &Value, num_labels: usize, names: &[String]) -> Option<i64> {
    let index = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| names.iter().position(|l| l == s).map(|p| p as i64)),
        _ => None,
    };
    index.filter(|l| (0..num_labels as i64).contains(l))
}
