// TrustformeRS in WebAssembly. `await init()` once, then use the classes:
//
//   import { init, TextGenerator, Embedder, Tokenizer, readCheckpoint } from "trustformers";
//   await init();
//   const llm = new TextGenerator("smollm2", ggufBytes);
//   const reply = llm.chat([{ role: "user", content: "Hi!" }], { max_new_tokens: 40 });
//
// A checkpoint is handed over as bytes: one GGUF file (a Uint8Array), or an object mapping
// each file's path inside the checkpoint to its bytes ({"config.json": ..., ...}).
// `fetchCheckpoint` (browser) and `readCheckpoint` (Node) gather those.

import initWasm, { Embedder, Generation, TextGenerator, Tokenizer } from "./pkg/trustformers_wasm.js";

export { Embedder, Generation, TextGenerator, Tokenizer };

const isNode = typeof process !== "undefined" && process.versions != null && process.versions.node != null;

let ready = null;

/**
 * Loads and instantiates the WebAssembly module (once; later calls return the same
 * promise). `wasm` overrides where it comes from: a URL, a Response, its bytes or a
 * WebAssembly.Module. By default a browser fetches the file next to this script and Node
 * reads it from the package.
 */
export function init(wasm) {
  if (ready === null) {
    ready = (async () => {
      let source = wasm;
      if (source === undefined && isNode) {
        const { readFile } = await import("node:fs/promises");
        source = await readFile(new URL("./pkg/trustformers_wasm_bg.wasm", import.meta.url));
      }
      await initWasm(source === undefined ? undefined : { module_or_path: source });
    })();
    ready.catch(() => {
      ready = null;
    });
  }
  return ready;
}

/** Files a checkpoint directory may hold that the loaders read. */
const CHECKPOINT_FILES = [
  "config.json",
  "model.safetensors",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.jinja",
  "modules.json",
  "sentence_bert_config.json",
];

/** The module directories modules.json lists (Pooling, Dense, ...), each with its files. */
function moduleFiles(modulesJson) {
  const names = [];
  for (const module of JSON.parse(new TextDecoder().decode(modulesJson))) {
    if (typeof module.path !== "string" || module.path === "") continue;
    names.push(`${module.path}/config.json`, `${module.path}/model.safetensors`);
  }
  return names;
}

/**
 * Node: the files of the checkpoint directory `dir` that the loaders read, as an object of
 * bytes for `new Embedder(...)` / `new TextGenerator(...)` / `Tokenizer.fromFiles(...)`;
 * a `.gguf` path gives that file's bytes.
 */
export async function readCheckpoint(dir) {
  const { readFile } = await import("node:fs/promises");
  const { join } = await import("node:path");
  if (String(dir).endsWith(".gguf")) return new Uint8Array(await readFile(dir));
  const read = async (name) => {
    try {
      return new Uint8Array(await readFile(join(dir, name)));
    } catch (e) {
      if (e.code === "ENOENT") return null;
      throw e;
    }
  };
  return gather(read);
}

/**
 * Browser: the files of the checkpoint at `baseUrl` (a directory URL, as the Hub's
 * `https://huggingface.co/<repo>/resolve/main/`) that the loaders read; a URL ending in
 * `.gguf` gives that file's bytes.
 */
export async function fetchCheckpoint(baseUrl) {
  // A relative URL is relative to the page (or worker) that asks.
  const base = new URL(String(baseUrl), globalThis.location?.href).href;
  const get = async (url) => {
    const response = await fetch(url);
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  if (base.endsWith(".gguf")) {
    const bytes = await get(base);
    if (bytes === null) throw new Error(`${base}: not found`);
    return bytes;
  }
  const dir = base.endsWith("/") ? base : `${base}/`;
  return gather((name) => get(new URL(name, dir)));
}

async function gather(read) {
  const files = {};
  for (const name of CHECKPOINT_FILES) {
    const bytes = await read(name);
    if (bytes !== null) files[name] = bytes;
  }
  if (files["modules.json"]) {
    for (const name of moduleFiles(files["modules.json"])) {
      const bytes = await read(name);
      if (bytes !== null) files[name] = bytes;
    }
  }
  return files;
}
