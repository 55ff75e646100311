//! The parser: every count, length and offset is checked against the bytes that remain
//! before anything is allocated.

use super::{GgufDType, GgufTensorInfo, GgufValue, DEFAULT_ALIGNMENT};
use crate::GgufError;
use std::collections::{BTreeMap, HashMap};

const MAGIC: u32 = u32::from_le_bytes(*b"GGUF");
const MAX_ALIGNMENT: u64 = 1 << 16;
const MAX_DIMS: u32 = 4;
const MAX_ARRAY_DEPTH: usize = 4;

/// Everything before the tensor data, validated against the file it came from.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos in file order, with byte ranges checked against the file.
    pub tensors: Vec<GgufTensorInfo>,
}

/// A cursor over the file bytes that never reads past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(GgufError::Truncated {
                what: what.to_string(),
                offset: self.buf.len() as u64,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], GgufError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads a count of items that each take at least `min_item_size` bytes, refusing counts
    /// the rest of the file cannot hold.
    fn count(&mut self, min_item_size: usize, what: &str) -> std::result::Result<usize, GgufError> {
        let count = self.u64(what)?;
        let fits = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(min_item_size))
            .is_some_and(|bytes| bytes <= self.remaining());
        if !fits {
            return Err(GgufError::CountTooLarge {
                what: what.to_string(),
                count,
            });
        }
        Ok(count as usize)
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, GgufError> {
        let len = self.count(1, what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            what: what.to_string(),
        })
    }

    /// A value of metadata `key`; `what` names it in errors (made once per key: a
    /// vocabulary array holds hundreds of thousands of values).
    fn value(
        &mut self,
        value_type: u32,
        key: &str,
        what: &str,
        depth: usize,
    ) -> std::result::Result<GgufValue, GgufError> {
        Ok(match value_type {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(what)?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    return Err(GgufError::BadMetadata {
                        key: key.to_string(),
                        reason: format!("bool byte {b} is neither 0 nor 1"),
                    })
                }
            },
            8 => GgufValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestingTooDeep {
                        key: key.to_string(),
                        max_depth: MAX_ARRAY_DEPTH,
                    });
                }
                let item_type = self.u32(what)?;
                let min_size = min_value_size(item_type).ok_or(GgufError::UnknownValueType {
                    key: key.to_string(),
                    value_type: item_type,
                })?;
                let len = self.count(min_size, what)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(item_type, key, what, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(u64::from_le_bytes(self.array(what)?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(GgufError::UnknownValueType {
                    key: key.to_string(),
                    value_type: other,
                })
            }
        })
    }
}

/// The fewest bytes a value of this type occupies in the file.
fn min_value_size(value_type: u32) -> Option<usize> {
    Some(match value_type {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

/// Parses and validates a whole GGUF file held in memory.
pub fn parse(buf: &[u8]) -> std::result::Result<GgufHeader, GgufError> {
    let mut r = Reader { buf, pos: 0 };
    let magic = r.u32("magic")?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = r.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    // A tensor info takes at least 8 (name) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; a
    // key/value at least 8 (key) + 4 (type) + 1 (value).
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.count(13, "metadata")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let value_type = r.u32(&format!("metadata `{key}` type"))?;
        let value = r.value(value_type, &key, &format!("metadata `{key}`"), 0)?;
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey(key));
        }
        metadata.insert(key, value);
    }
    let fits = usize::try_from(n_tensors)
        .ok()
        .and_then(|n| n.checked_mul(24))
        .is_some_and(|b| b <= r.remaining());
    if !fits {
        return Err(GgufError::CountTooLarge {
            what: "tensor".into(),
            count: n_tensors,
        });
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a)) if a.is_power_of_two() && u64::from(*a) <= MAX_ALIGNMENT => {
            u64::from(*a)
        }
        Some(other) => {
            return Err(GgufError::BadMetadata {
                key: "general.alignment".into(),
                reason: format!(
                    "must be a u32 power of two no larger than {MAX_ALIGNMENT}, got {other:?}"
                ),
            })
        }
    };

    let mut raw = Vec::with_capacity(n_tensors as usize);
    let mut seen = HashMap::new();
    for _ in 0..n_tensors {
        let name = r.string("tensor name")?;
        let n_dims = r.u32(&format!("tensor `{name}` dimension count"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = r.u64(&format!("tensor `{name}` dimensions"))?;
            let d = usize::try_from(d).map_err(|_| GgufError::BadTensorSize {
                tensor: name.clone(),
            })?;
            dims.push(d);
        }
        dims.reverse();
        let type_id = r.u32(&format!("tensor `{name}` type"))?;
        let dtype = GgufDType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            tensor: name.clone(),
            ggml_type: type_id,
        })?;
        let offset = r.u64(&format!("tensor `{name}` offset"))?;
        if seen.insert(name.clone(), ()).is_some() {
            return Err(GgufError::DuplicateTensor(name));
        }
        raw.push((name, dims, dtype, offset));
    }

    let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
    let file_len = buf.len() as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    // Tensors are stored back to back in info order, each padded to the alignment (the layout
    // llama.cpp writes and requires): anything else is a gap, an overlap or an alias.
    let mut expected = 0u64;
    for (name, shape, dtype, offset) in raw {
        let len = tensor_byte_len(&shape, dtype).ok_or_else(|| GgufError::BadTensorSize {
            tensor: name.clone(),
        })?;
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: name,
                offset,
                alignment,
            });
        }
        if offset != expected {
            return Err(GgufError::UnexpectedOffset {
                tensor: name,
                offset,
                expected,
            });
        }
        let start = data_start.checked_add(offset);
        let end = start.and_then(|s| s.checked_add(len as u64));
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) if e <= file_len => (s, e),
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: name,
                    start: data_start.saturating_add(offset),
                    end: data_start.saturating_add(offset).saturating_add(len as u64),
                    file_len,
                })
            }
        };
        // `end <= file_len`, so this cannot overflow.
        expected = (offset + len as u64).div_ceil(alignment) * alignment;
        tensors.push(GgufTensorInfo {
            name,
            shape,
            dtype,
            start: start as usize,
            len: (end - start) as usize,
        });
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
    })
}

