#!/usr/bin/env bash
# The portable (non-x86) paths on ARM, the way phones run them: builds the C library, the
# CLI and the kernel, tokenizer, parity and C API tests for aarch64-unknown-linux-gnu with
# Debian's cross gcc as the linker, and runs them under qemu-user (the C and C++ programs
# too, built with the cross compilers). Installs what it needs. Takes about as long as a
# cold debug build plus the tests under emulation; not part of CI.
#
# Usage: scripts/cross_aarch64.sh [FIXTURE-FILTER for decoder_parity, default: every fixture]
set -euo pipefail
cd "$(dirname "$0")/.."
T=aarch64-unknown-linux-gnu
FILTER=${1:-}
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null \
  || ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user libc6-dev-arm64-cross >/dev/null
fi
rustup target add "$T" >/dev/null
RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$RUNNER"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export TRUSTFORMERS_TEST_CC=aarch64-linux-gnu-gcc
export TRUSTFORMERS_TEST_CXX=aarch64-linux-gnu-g++
export TRUSTFORMERS_TEST_RUNNER="$RUNNER"
export CARGO_INCREMENTAL=0

cargo build --target "$T" -p trustformers-cli -p trustformers-c
file "target/$T/debug/trustformers" "target/$T/debug/libtrustformers_c.so"
$RUNNER "target/$T/debug/trustformers" --version
cargo test --target "$T" -p trustformers-nn -p trustformers-tokenizers -p trustformers-generate
cargo test --target "$T" -p trustformers --test decoder_parity -- "$FILTER"
cargo test --target "$T" -p trustformers --test encoder_parity
cargo test --target "$T" -p trustformers-c --test c_api
echo "aarch64: all passed"
