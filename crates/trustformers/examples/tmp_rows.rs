use std::time::Instant;
use trustformers::generation::{step_rows, Sequence};
use trustformers::{GenerationConfig, LoadOptions, LoadedModel};
fn main() {
    let loaded = LoadedModel::load(Some("smollm2-135m-instruct"), &LoadOptions::default()).unwrap();
    let m = &*loaded.model;
    for n in [1usize, 2, 4, 8, 16] {
        let config = GenerationConfig {
            max_new_tokens: 64,
            eos_token_id: vec![],
            ..Default::default()
        };
        let mut seqs: Vec<Sequence> = (0..n)
            .map(|i| {
                let p: Vec<u32> = (0..128)
                    .map(|j| 100 + ((i * 37 + j * 11) % 5000) as u32)
                    .collect();
                let mut s = Sequence::new(m, &p, &config).unwrap();
                s.step(m, None).unwrap();
                s
            })
            .collect();
        trustformers::nn::profile::set_enabled(true);
        trustformers::nn::profile::reset();
        let t = Instant::now();
        let mut rounds = 0;
        for _ in 0..32 {
            let mut live: Vec<&mut Sequence> = seqs.iter_mut().filter(|s| s.decoding()).collect();
            step_rows(m, &mut live).unwrap();
            rounds += 1;
        }
        let dt = t.elapsed().as_secs_f64() / rounds as f64;
        let parts: Vec<String> = trustformers::nn::profile::totals()
            .iter()
            .map(|(p, d, _)| {
                format!(
                    "{}={:.1}ms",
                    p.name(),
                    d.as_secs_f64() * 1e3 / rounds as f64
                )
            })
            .collect();
        println!(
            "n={n}: {:.1} ms/round, {:.1} tok/s  {}",
            dt * 1e3,
            n as f64 / dt,
            parts.join(" ")
        );
    }
}
