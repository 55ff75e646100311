import { Embedder, Generation, TextGenerator, Tokenizer } from "./pkg/trustformers_wasm.js";

export { Embedder, Generation, TextGenerator, Tokenizer };

/** A checkpoint's files by their path inside it (`"config.json"`, `"1_Pooling/config.json"`, ...). */
export type CheckpointFiles = Record<string, Uint8Array>;

/** A checkpoint handed over in memory: one GGUF file's bytes, or its files. */
export type Checkpoint = Uint8Array | CheckpointFiles;

/** Chat messages, as transformers' `apply_chat_template` takes them. */
export interface ChatMessage {
  role: string;
  content: string | unknown;
  [extra: string]: unknown;
}

/** transformers' generation_config fields, over the model's own defaults. */
export interface GenerationOptions {
  max_new_tokens?: number;
  min_new_tokens?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  typical_p?: number;
  repetition_penalty?: number;
  no_repeat_ngram_size?: number;
  seed?: number;
  stop_strings?: string | string[];
  eos_token_id?: number | number[];
  [field: string]: unknown;
}

/**
 * Loads and instantiates the WebAssembly module (once). `wasm` overrides where it comes
 * from; by default a browser fetches the file next to the package's script and Node reads
 * it from the package.
 */
export function init(
  wasm?: string | URL | Response | BufferSource | WebAssembly.Module,
): Promise<void>;

/** Node: the files of a checkpoint directory the loaders read (a `.gguf` path: its bytes). */
export function readCheckpoint(dir: string): Promise<Checkpoint>;

/** Browser: the files of the checkpoint at a directory URL (a `.gguf` URL: its bytes). */
export function fetchCheckpoint(baseUrl: string | URL): Promise<Checkpoint>;
