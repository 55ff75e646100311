#!/usr/bin/env bash
# Builds the WebAssembly package: crates/trustformers-wasm for wasm32-unknown-unknown
# (release, SIMD128), then wasm-bindgen's ES-module bindings into
# crates/trustformers-wasm/npm/pkg. `--pack` also runs `npm pack` there (trustformers-*.tgz).
#
# Needs: rustup target add wasm32-unknown-unknown; cargo install wasm-bindgen-cli at the
# version crates/trustformers-wasm/Cargo.toml pins.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${WASM_PROFILE:-release}"
cargo build --profile "$PROFILE" --target wasm32-unknown-unknown -p trustformers-wasm
dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
wasm-bindgen --target web --out-dir crates/trustformers-wasm/npm/pkg --out-name trustformers_wasm \
  "$TARGET_DIR/wasm32-unknown-unknown/$dir/trustformers_wasm.wasm"
ls -l crates/trustformers-wasm/npm/pkg/trustformers_wasm_bg.wasm
if [ "${1:-}" = "--pack" ]; then
  (cd crates/trustformers-wasm/npm && npm pack)
fi
