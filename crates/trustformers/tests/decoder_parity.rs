//! Parity against transformers on the tiny fixtures written by `tools/gen_fixtures.py`:
//! logits and hidden states (left-padded row included), prefill + decode against one full
//! forward, and greedy continuation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor, D};
use common::{assert_close_unpadded, expected, fixture, max_abs_diff};
use trustformers::models::decoder::{default_positions, positions_from_mask};
use trustformers::models::ForwardOptions;
use trustformers::{AutoModel, AutoModelForCausalLM, CausalLM, LoadOptions};

const ATOL: f32 = 1e-4;

/// One test module per fixture, one test per check: `cargo test llama_gguf::` runs one
/// fixture, and a failure in one hides none of the others.
macro_rules! fixture_tests {
    ($($name:ident: $($check:ident $(($arg:expr))?),+;)+) => {$(
        mod $name {
            $(
                #[test]
                fn $check() {
                    super::$check(stringify!($name) $(, $arg)?);
                }
            )+
        }
    )+};
}

// Safetensors checkpoints made by transformers (`tools/gen_fixtures.py`): logits and hidden
// states, prefill then decode (after 1 and 6 prompt tokens) against one full forward, and
// greedy continuation.
fixture_tests! {
    llama: check_forward, check_cache(&[1, 6]), check_greedy;
    llama_linear: check_forward, check_cache(&[1, 6]), check_greedy;
    mistral: check_forward, check_cache(&[1, 6]), check_greedy;
    qwen2: check_forward, check_cache(&[1, 6]), check_greedy;
    qwen3: check_forward, check_cache(&[1, 6]), check_greedy;
    gemma3: check_forward, check_cache(&[1, 6]), check_greedy;
    gemma: check_forward, check_cache(&[1, 6]), check_greedy;
    gemma2: check_forward, check_cache(&[1, 6]), check_greedy;
    phi3: check_forward, check_cache(&[1, 6]), check_greedy;
    stablelm: check_forward, check_cache(&[1, 6]), check_greedy;
    stablelm_seq: check_forward, check_cache(&[1, 6]), check_greedy;
    mixtral: check_forward, check_cache(&[1, 6]), check_greedy;
    gpt_neox: check_forward, check_cache(&[1, 6]), check_greedy;
    gpt_neox_seq: check_forward, check_cache(&[1, 6]), check_greedy;
    phi: check_forward, check_cache(&[1, 6]), check_greedy;
    gptj: check_forward, check_cache(&[1, 6]), check_greedy;
    gpt2: check_forward, check_cache(&[1, 6]), check_greedy;
    gpt_neo: check_forward, check_cache(&[1, 6]), check_greedy;
    opt: check_forward, check_cache(&[1, 6]), check_greedy;
    falcon: check_forward, check_cache(&[1, 6]), check_greedy;
    falcon_new: check_forward, check_cache(&[1, 6]), check_greedy;
    falcon_seq: check_forward, check_cache(&[1, 6]), check_greedy;
    phi2: check_forward, check_cache(&[1, 6]), check_greedy;
    falcon_alibi: check_forward, check_cache(&[1, 6]), check_greedy;
    llama_yarn: check_forward, check_cache(&[1, 6]), check_greedy;
    // Dynamic NTK rescales every frequency once the sequence passes max_position_embeddings,
    // so keys cached before that point were rotated differently than a full forward rotates
    // them; transformers behaves the same way (and the greedy test covers it).
    llama_dynamic: check_forward, check_greedy;
    // Their RoPE changes with the sequence length, so a cache built on a shorter prefix
    // differs from a full forward, in transformers too: a full forward only.
    phi3_long: check_forward;
    phi3_long_gguf: check_forward;
    // The modern decoder zoo.
    qwen2_moe: check_forward, check_cache(&[1, 6]), check_greedy;
    qwen3_moe: check_forward, check_cache(&[1, 6]), check_greedy;
    olmo2: check_forward, check_cache(&[1, 6]), check_greedy;
    granite: check_forward, check_cache(&[1, 6]), check_greedy;
    granitemoe: check_forward, check_cache(&[1, 6]), check_greedy;
    starcoder2: check_forward, check_cache(&[1, 6]), check_greedy;
    smollm3: check_forward, check_cache(&[1, 6]), check_greedy;
    cohere: check_forward, check_cache(&[1, 6]), check_greedy;
    cohere_qk: check_forward, check_cache(&[1, 6]), check_greedy;
    cohere2: check_forward, check_cache(&[1, 6]), check_greedy;
    gpt_oss: check_forward, check_cache(&[1, 6]), check_greedy;
    // The same with its experts stored as MXFP4 blocks and scales, dequantized at load.
    gpt_oss_mxfp4: check_forward, check_cache(&[1, 6]), check_greedy;
    // Latent attention: prefill expands the latents, decode steps attend over them with the
    // projections absorbed; the cache test holds the two paths to one full forward.
    deepseek_v3: check_forward, check_cache(&[1, 6]), check_greedy;
    deepseek_v3_halves: check_forward, check_cache(&[1, 6]), check_greedy;
    deepseek_v2: check_forward, check_cache(&[1, 6]), check_greedy;
    // State-space models: the cache holds per-layer convolution and scan states.
    mamba: check_forward, check_cache(&[1, 6]), check_greedy;
    mamba_tied: check_forward, check_cache(&[1, 3]), check_greedy;
    falcon_mamba: check_forward, check_cache(&[1, 6]), check_greedy;
    mamba2: check_forward, check_cache(&[1, 6]), check_greedy;
    // RWKV-4: the WKV recurrence and token shift carried in the cache; rescaling.
    rwkv: check_forward, check_cache(&[1, 6]), check_greedy;
    llama4_text: check_forward, check_cache(&[1, 6]), check_greedy;
}

