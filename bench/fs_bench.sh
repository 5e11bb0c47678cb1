#!/usr/bin/env bash
# Filesystem benchmark: ferryd (kernel FUSE, EROFS image) vs the kernel's erofs driver (loop
# device) vs squashfuse (squashfs image of the same tree), measured in one run with the three
# systems interleaved round by round, so that machine noise hits all of them alike.
#
# Usage: bench/fs_bench.sh [--tree DIR] [--ferryd PATH] [--rounds N] [--out FILE]
#                          [--skip-ferryd] [--thread-num N] [--rand-files N] [--rand-reads K]
#                          [--squashfuse-opts OPTS] [--no-doc]
#
#   --tree DIR        tree to pack into both images (default /usr/share)
#   --ferryd PATH     ferryd binary (default build/bin/ferryd under the repo root)
#   --rounds N        rounds; every number reported is the median over them (default 3)
#   --out FILE        markdown file whose fs-bench section is rewritten (default docs/benchmarks.md)
#   --skip-ferryd     measure kernel erofs and squashfuse only (for when ferryd is not built)
#   --thread-num N    pass --thread-num N to ferryd (default: ferryd's own default)
#   --rand-files N    random-read test: the N largest regular files >= 64 KiB (default 200)
#   --rand-reads K    random-read test: pread(4096) calls per file (default 50)
#   --squashfuse-opts OPTS  pass -o OPTS to squashfuse (default none, e.g. kernel_cache)
#   --no-doc          print the table only; leave the markdown file alone
#
# Needs root (mount, loop devices, drop_caches), mkfs.erofs, mksquashfs, unsquashfs, squashfuse,
# python3. Everything it creates lives in one private temp dir (under $TMPDIR, else /var/tmp); on
# exit, failure or Ctrl-C it stops its own ferryd/squashfuse (by pid), unmounts its own mounts,
# detaches its own loop device and removes the temp dir.
#
# Measurements, per round, for each system in an order rotated every round:
#   cold tar   sync + drop_caches, then `tar -C MNT -cf - . | wc -c` (tar must not see /dev/null:
#              GNU tar skips reading file data when writing to it); the byte count is checked
#              against the tree's data size and across systems.
#   warm walk  one untimed `find MNT -printf '%s %m %U\n'` (lstat()s every entry), then the same
#              walk timed; the entry count is checked against the source tree.
#   rand 4K    bench/randread.py: the same files, the same seeded 4 KiB-aligned offsets, open +
#              K x pread(4096) + close per file. Cold after drop_caches, then warm (the same
#              offsets, the pass made 5 times back to back and timed as a whole).
#              The bytes read are hashed in an untimed pass and compared across systems.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
PYTHON=${PYTHON:-python3}

TREE=/usr/share
FERRYD=$REPO/build/bin/ferryd
ROUNDS=3
OUT=$REPO/docs/benchmarks.md
SKIP_FERRYD=0
WRITE_DOC=1
THREAD_NUM=""
RAND_FILES=200
SQFUSE_OPTS=""
RAND_READS=50
RAND_MIN=65536
RAND_SEED=1
WARM_REPEAT=5  # warm random-read passes timed together (one pass is too short to time well)
MOUNT_DEADLINE_S=30

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_lib_init fs_bench "$@"

while [[ $# -gt 0 ]]; do
  case $1 in
    --tree) need_val "$@"; TREE=$2; shift 2 ;;
    --tree=*) TREE=${1#*=}; shift ;;
    --ferryd) need_val "$@"; FERRYD=$2; shift 2 ;;
    --ferryd=*) FERRYD=${1#*=}; shift ;;
    --thread-num) need_val "$@"; THREAD_NUM=$2; shift 2 ;;
    --thread-num=*) THREAD_NUM=${1#*=}; shift ;;
    --rand-files) need_val "$@"; RAND_FILES=$2; shift 2 ;;
    --rand-files=*) RAND_FILES=${1#*=}; shift ;;
    --rand-reads) need_val "$@"; RAND_READS=$2; shift 2 ;;
    --rand-reads=*) RAND_READS=${1#*=}; shift ;;
    --squashfuse-opts) need_val "$@"; SQFUSE_OPTS=$2; shift 2 ;;
    --squashfuse-opts=*) SQFUSE_OPTS=${1#*=}; shift ;;
    --skip-ferryd) SKIP_FERRYD=1; shift ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

