//! Decode rounds of N sequences in one pass (`step_rows`, what the server's scheduler runs)
//! for N = 1, 2, 4, 8, 16: milliseconds per round, tokens/s, and where a round's time goes.
//! Each sequence has a 128-token prompt of its own and runs 32 rounds.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p trustformers-serve --example bench_rows [MODEL]`
//! (default smollm2-135m-instruct).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;
use trustformers::generation::{step_rows, Sequence};
use trustformers::nn::profile;
use trustformers::{GenerationConfig, LoadOptions, LoadedModel};

fn main() {
    let name = std::env::args().nth(1);
    let name = name.as_deref().unwrap_or("smollm2-135m-instruct");
    let loaded = LoadedModel::load(Some(name), &LoadOptions::default()).unwrap();
    let m = &*loaded.model;
    let rounds = 32;
    for n in [1usize, 2, 4, 8, 16] {
        let config = GenerationConfig {
            max_new_tokens: rounds + 1,
            eos_token_id: vec![],
            ..Default::default()
        };
        let mut seqs: Vec<Sequence> = (0..n)
            .map(|i| {
                let prompt: Vec<u32> = (0..128)
                    .map(|j| 100 + ((i * 37 + j * 11) % 5000) as u32)
                    .collect();
                let mut s = Sequence::new(m, &prompt, &config).unwrap();
                s.step(m, None).unwrap();
                s
            })
            .collect();
        profile::set_enabled(true);
        profile::reset();
        let start = Instant::now();
        for _ in 0..rounds {
            let mut live: Vec<&mut Sequence> = seqs.iter_mut().collect();
            step_rows(m, &mut live, None).unwrap();
        }
        let per_round = start.elapsed().as_secs_f64() / rounds as f64;
        profile::set_enabled(false);
        let parts: Vec<String> = profile::totals()
            .iter()
            .map(|(p, d, _)| {
                format!(
                    "{} {:.1} ms",
                    p.name(),
                    d.as_secs_f64() * 1e3 / rounds as f64
                )
            })
            .collect();
        println!(
            "{n:>2} sequences: {:.1} ms per round, {:.1} tokens/s ({})",
            per_round * 1e3,
            n as f64 / per_round,
            parts.join(", ")
        );
    }
}
