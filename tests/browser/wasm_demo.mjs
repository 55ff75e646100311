// The WebAssembly demo page (crates/trustformers-wasm/demo) in headless Chromium (Debian's
// package), driven by playwright-core: the models load in the page's worker, sentences are
// ranked by embedding, and a chat reply streams in. Run by .ci/run after
// scripts/build_wasm.sh:
//
//   node tests/browser/wasm_demo.mjs [--embedder DIR|FILE.gguf] [--chat DIR|FILE.gguf]
//
// Defaults are the tiny fixtures (bert_base; the llama fixture with serve_chat's tokenizer);
// with the real models (all-MiniLM-L6-v2, SmolLM2) the ranking is checked for meaning too. Needs playwright-core where node resolves it (NODE_PATH) and
// /usr/bin/chromium (or CHROMIUM). Files are served on an ephemeral loopback port.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, serveFiles } from "./browser.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixtures = join(root, "tests", "fixtures");

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function fail(message) {
  console.error("FAIL " + message);
  process.exitCode = 1;
  throw new Error(message);
}

// The default chat model: the llama fixture's weights with serve_chat's tokenizer.
const scratch = mkdtempSync(join(tmpdir(), "trustformers-wasm-demo-"));
let chatModel = arg("--chat");
if (chatModel === undefined) {
  chatModel = join(scratch, "chat");
  mkdirSync(chatModel);
  for (const f of ["config.json", "model.safetensors"]) copyFileSync(join(fixtures, "llama", f), join(chatModel, f));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(fixtures, "serve_chat", f), join(chatModel, f));
}
const embedder = arg("--embedder") ?? join(fixtures, "bert_base");
const real = arg("--chat") !== undefined && arg("--embedder") !== undefined;

const { server, base } = await serveFiles([
  ["/demo/", join(root, "crates", "trustformers-wasm", "demo")],
  ["/npm/", join(root, "crates", "trustformers-wasm", "npm")],
  ["/models/embedder/", embedder],
  ["/models/chat/", chatModel],
]);
const url = (prefix, target) => `${base}${prefix}/${target.endsWith(".gguf") ? basename(target) : ""}`;

const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // fetchCheckpoint asks for the optional files of a checkpoint: a 404 is an answer.
  page.on("console", (m) => m.text().includes("404") || console.log("page: " + m.text()));
  const query = new URLSearchParams({
    embedder: url("/models/embedder", embedder),
    chat: url("/models/chat", chatModel),
    // The fixture's context is 64 tokens.
    max_new_tokens: real ? "48" : "16",
  });
  await page.goto(`${base}/demo/index.html?${query}`);
  await page.waitForFunction(() => /^(Ready|Error)/.test(document.getElementById("status").textContent), null, { timeout: 120_000 });
  const status = await page.textContent("#status");
  if (!status.startsWith("Ready")) fail("the models did not load: " + status);
  console.log("ok: " + status);

  await page.click("#rank");
  await page.waitForFunction(() => document.querySelectorAll("#ranking li").length === 5, null, { timeout: 60_000 });
  const ranking = await page.$$eval("#ranking li", (lis) => lis.map((li) => li.textContent));
  console.log("ok: ranked " + JSON.stringify(ranking));
  const scores = ranking.map((r) => Number(r.slice(0, r.indexOf(r.match(/[A-Z]/)[0]))));
  if (!scores.every((s, i) => Number.isFinite(s) && (i === 0 || s <= scores[i - 1]))) fail("scores not in order: " + ranking);
  if (real && !ranking[0].includes("A man is eating food.")) fail("the nearest sentence is not the one about eating: " + ranking[0]);

  // The fixture's character vocabulary replies to a short lowercase word.
  if (!real) await page.fill("#message", "hello");
  await page.click("#send");
  await page.waitForFunction(
    () => /tokens\/s/.test(document.getElementById("speed").textContent) || /^Error/.test(document.getElementById("status").textContent),
    null,
    { timeout: 300_000 },
  );
  const after = await page.textContent("#status");
  if (after.startsWith("Error")) fail("the chat failed: " + after);
  const reply = await page.textContent("#log .assistant");
  const speed = await page.textContent("#speed");
  if (reply.length === 0) fail("no reply text");
  if (real && reply.length < 20) fail("a short reply from SmolLM2: " + JSON.stringify(reply));
  console.log("ok: reply " + JSON.stringify(reply) + " (" + speed + ")");
  if (errors.length) fail("page errors: " + errors.join("; "));
} finally {
  await browser.close();
  server.close();
  rmSync(scratch, { recursive: true, force: true });
}