// GGUF files written as llama.cpp's converter writes them (`tools/gen_fixtures.py`), each
// from the safetensors fixture without the suffix, dequantized: the same numbers are
// expected.
fixture_tests! {
    llama_gguf: check_forward, check_cache(&[4]), check_greedy;
    llama3_gguf: check_forward, check_cache(&[4]), check_greedy;
    gemma_gguf: check_forward, check_cache(&[4]), check_greedy;
    gemma2_gguf: check_forward, check_cache(&[4]), check_greedy;
    gpt2_gguf: check_forward, check_cache(&[4]), check_greedy;
    gptj_gguf: check_forward, check_cache(&[4]), check_greedy;
    gpt_neox_gguf: check_forward, check_cache(&[4]), check_greedy;
    gpt_neox_seq_gguf: check_forward, check_cache(&[4]), check_greedy;
    falcon_gguf: check_forward, check_cache(&[4]), check_greedy;
    falcon_new_gguf: check_forward, check_cache(&[4]), check_greedy;
    phi2_gguf: check_forward, check_cache(&[4]), check_greedy;
    phi3_gguf: check_forward, check_cache(&[4]), check_greedy;
    stablelm_gguf: check_forward, check_cache(&[4]), check_greedy;
    stablelm_seq_gguf: check_forward, check_cache(&[4]), check_greedy;
    mixtral_gguf: check_forward, check_cache(&[4]), check_greedy;
    olmo2_gguf: check_forward, check_cache(&[4]), check_greedy;
    granite_gguf: check_forward, check_cache(&[4]), check_greedy;
    granitemoe_gguf: check_forward, check_cache(&[4]), check_greedy;
    starcoder2_gguf: check_forward, check_cache(&[4]), check_greedy;
    cohere_gguf: check_forward, check_cache(&[4]), check_greedy;
    cohere_qk_gguf: check_forward, check_cache(&[4]), check_greedy;
    // llama.cpp's deepseek2: kv_b_proj split into its transposed key half and value half.
    deepseek_v3_gguf: check_forward, check_cache(&[1, 6]), check_greedy;
    deepseek_v2_gguf: check_forward, check_cache(&[1, 6]), check_greedy;
    // llama.cpp's gpt-oss: MXFP4 experts in ggml's blocks, gate and up apart.
    gpt_oss_gguf: check_forward, check_cache(&[1, 6]), check_greedy;
    // llama.cpp's mamba: `A` stored as -exp(A_log), the convolution squeezed.
    mamba_gguf: check_forward, check_cache(&[1, 6]), check_greedy;
    falcon_mamba_gguf: check_forward, check_cache(&[1, 6]), check_greedy;
    // llama.cpp's mamba2: A and D as [heads, 1], the norm's weight as [groups, inner / groups].
    mamba2_gguf: check_forward, check_cache(&[1, 6]), check_greedy;
    // Models made for the GGUF fixture, in what llama.cpp's architecture expresses (every
    // layer with experts, no windows, SmolLM3's NoPE step of 4, Cohere 2's pattern of 4).
    qwen2_moe_gguf: check_forward, check_cache(&[4]), check_greedy;
    qwen3_moe_gguf: check_forward, check_cache(&[4]), check_greedy;
    smollm3_gguf: check_forward, check_cache(&[4]), check_greedy;
    cohere2_gguf: check_forward, check_cache(&[4]), check_greedy;
    llama4_text_gguf: check_forward, check_cache(&[4]), check_greedy;
}

