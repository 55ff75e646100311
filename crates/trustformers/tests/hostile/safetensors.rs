//! safetensors mutants of the tiny LLaMA checkpoint (config.json + model.safetensors), and of
//! a two-shard copy with its `model.safetensors.index.json`.

use super::{fixture, load_dir_f32 as load, Case, Expect};
use crate::expect;
use serde_json::{json, Value};
use trustformers::core::SafetensorsError as S;
use trustformers::Error;

/// The fixture's header (as JSON) and data section.
fn parts() -> (Value, Vec<u8>) {
    let bytes = fixture("llama/model.safetensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn file_with(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

fn file(header: &Value, data: &[u8]) -> Vec<u8> {
    file_with(&serde_json::to_vec(header).unwrap(), data)
}

/// A tensor of the fixture, by position in the header (`__metadata__` skipped).
fn tensor_names(header: &Value) -> Vec<String> {
    header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect()
}

/// The name of the tensor whose data comes first and second.
fn by_offset(header: &Value) -> Vec<String> {
    let mut names = tensor_names(header);
    names.sort_by_key(|n| header[n]["data_offsets"][0].as_u64().unwrap());
    names
}

fn checkpoint(model: Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config.json", fixture("llama/config.json")),
        ("model.safetensors", model),
    ]
}

fn case(name: &str, model: Vec<u8>, expect: Expect) -> Case {
    Case::dir("safetensors", name, checkpoint(model), load, expect)
}

fn header_case(name: &str, edit: impl FnOnce(&mut Value, &mut Vec<u8>), expect: Expect) -> Case {
    let (mut header, mut data) = parts();
    edit(&mut header, &mut data);
    case(name, file(&header, &data), expect)
}

/// Splits the fixture into two shards and an index.
fn sharded() -> Vec<(String, Vec<u8>)> {
    let (header, data) = parts();
    let names = by_offset(&header);
    let (a, b) = names.split_at(names.len() / 2);
    let mut files = Vec::new();
    let mut weight_map = serde_json::Map::new();
    for (i, group) in [a, b].into_iter().enumerate() {
        let shard = format!("model-0000{}-of-00002.safetensors", i + 1);
        let mut h = serde_json::Map::new();
        let mut bytes = Vec::new();
        for n in group {
            let [s, e] = [0, 1].map(|j| header[n]["data_offsets"][j].as_u64().unwrap() as usize);
            let mut info = header[n].clone();
            info["data_offsets"] = json!([bytes.len(), bytes.len() + e - s]);
            bytes.extend(&data[s..e]);
            h.insert(n.clone(), info);
            weight_map.insert(n.clone(), json!(shard));
        }
        files.push((shard, file(&Value::Object(h), &bytes)));
    }
    let index = json!({"metadata": {}, "weight_map": weight_map});
    files.push((
        "model.safetensors.index.json".into(),
        serde_json::to_vec(&index).unwrap(),
    ));
    files.push(("config.json".into(), fixture("llama/config.json")));
    files
}

fn shard_case(name: &str, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>), expect: Expect) -> Case {
    let mut files = sharded();
    edit(&mut files);
    Case {
        format: "safetensors",
        name: name.into(),
        files,
        entry: String::new(),
        load,
        expect,
    }
}

fn edit_index(files: &mut [(String, Vec<u8>)], edit: impl FnOnce(&mut Value)) {
    let slot = files
        .iter_mut()
        .find(|(n, _)| n == "model.safetensors.index.json")
        .unwrap();
    let mut index: Value = serde_json::from_slice(&slot.1).unwrap();
    edit(&mut index);
    slot.1 = serde_json::to_vec(&index).unwrap();
}

