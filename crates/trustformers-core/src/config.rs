//! Reading config.json-style files with errors that name the file and the field.

use crate::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Largest file read as JSON; configs and indexes are kilobytes, tokenizers megabytes.
const MAX_JSON_BYTES: u64 = 256 << 20;

/// Reads a text file (JSON, template, vocabulary) of at most 256 MiB.
pub fn read_small_file(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_JSON_BYTES {
        return Err(Error::Json {
            path: path.to_path_buf(),
            reason: format!("file is {len} bytes, more than the {MAX_JSON_BYTES} allowed"),
        });
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Reads `path` as UTF-8 JSON.
pub fn read_json(path: &Path) -> Result<Value> {
    json_from_bytes(path, &read_small_file(path)?)
}

/// A JSON config file's bytes (read from `path`, or handed over in memory under that name),
/// parsed as [`parse_json`] does.
pub fn json_from_bytes(path: &Path, bytes: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: format!("not valid UTF-8: {e}"),
    })?;
    parse_json(text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
}

/// JSON text as config files are written: Python's `json` writes infinities and NaN bare
/// (`"time_step_limit": [0.0, Infinity]` in Mamba-2's configs), read as the strings
/// "Infinity", "-Infinity" and "NaN", which [`json_f64`] reads back as numbers.
pub fn parse_json(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str(text).or_else(|e| match quote_python_constants(text) {
        Some(quoted) => serde_json::from_str(&quoted).map_err(|_| e),
        None => Err(e),
    })
}

/// `text` with Python's bare `Infinity`, `-Infinity` and `NaN` (outside strings) quoted;
/// `None` when it has none.
fn quote_python_constants(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if in_string {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if ch == '"' {
            in_string = true;
        } else if let Some(word) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|w| rest.starts_with(w))
        {
            out.push('"');
            out.push_str(word);
            out.push('"');
            rest = &rest[word.len()..];
            changed = true;
            continue;
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    changed.then_some(out)
}

/// A JSON number, or a non-finite float as configs write them: transformers 5's
/// `{"__float__": "Infinity"}` (also `-Infinity`, `NaN`), or the strings [`read_json`] makes
/// of Python's bare `Infinity`, `-Infinity` and `NaN` (transformers 4).
pub fn json_f64(v: &Value) -> Option<f64> {
    let special = |s: &str| match s {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => None,
    };
    match v {
        Value::String(s) => special(s),
        Value::Object(o) if o.len() == 1 => {
            o.get("__float__").and_then(Value::as_str).and_then(special)
        }
        _ => v.as_f64(),
    }
}

/// Typed access to a JSON object's fields, each error naming the field.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    obj: &'a serde_json::Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    /// Wraps a JSON value that must be an object; `prefix` is prepended to field names in
    /// error messages (e.g. `rope_scaling.`).
    pub fn new(value: &'a Value, prefix: &'a str) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::config(prefix.trim_end_matches('.'), "must be a JSON object"))?;
        Ok(Self { obj, prefix })
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    /// The raw value of `field`, `None` when absent or null.
    pub fn raw(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    /// A required positive integer no larger than `max`.
    pub fn usize(&self, field: &str, max: usize) -> Result<usize> {
        self.opt_usize(field, max)?
            .ok_or_else(|| Error::config(self.name(field), "is required"))
    }

    /// An optional positive integer no larger than `max`.
    pub fn opt_usize(&self, field: &str, max: usize) -> Result<Option<usize>> {
        let Some(v) = self.raw(field) else {
            return Ok(None);
        };
        let n = v.as_u64().ok_or_else(|| {
            Error::config(
                self.name(field),
                format!("must be a positive integer, got {v}"),
            )
        })?;
        if n == 0 || n > max as u64 {
            return Err(Error::config(
                self.name(field),
                format!("must be between 1 and {max}, got {n}"),
            ));
        }
        Ok(Some(n as usize))
    }

    /// An optional count, 0 allowed, no larger than `max`.
    pub fn opt_count(&self, field: &str, max: usize) -> Result<Option<usize>> {
        let Some(v) = self.raw(field) else {
            return Ok(None);
        };
        match v.as_u64() {
            Some(n) if n <= max as u64 => Ok(Some(n as usize)),
            _ => Err(Error::config(
                self.name(field),
                format!("must be an integer between 0 and {max}, got {v}"),
            )),
        }
    }

    /// Whether `field` is present and explicitly null (`"q_lora_rank": null`), as opposed
    /// to absent (which means the default).
    pub fn is_null(&self, field: &str) -> bool {
        self.obj.get(field).is_some_and(Value::is_null)
    }

    /// An optional finite float in `range`.
    pub fn opt_f64(
        &self,
        field: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Option<f64>> {
        let Some(v) = self.raw(field) else {
            return Ok(None);
        };
        let x = v
            .as_f64()
            .ok_or_else(|| Error::config(self.name(field), format!("must be a number, got {v}")))?;
        if !x.is_finite() || !range.contains(&x) {
            return Err(Error::config(
                self.name(field),
                format!("must be a finite number in {range:?}, got {x}"),
            ));
        }
        Ok(Some(x))
    }

    /// An optional bool.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        self.raw(field)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    Error::config(self.name(field), format!("must be true or false, got {v}"))
                })
            })
            .transpose()
    }

    /// An optional string.
    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>> {
        self.raw(field)
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    Error::config(self.name(field), format!("must be a string, got {v}"))
                })
            })
            .transpose()
    }
}

/// What a model path points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A directory with config.json / tokenizer files / weights.
    Dir,
    /// A single `.gguf` file.
    Gguf,
}

/// Classifies `path`, or fails with an error naming it.
pub fn checkpoint_kind(path: &Path) -> Result<CheckpointKind> {
    if path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        Ok(CheckpointKind::Gguf)
    } else if path.is_dir() {
        Ok(CheckpointKind::Dir)
    } else {
        Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "expected a checkpoint directory or a .gguf file",
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn python_constants_are_read_outside_strings_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let text = r#"{"limit": [0.0, Infinity, -Infinity, NaN], "name": "Infinity \" NaN"}"#;
        std::fs::write(&path, text).unwrap();
        let v = read_json(&path).unwrap();
        let limit: Vec<f64> = v["limit"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| json_f64(x).unwrap())
            .collect();
        assert_eq!(limit[..3], [0.0, f64::INFINITY, f64::NEG_INFINITY]);
        assert!(limit[3].is_nan());
        assert_eq!(v["name"], "Infinity \" NaN");
        // transformers 5 writes them as objects.
        let tagged: Value = serde_json::from_str(r#"{"__float__": "-Infinity"}"#).unwrap();
        assert_eq!(json_f64(&tagged), Some(f64::NEG_INFINITY));
        let other: Value = serde_json::from_str(r#"{"__float__": "big"}"#).unwrap();
        assert_eq!(json_f64(&other), None);
        // Still an error when something else is wrong, named as serde_json says.
        std::fs::write(&path, r#"{"limit": [Infinity,]}"#).unwrap();
        assert!(read_json(&path).is_err());
        std::fs::write(&path, r#"{"a": Infinit}"#).unwrap();
        assert!(read_json(&path).is_err());
    }
}
