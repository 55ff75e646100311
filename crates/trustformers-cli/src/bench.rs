//! `trustformers bench`: llama-bench's measurements for a causal LM — prompt processing
//! (`pp N`: one forward pass over N tokens from an empty cache) and text generation
//! (`tg N`: N single-token steps through the KV cache) in tokens/s, plus load time and peak
//! RSS; each the median of `--repetitions` runs. With `--n-depth D` each test starts after D
//! tokens already in the cache (llama-bench's `-d`), so long-context decode can be timed.
//! Token ids are drawn at random (seeded), as llama-bench does, so results do not depend on
//! a tokenizer.

use crate::options::ModelArgs;
use anyhow::{bail, Result};
use clap::Args;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::time::Instant;
use trustformers::models::decoder::default_positions;
use trustformers::models::ForwardOptions;
use trustformers::nn::profile::{self, Part};
use trustformers::pipelines::{EmbedParams, SentenceTransformer};
use trustformers::{resolve_model, Cache, CausalLM, Tensor};

/// What `bench` measures.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchTask {
    /// A causal LM: prompt processing and generation (llama-bench's tests).
    TextGeneration,
    /// Sentence embeddings: batches of 32 at 16 and 128 tokens, and one 16-token sentence.
    FeatureExtraction,
    /// Images through an image model (classification, or the last hidden state without a
    /// classifier) or an image-text model (image embeddings): batches of `--batch-size`
    /// images decoded from `--image` files, preprocessing included.
    Images,
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// What to measure (feature-extraction defaults to all-minilm-l6-v2).
    #[arg(long, value_enum, default_value = "text-generation")]
    task: BenchTask,
    /// Prompt lengths to time (llama-bench's -p).
    #[arg(short = 'p', long, value_delimiter = ',', default_value = "128,512")]
    n_prompt: Vec<usize>,
    /// Tokens to generate (llama-bench's -n).
    #[arg(short = 'n', long, value_delimiter = ',', default_value = "128")]
    n_gen: Vec<usize>,
    /// Tokens already in the KV cache when each test starts (llama-bench's -d).
    #[arg(short = 'd', long, default_value_t = 0)]
    n_depth: usize,
    /// Runs per measurement; the median is reported (llama-bench's -r).
    #[arg(short = 'r', long, default_value_t = 5)]
    repetitions: usize,
    /// Threads for the matrix kernels (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Print one JSON object: load_s, pp{N}_tok_s, tg{N}_tok_s (pp{N}_d{D}_tok_s, ... with a
    /// depth), peak_rss_mb (in MiB, `VmHWM` / 1024).
    #[arg(long)]
    json: bool,
    /// After the timed runs, run each test once more with per-part timing on and report
    /// where a step's time goes (linear layers, head, attention, norms, ...).
    #[arg(long)]
    profile: bool,
    /// `--task images`: the image files (cycled to fill a batch).
    #[arg(long, value_name = "FILE")]
    image: Vec<std::path::PathBuf>,
    /// `--task images`: images per batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn random_ids(rng: &mut StdRng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// One forward pass over `ids` after what `cache` holds, computing the last position's
/// logits only (as llama-bench and transformers' generate() do).
fn forward_last(model: &dyn CausalLM, ids: &[u32], cache: &mut Cache) -> Result<()> {
    let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let pos = default_positions(1, cache.seq_len(), ids.len(), model.device())?;
    let opts = ForwardOptions {
        logits_to_keep: Some(1),
        ..ForwardOptions::default()
    };
    let logits = model.forward_with(&input, &pos, &opts, cache)?.logits;
    // Make sure the work is done (the CPU backend is synchronous; this reads one value).
    logits.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok(())
}

/// A cache holding `depth` random tokens (untimed), for a test to start from.
fn cache_at_depth(
    model: &dyn CausalLM,
    depth: usize,
    vocab: usize,
    rng: &mut StdRng,
) -> Result<Cache> {
    let mut cache = model.new_cache();
    if depth > 0 {
        forward_last(model, &random_ids(rng, depth, vocab), &mut cache)?;
    }
    Ok(cache)
}

