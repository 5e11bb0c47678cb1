#!/usr/bin/env bash
# End-to-end failover / hot-upgrade blackout benchmark of ferry-snapshotter: runs manager_bench
# (bench/manager_bench.cc) against the real manager, its ferryd daemons and FUSE mounts, in three
# configurations:
#   1. a dedicated daemon (1 image), hot standby on: crash and upgrade rounds, interleaved
#   2. a shared daemon with K images (default 50), hot standby on: crash and upgrade rounds
#   3. a dedicated daemon (1 image), hot standby off (cold successor): crash rounds
# and rewrites ONLY the manager-bench section of docs/benchmarks.md (between
# <!-- manager-bench:begin --> and <!-- manager-bench:end -->, appended at the end of the file with
# its heading when the markers are missing). Nothing else in the file is touched.
#
# Usage: bench/manager_bench.sh [--build DIR] [--rounds N] [--images K] [--threads N]
#                               [--out FILE] [--no-doc]
#
#   --build DIR     build directory holding bin/manager_bench, bin/ferry-snapshotter, bin/ferryd and
#                   bin/ferryd-next (default build under the repo root; build them with
#                   `ninja -C DIR manager_bench ferry-snapshotter ferryd ferryd-next`)
#   --rounds N      rounds of each kind per configuration (default 30)
#   --images K      images attached to the shared daemon in configuration 2 (default 50)
#   --threads N     reader threads (default 4)
#   --out FILE      markdown file whose manager-bench section is rewritten (default docs/benchmarks.md)
#   --no-doc        print the section only; leave the markdown file alone
#
# Needs root (FUSE mounts), mkfs.erofs and python3. Everything lives in one private temp dir
# (under $TMPDIR, else /var/tmp). manager_bench cleans up after itself (it removes its mounts
# through the API, stops the manager, kills its daemons by pid, unmounts, removes its files, also on
# SIGINT/SIGTERM); on exit, failure or Ctrl-C this script stops a running manager_bench (SIGINT,
# then SIGKILL after 30 s), then as a last resort kills by pid any process still naming the temp dir,
# unmounts what is left below it (umount -f aborts a FUSE connection, then umount -l) and removes it.
# Exit status: 0, or 3 when a reader saw errors / wrong bytes or the manager recorded a failure
# (the section is still written, saying so), or 1 on any other failure.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
PYTHON=${PYTHON:-python3}

BUILD=$REPO/build
ROUNDS=30
IMAGES=50
THREADS=4
OUT=$REPO/docs/benchmarks.md
WRITE_DOC=1

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_lib_init manager_bench.sh "$@"

while [[ $# -gt 0 ]]; do
  case $1 in
    --build) need_val "$@"; BUILD=$2; shift 2 ;;
    --build=*) BUILD=${1#*=}; shift ;;
    --images) need_val "$@"; IMAGES=$2; shift 2 ;;
    --images=*) IMAGES=${1#*=}; shift ;;
    --threads) need_val "$@"; THREADS=$2; shift 2 ;;
    --threads=*) THREADS=${1#*=}; shift ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

is_uint "$ROUNDS" || die "--rounds must be a positive integer"
is_uint "$IMAGES" || die "--images must be a positive integer"
is_uint "$THREADS" || die "--threads must be a positive integer"
[[ $EUID -eq 0 ]] || die "must run as root (FUSE mounts)"
[[ -d $BUILD ]] || die "build directory '$BUILD' not found (--build DIR)"
BUILD=$(cd "$BUILD" && pwd -P)
BENCH=$BUILD/bin/manager_bench
for b in manager_bench ferry-snapshotter ferryd ferryd-next; do
  [[ -x $BUILD/bin/$b ]] || die "'$BUILD/bin/$b' not found (ninja -C $BUILD manager_bench ferry-snapshotter ferryd ferryd-next)"
done
for c in mkfs.erofs "$PYTHON" awk; do command -v "$c" >/dev/null || die "'$c' not found"; done
[[ -e /dev/fuse ]] || die "/dev/fuse missing"
resolve_out

# ---------------------------------------------------------------------------------------------
# Everything below is undone by cleanup(), which runs on every exit path.
WORK=""
BENCH_PID=""

# The manager's config, the daemons' sockets and mountpoints all live below WORK: what still names
# it is ours.
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() { cleanup_bench_run manager_bench 3; }
trap cleanup EXIT
set_signal_traps

# Short: the daemons' API sockets live several levels below it (sun_path holds 108 bytes).
make_work fmb
META=$WORK/meta.tsv  # key  value
: >"$META"

BUILD_REL=${BUILD#"$REPO"/}
log "work dir $WORK; load average $(cut -d' ' -f1-3 /proc/loadavg)"
meta_machine
meta rounds "$ROUNDS"
meta build_rel "$BUILD_REL"
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta busy_start "$(busy_processes "manager_bench|ferry-snapshotter|ferryd|ferryd-next|top")"
log "other processes using the CPU: $(awk -F'\t' '$1 == "busy_start" { print $2 }' "$META")"

# name | manager_bench arguments
CONFIGS=(
  "dedicated-hot|--daemon-mode dedicated --images 1 --hot-standby true --mode both"
  "shared-hot|--daemon-mode shared --images $IMAGES --hot-standby true --mode both"
  "dedicated-cold|--daemon-mode dedicated --images 1 --hot-standby false --mode crash"
)

status=0
results=()
for c in "${CONFIGS[@]}"; do
  name=${c%%|*}
  read -r -a args <<<"${c#*|}"
  args+=(--rounds "$ROUNDS" --threads "$THREADS")
  json=$WORK/$name.json
  log "manager_bench ${args[*]} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  meta "loadavg_before_$name" "$(cut -d' ' -f1-3 /proc/loadavg)"
  meta "args_$name" "${args[*]}"
  mkdir "$WORK/$name"
  TMPDIR=$WORK/$name "$BENCH" "${args[@]}" --out-json "$json" </dev/null &
  BENCH_PID=$!
  rc=0
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=""
  case $rc in
    0) ;;
    3) log "error: $name: the reader saw errors or wrong bytes, or the manager recorded failures"; status=3 ;;
    129 | 130 | 143) die "manager_bench ($name) was interrupted" ;;
    *) die "manager_bench ($name) failed (exit status $rc)" ;;
  esac
  [[ -s $json ]] || die "manager_bench ($name) wrote no results"
  results+=("$name=$json")
  meta "busy_after_$name" "$(busy_processes "manager_bench|ferry-snapshotter|ferryd|ferryd-next|top")"
done
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# The report (bench/manager_bench_report.py): markdown from the JSON results; only the text between
# our markers is replaced (the file is read again right before the write, and replaced atomically).
WRITE_TO=""
[[ $WRITE_DOC -eq 0 ]] || WRITE_TO=$OUT
rargs=(--meta "$META" --results "${results[@]}")
[[ -z $WRITE_TO ]] || rargs+=(--out "$WRITE_TO")
"$PYTHON" "$SCRIPT_DIR/manager_bench_report.py" "${rargs[@]}"
[[ $WRITE_DOC -eq 0 ]] || log "wrote the manager-bench section of $OUT"
exit "$status"