/// Bytes taken by a tensor of this shape and type, or `None` if the size overflows or the
/// innermost dimension is not a whole number of blocks.
fn tensor_byte_len(shape: &[usize], dtype: GgufDType) -> Option<usize> {
    let inner = *shape.last()?;
    if inner % dtype.block_size() != 0 {
        return None;
    }
    let elems = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    (elems / dtype.block_size()).checked_mul(dtype.type_size())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gguf::write::write_gguf;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sample() -> Vec<u8> {
        write_gguf(
            &[
                ("general.architecture", GgufValue::String("llama".into())),
                ("llama.block_count", GgufValue::U32(2)),
            ],
            &[
                (
                    "a",
                    0,
                    vec![4, 2],
                    f32_bytes(&[1., 2., 3., 4., 5., 6., 7., 8.]),
                ),
                ("b", 0, vec![3], f32_bytes(&[1., 2., 3.])),
            ],
        )
    }

    #[test]
    fn parses_a_valid_file() {
        let p = parse(&sample()).unwrap();
        assert_eq!(p.version, 3);
        assert_eq!(p.metadata["llama.block_count"], GgufValue::U32(2));
        assert_eq!(p.tensors[0].shape, vec![2, 4]);
        assert_eq!(p.tensors[1].len, 12);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        let data_end = parse(&bytes)
            .unwrap()
            .tensors
            .iter()
            .map(|t| t.start + t.len)
            .max()
            .unwrap();
        for cut in 0..data_end {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut} parsed");
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut bytes = sample();
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::CountTooLarge { .. })
        ));
        let mut bytes = sample();
        bytes[16..24].copy_from_slice(&(1u64 << 63).to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::CountTooLarge { .. })
        ));
        // First key's string length.
        let mut bytes = sample();
        bytes[24..32].copy_from_slice(&(1u64 << 63).to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::CountTooLarge { .. })
        ));
    }

    #[test]
    fn bad_tensor_infos_are_refused() {
        let data = f32_bytes(&[0.0; 4]);
        let unknown = write_gguf(&[], &[("t", 99, vec![4], data.clone())]);
        assert!(matches!(
            parse(&unknown),
            Err(GgufError::UnknownTensorType { ggml_type: 99, .. })
        ));
        let dims = write_gguf(&[], &[("t", 0, vec![1; 5], data.clone())]);
        assert!(matches!(
            parse(&dims),
            Err(GgufError::TooManyDims { n_dims: 5, .. })
        ));
        let overflow = write_gguf(&[], &[("t", 0, vec![1 << 40, 1 << 40], data.clone())]);
        assert!(matches!(
            parse(&overflow),
            Err(GgufError::BadTensorSize { .. })
        ));
        let past_end = write_gguf(&[], &[("t", 0, vec![1024], data.clone())]);
        assert!(matches!(
            parse(&past_end),
            Err(GgufError::TensorOutOfBounds { .. })
        ));
        let dup = write_gguf(
            &[],
            &[("t", 0, vec![4], data.clone()), ("t", 0, vec![4], data)],
        );
        assert!(matches!(parse(&dup), Err(GgufError::DuplicateTensor(_))));
    }

    #[test]
    fn overlapping_and_misaligned_offsets_are_refused() {
        let data = f32_bytes(&[0.0; 8]);
        let mut bytes = write_gguf(
            &[],
            &[("a", 0, vec![8], data.clone()), ("b", 0, vec![8], data)],
        );
        // Tensor "b"'s offset field is the last 8 bytes of its info; point it into "a".
        let info_end = 24 + (8 + 1 + 4 + 8 + 4 + 8) * 2;
        bytes[info_end - 8..info_end].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::UnexpectedOffset { .. })
        ));
        bytes[info_end - 8..info_end].copy_from_slice(&3u64.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(GgufError::MisalignedTensor { .. })
        ));
    }

    #[test]
    fn bad_alignment_is_refused() {
        for a in [0u32, 3, 1 << 31] {
            let bytes = write_gguf(&[("general.alignment", GgufValue::U32(a))], &[]);
            assert!(
                matches!(parse(&bytes), Err(GgufError::BadMetadata { .. })),
                "{a}"
            );
        }
        let bytes = write_gguf(
            &[("general.alignment", GgufValue::String("32".into()))],
            &[],
        );
        assert!(matches!(parse(&bytes), Err(GgufError::BadMetadata { .. })));
    }
}
