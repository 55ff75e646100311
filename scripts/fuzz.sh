#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for SECONDS each, seeded with the valid
# fixtures and the malformed-file corpus of crates/trustformers/tests/hostile_files.rs.
#
#   scripts/fuzz.sh 600                 # each target for 10 minutes
#   scripts/fuzz.sh 30 gguf_parse       # one target
#   JOBS=2 scripts/fuzz.sh 600          # two targets at a time
#
# Crashes land in fuzz/artifacts/<target>/; each one found becomes a case of the corpus.
# Prints one summary line per target: executions, and whether it found anything.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift || true
ALL=(gguf_parse safetensors_parse pickle_load tokenizer_json tokenize_text chat_template config_json optim_kwargs serve_request dataset_file adapter_config trainer_state image_decode compact_bpe)
[ $# -gt 0 ] && TARGETS=("$@") || TARGETS=("${ALL[@]}")
JOBS=${JOBS:-1}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked

# Seeds: the corpus mutants, dumped by the corpus test, and the fixtures.
SEEDS=fuzz/seeds
rm -rf "$SEEDS"
TRUSTFORMERS_CORPUS_DUMP="$PWD/$SEEDS/dump" cargo test -q -p trustformers --test hostile_files -- \
  --exact corpus_child --ignored >/dev/null
# The pickle of the .bin fixture (an uncompressed zip entry), for pickle_load.
mkdir -p "$SEEDS/dump/pickle"
(cd "$SEEDS/dump/pickle" && unzip -oq "$OLDPWD/tests/fixtures/llama_bin/pytorch_model.bin" '*/data.pkl' 2>/dev/null) || true
seed() { # target, find expression...
  local target=$1; shift
  mkdir -p "fuzz/corpus/$target"
  find "$SEEDS/dump" tests/fixtures "$@" -exec sh -c 'for f; do cp "$f" "fuzz/corpus/'"$target"'/$(cksum < "$f" | cut -d" " -f1)"; done' _ {} +
}
seed gguf_parse -type f -name '*.gguf'
seed safetensors_parse -type f -name '*.safetensors'
seed tokenizer_json -type f -name 'tokenizer.json'
seed tokenize_text -type f -name '*.txt' -size -64k
seed chat_template -type f -name 'chat_template.jinja'
seed config_json -type f -name 'config.json'
seed pickle_load -type f -name 'data.pkl'
seed adapter_config -type f -name 'adapter_config.json'
seed image_decode -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.webp' -o -name '*.gif' -o -name '*.bmp' \)
# trainer_state: a state as the Trainer writes it.
mkdir -p fuzz/corpus/trainer_state
printf '{"global_step": 3, "epoch": 1.5, "max_steps": 6, "log_history": [{"loss": 1.2, "step": 1}], "best_metric": null, "best_model_checkpoint": null, "trustformers_total_loss": 3.1}' > fuzz/corpus/trainer_state/state.json
# optim_kwargs: constructor and scheduler arguments as the fixtures and the CLI pass them.
mkdir -p fuzz/corpus/optim_kwargs
for kwargs in '{"lr": 0.01, "betas": [0.9, 0.99], "weight_decay": 0.1, "amsgrad": true}' \
    '{"lr": 0.1, "momentum": 0.9, "nesterov": true}' '{"optimizer": "AdamW", "k": 5, "alpha": 0.5}' \
    '{"max_lr": [0.1, 0.2], "total_steps": 100, "three_phase": true}' \
    '{"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 5, "mode": "exp_range", "gamma": 0.9}' \
    '{"num_cycles": 2, "min_lr_rate": 0.1, "num_decay_steps": 10}' '{"step_size": 3, "milestones": [2, 5]}'; do
  printf '%s' "$kwargs" > "fuzz/corpus/optim_kwargs/$(printf '%s' "$kwargs" | cksum | cut -d' ' -f1)"
done

# serve_request: request bodies and JSON schemas with a reply after a 0xFF byte.
mkdir -p fuzz/corpus/serve_request
for body in '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": true, "n": 2, "logit_bias": {"1": -100}, "stop": ["x"]}' \
    '{"prompt": [1, 2, 3], "echo": true, "logprobs": 2, "temperature": 0}' '{"input": ["a", "b"], "encoding_format": "base64"}' \
    '{"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"enum": ["x", 1, null]}, "c": {"type": "array", "items": {"type": "number"}}}, "required": ["a"]}}}}'; do
  printf '%s\377{"a": 12, "b": "x", "c": [1.5e3, -0]}' "$body" > "fuzz/corpus/serve_request/$(printf '%s' "$body" | cksum | cut -d' ' -f1)"
done

# dataset_file: a first byte choosing JSON Lines, CSV, text or Parquet, then the file.
mkdir -p fuzz/corpus/dataset_file
printf '\000{"text": "good", "label": 1}\n{"text": "bad", "label": "b"}\n' > fuzz/corpus/dataset_file/jsonl
printf '\001sentence,label\n"a, quoted",1\nplain,a\n' > fuzz/corpus/dataset_file/csv
printf '\002one line\n\nthree\n' > fuzz/corpus/dataset_file/txt
# Parquet (first byte 3): the fixtures datasets' files, as pyarrow writes them.
for f in tests/fixtures/train/*.parquet; do
    { printf '\003'; cat "$f"; } > "fuzz/corpus/dataset_file/$(basename "$f")"
done

# compact_bpe: text alone, and vocabularies made from the input (kind byte, tokens, NUL, text).
mkdir -p fuzz/corpus/compact_bpe
printf 'Hello world, \342\226\201 caf\303\251 \360\237\230\200 12345' > fuzz/corpus/compact_bpe/text
printf '\000\342\226\201\na\nb\nab\nba\nab\n<0x41>\n\342\226\201a\000ab aba \342\226\201ab A' > fuzz/corpus/compact_bpe/scores
printf '\001a\nb\n  \nab\nbab\000ba  ab' > fuzz/corpus/compact_bpe/gemma
printf '\002a\nb\n\304\240\nab\n\304\240a\000a ab ba' > fuzz/corpus/compact_bpe/ids

# An explicit target dir, so that CARGO_TARGET_DIR cannot move the binaries.
cargo +nightly fuzz build --target-dir fuzz/target
# Run the binaries built above, so that editing the sources meanwhile changes nothing.
BIN_DIR=$(ls -d fuzz/target/*/release | head -1)
export BIN_DIR
run_one() {
  local t=$1 log="fuzz/artifacts/$1.log"
  mkdir -p "fuzz/artifacts/$t"
  # -rss_limit_mb: an input that makes the target allocate more than this counts as a crash.
  # FUZZ_SEED fixes libFuzzer's mutation sequence (CI: a repeatable smoke run rather than a
  # new random walk each time).
  if "$BIN_DIR/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -max_len=262144 \
      ${FUZZ_SEED:+-seed="$FUZZ_SEED"} >"$log" 2>&1; then
    status=ok
  else
    status="FOUND (see $log and fuzz/artifacts/$t/)"
  fi
  execs=$(grep -Eo '^Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -1)
  echo "$t: ${execs:-0} executions in ${SECONDS_EACH}s: $status"
}
export -f run_one
export SECONDS_EACH FUZZ_SEED
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