is_uint "$ROUNDS" || die "--rounds must be a positive integer"
is_uint "$RAND_FILES" || die "--rand-files must be a positive integer"
is_uint "$RAND_READS" || die "--rand-reads must be a positive integer"
[[ -z $THREAD_NUM ]] || is_uint "$THREAD_NUM" || die "--thread-num must be a positive integer"
[[ $EUID -eq 0 ]] || die "must run as root (mount, loop devices, drop_caches)"
[[ -d $TREE ]] || die "--tree '$TREE' is not a directory"
TREE=$(cd "$TREE" && pwd -P)
for c in mkfs.erofs mksquashfs unsquashfs squashfuse losetup mount umount mountpoint tar find "$PYTHON"; do
  command -v "$c" >/dev/null || die "'$c' not found"
done
[[ -e /dev/fuse ]] || die "/dev/fuse missing"
grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null || true
grep -qw erofs /proc/filesystems || die "the kernel has no erofs driver"
if [[ $SKIP_FERRYD -eq 0 ]]; then
  [[ -x $FERRYD ]] || die "ferryd not found at '$FERRYD' (build it, pass --ferryd PATH, or use --skip-ferryd)"
  FERRYD=$(cd "$(dirname "$FERRYD")" && pwd -P)/$(basename "$FERRYD")
fi
resolve_out

# ---------------------------------------------------------------------------------------------
# Everything below is undone by cleanup(), which runs on every exit path.
WORK=""
LOOPDEV=""
FERRYD_PID=""
SQFUSE_PID=""
MOUNTS=()

# True when `dir` is a mount point according to the mount table (works for dead FUSE mounts too).
in_mount_table() {
  awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts
}

unmount_dir() {
  local m=$1 i
  for ((i = 0; i < 5; i++)); do
    in_mount_table "$m" || return 0
    umount "$m" 2>/dev/null && return 0
    sleep 0.5
  done
  in_mount_table "$m" || return 0
  echo "fs_bench: '$m' is busy; detaching it lazily" >&2
  umount -l "$m"
}

