//! Time and memory of building a GGUF file's tokenizer, compact BPE against `tokenizers`'
//! BPE over the generated merges: median time to read the metadata and to build the
//! tokenizer, the heap the built tokenizer holds, and the heap's peak while building.
//!
//! `cargo run --release -p trustformers-tokenizers --example gguf_tokenizer_load -- FILE.gguf...`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use trustformers_core::gguf::GgufFile;
use trustformers_tokenizers::formats::gguf::{from_gguf_with, BpeModel};
use trustformers_tokenizers::Tokenizer;

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

fn main() {
    let reps = 5;
    println!("| file | model | read metadata s | build s | tokenizer heap MiB | peak heap MiB |");
    println!("|---|---|---|---|---|---|");
    for path in std::env::args().skip(1) {
        for (bpe, label) in [
            (BpeModel::Compact, "compact"),
            (BpeModel::Tokenizers, "tokenizers"),
        ] {
            let (mut reads, mut builds) = (Vec::new(), Vec::new());
            let (mut held, mut peak) = (0, 0);
            for _ in 0..reps {
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
                drop(tokenizer);
            }
            let name = std::path::Path::new(&path)
                .file_name()
                .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
            println!(
                "| {name} | {label} | {:.3} | {:.3} | {:.1} | {:.1} |",
                median(reads),
                median(builds),
                held as f64 / MIB,
                peak as f64 / MIB
            );
        }
    }
}
