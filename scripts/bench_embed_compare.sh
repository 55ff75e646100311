#!/usr/bin/env bash
# Side-by-side sentence-embedding benchmark on all-MiniLM-L6-v2 with the same sentences and
# threads, medians of REPS runs: `trustformers bench --task feature-extraction` in f32 and in
# int8 (`--dtype q8`), sentence-transformers (torch fp32, CPU) and onnxruntime running the
# model exported with torch.onnx and quantized by `quantize_dynamic` (weights QInt8). Prints
# one JSON line per system, then a markdown table.
#
# Needs: a Python with torch, sentence-transformers, onnx and onnxruntime (PYTHON, default
# /work/.venv/bin/python or python3), and the model (tools/fetch_models.sh).
# Usage: scripts/bench_embed_compare.sh [THREADS=2] [REPS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
REPS=${2:-5}
PY=${PYTHON:-$( [ -x /work/.venv/bin/python ] && echo /work/.venv/bin/python || echo python3 )}
MODEL=${TRUSTFORMERS_CACHE:-$HOME/.cache/trustformers}/all-minilm-l6-v2
cargo build --release -q -p trustformers-cli
bench() { target/release/trustformers bench --task feature-extraction --model "$MODEL" -t "$THREADS" -r "$REPS" --json "$@"; }
f32=$(bench --dtype f32)
q8=$(bench --dtype q8)
st=$("$PY" tools/bench_embeddings.py "$MODEL" -t "$THREADS" -r "$REPS" 2>/dev/null | tail -1)
ort=$(cd tools && "$PY" bench_embeddings_onnx.py "$MODEL" -t "$THREADS" -r "$REPS" 2>/dev/null | tail -1)
printf '%s\n' "$f32" "$q8" "$st" "$ort"
echo
"$PY" - "$f32" "$q8" "$st" "$ort" <<'PY'
import json, sys
f32, q8, st, ort = (json.loads(a) for a in sys.argv[1:])
print("| system | batch 32 x 16 tok (sent/s) | batch 32 x 128 tok (sent/s) | one 16-tok sentence (ms) |")
print("|---|---|---|---|")
for name, r in [("trustformers f32", f32), ("trustformers q8", q8),
                ("sentence-transformers (torch f32)", st), ("onnxruntime int8", ort)]:
    print(f"| {name} | {r['batch32_len16_sentences_per_s']:.1f} | {r['batch32_len128_sentences_per_s']:.1f} | {r['single_len16_ms']:.2f} |")
for (name, a, b) in [("f32 / sentence-transformers", f32, st), ("q8 / onnxruntime int8", q8, ort)]:
    print(f"| {name} | {a['batch32_len16_sentences_per_s'] / b['batch32_len16_sentences_per_s']:.2f}x "
          f"| {a['batch32_len128_sentences_per_s'] / b['batch32_len128_sentences_per_s']:.2f}x "
          f"| {b['single_len16_ms'] / a['single_len16_ms']:.2f}x faster |")
PY
