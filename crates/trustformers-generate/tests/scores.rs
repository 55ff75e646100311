//! Per-step scores and logits (`output_scores`, `output_logits`) and beam indices against
//! transformers' `generate(return_dict_in_generate=True)` on the tiny fixtures
//! (tests/fixtures/generation/scores.json, from tools/gen_scores_fixtures.py). The greedy
//! case runs a left-padded batch through the repetition penalty, suppressed tokens,
//! sequence biases, the exponential decay length penalty and renormalisation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::path::PathBuf;
use trustformers::{AutoModelForSeq2SeqLM, LoadOptions};
use trustformers_core::DType;
use trustformers_generate::{
    beam_search, generate_batch, generate_seq2seq, GenerationConfig, StepScores, TokenOutput,
};
use trustformers_models::CausalLM;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn case(name: &str) -> Value {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("generation/scores.json")).unwrap(),
    )
    .unwrap();
    all[name].clone()
}

fn llama() -> Box<dyn CausalLM> {
    let opts = LoadOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    };
    trustformers::AutoModelForCausalLM::from_pretrained(fixtures().join("llama"), &opts).unwrap()
}

/// A case's prompts or sources.
fn rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(ids).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The case's settings over `base` as generate() reads them, with `flags`
/// (`return_dict_in_generate` among them) set.
fn config_with(mut config: GenerationConfig, case: &Value, flags: &[&str]) -> GenerationConfig {
    let mut settings = case["settings"].clone();
    let s = settings.as_object_mut().unwrap();
    s.insert("return_dict_in_generate".into(), json!(true));
    for flag in flags {
        s.insert((*flag).into(), json!(true));
    }
    config.apply_json(&settings).unwrap();
    config
}

/// The case's settings over `base`, asking for scores and logits.
fn config_over(base: GenerationConfig, case: &Value) -> GenerationConfig {
    let config = config_with(base, case, &["output_scores", "output_logits"]);
    assert!(config.output_scores && config.output_logits);
    config
}

fn config(case: &Value) -> GenerationConfig {
    config_over(GenerationConfig::default(), case)
}

/// `want[step][row][token]` (null: -inf) against `got[step]` (`rows × vocab`).
fn assert_steps(what: &str, got: &[Vec<f32>], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: steps");
    for (step, (g, w)) in got.iter().zip(want).enumerate() {
        let w: Vec<&Value> = w
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .collect();
        assert_eq!(g.len(), w.len(), "{what} step {step}: values");
        for (i, (g, w)) in g.iter().zip(w).enumerate() {
            match w.as_f64() {
                None => assert_eq!(*g, f32::NEG_INFINITY, "{what} step {step} value {i}"),
                Some(w) => assert!(
                    (f64::from(*g) - w).abs() <= 1e-4,
                    "{what} step {step} value {i}: {g} vs {w}"
                ),
            }
        }
    }
}

/// Each output's steps side by side, as transformers stacks the batch's rows.
fn stacked(outs: &[TokenOutput]) -> StepScores {
    let steps: Vec<&StepScores> = outs.iter().map(|o| o.steps.as_deref().unwrap()).collect();
    let n = steps[0].scores.len();
    assert!(steps
        .iter()
        .all(|s| s.scores.len() == n && s.logits.len() == n));
    let join = |pick: fn(&StepScores) -> &Vec<Vec<f32>>| -> Vec<Vec<f32>> {
        (0..n)
            .map(|t| steps.iter().flat_map(|s| pick(s)[t].clone()).collect())
            .collect()
    };
    StepScores {
        rows: steps.len(),
        scores: join(|s| &s.scores),
        logits: join(|s| &s.logits),
        hidden_states: Vec::new(),
    }
}

/// New tokens, the rest of a finished row being padding or (beam search) filler.
fn assert_ids(got: &[TokenOutput], want: &Value) {
    for (o, w) in got.iter().zip(want.as_array().unwrap()) {
        assert_eq!(o.ids, ids(w)[..o.ids.len()], "ids");
    }
}

#[test]
fn greedy_batch_scores_and_logits_match_transformers() {
    let case = case("llama_greedy");
    let prompts = rows(&case["prompts"]);
    let out = generate_batch(&llama(), &prompts, &config(&case)).unwrap();
    assert_ids(&out, &case["new"]);
    // One row stopped at its EOS before the others: its steps go on (padding fed).
    assert!(out
        .iter()
        .any(|o| o.ids.len() < case["scores"].as_array().unwrap().len()));
    let steps = stacked(&out);
    assert_steps("scores", &steps.scores, &case["scores"]);
    assert_steps("logits", &steps.logits, &case["logits"]);
}

