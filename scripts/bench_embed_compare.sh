#!/usr/bin/env bash
# Side-by-side sentence-embedding benchmark: `trustformers bench --task feature-extraction`
# and sentence-transformers (torch fp32, CPU) on all-MiniLM-L6-v2 with the same sentences and
# threads; medians of REPS runs. Prints one JSON line per system, then a markdown table.
#
# Needs: a Python with torch and sentence-transformers (PYTHON, default /work/.venv/bin/python
# or python3), and the model (tools/fetch_models.sh).
# Usage: scripts/bench_embed_compare.sh [THREADS=2] [REPS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
REPS=${2:-5}
PY=${PYTHON:-$( [ -x /work/.venv/bin/python ] && echo /work/.venv/bin/python || echo python3 )}
MODEL=${TRUSTFORMERS_CACHE:-$HOME/.cache/trustformers}/all-minilm-l6-v2
cargo build --release -q -p trustformers-cli
ours=$(target/release/trustformers bench --task feature-extraction --model "$MODEL" -t "$THREADS" -r "$REPS" --json)
theirs=$("$PY" tools/bench_embeddings.py "$MODEL" -t "$THREADS" -r "$REPS" 2>/dev/null | tail -1)
echo "$ours"
echo "$theirs"
echo
"$PY" - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| system | batch 32 x 16 tok (sent/s) | batch 32 x 128 tok (sent/s) | one 16-tok sentence (ms) |")
print("|---|---|---|---|")
for name, r in [("trustformers", ours), ("sentence-transformers", theirs)]:
    print(f"| {name} | {r['batch32_len16_sentences_per_s']:.1f} | {r['batch32_len128_sentences_per_s']:.1f} | {r['single_len16_ms']:.2f} |")
print(f"| ratio | {ours['batch32_len16_sentences_per_s'] / theirs['batch32_len16_sentences_per_s']:.2f}x "
      f"| {ours['batch32_len128_sentences_per_s'] / theirs['batch32_len128_sentences_per_s']:.2f}x "
      f"| {theirs['single_len16_ms'] / ours['single_len16_ms']:.2f}x faster |")
PY
