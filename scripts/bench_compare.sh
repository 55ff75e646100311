#!/usr/bin/env bash
# Side-by-side generation benchmark on this machine: trustformers bench, llama.cpp
# (llama-cpp-python) and transformers (torch fp32, CPU) on the same GGUF files, the same
# threads and the same tests (pp128, pp512, tg128; median of REPS runs). Prints one JSON line
# per system and model, then a markdown table.
#
# Needs: a Python with torch, transformers, gguf and llama-cpp-python (PYTHON, default
# /work/.venv/bin/python or python3), and the models (tools/fetch_models.sh).
# Usage: scripts/bench_compare.sh [THREADS=2] [REPS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
REPS=${2:-5}
PY=${PYTHON:-$( [ -x /work/.venv/bin/python ] && echo /work/.venv/bin/python || echo python3 )}
CACHE=${TRUSTFORMERS_CACHE:-$HOME/.cache/trustformers}
MODELS=(
  "SmolLM2-135M-Instruct Q4_1|$CACHE/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
  "Gemma 3 270M Q4_K_M|$CACHE/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
)
SYSTEMS=${SYSTEMS:-"trustformers llama.cpp transformers"}
cargo build --release -q -p trustformers-cli
OUT=$(mktemp)
for entry in "${MODELS[@]}"; do
  name=${entry%%|*}; file=${entry##*|}
  for sys in $SYSTEMS; do
    if [ "$sys" = trustformers ]; then
      line=$(target/release/trustformers bench --model "$file" -t "$THREADS" -r "$REPS" --json 2>/dev/null) \
        || line='{"error": "not supported"}'
    else
      line=$("$PY" tools/bench_generation.py "$sys" "$file" -t "$THREADS" -r "$REPS" 2>/dev/null | tail -1) \
        || line='{"error": "failed"}'
    fi
    echo "$line"
    printf '%s\t%s\t%s\n' "$name" "$sys" "$line" >> "$OUT"
  done
done
echo
echo "| model | system | pp128 t/s | pp512 t/s | tg128 t/s | load s | peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
"$PY" - "$OUT" <<'PY'
import json, sys
for row in open(sys.argv[1]):
    name, system, line = row.rstrip("\n").split("\t", 2)
    d = json.loads(line)
    f = lambda k, p=1: "—" if d.get(k) is None else f"{d[k]:.{p}f}"
    print(f"| {name} | {system} | {f('pp128_tok_s')} | {f('pp512_tok_s')} | {f('tg128_tok_s')} | {f('load_s', 2)} | {f('peak_rss_mb', 0)} |")
PY
rm -f "$OUT"