#[test]
fn beam_search_scores_logits_and_beam_indices_match_transformers() {
    let case = case("llama_beam");
    let prompt = ids(&case["prompts"][0]);
    let out = beam_search(&llama(), &prompt, &config(&case)).unwrap();
    assert_ids(&out, &case["new"]);
    for (o, (w, s)) in out.iter().zip(
        case["beam_indices"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["sequences_scores"].as_array().unwrap()),
    ) {
        let want: Vec<u32> = w
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_i64().filter(|&b| b >= 0).map(|b| b as u32))
            .collect();
        assert_eq!(o.beam_indices, want);
        assert!((o.score.unwrap() - s.as_f64().unwrap() as f32).abs() < 1e-4);
    }
    // The outputs of one search share its steps: every beam's row.
    let steps = out[0].steps.as_deref().unwrap();
    assert_eq!(steps.rows, 3);
    assert!(std::sync::Arc::ptr_eq(
        out[0].steps.as_ref().unwrap(),
        out[1].steps.as_ref().unwrap()
    ));
    assert_steps("scores", &steps.scores, &case["scores"]);
    assert_steps("logits", &steps.logits, &case["logits"]);
}

#[test]
fn encoder_decoder_scores_and_logits_match_transformers() {
    let case = case("t5_greedy");
    let model =
        AutoModelForSeq2SeqLM::from_pretrained(fixtures().join("t5"), &LoadOptions::default())
            .unwrap();
    // The fixture's generation_config.json under the case's settings.
    let config = config_over(
        GenerationConfig::from_dir(&fixtures().join("t5")).unwrap(),
        &case,
    );
    let sources = rows(&case["sources"]);
    let out = generate_seq2seq(model.as_ref(), &sources, &config).unwrap();
    assert_ids(&out, &case["new"]);
    let steps = stacked(&out);
    assert_steps("scores", &steps.scores, &case["scores"]);
    assert_steps("logits", &steps.logits, &case["logits"]);
}

#[test]
fn steps_are_kept_only_when_asked() {
    let case = case("llama_greedy");
    let prompts = rows(&case["prompts"]);
    let mut config = GenerationConfig::default();
    // Without return_dict_in_generate, generation_config.json's flags keep nothing.
    config
        .apply_json(&json!({"output_scores": true, "output_logits": true, "max_new_tokens": 3}))
        .unwrap();
    let out = generate_batch(&llama(), &prompts, &config).unwrap();
    assert!(out
        .iter()
        .all(|o| o.steps.is_none() && o.beam_indices.is_empty()));
}

/// The case's settings with scores kept.
fn with_scores(base: GenerationConfig, case: &Value) -> GenerationConfig {
    config_with(base, case, &["output_scores"])
}

#[test]
fn processors_over_the_prompt_match_transformers() {
    let case = case("llama_encoder");
    let prompts = rows(&case["prompts"]);
    let config = with_scores(GenerationConfig::default(), &case);
    assert_eq!(config.encoder_repetition_penalty, 2.0);
    assert_eq!(config.encoder_no_repeat_ngram_size, 2);
    let out = generate_batch(&llama(), &prompts, &config).unwrap();
    assert_ids(&out, &case["new"]);
    assert_steps("scores", &stacked_scores(&out), &case["scores"]);
}

#[test]
fn processors_over_the_source_match_transformers() {
    let case = case("t5_encoder");
    let model =
        AutoModelForSeq2SeqLM::from_pretrained(fixtures().join("t5"), &LoadOptions::default())
            .unwrap();
    let base = GenerationConfig::from_dir(&fixtures().join("t5")).unwrap();
    let config = with_scores(base, &case);
    let sources = rows(&case["sources"]);
    let out = generate_seq2seq(model.as_ref(), &sources, &config).unwrap();
    assert_ids(&out, &case["new"]);
    assert_steps("scores", &stacked_scores(&out), &case["scores"]);
    // Beam search of each source (padded to the batch's width, as transformers sees it).
    let beams = GenerationConfig {
        num_beams: 3,
        output_scores: false,
        ..config
    };
    let out = generate_seq2seq(model.as_ref(), &sources, &beams).unwrap();
    assert_ids(&out, &case["beam_new"]);
}

/// Each output's processed scores side by side.
fn stacked_scores(outs: &[TokenOutput]) -> Vec<Vec<f32>> {
    let steps: Vec<&StepScores> = outs.iter().map(|o| o.steps.as_deref().unwrap()).collect();
    (0..steps[0].scores.len())
        .map(|t| steps.iter().flat_map(|s| s.scores[t].clone()).collect())
        .collect()
}

