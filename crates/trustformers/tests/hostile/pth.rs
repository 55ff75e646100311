//! PyTorch `.bin` mutants of the tiny LLaMA checkpoint as `torch.save` wrote it: the archive
//! itself, and its `data.pkl` rewritten inside a well-formed archive.

use super::{fixture, load_dir_f32 as load, Case, Expect};
use crate::expect;
use std::io::{Cursor, Read, Write};
use trustformers::core::PthError as P;
use trustformers::Error;

/// The archive's entries, in order.
fn entries() -> Vec<(String, Vec<u8>)> {
    let bytes = fixture("llama_bin/pytorch_model.bin");
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

fn archive(entries: &[(String, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in entries {
        zip.start_file(name.as_str(), opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn case(name: &str, bin: Vec<u8>, expect: Expect) -> Case {
    Case::dir(
        "pytorch .bin",
        name,
        vec![
            ("config.json", fixture("llama_bin/config.json")),
            ("pytorch_model.bin", bin),
        ],
        load,
        expect,
    )
}

/// A case whose `data.pkl` is `edit`ed and re-archived.
fn pickle_case(name: &str, edit: impl FnOnce(&mut Vec<u8>), expect: Expect) -> Case {
    let mut e = entries();
    let pkl = e.iter_mut().find(|(n, _)| n.ends_with("data.pkl")).unwrap();
    edit(&mut pkl.1);
    case(name, archive(&e, zip::CompressionMethod::Stored), expect)
}

fn replace(bytes: &mut Vec<u8>, from: &[u8], to: &[u8]) {
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes.splice(at..at + from.len(), to.iter().copied());
}

pub fn base_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        fixture("llama_bin/config.json"),
    )
    .unwrap();
    // As torch wrote it, and re-archived by the helper the cases use.
    for bin in [
        fixture("llama_bin/pytorch_model.bin"),
        archive(&entries(), zip::CompressionMethod::Stored),
    ] {
        std::fs::write(dir.path().join("pytorch_model.bin"), bin).unwrap();
        load(dir.path()).unwrap();
    }
}

pub fn cases() -> Vec<Case> {
    let good = fixture("llama_bin/pytorch_model.bin");
    let pkl_len = entries()
        .iter()
        .find(|(n, _)| n.ends_with("data.pkl"))
        .unwrap()
        .1
        .len();
    let mut cases = vec![
        case(
            "empty file",
            vec![],
            expect!(Error::Pth {
                source: P::NotZip(_),
                ..
            }),
        ),
        case(
            "legacy pickle file",
            b"\x80\x02}q\x00.".to_vec(),
            expect!(Error::Pth {
                source: P::NotZip(_),
                ..
            }),
        ),
        case(
            "truncated to half",
            good[..good.len() / 2].to_vec(),
            expect!(Error::Pth {
                source: P::NotZip(_),
                ..
            }),
        ),
        case(
            "truncated by one byte",
            good[..good.len() - 1].to_vec(),
            expect!(Error::Pth {
                source: P::NotZip(_),
                ..
            }),
        ),
        case(
            "no data.pkl",
            {
                let e: Vec<_> = entries()
                    .into_iter()
                    .filter(|(n, _)| !n.ends_with("data.pkl"))
                    .collect();
                archive(&e, zip::CompressionMethod::Stored)
            },
            expect!(Error::Pth {
                source: P::NoPickle,
                ..
            }),
        ),
        case(
            "compressed storages",
            archive(&entries(), zip::CompressionMethod::Deflated),
            expect!(Error::Pth {
                source: P::BadTensor { .. },
                ..
            }),
        ),
        case(
            "missing storage",
            {
                let e: Vec<_> = entries()
                    .into_iter()
                    .filter(|(n, _)| !n.ends_with("data/3"))
                    .collect();
                archive(&e, zip::CompressionMethod::Stored)
            },
            expect!(Error::Pth {
                source: P::MissingStorage { .. },
                ..
            }),
        ),
        case(
            "storage cut short",
            {
                let mut e = entries();
                let s = e.iter_mut().find(|(n, _)| n.ends_with("data/0")).unwrap();
                s.1.truncate(s.1.len() / 2);
                archive(&e, zip::CompressionMethod::Stored)
            },
            expect!(Error::Pth {
                source: P::BadTensor { .. },
                ..
            }),
        ),
        case(
            "storage entry names a path outside",
            {
                let mut e = entries();
                let pkl = e.iter_mut().find(|(n, _)| n.ends_with("data.pkl")).unwrap();
                pkl.0 = "../../data.pkl".into();
                archive(&e, zip::CompressionMethod::Stored)
            },
            expect!(Error::Pth {
                source: P::NoPickle | P::NotZip(_),
                ..
            }),
        ),
    ];
    cases.extend([
        pickle_case(
            "empty pickle",
            |p| p.clear(),
            expect!(Error::Pth {
                source: P::PickleTruncated { .. },
                ..
            }),
        ),
        pickle_case(
            "pickle cut in half",
            |p| p.truncate(pkl_len / 2),
            expect!(Error::Pth {
                source: P::PickleTruncated { .. } | P::BadPickle { .. },
                ..
            }),
        ),
        pickle_case(
            "os.system global",
            |p| replace(p, b"collections\nOrderedDict\n", b"os\nsystem\n"),
            expect!(Error::Pth {
                source: P::ForbiddenGlobal { .. },
                ..
            }),
        ),
        pickle_case(
            "builtins.eval global",
            |p| {
                replace(
                    p,
                    b"torch._utils\n_rebuild_tensor_v2\n",
                    b"builtins\neval\n",
                )
            },
            expect!(Error::Pth {
                source: P::ForbiddenGlobal { .. },
                ..
            }),
        ),
        pickle_case(
            "unknown opcode",
            |p| p[2] = 0xff,
            expect!(Error::Pth {
                source: P::BadPickle { .. },
                ..
            }),
        ),
        pickle_case(
            "protocol 9",
            |p| p[1] = 9,
            expect!(Error::Pth {
                source: P::BadPickle { .. },
                ..
            }),
        ),
        pickle_case(
            "string length 2^32-1",
            |p| {
                // The first BINUNICODE ('X') length.
                let at = p.iter().position(|&b| b == b'X').unwrap();
                p[at + 1..at + 5].copy_from_slice(&u32::MAX.to_le_bytes());
            },
            expect!(Error::Pth {
                source: P::PickleTruncated { .. },
                ..
            }),
        ),
        pickle_case(
            "stop on an empty stack",
            |p| *p = b"\x80\x02.".to_vec(),
            expect!(Error::Pth {
                source: P::BadPickle { .. },
                ..
            }),
        ),
        pickle_case(
            "memo read before write",
            |p| *p = b"\x80\x02h\x07.".to_vec(),
            expect!(Error::Pth {
                source: P::BadPickle { .. },
                ..
            }),
        ),
        pickle_case(
            "lists nested 100,000 deep",
            |p| {
                let mut v = b"\x80\x02".to_vec();
                v.extend(b"(".repeat(100_000));
                v.extend(b"t".repeat(100_000));
                v.push(b'.');
                *p = v;
            },
            expect!(Error::Pth {
                source: P::BadPickle { .. },
                ..
            }),
        ),
        pickle_case(
            "a billion laughs through the memo",
            |p| {
                // Each level is a tuple of ten references to the previous one.
                let mut v = b"\x80\x02N\x94".to_vec();
                for level in 0..60u32 {
                    v.push(b'(');
                    for _ in 0..10 {
                        v.push(b'j');
                        v.extend(level.to_le_bytes());
                    }
                    v.extend(b"t\x94");
                }
                v.push(b'.');
                *p = v;
            },
            expect!(Error::Pth {
                source: P::BadPickle { .. } | P::NotAStateDict(_),
                ..
            }),
        ),
        pickle_case(
            "memoized dict grown one item at a time",
            |p| {
                let mut v = b"\x80\x02}".to_vec();
                for i in 0..200_000u32 {
                    v.extend(b"\x94K\x01K\x02s");
                    let _ = i;
                }
                v.push(b'.');
                *p = v;
            },
            expect!(Error::Pth {
                source: P::BadPickle { .. } | P::NotAStateDict(_),
                ..
            }),
        ),
        pickle_case(
            "not a dict",
            |p| *p = b"\x80\x02K\x05.".to_vec(),
            expect!(Error::Pth {
                source: P::NotAStateDict(_),
                ..
            }),
        ),
        pickle_case(
            "negative storage offset",
            |p| {
                // _rebuild_tensor_v2(storage, 0, ...): the first offset is `K\x00` after the
                // persistent id; make it BININT -1.
                let at = p.windows(3).position(|w| w == b"QK\x00").unwrap();
                p.splice(at + 1..at + 3, *b"J\xff\xff\xff\xff");
            },
            expect!(Error::Pth {
                source: P::BadTensor { .. },
                ..
            }),
        ),
        pickle_case(
            "storage offset past the storage",
            |p| {
                let at = p.windows(3).position(|w| w == b"QK\x00").unwrap();
                p.splice(at + 1..at + 3, *b"J\x00\x00\x00\x10");
            },
            expect!(Error::Pth {
                source: P::BadTensor { .. },
                ..
            }),
        ),
        pickle_case(
            "non-contiguous stride",
            |p| {
                // The first size/stride pair K\x80K\x20 / K\x20K\x01 (a [128, 32] tensor).
                replace(p, b"K\x20K\x01\x86", b"K\x01K\x80\x86");
            },
            expect!(Error::Pth {
                source: P::BadTensor { .. },
                ..
            }),
        ),
    ]);
    cases
}
