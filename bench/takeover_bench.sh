#!/usr/bin/env bash
# Failover / hot-upgrade blackout benchmark: runs takeover_bench (bench/takeover_bench.cc) for a
# dedicated daemon (1 image) and shared daemons with many images, with crash (cold successor),
# crash with a hot standby successor, and upgrade rounds in each, and rewrites the takeover-bench
# section of docs/benchmarks.md with the results.
#
# Usage: bench/takeover_bench.sh [--bench PATH] [--ferryd PATH] [--rounds N] [--images "1 50 100"]
#                                [--out FILE] [--no-doc]
#
#   --bench PATH    the takeover_bench binary (default build/bin/takeover_bench under the repo root;
#                   build it with `cmake --build build --target takeover_bench`)
#   --ferryd PATH   ferryd binary (default build/bin/ferryd under the repo root)
#   --rounds N      rounds of each kind per configuration (default 30)
#   --images LIST   configurations, space-separated: 1 = a dedicated daemon (--bootstrap), K > 1 = a
#                   shared daemon with K images attached through the API (default "1 50 100")
#   --out FILE      markdown file whose takeover-bench section is rewritten (default docs/benchmarks.md)
#   --no-doc        print the tables only; leave the markdown file alone
#
# Needs root (FUSE mounts), mkfs.erofs and python3. Everything lives in one private temp dir
# (under $TMPDIR, else /var/tmp). takeover_bench cleans up after itself (it kills its daemons by
# pid, unmounts, removes its files, also on SIGINT/SIGTERM); on exit, failure or Ctrl-C this script
# stops a running takeover_bench (SIGINT, then SIGKILL after 30 s), then as a last resort kills by
# pid any process still running from the temp dir, unmounts what is left below it (umount -f aborts
# a FUSE connection, then umount -l) and removes the temp dir.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
PYTHON=${PYTHON:-python3}

BENCH=$REPO/build/bin/takeover_bench
FERRYD=$REPO/build/bin/ferryd
ROUNDS=30
IMAGES="1 50 100"
OUT=$REPO/docs/benchmarks.md
WRITE_DOC=1

# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_lib_init takeover_bench.sh "$@"

while [[ $# -gt 0 ]]; do
  case $1 in
    --bench) need_val "$@"; BENCH=$2; shift 2 ;;
    --bench=*) BENCH=${1#*=}; shift ;;
    --ferryd) need_val "$@"; FERRYD=$2; shift 2 ;;
    --ferryd=*) FERRYD=${1#*=}; shift ;;
    --images) need_val "$@"; IMAGES=$2; shift 2 ;;
    --images=*) IMAGES=${1#*=}; shift ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done

is_uint "$ROUNDS" || die "--rounds must be a positive integer"
read -r -a IMAGE_LIST <<<"$IMAGES"
[[ ${#IMAGE_LIST[@]} -gt 0 ]] || die "--images needs at least one count"
for k in "${IMAGE_LIST[@]}"; do is_uint "$k" || die "--images: '$k' is not a positive integer"; done
[[ $EUID -eq 0 ]] || die "must run as root (FUSE mounts)"
[[ -x $BENCH ]] || die "takeover_bench not found at '$BENCH' (cmake --build build --target takeover_bench, or --bench PATH)"
[[ -x $FERRYD ]] || die "ferryd not found at '$FERRYD' (build it or pass --ferryd PATH)"
for c in mkfs.erofs "$PYTHON" awk; do command -v "$c" >/dev/null || die "'$c' not found"; done
[[ -e /dev/fuse ]] || die "/dev/fuse missing"
BENCH=$(cd "$(dirname "$BENCH")" && pwd -P)/$(basename "$BENCH")
FERRYD=$(cd "$(dirname "$FERRYD")" && pwd -P)/$(basename "$FERRYD")
resolve_out

# ---------------------------------------------------------------------------------------------
# Everything below is undone by cleanup(), which runs on every exit path.
WORK=""
BENCH_PID=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() { cleanup_bench_run takeover_bench 1; }
trap cleanup EXIT
set_signal_traps

make_work ferry-takeover-bench
META=$WORK/meta.tsv  # key  value
: >"$META"

log "work dir $WORK; load average $(cut -d' ' -f1-3 /proc/loadavg)"
meta_machine
meta rounds "$ROUNDS"
meta images "${IMAGE_LIST[*]}"
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta busy_start "$(busy_processes "takeover_bench|ferryd|top")"
meta bench_rel "${BENCH#"$REPO"/}"
meta ferryd_rel "${FERRYD#"$REPO"/}"
log "other processes using the CPU: $(awk -F'\t' '$1 == "busy_start" { print $2 }' "$META")"

# A reference for the crash numbers: how long a bare process start of ferryd takes, next to
# /bin/true started the same way (medians of 21, interleaved).
startups=()
trues=()
for _ in $(seq 21); do
  t0=$EPOCHREALTIME
  "$FERRYD" --version >/dev/null 2>&1 || die "'$FERRYD --version' failed"
  t1=$EPOCHREALTIME
  /bin/true
  t2=$EPOCHREALTIME
  startups+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
  trues+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
done
meta ferryd_version_ms "$(printf '%s\n' "${startups[@]}" | sort -n | sed -n 11p)"
meta true_ms "$(printf '%s\n' "${trues[@]}" | sort -n | sed -n 11p)"

status=0
results=()
for k in "${IMAGE_LIST[@]}"; do
  json=$WORK/images-$k.json
  log "takeover_bench --images $k --rounds $ROUNDS --mode all (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  meta "loadavg_before_$k" "$(cut -d' ' -f1-3 /proc/loadavg)"
  mkdir "$WORK/run-$k"
  TMPDIR=$WORK/run-$k "$BENCH" --ferryd "$FERRYD" --rounds "$ROUNDS" --images "$k" --mode all \
    --out-json "$json" </dev/null &
  BENCH_PID=$!
  rc=0
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=""
  case $rc in
    0) ;;
    3) log "warning: the reader saw errors or wrong bytes with --images $k (recorded in the report)"; status=3 ;;
    129 | 130 | 143) die "takeover_bench --images $k was interrupted" ;;
    *) die "takeover_bench --images $k failed (exit status $rc)" ;;
  esac
  [[ -s $json ]] || die "takeover_bench --images $k wrote no results"
  results+=("$json")
  meta "busy_after_$k" "$(busy_processes "takeover_bench|ferryd|top")"
done
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

rargs=(--meta "$META" --results "${results[@]}")
[[ $WRITE_DOC -eq 0 ]] || rargs+=(--out "$OUT")
"$PYTHON" "$SCRIPT_DIR/takeover_bench_report.py" "${rargs[@]}"
[[ $WRITE_DOC -eq 0 ]] || log "wrote the takeover-bench section of $OUT"
exit "$status"
