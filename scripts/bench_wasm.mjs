// The WebAssembly build in Node against transformers.js (@huggingface/transformers, whose
// Node backend is onnxruntime-node) and against the native build, in one run: sentence
// embeddings/s (batches of 32 sentences of 16 and 128 tokens, and one 16-token sentence, the
// sentences `trustformers bench --task feature-extraction` builds) and decode tokens/s
// (128 new tokens after a short prompt, end of sequence ignored). Medians of the runs; the
// systems take turns within each round.
//
//   node scripts/bench_wasm.mjs --minilm DIR --onnx-minilm DIR [--smollm2 FILE.gguf
//     --onnx-smollm2 DIR] --tfjs NODE_MODULES --cli target/release/trustformers [--runs 5]
//
// --onnx-*: transformers.js model directories (config.json, tokenizer files, onnx/model.onnx
// in fp32), exported locally from the same checkpoints (see BENCHMARKS.md). transformers.js
// runs with one intra-op thread (what the WebAssembly build has) and with its default.
// Build the package first: scripts/build_wasm.sh.

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Embedder, init, readCheckpoint, TextGenerator } from "../crates/trustformers-wasm/npm/index.js";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const runs = Number(arg("--runs", "5"));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// The CLI bench's sentences: words that are one BERT token each.
const WORDS = ["the", "of", "and", "to", "in", "is", "was", "he", "for", "it", "with", "as", "his", "on",
  "be", "at", "by", "she", "they", "from"];
function sentences(count, tokens) {
  return Array.from({ length: count }, (_, i) =>
    Array.from({ length: tokens - 2 }, (_, j) => WORDS[(i * 7 + j * 3) % WORDS.length]).join(" "));
}

async function timeIt(f) {
  const t = performance.now();
  await f();
  return (performance.now() - t) / 1e3;
}

const results = [];
function report(system, what, values, unit) {
  const m = median(values);
  results.push({ system, what, median: m, unit, runs: values });
  console.log(`${system.padEnd(40)} ${what.padEnd(24)} ${m.toFixed(2).padStart(9)} ${unit}  (${values.map((v) => v.toFixed(1)).join(", ")})`);
}

await init();
const tfjsPath = arg("--tfjs");
const tfjs = await import(pathToFileURL(createRequire(join(resolve(tfjsPath), "x.js")).resolve("@huggingface/transformers")).href);
// Through CommonJS resolution (so that a node_modules elsewhere serves): the exports may sit
// under `default`.
const { pipeline, env } = tfjs.pipeline ? tfjs : tfjs.default;
env.allowRemoteModels = false;

// Sentence embeddings.
{
  const minilm = arg("--minilm");
  const onnx = resolve(arg("--onnx-minilm"));
  env.localModelPath = dirname(onnx) + "/";
  const ours = new Embedder("all-MiniLM-L6-v2", await readCheckpoint(minilm));
  const tfjs1 = await pipeline("feature-extraction", basename(onnx), {
    device: "cpu", dtype: "fp32", session_options: { intraOpNumThreads: 1, interOpNumThreads: 1 },
  });
  const tfjsN = await pipeline("feature-extraction", basename(onnx), { device: "cpu", dtype: "fp32" });
  const cases = [["batch 32 x 16 tokens", sentences(32, 16)], ["batch 32 x 128 tokens", sentences(32, 128)], ["one 16-token sentence", sentences(1, 16)]];
  // Same numbers first: the two systems embed the same sentences alike.
  const a = ours.embed(cases[0][1].slice(0, 4), true);
  const b = (await tfjs1(cases[0][1].slice(0, 4), { pooling: "mean", normalize: true })).data;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
  console.log(`max |ours - transformers.js| over 4 normalized embeddings: ${diff.toExponential(2)}`);
  for (const [what, texts] of cases) {
    const t = { ours: [], tfjs1: [], tfjsN: [] };
    ours.embed(texts, true);
    await tfjs1(texts, { pooling: "mean", normalize: true });
    await tfjsN(texts, { pooling: "mean", normalize: true });
    for (let r = 0; r < runs; r++) {
      t.ours.push(await timeIt(() => ours.embed(texts, true)));
      t.tfjs1.push(await timeIt(() => tfjs1(texts, { pooling: "mean", normalize: true })));
      t.tfjsN.push(await timeIt(() => tfjsN(texts, { pooling: "mean", normalize: true })));
    }
    const single = texts.length === 1;
    const conv = (s) => (single ? s * 1e3 : texts.length / s);
    const unit = single ? "ms" : "sentences/s";
    report("ours, WebAssembly (1 thread)", what, t.ours.map(conv), unit);
    report("transformers.js, onnxruntime-node, 1 thread", what, t.tfjs1.map(conv), unit);
    report("transformers.js, onnxruntime-node, default", what, t.tfjsN.map(conv), unit);
  }
  ours.free();
  const cli = arg("--cli");
  for (const threads of ["1", "2"]) {
    const out = JSON.parse(execFileSync(cli, ["bench", "--task", "feature-extraction", "--model", minilm, "--json", "-t", threads, "-r", String(runs)], { encoding: "utf8" }));
    console.log(`ours, native, ${threads} thread(s): ${out.batch32_len16_sentences_per_s.toFixed(1)} / ${out.batch32_len128_sentences_per_s.toFixed(1)} sentences/s, ${out.single_len16_ms.toFixed(2)} ms`);
    results.push({ system: `ours, native, ${threads} thread(s)`, native: out });
  }
}

