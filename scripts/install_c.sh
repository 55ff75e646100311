#!/usr/bin/env bash
# Builds the C library (release) and installs it with its headers and pkg-config file:
#   scripts/install_c.sh [PREFIX=/usr/local]
# then: cc app.c $(pkg-config --cflags --libs trustformers)
# (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig when PREFIX is not a system prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:-/usr/local}
cargo build --release -p trustformers-c
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
install -d "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 0755 target/release/libtrustformers_c.so "$PREFIX/lib/"
install -m 0644 target/release/libtrustformers_c.a "$PREFIX/lib/"
install -m 0644 crates/trustformers-c/include/trustformers.h crates/trustformers-c/include/trustformers.hpp "$PREFIX/include/"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$VERSION|" crates/trustformers-c/trustformers.pc.in \
  > "$PREFIX/lib/pkgconfig/trustformers.pc"
echo "installed into $PREFIX"
