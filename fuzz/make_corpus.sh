#!/usr/bin/env bash
# Writes seed images for erofs_fuzz into OUT_DIR: one small tree, formatted by mkfs.erofs in
# every layout the reader supports (and one it rejects), so the fuzzer starts from real
# superblocks, inodes, directories, xattrs, chunk tables and device tables. Generated at CI
# time rather than committed: the seeds are binary and mkfs.erofs is installed anyway.
# Usage: fuzz/make_corpus.sh OUT_DIR   (needs mkfs.erofs; device nodes only when run as root)
set -euo pipefail
out=${1:?usage: make_corpus.sh OUT_DIR}
command -v mkfs.erofs >/dev/null || { echo "make_corpus.sh: mkfs.erofs not found (apt install erofs-utils)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tree="$work/tree"
mkdir -p "$tree/dir/sub" "$tree/many"
printf 'hello\n' > "$tree/small"
: > "$tree/empty"
head -c 4097 /dev/zero | tr '\0' 'z' > "$tree/dir/two_blocks"
head -c 300 /dev/zero | tr '\0' 't' > "$tree/dir/sub/tail"
ln -s small "$tree/link"
ln "$tree/small" "$tree/dir/hardlink"
for i in $(seq 1 40); do : > "$tree/many/entry_$i"; done  # empty: no data blocks
if command -v setfattr >/dev/null; then
  setfattr -n user.note -v inline "$tree/small"
  setfattr -n trusted.t -v trusted "$tree/dir"
  for f in many/entry_1 many/entry_2 many/entry_3; do setfattr -n user.shared -v shared "$tree/$f"; done
fi
if [ "$(id -u)" = 0 ]; then
  mknod "$tree/chr" c 1 3
  mkfifo "$tree/fifo"
fi

mk() {
  local name=$1; shift
  mkfs.erofs --quiet -T 0 -U 00000000-0000-0000-0000-000000000001 "$@" "$out/$name.erofs" "$tree" >/dev/null
}
mk default -x 1
mk extended -Eforce-inode-extended
mk noinline -Enoinline_data
mk chunk4k --chunksize=4096
mk chunk8k --chunksize=8192
# The fuzzer serves the input itself as the blob device, so only the image is a seed.
mk blob --chunksize=4096 --blobdev="$work/blob"
mk lz4 -zlz4
echo "wrote $(ls "$out" | wc -l) seed images to $out"