cleanup() {
  local rc=$?
  trap '' INT TERM HUP
  set +e
  if [[ -n $FERRYD_PID ]]; then
    stop_child "$FERRYD_PID" ferryd TERM 15  # SIGTERM: ferryd unmounts and exits
    FERRYD_PID=""
  fi
  local m
  for m in "${MOUNTS[@]}"; do unmount_dir "$m"; done
  if [[ -n $SQFUSE_PID ]]; then
    stop_child "$SQFUSE_PID" squashfuse TERM 10
    SQFUSE_PID=""
  fi
  if [[ -n $LOOPDEV ]]; then
    losetup -d "$LOOPDEV" 2>/dev/null || echo "fs_bench: could not detach $LOOPDEV" >&2
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    for m in "${MOUNTS[@]}"; do
      in_mount_table "$m" && echo "fs_bench: '$m' is still mounted; leaving it" >&2
    done
    rm -rf --one-file-system "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
set_signal_traps

make_work ferry-fs-bench
EROFS_IMG=$WORK/tree.erofs
SQFS_IMG=$WORK/tree.sqfs
RESULTS=$WORK/results.tsv   # system  metric  round  value
META=$WORK/meta.tsv         # key  value
: >"$RESULTS"
: >"$META"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Seconds between two $EPOCHREALTIME stamps.
span() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

log "work dir $WORK; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v n="$(nproc)" '{ exit !($1 > n / 2) }' /proc/loadavg; then
  log "warning: the machine is busy (load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs); expect noisy numbers"
fi
meta_machine
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta tree "$TREE"
meta rounds "$ROUNDS"
meta skip_ferryd "$SKIP_FERRYD"
meta rand_reads "$RAND_READS"
meta rand_seed "$RAND_SEED"
meta warm_repeat "$WARM_REPEAT"

# --- the source tree -------------------------------------------------------------------------
log "scanning $TREE"
ENTRIES=$(find "$TREE" -printf '.\n' | wc -l)
FILES=$(find "$TREE" -type f -printf '.\n' | wc -l)
DATA_BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
meta entries "$ENTRIES"
meta files "$FILES"
meta data_bytes "$DATA_BYTES"
RAND_LIST=$WORK/randfiles.lst  # NUL-separated "SIZE<TAB>RELPATH", largest first
# (sorted into a file first: `head` closing a pipe early would kill sort with SIGPIPE)
find "$TREE" -type f -size +$((RAND_MIN - 1))c -printf '%s\t%P\0' | sort -z -t $'\t' -k1,1nr -k2,2 >"$WORK/bigfiles.lst"
head -z -n "$RAND_FILES" "$WORK/bigfiles.lst" >"$RAND_LIST"
RAND_N=$(tr -cd '\0' <"$RAND_LIST" | wc -c)
[[ $RAND_N -gt 0 ]] || die "no regular file >= $RAND_MIN bytes under $TREE for the random-read test"
RAND_MAX_SIZE=$(awk -v RS='\0' -F'\t' 'NR == 1 { print $1 }' "$RAND_LIST")
RAND_MIN_SIZE=$(awk -v RS='\0' -F'\t' '{ s = $1 } END { print s }' "$RAND_LIST")
meta rand_files "$RAND_N"
meta rand_sizes "$RAND_MIN_SIZE $RAND_MAX_SIZE"
log "$ENTRIES entries, $FILES regular files, $DATA_BYTES bytes of file data; random-read set: $RAND_N files"

# --- images ----------------------------------------------------------------------------------
log "building the EROFS image (mkfs.erofs, default layout)"
t0=$EPOCHREALTIME
mkfs.erofs "$EROFS_IMG" "$TREE" >"$WORK/mkfs.erofs.log" 2>&1 || { cat "$WORK/mkfs.erofs.log" >&2; die "mkfs.erofs failed"; }
t1=$EPOCHREALTIME
meta erofs_build_s "$(span "$t0" "$t1")"
meta erofs_bytes "$(stat -c %s "$EROFS_IMG")"
meta erofs_tool "$(grep -m1 -o 'mkfs.erofs [0-9][^ ]*' "$WORK/mkfs.erofs.log" || echo mkfs.erofs)"
EROFS_BLOCKS=$(dump.erofs -s "$EROFS_IMG" 2>/dev/null | awk -F': *' '/^Filesystem blocks:/ { print $2; exit }' || true)
[[ -z $EROFS_BLOCKS || $EROFS_BLOCKS == 0 ]] || meta erofs_blksz "$(($(stat -c %s "$EROFS_IMG") / EROFS_BLOCKS))"

log "building the squashfs image (mksquashfs, default compression)"
t0=$EPOCHREALTIME
mksquashfs "$TREE" "$SQFS_IMG" -noappend -quiet >"$WORK/mksquashfs.log" 2>&1 || { cat "$WORK/mksquashfs.log" >&2; die "mksquashfs failed"; }
t1=$EPOCHREALTIME
meta sqfs_build_s "$(span "$t0" "$t1")"
meta sqfs_bytes "$(stat -c %s "$SQFS_IMG")"
meta sqfs_tool "$(mksquashfs -version 2>&1 | awk 'NR == 1 { print $1, $3 }')"
unsquashfs -s "$SQFS_IMG" >"$WORK/unsquashfs.txt" 2>&1 || true
meta sqfs_comp "$(awk '/^Compression / { print $2; exit }' "$WORK/unsquashfs.txt")"
meta sqfs_blksz "$(awk '/^Block size / { print $3; exit }' "$WORK/unsquashfs.txt")"
meta squashfuse_version "$(dpkg-query -W -f='${Version}' squashfuse 2>/dev/null || squashfuse --version 2>&1 | awk 'NR == 1')"

# --- mounts ----------------------------------------------------------------------------------
declare -A MNT
SYSTEMS=(kernel)
[[ $SKIP_FERRYD -eq 1 ]] || SYSTEMS+=(ferryd)
SYSTEMS+=(squashfuse)
for s in "${SYSTEMS[@]}"; do MNT[$s]=$WORK/mnt-$s; mkdir "${MNT[$s]}"; done

# Prints the last lines of each existing log file to stderr.
show_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    echo "--- last lines of $f:" >&2
    tail -n 20 "$f" >&2 || true
  done
}

