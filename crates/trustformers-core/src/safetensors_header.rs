//! A strict reader for the safetensors header.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of UTF-8 JSON mapping tensor
//! names to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` object of strings),
//! then the data. The reader refuses anything the format does not allow or that a loader could
//! be tricked by: a header larger than the file or than [`MAX_HEADER_BYTES`], duplicate names,
//! unknown dtypes, shapes whose byte size overflows or disagrees with the offsets, and data
//! ranges that overlap, leave gaps, alias each other, or run past (or stop short of) the end of
//! the file. Allocation is bounded by the header size: tensors are counted while the JSON is
//! read, and the read stops at [`MAX_TENSORS`].

use crate::error::SafetensorsError;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Largest header accepted (the limit of the reference implementation).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Most tensors one file may hold. Real checkpoints hold a few thousand per shard.
pub const MAX_TENSORS: usize = 1 << 16;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 8;

/// The element types of the safetensors format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum Dtype {
    BOOL,
    U8,
    I8,
    F8_E5M2,
    F8_E4M3,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

impl Dtype {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "BOOL" => Self::BOOL,
            "U8" => Self::U8,
            "I8" => Self::I8,
            "F8_E5M2" => Self::F8_E5M2,
            "F8_E4M3" => Self::F8_E4M3,
            "I16" => Self::I16,
            "U16" => Self::U16,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "I32" => Self::I32,
            "U32" => Self::U32,
            "F32" => Self::F32,
            "F64" => Self::F64,
            "I64" => Self::I64,
            "U64" => Self::U64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::BOOL | Self::U8 | Self::I8 | Self::F8_E5M2 | Self::F8_E4M3 => 1,
            Self::I16 | Self::U16 | Self::F16 | Self::BF16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 | Self::I64 | Self::U64 => 8,
        }
    }
}

/// One tensor of the header, its data range made absolute (from the start of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub start: usize,
    pub end: usize,
}

/// A validated header.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Where the data section starts (8 + header length).
    pub data_start: usize,
    /// Tensors in data order.
    pub tensors: Vec<TensorEntry>,
    /// The `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
}

/// Parses and validates the header of a safetensors file held in `buf` (the whole file).
pub fn parse(buf: &[u8]) -> Result<Header, SafetensorsError> {
    let len_bytes: [u8; 8] = buf
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(SafetensorsError::TooShort { len: buf.len() })?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len < 2 {
        return Err(SafetensorsError::HeaderTooSmall { header_len });
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(SafetensorsError::HeaderTooLarge { header_len });
    }
    let file_len = buf.len() as u64;
    if 8 + header_len > file_len {
        return Err(SafetensorsError::HeaderPastEnd {
            header_len,
            file_len,
        });
    }
    let data_start = 8 + header_len as usize;
    let raw = RawHeader::parse(&buf[8..data_start])?;

    let mut tensors = Vec::with_capacity(raw.tensors.len());
    for t in raw.tensors {
        let elems = t
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let nbytes = elems.and_then(|n| n.checked_mul(t.dtype.size()));
        let Some(nbytes) = nbytes else {
            return Err(SafetensorsError::ShapeOverflow { tensor: t.name });
        };
        let (begin, end) = t.offsets;
        if begin > end {
            return Err(SafetensorsError::EndBeforeBegin {
                tensor: t.name,
                begin,
                end,
            });
        }
        if end - begin != nbytes as u64 {
            return Err(SafetensorsError::SizeMismatch {
                tensor: t.name,
                bytes: end - begin,
                expected: nbytes as u64,
            });
        }
        let data_len = file_len - data_start as u64;
        if end > data_len {
            return Err(SafetensorsError::TensorPastEnd {
                tensor: t.name,
                end,
                data_len,
            });
        }
        tensors.push(TensorEntry {
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
            start: data_start + begin as usize,
            end: data_start + end as usize,
        });
    }

    // The data section is the tensors back to back, in some order, with nothing else in it.
    tensors.sort_by_key(|t| (t.start, t.end));
    let mut cursor = data_start;
    for t in &tensors {
        if t.start != cursor {
            return Err(SafetensorsError::NotContiguous {
                tensor: t.name.clone(),
                offset: (t.start - data_start) as u64,
                expected: (cursor - data_start) as u64,
            });
        }
        cursor = t.end;
    }
    if cursor != buf.len() {
        return Err(SafetensorsError::TrailingBytes {
            bytes: (buf.len() - cursor) as u64,
        });
    }
    Ok(Header {
        data_start,
        tensors,
        metadata: raw.metadata,
    })
}