#[test]
fn hidden_states_of_every_step_match_transformers() {
    let case = case("llama_hidden");
    let prompts = rows(&case["prompts"]);
    let config = config_with(
        GenerationConfig::default(),
        &case,
        &["output_hidden_states"],
    );
    let m = llama();
    let out = generate_batch(&m, &prompts, &config).unwrap();
    assert_ids(&out, &case["new"]);
    let want = case["hidden_states"].as_array().unwrap();
    for (r, o) in out.iter().enumerate() {
        let steps = o.steps.as_deref().unwrap();
        assert!(steps.scores.is_empty() && steps.logits.is_empty());
        assert_eq!(steps.hidden_states.len(), want.len());
        for (t, (layers, w)) in steps.hidden_states.iter().zip(want).enumerate() {
            let w = w.as_array().unwrap();
            assert_eq!(layers.len(), w.len(), "step {t}: layers");
            for (l, (got, w)) in layers.iter().zip(w).enumerate() {
                let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
                let w = w[r].as_array().unwrap();
                assert_eq!(got.len(), w.len(), "step {t} layer {l}: positions");
                for (g, w) in got
                    .iter()
                    .flatten()
                    .zip(w.iter().flat_map(|p| p.as_array().unwrap()))
                {
                    let w = w.as_f64().unwrap() as f32;
                    assert!((g - w).abs() <= 1e-4, "step {t} layer {l}: {g} vs {w}");
                }
            }
        }
    }
    // Beam search and encoder-decoders do not keep them: refused by name.
    let beams = GenerationConfig {
        num_beams: 2,
        ..config
    };
    let err = beam_search(&m, &prompts[0], &beams)
        .unwrap_err()
        .to_string();
    assert!(err.contains("output_hidden_states"), "{err}");
}

#[test]
fn beam_search_batches_line_up_their_steps_as_transformers() {
    let case = case("llama_beam_batch");
    let prompts = rows(&case["prompts"]);
    let alone: Vec<u64> = case["steps_alone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_ne!(alone[0], alone[1], "the fixture's searches end apart");
    let config = config(&case);
    let m = llama();
    let out =
        trustformers_generate::beam_search_batch(&m, &prompts, &config, |_| Ok(false)).unwrap();
    let width = prompts[0].len();
    let per_prompt = config.num_return_sequences;
    let want = case["sequences"].as_array().unwrap();
    for (i, (o, w)) in out.iter().zip(want).enumerate() {
        let w = ids(w);
        assert_eq!(o.ids, w[width..width + o.ids.len()], "output {i}");
        let offset = (i / per_prompt * config.num_beams) as i64;
        let want_beams: Vec<u32> = case["beam_indices"][i]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_i64().filter(|&b| b >= 0).map(|b| (b - offset) as u32))
            .collect();
        assert_eq!(o.beam_indices, want_beams, "output {i}");
        let s = case["sequences_scores"][i].as_f64().unwrap() as f32;
        assert!((o.score.unwrap() - s).abs() < 1e-4);
    }
    // Both prompts scored for every step of the batch, as transformers' rows.
    let (a, b) = (
        out[0].steps.as_deref().unwrap(),
        out[per_prompt].steps.as_deref().unwrap(),
    );
    let join = |x: &[Vec<f32>], y: &[Vec<f32>]| -> Vec<Vec<f32>> {
        x.iter()
            .zip(y)
            .map(|(p, q)| p.iter().chain(q).copied().collect())
            .collect()
    };
    assert_steps("scores", &join(&a.scores, &b.scores), &case["scores"]);
    assert_steps("logits", &join(&a.logits, &b.logits), &case["logits"]);
}

#[test]
fn classifier_free_guidance_matches_transformers() {
    let case = case("llama_guidance");
    let prompts = rows(&case["prompts"]);
    let config = config(&case);
    assert_eq!(config.guidance(), Some(1.7));
    let m = llama();
    let out = generate_batch(&m, &prompts, &config).unwrap();
    assert_ids(&out, &case["new"]);
    let steps = stacked(&out);
    assert_steps("scores", &steps.scores, &case["scores"]);
    assert_steps("logits", &steps.logits, &case["logits"]);
    let beams = GenerationConfig {
        num_beams: 2,
        ..config
    };
    let err = beam_search(&m, &prompts[0], &beams)
        .unwrap_err()
        .to_string();
    assert!(err.contains("guidance_scale"), "{err}");
}