# Polls until `dir` is a mount point, while our child `pid` is alive, for MOUNT_DEADLINE_S.
wait_for_mount() {
  local dir=$1 pid=$2 name=$3 deadline=$((SECONDS + MOUNT_DEADLINE_S))
  shift 3
  while ! mountpoint -q "$dir"; do
    if ! alive "$pid"; then
      show_logs "$@"
      die "$name exited before mounting $dir"
    fi
    if ((SECONDS >= deadline)); then
      show_logs "$@"
      die "$name did not mount $dir within ${MOUNT_DEADLINE_S} s"
    fi
    sleep 0.1
  done
}

log "mounting kernel erofs"
LOOPDEV=$(losetup --find --show --read-only "$EROFS_IMG")
MOUNTS+=("${MNT[kernel]}")
mount -t erofs -o ro "$LOOPDEV" "${MNT[kernel]}"
meta loopdev "$LOOPDEV"

if [[ $SKIP_FERRYD -eq 0 ]]; then
  log "starting ferryd"
  meta ferryd_version "$("$FERRYD" --version 2>&1 | awk 'NR == 1' || true)"
  meta ferryd_threads "${THREAD_NUM:-default}"
  fargs=(fuse --mountpoint "${MNT[ferryd]}" --bootstrap "$EROFS_IMG" --log-file "$WORK/ferryd.log")
  [[ -z $THREAD_NUM ]] || fargs+=(--thread-num "$THREAD_NUM")
  MOUNTS+=("${MNT[ferryd]}")
  "$FERRYD" "${fargs[@]}" </dev/null >"$WORK/ferryd.out" 2>&1 &
  FERRYD_PID=$!
  wait_for_mount "${MNT[ferryd]}" "$FERRYD_PID" ferryd "$WORK/ferryd.out" "$WORK/ferryd.log"
  ftype=$(awk -v m="${MNT[ferryd]}" '$2 == m { t = $3 } END { print t }' /proc/self/mounts)
  [[ $ftype == fuse.ferry ]] || log "warning: ferryd's mount has type '$ftype', not fuse.ferry"
fi

log "starting squashfuse"
MOUNTS+=("${MNT[squashfuse]}")
sargs=(-f)
[[ -z $SQFUSE_OPTS ]] || sargs+=(-o "$SQFUSE_OPTS")
meta squashfuse_opts "$SQFUSE_OPTS"
squashfuse "${sargs[@]}" "$SQFS_IMG" "${MNT[squashfuse]}" </dev/null >"$WORK/squashfuse.log" 2>&1 &
SQFUSE_PID=$!
wait_for_mount "${MNT[squashfuse]}" "$SQFUSE_PID" squashfuse "$WORK/squashfuse.log"

# --- measurements ----------------------------------------------------------------------------
declare -A TAR_BYTES DIGEST