fn f32_opts() -> LoadOptions {
    LoadOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    }
}

/// The checkpoint of fixture `name`: its directory, or the GGUF file in it.
fn checkpoint(name: &str) -> std::path::PathBuf {
    let path = fixture(name);
    match name.strip_suffix("_gguf") {
        Some(model) => path.join(format!("tiny-{model}.gguf")),
        None => path,
    }
}

fn load(name: &str, opts: &LoadOptions) -> Box<dyn CausalLM> {
    AutoModelForCausalLM::from_pretrained(checkpoint(name), opts).unwrap()
}

fn check_forward(name: &str) {
    let model = load(name, &f32_opts());
    let exp = expected(name);
    let mask = &exp["attention_mask"];
    let positions = positions_from_mask(mask, mask.dim(1).unwrap()).unwrap();
    assert_eq!(
        positions.to_vec2::<i64>().unwrap(),
        exp["position_ids"].to_vec2::<i64>().unwrap(),
        "{name}: positions derived from the mask"
    );
    let opts = ForwardOptions {
        attention_mask: Some(mask.clone()),
        output_hidden_states: true,
        logits_to_keep: None,
    };
    let out = model
        .forward_with(&exp["input_ids"], &positions, &opts, &mut model.new_cache())
        .unwrap();
    assert_close_unpadded(
        &format!("{name} logits"),
        &out.logits,
        &exp["logits"],
        mask,
        ATOL,
    );
    assert_close_unpadded(
        &format!("{name} last_hidden_state"),
        &out.last_hidden_state,
        &exp["last_hidden_state"],
        mask,
        ATOL,
    );
    assert_eq!(out.hidden_states.len(), model.num_hidden_layers() + 1);
    for (i, h) in out.hidden_states.iter().enumerate() {
        let key = format!("hidden_states.{i}");
        assert_close_unpadded(&format!("{name} {key}"), h, &exp[&key], mask, ATOL);
    }
}

/// Prefill each of `splits` tokens, then decode the rest one at a time; the logits must
/// equal one full forward. Runs on the left-padded batch, so masks and positions are
/// exercised too.
fn check_cache(name: &str, splits: &[usize]) {
    for &split in splits {
        check_cache_split(name, split);
    }
}

