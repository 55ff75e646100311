#!/usr/bin/env bash
# Greedy generation with the integer prefill (the default where the CPU has AVX-512 VNNI or
# AVX2) against the f32 prefill (`TRUSTFORMERS_F32_PREFILL=1`) on the real GGUF models, for
# prompts long enough (32 tokens and more) to take the prefill kernels. Prints, per model
# and prompt, whether the token ids are the same, or where they first differ and by how much
# the top token led the second there in each run (log-probabilities).
#
# Usage: scripts/prefill_greedy_check.sh [MAX_NEW_TOKENS=48]
set -euo pipefail
cd "$(dirname "$0")/.."
NEW=${1:-48}
cargo build --release -q -p trustformers-cli
BIN=target/release/trustformers
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PROMPTS=(
  "The history of the Roman Empire spans more than a thousand years, from the founding of the city to the fall of Constantinople. Historians usually divide it into several periods, beginning with"
  "Write a Python function that takes a list of integers and returns a new list containing only the even numbers, sorted in descending order. Explain each step of your solution briefly."
  "Photosynthesis is the process by which green plants and some other organisms use sunlight to synthesize foods from carbon dioxide and water. In plants, it generally involves the green pigment"
  "The following is a conversation between a customer and a support agent about a delayed package. Customer: Hi, my order was supposed to arrive last Tuesday but it still has not come. Agent:"
  "def quicksort(items):\n    \"\"\"Sort a list with the quicksort algorithm and return a new list.\"\"\"\n    if len(items) <= 1:\n        return items\n    pivot = items[len(items) // 2]\n"
  "Les grandes villes européennes attirent chaque année des millions de visiteurs. Paris, avec la tour Eiffel et le musée du Louvre, reste l'une des destinations les plus populaires, mais"
)
run() { "$BIN" generate --model "$1" --raw --max-new-tokens "$NEW" --json --top-logprobs 2 "$2" 2>/dev/null; }
same=0; total=0
for model in smollm2-135m-instruct gemma-3-270m; do
  for p in "${PROMPTS[@]}"; do
    prompt=$(printf '%b' "$p")
    run "$model" "$prompt" > "$TMP/int.json"
    TRUSTFORMERS_F32_PREFILL=1 run "$model" "$prompt" > "$TMP/f32.json"
    total=$((total + 1))
    verdict=$(python3 - "$TMP/int.json" "$TMP/f32.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
ia, ib = a["token_ids"], b["token_ids"]
if ia == ib:
    print("same")
    sys.exit()
i = next((i for i in range(min(len(ia), len(ib))) if ia[i] != ib[i]), min(len(ia), len(ib)))
def margin(d):
    top = d["logprobs"][i]["top_logprobs"]
    return f"{top[0]['token']!r} by {top[0]['logprob'] - top[1]['logprob']:.3f} over {top[1]['token']!r}"
print(f"new token {i} differs: int {margin(a)}; f32 {margin(b)} (log-probability margins)")
PY
)
    [ "$verdict" = same ] && same=$((same + 1))
    echo "$model | $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["prompt_tokens"])' "$TMP/int.json") prompt tokens | ${prompt:0:40}... | $verdict"
  done
done
echo "$same of $total prompts give the same greedy ids"
