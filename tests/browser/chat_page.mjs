// The chat page of `trustformers serve` in headless Chromium (Debian's package), driven by
// playwright-core: type a message, see the reply stream in, stop a reply mid-stream, and
// keep the conversation. Run by .ci/run:
//
//   node tests/browser/chat_page.mjs path/to/trustformers
//
// needs `npm install playwright-core` where node resolves it (NODE_PATH) and
// /usr/bin/chromium (or CHROMIUM). The server runs the default model (SmolLM2) on an
// ephemeral loopback port.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { launchChromium } from "./browser.mjs";

const bin = process.argv[2] || "target/debug/trustformers";

function fail(message) {
  console.error("FAIL " + message);
  process.exitCode = 1;
  throw new Error(message);
}

async function startServer() {
  const server = spawn(bin, ["serve", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: server.stdout });
  const line = await new Promise((resolve, reject) => {
    lines.once("line", resolve);
    server.once("exit", (code) => reject(new Error("the server exited with " + code)));
  });
  const match = line.match(/http:\/\/[0-9.:]+/);
  if (!match) fail("no address in " + JSON.stringify(line));
  const base = match[0];
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      if ((await fetch(base + "/health")).status === 200) return { server, base };
    } catch {}
    if (Date.now() > deadline) fail("the server did not become healthy");
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function metric(base, name) {
  const text = await (await fetch(base + "/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line === undefined ? NaN : Number(line.split(" ")[1]);
}

const { server, base } = await startServer();
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(base + "/");
  const replies = page.locator(".msg.assistant");

  // A message; the reply streams in and finishes.
  await page.fill("#input", "What is 2+2?");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 1);
  await page.waitForFunction(() => {
    const r = document.querySelector(".msg.assistant");
    return r && r.dataset.done === "1";
  }, null, { timeout: 120_000 });
  const first = await replies.nth(0).textContent();
  if (!first || first.startsWith("Error")) fail("no reply: " + JSON.stringify(first));
  const stats = await page.textContent("#stats");
  if (!/tokens\/s/.test(stats)) fail("no tokens/s shown: " + JSON.stringify(stats));
  console.log("ok   reply streamed: " + JSON.stringify(first) + " (" + stats + ")");

  // A long reply, stopped once text has appeared: it stops growing and the server drops
  // the sequence.
  await page.fill("#input", "Tell me a very long story about a dragon and a knight.");
  await page.click("#send");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll(".msg.assistant");
    return all.length === 2 && all[1].textContent.length > 20;
  }, null, { timeout: 120_000 });
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant")[1].dataset.done === "1");
  const stopped = await replies.nth(1).textContent();
  await page.waitForTimeout(500);
  if ((await replies.nth(1).textContent()) !== stopped) fail("the reply kept growing after Stop");
  let active = NaN;
  for (let i = 0; i < 50; i++) {
    active = await metric(base, "trustformers_active_sequences");
    if (active === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (active !== 0) fail("the stopped sequence is still running: " + active);
  console.log("ok   stopped after " + stopped.length + " characters; the server dropped the sequence");

  // The conversation goes on: the page sends the earlier turns too.
  let sent = null;
  page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) sent = JSON.parse(r.postData()); });
  await page.fill("#input", "Thanks!");
  await page.click("#send");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll(".msg.assistant");
    return all.length === 3 && all[2].dataset.done === "1";
  }, null, { timeout: 120_000 });
  if (!sent || sent.messages.length !== 5) fail("the conversation was not kept: " + JSON.stringify(sent && sent.messages));
  console.log("ok   the conversation is kept (" + sent.messages.length + " messages sent)");
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
console.log(process.exitCode ? "chat page checks failed" : "all chat page checks passed");
