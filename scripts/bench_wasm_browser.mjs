// The WebAssembly build against transformers.js where both run WebAssembly: a page in
// headless Chromium (Debian's package, driven by playwright-core) runs the same measurements
// as scripts/bench_wasm.mjs for ours and for transformers.js's browser build
// (onnxruntime-web, SIMD, one thread: a page that is not cross-origin isolated has no
// WebAssembly threads), taking turns within each round. Medians of the runs.
//
//   NODE_PATH=... node scripts/bench_wasm_browser.mjs --minilm DIR --onnx-minilm DIR
//     --smollm2 FILE.gguf --onnx-smollm2 DIR --tfjs NODE_MODULES [--runs 5]
//
// Files are served on an ephemeral loopback port. Build the package first
// (scripts/build_wasm.sh).

import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, serveFiles } from "../tests/browser/browser.mjs";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const root = fileURLToPath(new URL("../", import.meta.url));
// The resolved entry lies in the package's dist/, beside its browser build.
const tfjsDist = dirname(createRequire(join(resolve(arg("--tfjs")), "x.js")).resolve("@huggingface/transformers"));
const smollm2 = resolve(arg("--smollm2"));
const mounts = [
  ["/npm/", join(root, "crates", "trustformers-wasm", "npm")],
  ["/tfjs/", tfjsDist],
  ["/models/minilm/", resolve(arg("--minilm"))],
  ["/models/onnx-minilm/", resolve(arg("--onnx-minilm"))],
  ["/models/onnx-smollm2/", resolve(arg("--onnx-smollm2"))],
  ["/models/smollm2/", dirname(smollm2)],
];

const page = `<!doctype html><meta charset="utf-8"><title>bench</title><script type="module">
import { init, fetchCheckpoint, Embedder, TextGenerator } from "/npm/index.js";
import { pipeline, env } from "/tfjs/transformers.js";
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = "/models/";
env.backends.onnx.wasm.wasmPaths = "/tfjs/";
env.backends.onnx.wasm.numThreads = 1;
const runs = ${Number(arg("--runs", "5"))};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const WORDS = ["the", "of", "and", "to", "in", "is", "was", "he", "for", "it", "with", "as", "his", "on", "be", "at", "by", "she", "they", "from"];
const sentences = (count, tokens) => Array.from({ length: count }, (_, i) =>
  Array.from({ length: tokens - 2 }, (_, j) => WORDS[(i * 7 + j * 3) % WORDS.length]).join(" "));
async function timeIt(f) { const t = performance.now(); await f(); return (performance.now() - t) / 1e3; }
const results = [];
try {
  await init();
  const ours = new Embedder("minilm", await fetchCheckpoint("/models/minilm/"));
  const theirs = await pipeline("feature-extraction", "onnx-minilm", { device: "wasm", dtype: "fp32" });
  for (const [what, texts] of [["batch 32 x 16 tokens", sentences(32, 16)], ["batch 32 x 128 tokens", sentences(32, 128)], ["one 16-token sentence", sentences(1, 16)]]) {
    ours.embed(texts, true);
    await theirs(texts, { pooling: "mean", normalize: true });
    const a = [], b = [];
    for (let r = 0; r < runs; r++) {
      a.push(await timeIt(() => ours.embed(texts, true)));
      b.push(await timeIt(() => theirs(texts, { pooling: "mean", normalize: true })));
    }
    const single = texts.length === 1;
    const conv = (s) => (single ? s * 1e3 : texts.length / s);
    results.push({ what, unit: single ? "ms" : "sentences/s", ours: a.map(conv), transformers_js: b.map(conv) });
  }
  ours.free();
  const llm = new TextGenerator("smollm2", await fetchCheckpoint("/models/smollm2/${basename(smollm2)}"));
  const gen = await pipeline("text-generation", "onnx-smollm2", { device: "wasm", dtype: "fp32" });
  const prompt = "Once upon a time";
  const ids = llm.encode(prompt);
  const a = [], b = [];
  for (let r = 0; r < runs; r++) {
    const out = llm.generate(ids, { max_new_tokens: 128, eos_token_id: [] });
    a.push((out.ids.length - 1) / out.decodeSeconds);
    out.free();
    const one = await timeIt(() => gen(prompt, { max_new_tokens: 1, do_sample: false }));
    const all = await timeIt(() => gen(prompt, { max_new_tokens: 128, min_new_tokens: 128, do_sample: false }));
    b.push(127 / (all - one));
  }
  results.push({ what: "decode tg128", unit: "tokens/s", ours: a, transformers_js: b });
  window.done = { results };
} catch (e) {
  window.done = { error: String(e && e.stack ? e.stack : e) };
}
</script>`;

const { server, base } = await serveFiles(mounts, { "/": page });
const browser = await launchChromium();
try {
  const tab = await browser.newPage();
  await tab.goto(`${base}/`);
  await tab.waitForFunction(() => window.done !== undefined, null, { timeout: 1_500_000, polling: 1000 });
  const done = await tab.evaluate(() => window.done);
  if (done.error) throw new Error(done.error);
  for (const r of done.results) {
    const fmt = (xs) => `${median(xs).toFixed(2).padStart(8)} (${xs.map((v) => v.toFixed(1)).join(", ")})`;
    console.log(`${r.what.padEnd(24)} ours ${fmt(r.ours)}  transformers.js ${fmt(r.transformers_js)} ${r.unit}`);
  }
  console.log(JSON.stringify(done.results));
} finally {
  await browser.close();
  server.close();
}

function median(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}