fn check_cache_split(name: &str, split: usize) {
    let model = load(name, &f32_opts());
    let exp = expected(name);
    let (ids, mask) = (&exp["input_ids"], &exp["attention_mask"]);
    let seq = ids.dim(1).unwrap();
    let full_opts = ForwardOptions {
        attention_mask: Some(mask.clone()),
        output_hidden_states: false,
        logits_to_keep: None,
    };
    let positions = positions_from_mask(mask, seq).unwrap();
    let full = model
        .forward_with(ids, &positions, &full_opts, &mut model.new_cache())
        .unwrap()
        .logits;
    // `logits_to_keep` gives the last positions' logits and nothing else.
    let keep_opts = ForwardOptions {
        logits_to_keep: Some(2),
        ..full_opts.clone()
    };
    let kept = model
        .forward_with(ids, &positions, &keep_opts, &mut model.new_cache())
        .unwrap()
        .logits;
    assert_eq!(kept.dim(1).unwrap(), 2);
    let diff = max_abs_diff(&kept, &full.narrow(1, seq - 2, 2).unwrap());
    assert!(diff <= ATOL, "{name}: logits_to_keep differs by {diff}");

    // The same through the layers `split` tokens at a time (chunked prefill): the kept
    // logits and every position's final hidden state equal one pass.
    let one_pass = model
        .forward_with(ids, &positions, &full_opts, &mut model.new_cache())
        .unwrap()
        .last_hidden_state;
    let chunk = |prefill_chunk| LoadOptions {
        prefill_chunk,
        ..f32_opts()
    };
    assert!(AutoModelForCausalLM::from_pretrained(checkpoint(name), &chunk(0)).is_err());
    let chunked = load(name, &chunk(split));
    let out = chunked
        .forward_with(ids, &positions, &keep_opts, &mut chunked.new_cache())
        .unwrap();
    let diff = max_abs_diff(&out.logits, &kept);
    assert!(
        diff <= ATOL,
        "{name}: chunked prefill's logits differ by {diff}"
    );
    // A mask of the wrong width gets the one pass's error, not a failed slice.
    let short = ForwardOptions {
        attention_mask: Some(mask.narrow(1, 1, seq - 1).unwrap()),
        ..keep_opts.clone()
    };
    let one_pass_err = model
        .forward_with(ids, &positions, &short, &mut model.new_cache())
        .err()
        .map(|e| e.to_string());
    let chunked_err = chunked
        .forward_with(ids, &positions, &short, &mut chunked.new_cache())
        .err()
        .map(|e| e.to_string());
    assert!(one_pass_err.is_some(), "{name}: a short mask was accepted");
    assert_eq!(chunked_err, one_pass_err, "{name}");
    assert_close_unpadded(
        &format!("{name} chunked prefill's last_hidden_state"),
        &out.last_hidden_state,
        &one_pass,
        mask,
        ATOL,
    );

    let mut cache = model.new_cache();
    let mut steps = vec![];
    let mut start = 0;
    for end in std::iter::once(split).chain(split + 1..=seq) {
        let mask_so_far = mask.narrow(1, 0, end).unwrap();
        let opts = ForwardOptions {
            attention_mask: Some(mask_so_far.clone()),
            output_hidden_states: false,
            logits_to_keep: None,
        };
        let pos = positions_from_mask(&mask_so_far, end - start).unwrap();
        let chunk = ids.narrow(1, start, end - start).unwrap();
        steps.push(
            model
                .forward_with(&chunk, &pos, &opts, &mut cache)
                .unwrap()
                .logits,
        );
        start = end;
    }
    let incremental = Tensor::cat(&steps, 1).unwrap();
    assert_close_unpadded(
        &format!("{name} prefill+decode"),
        &incremental,
        &full,
        mask,
        ATOL,
    );
}

