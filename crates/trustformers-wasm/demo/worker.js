// Runs the models for the demo page: sentence embeddings for ranking, and chat with streamed
// replies. Messages in: load, rank, chat; out: ready, ranked, piece, done, error.
import { Embedder, fetchCheckpoint, init, TextGenerator } from "../npm/index.js";

let embedder = null;
let chat = null;

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

async function handle(data) {
  if (data.type === "load") {
    await init();
    embedder = new Embedder("embedder", await fetchCheckpoint(data.embedder));
    chat = new TextGenerator("chat", await fetchCheckpoint(data.chat));
    postMessage({ type: "ready", dimension: embedder.dimension, contextSize: chat.contextSize });
  } else if (data.type === "rank") {
    const dim = embedder.dimension;
    const all = embedder.embed([data.query, ...data.sentences]);
    const query = all.subarray(0, dim);
    const ranking = data.sentences
      .map((sentence, i) => ({ sentence, score: cosine(query, all.subarray((i + 1) * dim, (i + 2) * dim)) }))
      .sort((a, b) => b.score - a.score);
    postMessage({ type: "ranked", ranking });
  } else if (data.type === "chat") {
    const out = chat.chat(data.messages, data.options, (text) => {
      postMessage({ type: "piece", text });
    });
    postMessage({
      type: "done",
      text: out.text,
      tokens: out.ids.length,
      decodeSeconds: out.decodeSeconds,
      finishReason: out.finishReason,
    });
    out.free();
  }
}

onmessage = ({ data }) => {
  handle(data).catch((e) => postMessage({ type: "error", message: String(e && e.message ? e.message : e) }));
};
