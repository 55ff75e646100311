//! Batch-encoding throughput and long-input scaling.
//!
//! `cargo bench -p trustformers-tokenizers --bench encode`; compare with
//! `python tools/bench_tokenizers.py` (Python `tokenizers`' `encode_batch` on the same
//! tokenizer and corpus). Uses SmolLM2's tokenizer from the model cache
//! (`tools/fetch_models.sh`), or the small byte-level fixture when it is absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::PathBuf;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions, TextInput, Tokenizer};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizers")
}

fn tokenizer() -> Tokenizer {
    let cache = trustformers_core::cache_dir();
    let smollm2 = cache.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if smollm2.is_file() {
        AutoTokenizer::from_pretrained(smollm2).unwrap()
    } else {
        AutoTokenizer::from_pretrained(fixtures().join("gpt2")).unwrap()
    }
}

/// The parity corpus, repeated 8 times: ~4,300 texts, ~0.5 MB.
fn corpus() -> Vec<String> {
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("corpus.json")).unwrap())
            .unwrap();
    texts
        .iter()
        .cycle()
        .take(texts.len() * 8)
        .cloned()
        .collect()
}

fn bench(c: &mut Criterion) {
    let tok = tokenizer();
    let texts = corpus();
    let bytes: usize = texts.iter().map(String::len).sum();
    let inputs: Vec<TextInput> = texts.iter().map(|t| TextInput::Single(t)).collect();
    let opts = EncodeOptions::default();
    let mut g = c.benchmark_group("encode_batch");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(20);
    g.bench_function("corpus", |b| {
        b.iter(|| tok.encode_batch(&inputs, &opts).unwrap())
    });
    let hf = tok.to_hf().unwrap();
    let raw: Vec<&str> = texts.iter().map(String::as_str).collect();
    g.bench_function("raw_hf", |b| {
        b.iter(|| hf.encode_batch_char_offsets(raw.clone(), true).unwrap())
    });
    g.finish();

    let joined = texts.join(" ");
    let mut g = c.benchmark_group("encode_long");
    g.sample_size(10);
    for mb in [1usize, 2] {
        let text: String = joined.chars().cycle().take(mb << 20).collect();
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{mb}MB")),
            &text,
            |b, t| b.iter(|| tok.encode(t.as_str(), &opts).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
