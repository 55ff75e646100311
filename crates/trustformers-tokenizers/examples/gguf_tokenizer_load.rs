//! Time and memory of building a GGUF file's tokenizer, compact BPE against `tokenizers`'
//! BPE over the generated merges: median time to read the metadata and to build the
//! tokenizer, the heap the built tokenizer holds, the heap's peak while building, and the
//! encoding speed (the tokenizer corpus, 8 times, one thread, without special tokens).
//!
//! `cargo run --release -p trustformers-tokenizers --example gguf_tokenizer_load -- FILE.gguf...`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use trustformers_core::gguf::GgufFile;
use trustformers_tokenizers::formats::gguf::{from_gguf_with, BpeModel};
use trustformers_tokenizers::{EncodeOptions, Tokenizer};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

const MIB: f64 = (1 << 20) as f64;

/// The tokenizer corpus, 8 times.
fn corpus() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tokenizers/corpus.json");
    let texts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    texts
        .iter()
        .cycle()
        .take(texts.len() * 8)
        .cloned()
        .collect()
}

/// Median MB/s encoding `texts` one by one.
fn encode_speed(tokenizer: &Tokenizer, texts: &[String], reps: usize) -> f64 {
    let opts = EncodeOptions {
        add_special_tokens: false,
        ..Default::default()
    };
    let bytes: usize = texts.iter().map(String::len).sum();
    let times = (0..reps)
        .map(|_| {
            let start = Instant::now();
            for t in texts {
                tokenizer.encode(t.as_str(), &opts).unwrap();
            }
            start.elapsed().as_secs_f64()
        })
        .collect();
    bytes as f64 / 1e6 / median(times)
}

fn main() {
    let reps = 5;
    let texts = corpus();
    println!(
        "| file | model | read metadata s | build s | tokenizer heap MiB | peak heap MiB | encode MB/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for path in std::env::args().skip(1) {
        for (bpe, label) in [
            (BpeModel::Compact, "compact"),
            (BpeModel::Tokenizers, "tokenizers"),
        ] {
            let (mut reads, mut builds) = (Vec::new(), Vec::new());
            let (mut held, mut peak) = (0, 0);
            let mut last = None;
            for _ in 0..reps {
                drop(last.take());
                let before = LIVE.load(Relaxed);
                PEAK.store(before, Relaxed);
                let start = Instant::now();
                let file = GgufFile::open(&path).unwrap();
                reads.push(start.elapsed().as_secs_f64());
                let start = Instant::now();
                let (inner, config) = from_gguf_with(&file, bpe).unwrap();
                let tokenizer = Tokenizer::new(inner, config).unwrap();
                builds.push(start.elapsed().as_secs_f64());
                drop(file);
                held = LIVE.load(Relaxed) - before;
                peak = PEAK.load(Relaxed) - before;
                last = Some(tokenizer);
            }
            let speed = last.map_or(f64::NAN, |t| encode_speed(&t, &texts, reps));
            let name = std::path::Path::new(&path)
                .file_name()
                .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
            println!(
                "| {name} | {label} | {:.3} | {:.3} | {:.1} | {:.1} | {speed:.2} |",
                median(reads),
                median(builds),
                held as f64 / MIB,
                peak as f64 / MIB
            );
        }
    }
}