m_cold_tar() {
  local s=$1 r=$2 t0 t1 bytes
  drop_caches
  t0=$EPOCHREALTIME
  bytes=$(tar -C "${MNT[$s]}" -cf - . 2>>"$WORK/tar-$s.err" | wc -c) || { cat "$WORK/tar-$s.err" >&2; die "tar failed on $s"; }
  t1=$EPOCHREALTIME
  ((bytes >= DATA_BYTES)) || die "tar of $s produced $bytes bytes, less than the tree's $DATA_BYTES bytes of data"
  if [[ -n ${TAR_BYTES[$s]:-} && ${TAR_BYTES[$s]} != "$bytes" ]]; then log "warning: tar of $s gave $bytes bytes, earlier ${TAR_BYTES[$s]}"; fi
  TAR_BYTES[$s]=$bytes
  printf '%s\tcold_tar\t%s\t%s\n' "$s" "$r" "$(span "$t0" "$t1")" >>"$RESULTS"
}

m_warm_walk() {
  local s=$1 r=$2 t0 t1 n
  find "${MNT[$s]}" -printf '%s %m %U\n' | wc -l >/dev/null || die "find failed on $s"
  t0=$EPOCHREALTIME
  n=$(find "${MNT[$s]}" -printf '%s %m %U\n' | wc -l) || die "find failed on $s"
  t1=$EPOCHREALTIME
  ((n == ENTRIES)) || die "walk of $s saw $n entries, the tree has $ENTRIES"
  printf '%s\twarm_walk\t%s\t%s\n' "$s" "$r" "$(span "$t0" "$t1")" >>"$RESULTS"
}

m_random() {
  local s=$1 r=$2 out
  local cmd=("$PYTHON" "$SCRIPT_DIR/randread.py" --root "${MNT[$s]}" --list "$RAND_LIST" --reads "$RAND_READS" --seed "$RAND_SEED")
  drop_caches
  out=$("${cmd[@]}") || die "randread failed on $s"
  printf '%s\trand_cold\t%s\t%s\n' "$s" "$r" "$(awk 'NR == 1 { print $3 }' <<<"$out")" >>"$RESULTS"
  out=$("${cmd[@]}" --repeat "$WARM_REPEAT" --digest) || die "randread failed on $s"
  printf '%s\trand_warm\t%s\t%s\n' "$s" "$r" "$(awk 'NR == 1 { print $3 }' <<<"$out")" >>"$RESULTS"
  DIGEST[$s]=$(awk '$1 == "digest" { print $2 }' <<<"$out")
}

nsys=${#SYSTEMS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  order=()
  for ((i = 0; i < nsys; i++)); do order+=("${SYSTEMS[$(((r - 1 + i) % nsys))]}"); done
  log "round $r/$ROUNDS (order: ${order[*]}); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for s in "${order[@]}"; do log "  cold tar    $s"; m_cold_tar "$s" "$r"; done
  for s in "${order[@]}"; do log "  warm walk   $s"; m_warm_walk "$s" "$r"; done
  for s in "${order[@]}"; do log "  random 4K   $s"; m_random "$s" "$r"; done
done
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# Every system must have returned the same archive size and the same bytes.
for s in "${SYSTEMS[@]}"; do
  [[ ${TAR_BYTES[$s]} == "${TAR_BYTES[kernel]}" ]] ||
    log "warning: tar of $s gave ${TAR_BYTES[$s]} bytes, kernel erofs ${TAR_BYTES[kernel]} (metadata differs?)"
  [[ ${DIGEST[$s]} == "${DIGEST[kernel]}" ]] || die "random reads on $s returned other bytes than kernel erofs"
done
meta tar_bytes "${TAR_BYTES[kernel]}"

# --- report ----------------------------------------------------------------------------------
rargs=(--results "$RESULTS" --meta "$META")
[[ $WRITE_DOC -eq 0 ]] || rargs+=(--out "$OUT")
"$PYTHON" "$SCRIPT_DIR/fs_bench_report.py" "${rargs[@]}"
[[ $WRITE_DOC -eq 0 ]] || log "wrote the fs-bench section of $OUT"
