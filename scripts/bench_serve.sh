#!/usr/bin/env bash
# trustformers serve against llama.cpp's llama-server, side by side on one model, 2 threads:
# aggregate generated tokens/s and time to first token at 1, 4, 8 and 16 concurrent streams
# (128-token prompts, 128 new tokens), two rounds in alternating order.
# Usage: LLAMA_SERVER=path/to/llama-server scripts/bench_serve.sh [MODEL.gguf] [EOS_IDS]
# (defaults: SmolLM2-135M-Instruct Q4_1 from tools/fetch_models.sh, EOS ids 0,1,2).
# llama-server is built from the llama-cpp-python sdist's vendored llama.cpp
# (cmake -B build -DGGML_NATIVE=OFF -DGGML_AVX512=ON ... && cmake --build build --target llama-server).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-$HOME/.cache/trustformers/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
EOS=${2:-0,1,2}
STREAMS=${STREAMS:-1,4,8,16}
cargo build -q --release -p trustformers-cli
export RAYON_NUM_THREADS=2

wait_healthy() {
  for _ in $(seq 240); do
    curl -sf -o /dev/null "$1/health" && return 0
    sleep 0.5
  done
  echo "no answer from $1" >&2
  return 1
}

ours() {
  target/release/trustformers serve --model "$MODEL" --port 18090 --max-batch-size 16 >/dev/null &
  local pid=$!
  wait_healthy http://127.0.0.1:18090
  scripts/bench_serve.py http://127.0.0.1:18090 --streams "$STREAMS" --eos "$EOS" --label trustformers
  kill "$pid"; wait "$pid" || true
}

llama() {
  [ -n "${LLAMA_SERVER:-}" ] || { echo "LLAMA_SERVER not set: skipping llama-server" >&2; return 0; }
  "$LLAMA_SERVER" -m "$MODEL" --port 18091 -t 2 -tb 2 -np 16 -cb -c 8192 >/dev/null 2>&1 &
  local pid=$!
  wait_healthy http://127.0.0.1:18091
  scripts/bench_serve.py http://127.0.0.1:18091 --streams "$STREAMS" --eos "$EOS" --label llama-server
  kill "$pid"; wait "$pid" || true
}

ours; llama; llama; ours
