#!/usr/bin/env bash
# The main job: builds Ferry, packs a sample tree (this repository's own sources) into an EROFS
# image with its data in a separate blob device, serves it with ferryd over FUSE, verifies
# every file against the source tree and against the kernel's own erofs driver, and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
jobs=${FERRY_JOBS:-2}

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" --target ferryd

work=$(mktemp -d /tmp/ferry-demo-XXXXXX)
ferryd_pid=""
cleanup() {
  [[ -n "$ferryd_pid" ]] && kill "$ferryd_pid" 2>/dev/null && wait "$ferryd_pid" 2>/dev/null
  mountpoint -q "$work/ferry" && umount -l "$work/ferry"
  mountpoint -q "$work/kernel" && umount -l "$work/kernel"
  [[ -n "${loopdev:-}" ]] && losetup -d "$loopdev" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/tree" "$work/ferry" "$work/kernel"
cp -a "$repo/src" "$repo/docs" "$repo/README.md" "$work/tree/"
echo "== packing $(find "$work/tree" | wc -l) paths into an EROFS image (1 MiB chunks in a blob device)"
mkfs.erofs --quiet --chunksize=1048576 --blobdev="$work/blob" "$work/meta.erofs" "$work/tree"
printf '{"device":{"backend":{"type":"localfs","config":{"blob_file":"%s"}}}}\n' "$work/blob" >"$work/config.json"

echo "== serving it with ferryd"
build/bin/ferryd fuse --mountpoint "$work/ferry" --bootstrap "$work/meta.erofs" --config "$work/config.json" \
  --log-file "$work/ferryd.log" &
ferryd_pid=$!
for _ in $(seq 1 500); do mountpoint -q "$work/ferry" && break; sleep 0.01; done
mountpoint -q "$work/ferry" || { echo "ferryd did not mount"; cat "$work/ferryd.log"; exit 1; }

echo "== comparing every file with the source tree"
diff -r --no-dereference "$work/tree" "$work/ferry" && echo "identical content"

echo "== comparing with the kernel's erofs driver"
loopdev=$(losetup --find --show --read-only "$work/blob")
mount -t erofs -o ro,device="$loopdev" "$work/meta.erofs" "$work/kernel"
(cd "$work/kernel" && find . -printf '%p %M %U %G %s %T@ %n %l\n' | sort) >"$work/kernel.list"
(cd "$work/ferry" && find . -printf '%p %M %U %G %s %T@ %n %l\n' | sort) >"$work/ferry.list"
diff "$work/kernel.list" "$work/ferry.list" && echo "identical metadata ($(wc -l <"$work/ferry.list") paths)"

echo "== stopping ferryd (SIGTERM unmounts)"
kill -TERM "$ferryd_pid"; wait "$ferryd_pid"; ferryd_pid=""
mountpoint -q "$work/ferry" && { echo "still mounted!"; exit 1; }
echo "demo: OK"