// Decode.
const smollm2 = arg("--smollm2");
if (smollm2) {
  const prompt = "Once upon a time";
  const newTokens = 128;
  const ours = new TextGenerator("smollm2", await readCheckpoint(smollm2));
  const onnx = arg("--onnx-smollm2");
  let tfjs1 = null;
  let tfjsN = null;
  if (onnx) {
    env.localModelPath = dirname(resolve(onnx)) + "/";
    tfjs1 = await pipeline("text-generation", basename(resolve(onnx)), {
      device: "cpu", dtype: "fp32", session_options: { intraOpNumThreads: 1, interOpNumThreads: 1 },
    });
    tfjsN = await pipeline("text-generation", basename(resolve(onnx)), { device: "cpu", dtype: "fp32" });
  }
  // transformers.js reports no timings: its decode rate is (128 - 1) tokens over the whole
  // call less the time of a 1-token call (prompt + first token).
  const tfjsRate = async (gen) => {
    const one = await timeIt(() => gen(prompt, { max_new_tokens: 1, do_sample: false }));
    const all = await timeIt(() => gen(prompt, { max_new_tokens: newTokens, min_new_tokens: newTokens, do_sample: false }));
    return (newTokens - 1) / (all - one);
  };
  const ids = ours.encode(prompt);
  const t = { ours: [], tfjs1: [], tfjsN: [] };
  for (let r = 0; r < runs; r++) {
    const out = ours.generate(ids, { max_new_tokens: newTokens, eos_token_id: [] });
    t.ours.push((out.ids.length - 1) / out.decodeSeconds);
    out.free();
    if (tfjs1) {
      t.tfjs1.push(await tfjsRate(tfjs1));
      t.tfjsN.push(await tfjsRate(tfjsN));
    }
  }
  report("ours, WebAssembly (1 thread), Q4_1", "decode tg128", t.ours, "tokens/s");
  if (tfjs1) {
    report("transformers.js, onnxruntime-node, 1 thread, fp32", "decode tg128", t.tfjs1, "tokens/s");
    report("transformers.js, onnxruntime-node, default, fp32", "decode tg128", t.tfjsN, "tokens/s");
  }
  ours.free();
  const cli = arg("--cli");
  for (const threads of ["1", "2"]) {
    const out = JSON.parse(execFileSync(cli, ["bench", "--model", smollm2, "--json", "-p", "16", "-n", String(newTokens), "-t", threads, "-r", String(runs)], { encoding: "utf8" }));
    console.log(`ours, native, ${threads} thread(s), Q4_1: tg${newTokens} ${out[`tg${newTokens}_tok_s`].toFixed(1)} tokens/s`);
    results.push({ system: `ours, native, ${threads} thread(s)`, native: out });
  }
}

console.log(JSON.stringify(results));