struct RawTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    offsets: (u64, u64),
}

#[derive(Default)]
struct RawHeader {
    tensors: Vec<RawTensor>,
    metadata: BTreeMap<String, String>,
}

impl RawHeader {
    /// Parses the header bytes. UTF-8 is checked as strings are read, so a hostile header
    /// is refused without scanning all of it first.
    fn parse(bytes: &[u8]) -> Result<Self, SafetensorsError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let mut problem = None;
        let seed = HeaderSeed {
            problem: &mut problem,
        };
        let parsed = seed.deserialize(&mut de).and_then(|h| de.end().map(|()| h));
        match (parsed, problem) {
            (_, Some(problem)) => Err(problem),
            (Ok(header), None) => Ok(header),
            // A successful parse has read every byte as UTF-8; a failed one may be why.
            (Err(_), None) if std::str::from_utf8(bytes).is_err() => {
                Err(SafetensorsError::HeaderNotUtf8)
            }
            (Err(e), None) => Err(SafetensorsError::InvalidJson(e.to_string())),
        }
    }
}

/// Deserializes the header map while counting tensors and checking names, so a hostile
/// header fails at the first bad entry. A typed problem found on the way is stored in
/// `problem` (serde errors can only carry strings).
struct HeaderSeed<'p> {
    problem: &'p mut Option<SafetensorsError>,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = RawHeader;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawHeader, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of tensors")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut header = RawHeader::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut fail = |p: SafetensorsError| -> A::Error {
            let msg = p.to_string();
            *self.problem = Some(p);
            de::Error::custom(msg)
        };
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name.clone()) {
                return Err(fail(SafetensorsError::DuplicateKey(name)));
            }
            if name == "__metadata__" {
                let value: serde_json::Value = map.next_value()?;
                header.metadata = match metadata_strings(value) {
                    Some(m) => m,
                    None => return Err(fail(SafetensorsError::BadMetadata)),
                };
                continue;
            }
            if header.tensors.len() == MAX_TENSORS {
                return Err(fail(SafetensorsError::TooManyTensors { max: MAX_TENSORS }));
            }
            let info: RawInfo = map.next_value()?;
            let dtype = match Dtype::from_name(&info.dtype) {
                Some(d) => d,
                None => {
                    return Err(fail(SafetensorsError::UnknownDtype {
                        tensor: name,
                        dtype: info.dtype,
                    }))
                }
            };
            if info.shape.len() > MAX_DIMS {
                return Err(fail(SafetensorsError::TooManyDims {
                    tensor: name,
                    dims: info.shape.len(),
                }));
            }
            let Ok(shape) = info
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<_>, _>>()
            else {
                return Err(fail(SafetensorsError::ShapeOverflow { tensor: name }));
            };
            header.tensors.push(RawTensor {
                name,
                dtype,
                shape,
                offsets: (info.data_offsets[0], info.data_offsets[1]),
            });
        }
        Ok(header)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawHeader, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

fn metadata_strings(value: serde_json::Value) -> Option<BTreeMap<String, String>> {
    match value {
        serde_json::Value::Null => Some(BTreeMap::new()),
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn reads_a_valid_file() {
        let h = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}  "#;
        let parsed = parse(&file(h, &[0; 12])).unwrap();
        assert_eq!(parsed.tensors[0].name, "a");
        assert_eq!(parsed.tensors[0].shape, vec![2, 2]);
        assert_eq!(parsed.tensors[1].start, parsed.data_start + 8);
        assert_eq!(parsed.metadata["format"], "pt");
    }

    #[test]
    fn empty_tensors_may_share_an_offset() {
        let h = r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
        assert_eq!(parse(&file(h, &[0; 2])).unwrap().tensors.len(), 3);
    }

    #[test]
    fn duplicates_and_gaps_are_refused() {
        let dup = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
        assert!(matches!(
            parse(&file(dup, &[0; 2])),
            Err(SafetensorsError::DuplicateKey(_))
        ));
        let gap = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
        assert!(matches!(
            parse(&file(gap, &[0; 2])),
            Err(SafetensorsError::NotContiguous { .. })
        ));
    }
}
