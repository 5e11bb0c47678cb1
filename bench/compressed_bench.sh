#!/usr/bin/env bash
# Compressed-image benchmark: ferryd serving a zstd Ferry image vs ferryd serving the same
# layers made with --compressor none vs the kernel's erofs mounting that none image (its blobs
# as loop devices), measured in one run, the three systems interleaved round by round.
#
# Usage: bench/compressed_bench.sh [--tree DIR] [--rounds N] [--rand-files N] [--rand-reads K]
#                                  [--chunk-size N] [--help]
#
#   --tree DIR        tree packed into one tar layer (default /usr/share)
#   --rounds N        rounds; every number is the median over them (default 3)
#   --rand-files N    random-read test: the N largest regular files >= 64 KiB (default 200)
#   --rand-reads K    pread(4096) calls per file (default 50)
#   --chunk-size N    ferry-image --chunk-size (default 1048576)
#
# Needs root (mount, loop devices, drop_caches), tar, python3, and build/bin/{ferryd,ferry-image}.
# Everything lives in one private temp dir (under $TMPDIR, else /var/tmp); on exit, failure or
# Ctrl-C it stops its own ferryd processes (by pid), unmounts its own mounts, detaches its own
# loop devices and removes the temp dir. It prints a table; it writes no document (run it on a
# quiet machine and paste the table into docs/benchmarks.md).
#
# Per round, for each system:
#   cold tar   sync + drop_caches, then `tar -C MNT -cf - . | wc -c` (the byte count is checked
#              against the other systems)
#   rand 4K    bench/randread.py over the same files and seeded offsets: once after
#              drop_caches (cold), then warm (the pass 5 times back to back); the bytes read are
#              hashed in an untimed pass and must agree across systems.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_lib_init compressed_bench "$@"
PYTHON=${PYTHON:-python3}
FERRYD=$REPO/build/bin/ferryd
FERRY_IMAGE=$REPO/build/bin/ferry-image
TREE=/usr/share
ROUNDS=3
RAND_FILES=200
RAND_READS=50
CHUNK_SIZE=1048576
WRITE_DOC=0
OUT=
while [[ $# -gt 0 ]]; do
  case $1 in
    --tree) need_val "$@"; TREE=$2; shift 2 ;;
    --rand-files) need_val "$@"; RAND_FILES=$2; shift 2 ;;
    --rand-reads) need_val "$@"; RAND_READS=$2; shift 2 ;;
    --chunk-size) need_val "$@"; CHUNK_SIZE=$2; shift 2 ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done
is_uint "$ROUNDS" || die "--rounds must be a positive integer"
[[ $(id -u) -eq 0 ]] || die "needs root (mounts, loop devices, drop_caches)"
[[ -x $FERRYD && -x $FERRY_IMAGE ]] || die "build ferryd and ferry-image first (cmake --build build --target ferryd ferry-image)"
[[ -d $TREE ]] || die "no tree '$TREE'"

make_work compressed_bench
PIDS=()
LOOPS=()
cleanup() {
  local pid l m
  for pid in "${PIDS[@]}"; do stop_child "$pid" ferryd TERM 5; done
  for m in $(mounts_below "$WORK"); do umount "$m" 2>/dev/null || umount -l "$m"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  unmount_and_remove "$WORK"
}
trap cleanup EXIT
set_signal_traps

log "packing $TREE into one tar layer"
tar --format=pax -C "$TREE" -cf "$WORK/layer.tar" . 2>/dev/null || [[ -s $WORK/layer.tar ]]
for c in zstd none; do
  mkdir -p "$WORK/blobs-$c"
  "$FERRY_IMAGE" create --bootstrap "$WORK/$c.boot" --blob-dir "$WORK/blobs-$c" --compressor "$c" \
    --chunk-size "$CHUNK_SIZE" "$WORK/layer.tar" >"$WORK/$c.json"
  printf '{"device":{"backend":{"type":"localfs","config":{"dir":"%s"}}}}' "$WORK/blobs-$c" >"$WORK/$c.cfg"
done
log "zstd blobs: $(du -sb "$WORK/blobs-zstd" | cut -f1) bytes; none: $(du -sb "$WORK/blobs-none" | cut -f1) bytes"