pub fn base_loads() {
    let (header, data) = parts();
    for (what, files) in [
        (
            "single file",
            checkpoint(file(&header, &data))
                .into_iter()
                .map(|(n, b)| (n.to_string(), b))
                .collect::<Vec<_>>(),
        ),
        ("sharded", sharded()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for (n, b) in files {
            std::fs::write(dir.path().join(n), b).unwrap();
        }
        load(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

pub fn cases() -> Vec<Case> {
    let (header, data) = parts();
    let good = file(&header, &data);
    let header_len = good.len() - data.len() - 8;
    let with_len = |n: u64| {
        let mut b = good.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        b
    };
    let order = by_offset(&header);
    let (first, second, last) = (
        order[0].clone(),
        order[1].clone(),
        order[order.len() - 1].clone(),
    );

    let mut cases = vec![
        case(
            "empty file",
            vec![],
            expect!(Error::Safetensors {
                source: S::TooShort { .. },
                ..
            }),
        ),
        case(
            "7 bytes",
            good[..7].to_vec(),
            expect!(Error::Safetensors {
                source: S::TooShort { .. },
                ..
            }),
        ),
        case(
            "header length 0",
            with_len(0),
            expect!(Error::Safetensors {
                source: S::HeaderTooSmall { .. },
                ..
            }),
        ),
        case(
            "header length 7",
            with_len(7),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        case(
            "header length past the file",
            with_len(good.len() as u64),
            expect!(Error::Safetensors {
                source: S::HeaderPastEnd { .. },
                ..
            }),
        ),
        case(
            "header length over 100,000,000",
            with_len(100_000_001),
            expect!(Error::Safetensors {
                source: S::HeaderTooLarge { .. },
                ..
            }),
        ),
        case(
            "header length u64::MAX",
            with_len(u64::MAX),
            expect!(Error::Safetensors {
                source: S::HeaderTooLarge { .. },
                ..
            }),
        ),
        case(
            "header length one short",
            with_len(header_len as u64 - 1),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        case(
            "header not UTF-8",
            {
                let mut b = good.clone();
                b[10] = 0xff;
                b
            },
            expect!(Error::Safetensors {
                source: S::HeaderNotUtf8,
                ..
            }),
        ),
        case(
            "header is an array",
            file(&json!([1, 2, 3]), &data),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        case(
            "header is a number",
            file_with(b"12345678", &data),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        case(
            "header is JSON then garbage",
            file_with(b"{} {}", &data),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        case(
            "header nested 10,000 deep",
            file_with(&[b'['; 10_000], &data),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        case(
            "truncated last tensor",
            good[..good.len() - 4].to_vec(),
            expect!(Error::Safetensors {
                source: S::TensorPastEnd { .. },
                ..
            }),
        ),
        case(
            "trailing bytes",
            {
                let mut b = good.clone();
                b.extend([0; 16]);
                b
            },
            expect!(Error::Safetensors {
                source: S::TrailingBytes { .. },
                ..
            }),
        ),
        case(
            "duplicate key",
            {
                let text = serde_json::to_string(&header).unwrap();
                let entry = format!(
                    "\"{first}\":{}",
                    serde_json::to_string(&header[&first]).unwrap()
                );
                let doubled = text.replacen('{', &format!("{{{entry},"), 1);
                file_with(doubled.as_bytes(), &data)
            },
            expect!(Error::Safetensors {
                source: S::DuplicateKey(_),
                ..
            }),
        ),
        case(
            "a million tiny tensors",
            {
                let mut text = String::from("{");
                for i in 0..1_000_000 {
                    text.push_str(&format!(
                        "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}},"
                    ));
                }
                text.pop();
                text.push('}');
                file_with(text.as_bytes(), &[])
            },
            expect!(Error::Safetensors {
                source: S::TooManyTensors { .. },
                ..
            }),
        ),
    ];
    cases.extend([
        header_case(
            "unknown dtype",
            |h, _| h[&first]["dtype"] = json!("F7"),
            expect!(Error::Safetensors {
                source: S::UnknownDtype { .. },
                ..
            }),
        ),
        header_case(
            "dtype not a string",
            |h, _| h[&first]["dtype"] = json!(4),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        header_case(
            "dtype candle cannot load",
            |h, d| {
                // The last tensor re-typed as 1-byte floats, its data shrunk to match.
                let [s, e] = [0, 1].map(|j| h[&last]["data_offsets"][j].as_u64().unwrap());
                let n = (e - s) / 4;
                h[&last]["dtype"] = json!("F8_E5M2");
                h[&last]["data_offsets"] = json!([s, s + n]);
                d.truncate((s + n) as usize);
            },
            expect!(Error::UnsupportedTensor { .. }),
        ),
        header_case(
            "shape product overflows",
            |h, _| h[&first]["shape"] = json!([1u64 << 32, 1u64 << 32, 1u64 << 32]),
            expect!(Error::Safetensors {
                source: S::ShapeOverflow { .. },
                ..
            }),
        ),
        header_case(
            "negative dimension",
            |h, _| h[&first]["shape"] = json!([-1, 32]),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        header_case(
            "9 dimensions",
            |h, _| h[&first]["shape"] = json!(vec![1; 9]),
            expect!(Error::Safetensors {
                source: S::TooManyDims { .. },
                ..
            }),
        ),
        header_case(
            "end before begin",
            |h, _| {
                let [s, e] = [0, 1].map(|j| h[&first]["data_offsets"][j].clone());
                h[&first]["data_offsets"] = json!([e, s]);
            },
            expect!(Error::Safetensors {
                source: S::EndBeforeBegin { .. },
                ..
            }),
        ),
        header_case(
            "range longer than the shape",
            |h, _| {
                let e = h[&first]["data_offsets"][1].as_u64().unwrap();
                h[&first]["data_offsets"][1] = json!(e + 4);
            },
            expect!(Error::Safetensors {
                source: S::SizeMismatch { .. },
                ..
            }),
        ),
        header_case(
            "overlapping tensors",
            |h, _| {
                let s = h[&second]["data_offsets"][0].as_u64().unwrap();
                let e = h[&second]["data_offsets"][1].as_u64().unwrap();
                h[&second]["data_offsets"] = json!([s - 4, e - 4]);
            },
            expect!(Error::Safetensors {
                source: S::NotContiguous { .. },
                ..
            }),
        ),
        header_case(
            "gap between tensors",
            |h, d| {
                for n in by_offset(h).into_iter().skip(1) {
                    let [s, e] = [0, 1].map(|j| h[&n]["data_offsets"][j].as_u64().unwrap());
                    h[&n]["data_offsets"] = json!([s + 4, e + 4]);
                }
                d.extend([0; 4]);
            },
            expect!(Error::Safetensors {
                source: S::NotContiguous { .. },
                ..
            }),
        ),
        header_case(
            "aliased tensors",
            |h, _| {
                // Two same-sized tensors over one range, the file still fully covered.
                let mut names = by_offset(h);
                names.retain(|n| n.ends_with("norm.weight"));
                let src = h[&names[0]]["data_offsets"].clone();
                h[&names[1]]["data_offsets"] = src;
            },
            expect!(Error::Safetensors {
                source: S::NotContiguous { .. },
                ..
            }),
        ),
        header_case(
            "offset past the data",
            |h, _| {
                let e = h[&last]["data_offsets"][1].as_u64().unwrap();
                h[&last]["data_offsets"] = json!([
                    e + 1000,
                    e + 1000 + (e - h[&last]["data_offsets"][0].as_u64().unwrap())
                ]);
            },
            expect!(Error::Safetensors {
                source: S::TensorPastEnd { .. },
                ..
            }),
        ),
        header_case(
            "offsets u64::MAX",
            |h, _| h[&first]["data_offsets"] = json!([u64::MAX, u64::MAX]),
            expect!(Error::Safetensors {
                source: S::SizeMismatch { .. } | S::TensorPastEnd { .. },
                ..
            }),
        ),
        header_case(
            "three offsets",
            |h, _| h[&first]["data_offsets"] = json!([0, 4, 8]),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        header_case(
            "offsets as floats",
            |h, _| h[&first]["data_offsets"] = json!([0.5, 4.0]),
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        header_case(
            "missing dtype",
            |h, _| {
                h[&first].as_object_mut().unwrap().remove("dtype");
            },
            expect!(Error::Safetensors {
                source: S::InvalidJson(_),
                ..
            }),
        ),
        header_case(
            "non-string metadata",
            |h, _| h["__metadata__"] = json!({"format": 1}),
            expect!(Error::Safetensors {
                source: S::BadMetadata,
                ..
            }),
        ),
        header_case(
            "metadata array",
            |h, _| h["__metadata__"] = json!(["pt"]),
            expect!(Error::Safetensors {
                source: S::BadMetadata,
                ..
            }),
        ),
        header_case(
            "shape disagrees with config.json",
            |h, _| {
                let s = h["model.embed_tokens.weight"]["shape"].clone();
                h["model.embed_tokens.weight"]["shape"] = json!([s[1], s[0]]);
            },
            expect!(Error::ShapeMismatch { .. }),
        ),
        header_case(
            "tensor renamed",
            |h, _| {
                let obj = h.as_object_mut().unwrap();
                let v = obj.remove("model.norm.weight").unwrap();
                obj.insert("model.norm.weights".into(), v);
            },
            expect!(Error::MissingTensor { .. }),
        ),
    ]);
    cases.extend([
        shard_case(
            "shard outside the directory",
            |f| {
                edit_index(f, |i| {
                    let k = i["weight_map"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .next()
                        .unwrap()
                        .clone();
                    i["weight_map"][&k] = json!("../../etc/passwd");
                })
            },
            expect!(Error::ShardIndex { .. }),
        ),
        shard_case(
            "tensor in the wrong shard",
            |f| {
                edit_index(f, |i| {
                    let k = i["weight_map"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .next()
                        .unwrap()
                        .clone();
                    i["weight_map"][&k] = json!("model-00002-of-00002.safetensors");
                })
            },
            expect!(Error::ShardIndex { .. }),
        ),
        shard_case(
            "weight_map not an object",
            |f| edit_index(f, |i| i["weight_map"] = json!([])),
            expect!(Error::ShardIndex { .. }),
        ),
        shard_case(
            "shard name not a string",
            |f| {
                edit_index(f, |i| {
                    let k = i["weight_map"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .next()
                        .unwrap()
                        .clone();
                    i["weight_map"][&k] = json!(1);
                })
            },
            expect!(Error::ShardIndex { .. }),
        ),
        shard_case(
            "missing shard",
            |f| f.retain(|(n, _)| n != "model-00002-of-00002.safetensors"),
            expect!(Error::Io { .. }),
        ),
        shard_case(
            "tensor in two shards",
            |f| {
                let (h1, d1) = {
                    let b = &f[0].1;
                    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
                    (
                        serde_json::from_slice::<Value>(&b[8..8 + n]).unwrap(),
                        b[8 + n..].to_vec(),
                    )
                };
                let b = &f[1].1;
                let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
                let mut h2: Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
                let mut d2 = b[8 + n..].to_vec();
                let (name, info) = h1.as_object().unwrap().iter().next().unwrap();
                let [s, e] = [0, 1].map(|j| info["data_offsets"][j].as_u64().unwrap() as usize);
                let mut moved = info.clone();
                moved["data_offsets"] = json!([d2.len(), d2.len() + e - s]);
                d2.extend(&d1[s..e]);
                h2[name] = moved;
                f[1].1 = file(&h2, &d2);
            },
            expect!(Error::Safetensors {
                source: S::DuplicateAcrossFiles { .. },
                ..
            }),
        ),
        shard_case(
            "index not JSON",
            |f| {
                let slot = f
                    .iter_mut()
                    .find(|(n, _)| n == "model.safetensors.index.json")
                    .unwrap();
                slot.1 = b"{\"weight_map\": ".to_vec();
            },
            expect!(Error::Json { .. }),
        ),
    ]);
    cases
}
