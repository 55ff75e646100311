//! Beam search and batched left-padded greedy generation against transformers' `generate()`
//! on the tiny fixtures (tests/fixtures/generation/strategies.json, from
//! tools/gen_strategy_fixtures.py); per-token logprobs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::PathBuf;
use trustformers_core::{DType, Error};
use trustformers_generate::{
    beam_search, generate_batch, generate_ids, EarlyStopping, FinishReason, GenerationConfig,
};
use trustformers_models::CausalLM;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn model(name: &str) -> Box<dyn CausalLM> {
    let opts = trustformers::LoadOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    };
    trustformers::AutoModelForCausalLM::from_pretrained(fixtures().join(name), &opts).unwrap()
}

fn strategies() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("generation/strategies.json")).unwrap(),
    )
    .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The beam-search case's settings, read the way generation_config.json is.
fn beam_config(case: &Value) -> GenerationConfig {
    let mut config = GenerationConfig {
        num_beams: 3,
        ..Default::default()
    };
    config.apply_json(&case["config"]).unwrap();
    config
}

#[test]
fn beam_search_matches_transformers() {
    let all = strategies();
    let mut cases = 0;
    for (name, fixture) in all.as_object().unwrap() {
        let m = model(name);
        let prompt = ids(&fixture["prompt"]);
        for case in fixture["beam"].as_array().unwrap() {
            let config = beam_config(case);
            let out = beam_search(&m, &prompt, &config).unwrap();
            let want: Vec<Vec<u32>> = case["sequences"]
                .as_array()
                .unwrap()
                .iter()
                .map(ids)
                .collect();
            let got: Vec<Vec<u32>> = out.iter().map(|o| o.ids.clone()).collect();
            assert_eq!(got, want, "{name} {}", case["config"]);
            for (o, s) in out.iter().zip(case["scores"].as_array().unwrap()) {
                let (got, want) = (o.score.unwrap(), s.as_f64().unwrap() as f32);
                assert!(
                    (got - want).abs() < 1e-4,
                    "{name} {}: score {got} vs {want}",
                    case["config"]
                );
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 49);
}

#[test]
fn batched_left_padded_greedy_matches_transformers() {
    for (name, fixture) in strategies().as_object().unwrap() {
        let m = model(name);
        let case = &fixture["batch"];
        let prompts: Vec<Vec<u32>> = case["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let config = GenerationConfig {
            max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize,
            eos_token_id: ids(&case["eos_token_id"]),
            pad_token_id: Some(0),
            ..Default::default()
        };
        let out = generate_batch(&m, &prompts, &config).unwrap();
        let want: Vec<Vec<u32>> = case["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let got: Vec<Vec<u32>> = out.iter().map(|o| o.ids.clone()).collect();
        assert_eq!(got, want, "{name}");
        for (o, w) in out.iter().zip(&want) {
            let eos = config.eos_token_id.contains(w.last().unwrap());
            assert_eq!(o.finish_reason == FinishReason::Eos, eos, "{name}");
        }
        // Each row alone gives the same tokens as in the padded batch; not for the Mamba
        // fixtures, whose input projections have biases: transformers zeroes a padded
        // position's input, but its projection (the bias) still enters the convolution of
        // the first real positions, so padding changes a row's numbers there (as here);
        // nor for RWKV, which reads no mask (its pads go through the recurrence).
        if name.starts_with("mamba") || name == "rwkv" {
            continue;
        }
        for (p, w) in prompts.iter().zip(&want) {
            let alone = generate_ids(&m, p, &config, |_| Ok(true)).unwrap();
            assert_eq!(&alone.ids, w, "{name}");
        }
    }
}

#[test]
fn beam_search_options_behave() {
    let m = model("qwen3");
    let prompt = ids(&strategies()["qwen3"]["prompt"]);
    let config = GenerationConfig {
        num_beams: 4,
        num_return_sequences: 4,
        max_new_tokens: 6,
        early_stopping: EarlyStopping::Never,
        top_logprobs: Some(2),
        ..Default::default()
    };
    let out = beam_search(&m, &prompt, &config).unwrap();
    assert_eq!(out.len(), 4);
    let scores: Vec<f32> = out.iter().map(|o| o.score.unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    for o in &out {
        assert_eq!(o.logprobs.len(), o.ids.len());
        // With no processors and length_penalty 1, the score is the mean token logprob.
        let mean = o.logprobs.iter().map(|l| l.logprob).sum::<f32>() / o.ids.len() as f32;
        assert!(
            (mean - o.score.unwrap()).abs() < 1e-4,
            "{mean} vs {:?}",
            o.score
        );
    }
    // Beam sampling is seeded.
    let sampled = GenerationConfig {
        do_sample: true,
        seed: 3,
        ..config.clone()
    };
    let a = beam_search(&m, &prompt, &sampled).unwrap();
    let b = beam_search(&m, &prompt, &sampled).unwrap();
    assert_eq!(
        a.iter().map(|o| &o.ids).collect::<Vec<_>>(),
        b.iter().map(|o| &o.ids).collect::<Vec<_>>()
    );
    // More sequences than beams, or streaming a beam search, is refused.
    for bad in [
        GenerationConfig {
            num_return_sequences: 5,
            ..config.clone()
        },
        GenerationConfig {
            length_penalty: f32::NAN,
            ..config.clone()
        },
    ] {
        assert!(matches!(
            beam_search(&m, &prompt, &bad),
            Err(Error::Config { .. })
        ));
    }
    assert!(matches!(
        generate_ids(&m, &prompt, &config, |_| Ok(true)),
        Err(Error::Config { .. })
    ));
}

#[test]
fn logprobs_are_the_model_distribution() {
    let m = model("llama");
    let prompt = ids(&strategies()["llama"]["prompt"]);
    let config = GenerationConfig {
        max_new_tokens: 5,
        top_logprobs: Some(3),
        ..Default::default()
    };
    let out = generate_ids(&m, &prompt, &config, |_| Ok(true)).unwrap();
    assert_eq!(out.logprobs.len(), 5);
    for (lp, &id) in out.logprobs.iter().zip(&out.ids) {
        assert_eq!(lp.id, id);
        assert_eq!(lp.top.len(), 3);
        // Greedy picks the most likely token, and the alternatives come best first.
        assert_eq!(lp.top[0], (id, lp.logprob));
        assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(lp.logprob <= 0.0);
    }
    // Sampled rows in a batch: num_return_sequences samples per prompt, each seeded.
    let sampled = GenerationConfig {
        do_sample: true,
        num_return_sequences: 3,
        seed: 5,
        ..config
    };
    let a = generate_batch(&m, &[prompt.clone(), prompt[4..].to_vec()], &sampled).unwrap();
    let b = generate_batch(&m, &[prompt.clone(), prompt[4..].to_vec()], &sampled).unwrap();
    assert_eq!(a.len(), 6);
    assert_eq!(
        a.iter().map(|o| &o.ids).collect::<Vec<_>>(),
        b.iter().map(|o| &o.ids).collect::<Vec<_>>()
    );
}

/// Counts the forward passes of a model.
struct Counting<'a>(&'a dyn CausalLM, std::sync::atomic::AtomicUsize);

impl CausalLM for Counting<'_> {
    fn model_type(&self) -> &str {
        self.0.model_type()
    }
    fn forward_with(
        &self,
        input_ids: &candle_core::Tensor,
        positions: &candle_core::Tensor,
        opts: &trustformers_models::ForwardOptions,
        cache: &mut trustformers_models::Cache,
    ) -> trustformers_core::Result<trustformers_models::CausalLmOutput> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.forward_with(input_ids, positions, opts, cache)
    }
    fn new_cache(&self) -> trustformers_models::Cache {
        self.0.new_cache()
    }
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn max_position_embeddings(&self) -> usize {
        self.0.max_position_embeddings()
    }
    fn num_hidden_layers(&self) -> usize {
        self.0.num_hidden_layers()
    }
    fn device(&self) -> &candle_core::Device {
        self.0.device()
    }
    fn dtype(&self) -> DType {
        self.0.dtype()
    }
}

#[test]
fn prompt_lookup_gives_greedy_ids_in_fewer_passes() {
    use trustformers_generate::lookup_candidates;
    // The last two tokens [7, 8] occurred at the start: what followed them is the guess.
    assert_eq!(
        lookup_candidates(&[7, 8, 9, 10, 11, 7, 8], 2, 3),
        vec![9, 10, 11]
    );
    assert_eq!(lookup_candidates(&[7, 8, 9, 8], 2, 3), vec![9, 8]);
    assert!(lookup_candidates(&[1, 2, 3], 2, 3).is_empty());
    let m = model("llama");
    // The tiny model falls into loops, so its output soon quotes itself.
    let prompts: [&[u32]; 3] = [&[5, 9, 14, 3], &[40, 41, 42, 43, 40, 41], &[77; 6]];
    let mut saved = 0;
    for prompt in prompts {
        for extra in [
            serde_json::json!({}),
            serde_json::json!({"repetition_penalty": 1.3, "no_repeat_ngram_size": 3}),
        ] {
            let mut config = GenerationConfig {
                max_new_tokens: 24,
                eos_token_id: vec![],
                ..Default::default()
            };
            config.apply_json(&extra).unwrap();
            let plain = Counting(&*m, Default::default());
            let want = generate_ids(&plain, prompt, &config, |_| Ok(true)).unwrap();
            config.prompt_lookup_num_tokens = Some(4);
            let fast = Counting(&*m, Default::default());
            let got = generate_ids(&fast, prompt, &config, |_| Ok(true)).unwrap();
            assert_eq!(got.ids, want.ids, "{prompt:?} {extra}");
            let (a, b) = (plain.1.into_inner(), fast.1.into_inner());
            assert!(b <= a, "{b} passes against {a}");
            saved += a - b;
        }
    }
    assert!(saved > 0, "no guess was ever kept");
    // Greedy only: refused with sampling and beams.
    let config = GenerationConfig {
        prompt_lookup_num_tokens: Some(3),
        do_sample: true,
        ..Default::default()
    };
    let err = generate_ids(&m, &[5, 9], &config, |_| Ok(true)).unwrap_err();
    assert!(
        err.to_string().contains("prompt_lookup_num_tokens"),
        "{err}"
    );
}