# The random-read file list: the largest files >= 64 KiB, as "SIZE<TAB>PATH" records.
(cd "$TREE" && find . -type f -size +64k -printf '%s\t%P\0' 2>/dev/null) |
  sort -z -t$'\t' -k1,1nr | head -z -n "$RAND_FILES" >"$WORK/list"

mount_system() {  # name -> mountpoint at $WORK/mnt-name
  local name=$1 mnt=$WORK/mnt-$1 dev opts=ro
  mkdir -p "$mnt"
  case $name in
    kernel-none)
      for dev in $("$PYTHON" -c 'import json,sys; [print(b["path"]) for b in json.load(open(sys.argv[1]))["blobs"]]' "$WORK/none.json"); do
        l=$(losetup --find --show --read-only "$dev"); LOOPS+=("$l"); opts+=",device=$l"
      done
      mount -t erofs -o "$opts" "$WORK/none.boot" "$mnt" ;;
    ferryd-zstd|ferryd-none)
      local c=${name#ferryd-}
      "$FERRYD" fuse --mountpoint "$mnt" --bootstrap "$WORK/$c.boot" --config "$WORK/$c.cfg" \
        --apisock "$WORK/$name.sock" --log-file "$WORK/$name.log" &
      PIDS+=($!)
      for _ in $(seq 100); do grep -q " $mnt fuse" /proc/self/mounts && break; sleep 0.1; done
      grep -q " $mnt fuse" /proc/self/mounts || die "ferryd did not mount $name (log: $WORK/$name.log)" ;;
  esac
}
for s in ferryd-zstd ferryd-none kernel-none; do mount_system "$s"; done

now() { date +%s.%N; }
declare -A COLD RANDC RANDW BYTES DIGEST
SYSTEMS=(ferryd-zstd ferryd-none kernel-none)
for ((r = 0; r < ROUNDS; r++)); do
  for ((k = 0; k < ${#SYSTEMS[@]}; k++)); do
    s=${SYSTEMS[$(((k + r) % ${#SYSTEMS[@]}))]}
    mnt=$WORK/mnt-$s
    sync; echo 3 >/proc/sys/vm/drop_caches
    t0=$(now); b=$(tar -C "$mnt" -cf - . | wc -c); t1=$(now)
    COLD[$s]+="$(printf '%.3f' "$(echo "$t1 - $t0" | bc)") "; BYTES[$s]=$b
    sync; echo 3 >/proc/sys/vm/drop_caches
    read -r _ secs _ < <("$PYTHON" "$SCRIPT_DIR/randread.py" --root "$mnt" --list "$WORK/list" --reads "$RAND_READS")
    RANDC[$s]+="$secs "
    read -r _ secs _ < <("$PYTHON" "$SCRIPT_DIR/randread.py" --root "$mnt" --list "$WORK/list" --reads "$RAND_READS" --repeat 5)
    RANDW[$s]+="$secs "
    DIGEST[$s]=$("$PYTHON" "$SCRIPT_DIR/randread.py" --root "$mnt" --list "$WORK/list" --reads "$RAND_READS" --digest | awk '/^digest/ {print $2}')
    log "round $((r + 1)) $s done"
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| system | cold tar (s) | cold rand 4K (s) | warm rand 4K x5 (s) | bytes | digest |\n|---|---|---|---|---|---|\n'
for s in "${SYSTEMS[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "$(median <<<"${COLD[$s]}")" "$(median <<<"${RANDC[$s]}")" \
    "$(median <<<"${RANDW[$s]}")" "${BYTES[$s]}" "${DIGEST[$s]:0:12}"
done
[[ ${BYTES[ferryd-zstd]} == "${BYTES[kernel-none]}" && ${DIGEST[ferryd-zstd]} == "${DIGEST[kernel-none]}" &&
   ${DIGEST[ferryd-none]} == "${DIGEST[kernel-none]}" ]] || die "the systems returned different bytes"
echo "command: $COMMAND_LINE; rounds $ROUNDS; $(nproc) CPUs; $(uname -r)"
