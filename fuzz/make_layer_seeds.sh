#!/usr/bin/env bash
# Writes seed layers for layer_fuzz into DIR: small tars in the formats OCI layers use (PAX with
# xattrs, long names, hard links, whiteouts; GNU; gzip and zstd).
# Usage: fuzz/make_layer_seeds.sh DIR
set -euo pipefail
out=${1:?usage: fuzz/make_layer_seeds.sh DIR}
mkdir -p "$out"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/d/sub" "$src/$(printf 'l%.0s' {1..120})"
printf 'hello\n' >"$src/d/f"
head -c 10000 /dev/zero | tr '\0' 'x' >"$src/d/sub/big"
ln "$src/d/f" "$src/d/hard"
ln -s ../d/f "$src/d/sym"
mkfifo "$src/fifo"
: >"$src/d/.wh.gone"
: >"$src/d/sub/.wh..wh..opq"
setfattr -n user.seed -v value "$src/d/f" 2>/dev/null || true
tar --format=pax --xattrs -C "$src" -cf "$out/pax.tar" .
tar --format=gnu -C "$src" -cf "$out/gnu.tar" .
gzip -9c "$out/pax.tar" >"$out/pax.tar.gz"
zstd -q -c "$out/gnu.tar" >"$out/gnu.tar.zst" 2>/dev/null || true
