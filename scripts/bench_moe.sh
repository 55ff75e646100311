#!/usr/bin/env bash
# Mixture-of-experts decode, side by side with llama.cpp on one GGUF file: a Qwen3-MoE-shaped
# model with random weights (scripts/make_moe_bench_model.py: 16 layers, 64 experts, top 8),
# quantized to Q4_K_M by llama.cpp's own llama-quantize. Two interleaved rounds (the second
# in the opposite order) of `trustformers bench` and `llama-bench`, the same tests and
# threads, medians of REPS runs; prints both tools' JSON lines.
#
# Needs: LLAMA_CPP_BIN, a directory with llama.cpp's llama-bench and llama-quantize (built
# from the llama-cpp-python sdist's vendor/llama.cpp; on AMX hosts with -DGGML_NATIVE=OFF
# -DGGML_AVX512=ON ..., see BENCHMARKS.md), a Python with numpy and gguf (PYTHON), and
# SmolLM2's GGUF for the tokenizer (tools/fetch_models.sh).
# Usage: LLAMA_CPP_BIN=... scripts/bench_moe.sh [THREADS=2] [REPS=5] [WORK=/tmp/moe-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
REPS=${2:-5}
WORK=${3:-/tmp/moe-bench}
PY=${PYTHON:-python3}
BIN=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to the build/bin directory of llama.cpp}
CACHE=${TRUSTFORMERS_CACHE:-$HOME/.cache/trustformers}
SMOLLM2=$CACHE/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$WORK"
F16=$WORK/qwen3moe-bench-f16.gguf
MODEL=$WORK/qwen3moe-bench-q4_k_m.gguf
[ -f "$F16" ] || "$PY" scripts/make_moe_bench_model.py "$SMOLLM2" "$F16"
[ -f "$MODEL" ] || "$BIN/llama-quantize" "$F16" "$MODEL" Q4_K_M 2 >/dev/null 2>&1
cargo build --release -q -p trustformers-cli
ours() {
  target/release/trustformers bench --model "$MODEL" -t "$THREADS" -r "$REPS" -p 128 -n 128 --json
}
theirs() {
  "$BIN/llama-bench" -m "$MODEL" -t "$THREADS" -r "$REPS" -p 128 -n 128 -o jsonl 2>/dev/null
}
echo "# round 1: trustformers, then llama.cpp"
ours
theirs
echo "# round 2: llama.cpp, then trustformers"
theirs
ours