/// Seconds for one forward pass over `ids` after `cache`'s tokens.
fn prompt_run(model: &dyn CausalLM, ids: &[u32], mut cache: Cache) -> Result<f64> {
    let start = Instant::now();
    forward_last(model, ids, &mut cache)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds for `n` single-token decode steps after `cache`'s tokens and one start token.
fn gen_run(
    model: &dyn CausalLM,
    n: usize,
    vocab: usize,
    rng: &mut StdRng,
    mut cache: Cache,
) -> Result<f64> {
    let mut next = random_ids(rng, 1, vocab)[0];
    let past = cache.seq_len();
    let start = Instant::now();
    for step in 0..n {
        let input = Tensor::new(&[next], model.device())?.unsqueeze(0)?;
        let pos = default_positions(1, past + step, 1, model.device())?;
        let logits = model.forward(&input, &pos, &mut cache)?;
        let _timing = profile::scope(Part::Sampling);
        next = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    if args.task == BenchTask::Images {
        return bench_images(args);
    }
    if args.task == BenchTask::FeatureExtraction {
        return bench_embeddings(args);
    }
    let mut loads = Vec::new();
    let mut loaded = None;
    for _ in 0..args.repetitions {
        // Drop the previous copy first, so peak RSS is one model's, not two.
        drop(loaded.take());
        let start = Instant::now();
        let l = args.model.load()?;
        loads.push(start.elapsed().as_secs_f64());
        loaded = Some(l);
    }
    let Some(loaded) = loaded else {
        bail!("no model was loaded");
    };
    let model = &*loaded.model;
    let (vocab, context) = (model.vocab_size(), model.max_position_embeddings());
    let depth = args.n_depth;
    if let Some(&n) = args
        .n_prompt
        .iter()
        .chain(&args.n_gen)
        .find(|&&n| n == 0 || n.saturating_add(depth) >= context)
    {
        bail!(
            "test length {n} must be at least 1, and with a depth of {depth} below the \
             model's context ({context} tokens)"
        );
    }
    // llama-bench's names: "pp512", or "pp512 @ d2048" with a depth.
    let name = |test: String| match depth {
        0 => test,
        d => format!("{test}@d{d}"),
    };
    let threads = candle_core::utils::get_num_threads();
    let mut rng = StdRng::seed_from_u64(0);
    let mut results = Map::new();
    results.insert("model".into(), json!(loaded.path.display().to_string()));
    results.insert("threads".into(), json!(threads));
    results.insert("repetitions".into(), json!(args.repetitions));
    results.insert("ubatch_size".into(), json!(args.model.ubatch_size));
    results.insert("load_s".into(), json!(median(loads)));
    let mut rows = Vec::new();
    for &n in &args.n_prompt {
        // One warm-up run, as llama-bench does.
        let cache = cache_at_depth(model, depth, vocab, &mut rng)?;
        prompt_run(model, &random_ids(&mut rng, n, vocab), cache)?;
        let mut rates = Vec::new();
        for _ in 0..args.repetitions {
            let cache = cache_at_depth(model, depth, vocab, &mut rng)?;
            let secs = prompt_run(model, &random_ids(&mut rng, n, vocab), cache)?;
            rates.push(n as f64 / secs);
        }
        rows.push((name(format!("pp{n}")), rates));
    }
    for &n in &args.n_gen {
        let cache = cache_at_depth(model, depth, vocab, &mut rng)?;
        gen_run(model, n.min(8), vocab, &mut rng, cache)?;
        let mut rates = Vec::new();
        for _ in 0..args.repetitions {
            let cache = cache_at_depth(model, depth, vocab, &mut rng)?;
            rates.push(n as f64 / gen_run(model, n, vocab, &mut rng, cache)?);
        }
        rows.push((name(format!("tg{n}")), rates));
    }
    let rss = peak_rss_mb();
    for (name, rates) in &rows {
        let key = name.replace('@', "_");
        results.insert(format!("{key}_tok_s"), json!(median(rates.clone())));
    }
    results.insert("peak_rss_mb".into(), json!(rss));
    let mut profiles = Vec::new();
    if args.profile {
        for &n in &args.n_prompt {
            let ids = random_ids(&mut rng, n, vocab);
            let cache = cache_at_depth(model, depth, vocab, &mut rng)?;
            profiles.push(profiled(name(format!("pp{n}")), 1, || {
                prompt_run(model, &ids, cache)
            })?);
        }
        for &n in &args.n_gen {
            let cache = cache_at_depth(model, depth, vocab, &mut rng)?;
            profiles.push(profiled(name(format!("tg{n}")), n, || {
                gen_run(model, n, vocab, &mut rng, cache)
            })?);
        }
        let json_profiles: Map<String, Value> = profiles
            .iter()
            .map(|p| (p.test.clone(), p.to_json()))
            .collect();
        results.insert("profile".into(), Value::Object(json_profiles));
    }
    if args.json {
        println!("{}", Value::Object(results));
        return Ok(());
    }
    println!(
        "model: {}  threads: {threads}  repetitions: {}",
        loaded.path.display(),
        args.repetitions
    );
    println!("| test   |      t/s (median) |    min |    max |");
    println!("|--------|-------------------|--------|--------|");
    for (name, rates) in &rows {
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        println!(
            "| {name:<6} | {:>17.2} | {min:>6.2} | {max:>6.2} |",
            median(rates.clone())
        );
    }
    println!(
        "load: {:.3} s (median)",
        results["load_s"].as_f64().unwrap_or(f64::NAN)
    );
    match rss {
        Some(mb) => println!("peak RSS: {mb:.0} MiB"),
        None => println!("peak RSS: not available on this platform"),
    }
    for p in &profiles {
        p.print();
    }
    Ok(())
}

/// Where one run's time went, per step.
struct Profile {
    test: String,
    /// Steps in the run (tokens for tg, 1 for pp).
    steps: usize,
    total_s: f64,
    parts: Vec<(&'static str, f64, u64)>,
}

/// Runs `run` once with per-part timing on.
fn profiled(test: String, steps: usize, run: impl FnOnce() -> Result<f64>) -> Result<Profile> {
    profile::reset();
    profile::set_enabled(true);
    let total_s = run();
    profile::set_enabled(false);
    let total_s = total_s?;
    let parts = profile::totals()
        .into_iter()
        .map(|(part, d, calls)| (part.name(), d.as_secs_f64(), calls))
        .collect();
    Ok(Profile {
        test,
        steps: steps.max(1),
        total_s,
        parts,
    })
}

impl Profile {
    /// Time outside every timed part: residual adds, masks, tensor bookkeeping.
    fn other_s(&self) -> f64 {
        let timed: f64 = self.parts.iter().map(|(_, s, _)| s).sum();
        (self.total_s - timed).max(0.0)
    }

    fn to_json(&self) -> Value {
        let ms = |s: f64| s * 1e3 / self.steps as f64;
        let mut parts: Map<String, Value> = self
            .parts
            .iter()
            .map(|&(name, s, _)| (name.to_string(), json!(ms(s))))
            .collect();
        parts.insert("other".into(), json!(ms(self.other_s())));
        json!({"step_ms": ms(self.total_s), "parts_ms": parts})
    }

    fn print(&self) {
        let per_step = |s: f64| s * 1e3 / self.steps as f64;
        let pct = |s: f64| 100.0 * s / self.total_s;
        println!();
        println!(
            "{}: {:.3} ms per step ({} step{}, timed once)",
            self.test,
            per_step(self.total_s),
            self.steps,
            if self.steps == 1 { "" } else { "s" }
        );
        println!("| part                               | ms/step |     % | calls/step |");
        println!("|------------------------------------|---------|-------|------------|");
        for &(name, s, calls) in &self.parts {
            println!(
                "| {name:<34} | {:>7.3} | {:>5.1} | {:>10.1} |",
                per_step(s),
                pct(s),
                calls as f64 / self.steps as f64
            );
        }
        let other = self.other_s();
        println!(
            "| {:<34} | {:>7.3} | {:>5.1} |            |",
            "other (residuals, masks, glue)",
            per_step(other),
            pct(other)
        );
    }
}

/// Words that are one token each in BERT's uncased vocabulary, to build sentences of an
/// exact length.
const ONE_TOKEN_WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "he", "for", "it", "with", "as", "his", "on",
    "be", "at", "by", "she", "they", "from",
];

/// `count` sentences of `tokens` tokens each (special tokens included), checked against the
/// model's tokenizer.
fn sentences(model: &SentenceTransformer, count: usize, tokens: usize) -> Result<Vec<String>> {
    (0..count)
        .map(|i| {
            let words: Vec<&str> = (0..tokens.saturating_sub(2))
                .map(|j| ONE_TOKEN_WORDS[(i * 7 + j * 3) % ONE_TOKEN_WORDS.len()])
                .collect();
            let text = words.join(" ");
            let n = model.tokenizer().encode_ids(&text, true)?.len();
            if n != tokens {
                bail!("the benchmark sentence has {n} tokens with this tokenizer, not {tokens}");
            }
            Ok(text)
        })
        .collect()
}

/// `trustformers bench --task images`: images/s for a batch of `--batch-size` images read from
/// files, decoded, preprocessed and run (classified, embedded, or encoded); the median of `-r`
/// runs after a warm-up.
fn bench_images(args: &BenchArgs) -> Result<()> {
    use trustformers::pipelines::{
        ImageClassificationPipeline, ImageFeatureExtractionPipeline, ImageTextEmbedder, Pipeline,
    };
    use trustformers::{AutoConfig, ImageInput};
    let name = args
        .model
        .model
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--task images needs --model"))?;
    if args.image.is_empty() || args.batch_size == 0 {
        anyhow::bail!("--task images needs --image files and a positive --batch-size");
    }
    let path = resolve_model(Some(name))?;
    let config = AutoConfig::from_pretrained(&path)?;
    let head = config.json["architectures"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let files: Vec<&std::path::Path> = args
        .image
        .iter()
        .cycle()
        .take(args.batch_size)
        .map(|p| p.as_path())
        .collect();
    let images: Vec<ImageInput<'_>> = files.iter().map(|p| ImageInput::Path(p)).collect();
    let opts = args.model.load_options()?;
    let start = Instant::now();
    let (what, run): (&str, Box<dyn Fn() -> Result<()>>) = if config.architecture.is_image_text() {
        let model = ImageTextEmbedder::from_pretrained(&path, &opts)?;
        (
            "image embeddings",
            Box::new(move || Ok(model.embed_images(&images, false).map(drop)?)),
        )
    } else if head.contains("ForImageClassification") {
        let model = ImageClassificationPipeline::from_pretrained(&path, &opts)?;
        let params = trustformers::pipelines::ImageClassificationParams {
            batch_size: args.batch_size,
            ..Default::default()
        };
        (
            "image classification",
            Box::new(move || Ok(model.call(&images, &params).map(drop)?)),
        )
    } else {
        let model = ImageFeatureExtractionPipeline::from_pretrained(&path, &opts)?;
        let params = trustformers::pipelines::ImageFeatureParams {
            pool: false,
            batch_size: args.batch_size,
        };
        (
            "image features",
            Box::new(move || Ok(model.call(&images, &params).map(drop)?)),
        )
    };
    let load_s = start.elapsed().as_secs_f64();
    run()?;
    let mut secs = Vec::new();
    for _ in 0..args.repetitions.max(1) {
        let start = Instant::now();
        run()?;
        secs.push(start.elapsed().as_secs_f64());
    }
    let batch_s = median(secs);
    let results = json!({
        "model": name,
        "task": what,
        "threads": candle_core::utils::get_num_threads(),
        "repetitions": args.repetitions,
        "batch_size": args.batch_size,
        "load_s": load_s,
        "images_per_s": args.batch_size as f64 / batch_s,
        "batch_ms": batch_s * 1e3,
        "peak_rss_mb": peak_rss_mb(),
    });
    if args.json {
        println!("{results}");
    } else {
        println!(
            "model: {name} ({what})  threads: {}  repetitions: {}",
            results["threads"], args.repetitions
        );
        println!(
            "batch of {}: {:.1} ms, {:.2} images/s (decoding and preprocessing included)",
            args.batch_size,
            batch_s * 1e3,
            args.batch_size as f64 / batch_s
        );
    }
    Ok(())
}

/// `trustformers bench --task feature-extraction`: sentences/s for batches of 32 sentences of
/// 16 and 128 tokens, and the latency of one 16-token sentence; medians of `-r` runs after a
/// warm-up.
fn bench_embeddings(args: &BenchArgs) -> Result<()> {
    let name = args
        .model
        .model
        .as_deref()
        .unwrap_or(crate::embed::DEFAULT_EMBEDDING_MODEL);
    let path = resolve_model(Some(name))?;
    let opts = args.model.load_options()?;
    let start = Instant::now();
    let model = SentenceTransformer::from_pretrained(&path, &opts)?;
    let load_s = start.elapsed().as_secs_f64();
    let params = EmbedParams::default();
    let time = |texts: &[String]| -> Result<f64> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        model.encode(&refs, &params)?;
        let mut secs = Vec::new();
        for _ in 0..args.repetitions {
            let start = Instant::now();
            model.encode(&refs, &params)?;
            secs.push(start.elapsed().as_secs_f64());
        }
        Ok(median(secs))
    };
    let b16 = 32.0 / time(&sentences(&model, 32, 16)?)?;
    let b128 = 32.0 / time(&sentences(&model, 32, 128)?)?;
    let single_ms = 1e3 * time(&sentences(&model, 1, 16)?)?;
    let results = json!({
        "model": name,
        "threads": candle_core::utils::get_num_threads(),
        "repetitions": args.repetitions,
        "dtype": args.model.dtype.as_deref().unwrap_or("f32"),
        "load_s": load_s,
        "batch32_len16_sentences_per_s": b16,
        "batch32_len128_sentences_per_s": b128,
        "single_len16_ms": single_ms,
        "peak_rss_mb": peak_rss_mb(),
    });
    if args.json {
        println!("{results}");
    } else {
        println!(
            "model: {name}  threads: {}  repetitions: {}",
            results["threads"], args.repetitions
        );
        println!("batch 32 x 16 tokens:  {b16:.1} sentences/s");
        println!("batch 32 x 128 tokens: {b128:.1} sentences/s");
        println!("one 16-token sentence: {single_ms:.2} ms");
    }
    Ok(())
}
