//! A GGUF v3 writer, laid out the way llama.cpp writes files: for building test files and
//! fuzz seeds.

use super::{GgufValue, DEFAULT_ALIGNMENT};

/// A tensor for [`write`]: raw bytes in a ggml type, dimensions innermost first (GGUF order).
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub name: String,
    pub ggml_type: u32,
    pub dims: Vec<u64>,
    pub data: Vec<u8>,
}

/// The GGUF type id of a value.
pub fn value_type(v: &GgufValue) -> u32 {
    match v {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.extend(x.to_le_bytes()),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(items) => {
            // An empty array is written as an array of u8.
            let item_type = items.first().map_or(0, value_type);
            out.extend(item_type.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// Serializes a GGUF v3 file with the default alignment (32), laid out the way llama.cpp
/// writes it. Arrays must hold values of one type. Used to build test files and fuzz seeds.
pub fn write(metadata: &[(String, GgufValue)], tensors: &[RawTensor]) -> Vec<u8> {
    let align = DEFAULT_ALIGNMENT as usize;
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend(value_type(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ggml_type.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += t.data.len().div_ceil(align) as u64 * align as u64;
    }
    out.resize(out.len().div_ceil(align) * align, 0);
    for t in tensors {
        out.extend(&t.data);
        out.resize(out.len().div_ceil(align) * align, 0);
    }
    out
}

/// The writer with tensors given as tuples; shared by the parser tests.
#[cfg(test)]
pub(crate) fn write_gguf(
    kv: &[(&str, GgufValue)],
    tensors: &[(&str, u32, Vec<u64>, Vec<u8>)],
) -> Vec<u8> {
    let kv: Vec<(String, GgufValue)> = kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let tensors: Vec<RawTensor> = tensors
        .iter()
        .map(|(name, ty, dims, data)| RawTensor {
            name: name.to_string(),
            ggml_type: *ty,
            dims: dims.clone(),
            data: data.clone(),
        })
        .collect();
    write(&kv, &tensors)
}