/// Greedy decoding with the KV cache reproduces transformers' `generate()`.
fn check_greedy(name: &str) {
    let model = load(name, &f32_opts());
    let exp = expected(name);
    let prompt = &exp["greedy_input_ids"];
    let want: Vec<i64> = exp["greedy_output_ids"]
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut ids: Vec<i64> = prompt.squeeze(0).unwrap().to_vec1().unwrap();
    let mut cache = model.new_cache();
    let mut input = prompt.clone();
    while ids.len() < want.len() {
        let past = cache.seq_len();
        let pos = default_positions(1, past, input.dim(1).unwrap(), &Device::Cpu).unwrap();
        let logits = model.forward(&input, &pos, &mut cache).unwrap();
        let last = logits.narrow(1, logits.dim(1).unwrap() - 1, 1).unwrap();
        let next = last
            .argmax(D::Minus1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()[0];
        ids.push(next as i64);
        input = Tensor::new(&[[next]], &Device::Cpu).unwrap();
    }
    assert_eq!(ids, want, "{name}: greedy continuation");
}

/// Weights as stored (quantized stay quantized), keys and values cached in f32.
fn f32_cache() -> LoadOptions {
    LoadOptions {
        kv_cache_dtype: Some(DType::F32),
        ..Default::default()
    }
}

/// The largest absolute value in `t`.
fn largest_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn gguf_quantized_path_stays_close() {
    let exp = expected("llama_gguf");
    // The weight kernels' error alone: the f16 cache's rounding, which the quantized
    // activations then amplify in this 32-wide model, has its own test below.
    let model = load("llama_gguf", &f32_cache());
    let ids = &exp["input_ids"].narrow(0, 0, 1).unwrap();
    let pos = default_positions(1, 0, ids.dim(1).unwrap(), &Device::Cpu).unwrap();
    let logits = model.forward(ids, &pos, &mut model.new_cache()).unwrap();
    let reference = exp["logits"].narrow(0, 0, 1).unwrap();
    // Activations are quantized to 8 bits per 32-value block for the ggml dot products, as
    // llama.cpp does: close, not equal. In this 32-wide model each row is a single block, so
    // the rounding is as coarse as it gets; the kernels' own error is checked against
    // candle's ggml kernels in trustformers-nn.
    let scale = largest_abs(&reference);
    let d = max_abs_diff(&logits, &reference);
    assert!(
        d < 0.04 * scale,
        "quantized logits differ by {d} (largest logit {scale})"
    );
    let a: Vec<u32> = logits
        .argmax(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<u32> = reference
        .argmax(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(
        same * 100 >= a.len() * 95,
        "argmax agrees on {same}/{}",
        a.len()
    );
}

#[test]
fn half_precision_runs_close_to_f32() {
    let exp = expected("llama");
    let ids = exp["input_ids"].narrow(0, 0, 1).unwrap();
    let pos = default_positions(1, 0, ids.dim(1).unwrap(), &Device::Cpu).unwrap();
    let reference = exp["logits"].narrow(0, 0, 1).unwrap();
    for dtype in [DType::BF16, DType::F16] {
        let model = load(
            "llama",
            &LoadOptions {
                dtype: Some(dtype),
                ..Default::default()
            },
        );
        let logits = model.forward(&ids, &pos, &mut model.new_cache()).unwrap();
        let d = max_abs_diff(&logits, &reference);
        assert!(d < 0.25, "{dtype:?} logits differ by {d}");
    }
}

#[test]
fn base_model_gives_last_hidden_state() {
    let exp = expected("qwen3");
    let model = AutoModel::from_pretrained(fixture("qwen3"), &f32_opts()).unwrap();
    let ids = exp["input_ids"].narrow(0, 0, 1).unwrap();
    let pos = default_positions(1, 0, ids.dim(1).unwrap(), &Device::Cpu).unwrap();
    let out = model
        .forward(
            &ids,
            &pos,
            &ForwardOptions::default(),
            &mut model.new_cache(),
        )
        .unwrap();
    let want = exp["last_hidden_state"].narrow(0, 0, 1).unwrap();
    assert!(max_abs_diff(&out.last_hidden_state, &want) <= ATOL);
}

/// Quantized weights get an f16 KV cache, as llama.cpp's default; prefill then decode
/// through it equals one full forward through it. Dense weights keep f32, and the dtype
/// can be set to f32 or f16 only.
#[test]
fn quantized_weights_cache_keys_and_values_in_f16() {
    let exp = expected("llama_gguf");
    let ids = &exp["input_ids"].narrow(0, 0, 1).unwrap();
    let seq = ids.dim(1).unwrap();
    let model = load("llama_gguf", &LoadOptions::default());
    assert_eq!(model.new_cache().dtype(), DType::F16);
    assert_eq!(
        load("llama_gguf", &f32_opts()).new_cache().dtype(),
        DType::F32
    );

    let pos = default_positions(1, 0, seq, &Device::Cpu).unwrap();
    let full = model.forward(ids, &pos, &mut model.new_cache()).unwrap();
    let mut cache = model.new_cache();
    let mut steps = vec![];
    for (start, end) in std::iter::once((0, 4)).chain((4..seq).map(|i| (i, i + 1))) {
        let pos = default_positions(1, start, end - start, &Device::Cpu).unwrap();
        let chunk = ids.narrow(1, start, end - start).unwrap();
        steps.push(model.forward(&chunk, &pos, &mut cache).unwrap());
    }
    let incremental = Tensor::cat(&steps, 1).unwrap();
    let d = max_abs_diff(&incremental, &full);
    assert!(d <= ATOL, "f16 cache: prefill+decode differs by {d}");

    let bf16_cache = LoadOptions {
        kv_cache_dtype: Some(DType::BF16),
        ..Default::default()
    };
    let err = AutoModelForCausalLM::from_pretrained(checkpoint("llama_gguf"), &bf16_cache)
        .err()
        .unwrap();
    assert!(err.to_string().contains("kv_cache_dtype"), "{err}");
    let model = load("llama_gguf", &f32_cache());
    assert_eq!(model.new_cache().dtype(), DType::F32);

    // On dense weights (no activation quantization to amplify it), an f16 cache moves the
    // logits by about f16's rounding.
    let dense = load("llama_gguf", &f32_opts());
    let want = dense.forward(ids, &pos, &mut dense.new_cache()).unwrap();
    let dense = load(
        "llama_gguf",
        &LoadOptions {
            kv_cache_dtype: Some(DType::F16),
            ..f32_opts()
        },
    );
    let got = dense.forward(ids, &pos, &mut dense.new_cache()).unwrap();
    let scale = largest_abs(&want);
    let d = max_abs_diff(&got, &want);
    assert!(
        d > 0.0 && d < 2e-3 * scale,
        "f16 against f32 cache: {d} (largest logit {scale})"
    );
}
