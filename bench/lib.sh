# shellcheck shell=bash
# bench/lib.sh: what the benchmark drivers (fs_bench.sh, takeover_bench.sh, manager_bench.sh)
# share: messages, the argument-parsing helpers, the machine's description in the metadata file,
# and the pieces of their cleanup (stopping a child, killing by pid what names the temp dir,
# unmounting what is left below it). Sourced, never run; every function keeps the caller's
# `set -euo pipefail` working (no unguarded failing command).
#
# Call bench_lib_init TAG "$@" first: TAG prefixes every message ("fs_bench", "manager_bench.sh"),
# and COMMAND_LINE becomes the command as typed (bench/NAME.sh ARGS, quoted).

# Sets BENCH_TAG, BENCH_SCRIPT (the sourcing script, whose header is its --help) and COMMAND_LINE.
bench_lib_init() {
  BENCH_TAG=$1
  shift
  BENCH_SCRIPT=${BASH_SOURCE[1]}
  COMMAND_LINE="bench/$(basename "$BENCH_SCRIPT")"
  local a
  for a in "$@"; do COMMAND_LINE+=" $(printf '%q' "$a")"; done
}

# The script's header comment, from line 2 up to `set -euo`.
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$BENCH_SCRIPT"; }
die() { echo "$BENCH_TAG: error: $*" >&2; exit 1; }
log() { printf '[%s %(%H:%M:%S)T] %s\n' "$BENCH_TAG" -1 "$*" >&2; }
need_val() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
is_uint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

# Handles an option every driver has (--rounds N, --out FILE, --no-doc, --help) or rejects an
# unknown one; sets ARG_SHIFT to the number of words it used. The driver's own options come first:
#   case $1 in --mine) ...;; *) common_arg "$@"; shift "$ARG_SHIFT" ;; esac
# shellcheck disable=SC2034  # ROUNDS, OUT, WRITE_DOC and ARG_SHIFT are the caller's
common_arg() {
  case $1 in
    --rounds) need_val "$@"; ROUNDS=$2; ARG_SHIFT=2 ;;
    --rounds=*) ROUNDS=${1#*=}; ARG_SHIFT=1 ;;
    --out) need_val "$@"; OUT=$2; ARG_SHIFT=2 ;;
    --out=*) OUT=${1#*=}; ARG_SHIFT=1 ;;
    --no-doc) WRITE_DOC=0; ARG_SHIFT=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
}

# Turns the markdown file path $OUT absolute (creating its directory) when the doc is written.
resolve_out() {
  if [[ $WRITE_DOC -eq 1 ]]; then
    mkdir -p "$(dirname "$OUT")"
    OUT=$(cd "$(dirname "$OUT")" && pwd -P)/$(basename "$OUT")
  fi
}

# ---- the temp dir and cleanup ----------------------------------------------------------------

# Creates the private temp dir WORK="${TMPDIR:-/var/tmp}/PREFIX.XXXXXX".
make_work() {
  WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/$1.XXXXXX")
  [[ $WORK != *[[:space:]]* ]] || die "temp dir '$WORK' contains white space; set TMPDIR"
}

# The signal traps every driver sets (next to `trap cleanup EXIT`): exit statuses 128+N, so
# that cleanup() runs.
set_signal_traps() {
  trap 'echo "$BENCH_TAG: interrupted" >&2; exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# True while `pid` exists and is not a zombie.
alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $st && $st != Z* ]]
}

# Stops our child `pid` (called `name` in messages): sends `signal` if it is alive, waits up to
# `secs` seconds, then SIGKILLs it; reaps it.
stop_child() {
  local pid=$1 name=$2 signal=$3 secs=$4 i
  alive "$pid" && kill "-$signal" "$pid" 2>/dev/null
  for ((i = 0; i < secs * 10; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    echo "$BENCH_TAG: $name (pid $pid) did not exit; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

# The mount points at or below `dir`, deepest first.
mounts_below() {
  awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

# Processes (other than this shell) whose command line names a path below `dir`: ours by
# construction when `dir` is our temp dir.
pids_naming() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" ]] && continue
    { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF -- "$1/" && echo "$pid"
  done
  return 0
}

# SIGKILLs (by pid) every process naming `dir`, in up to `rounds` passes (a dying process may
# have forked an instant before), 0.2 s apart.
kill_pids_naming() {
  local dir=$1 rounds=$2 round pid
  for ((round = 1; round <= rounds; round++)); do
    for pid in $(pids_naming "$dir"); do
      echo "$BENCH_TAG: killing leftover pid $pid ($({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-80))" >&2
      kill -KILL "$pid" 2>/dev/null
    done
    ((round < rounds)) || break
    [[ -z $(pids_naming "$dir") ]] && break
    sleep 0.2
  done
  return 0
}

# Unmounts what is left below `dir` (umount -f aborts a FUSE connection, then umount -l), then
# removes `dir` unless something is still mounted there.
unmount_and_remove() {
  local dir=$1 m
  for m in $(mounts_below "$dir"); do
    echo "$BENCH_TAG: unmounting leftover mount '$m'" >&2
    umount "$m" 2>/dev/null || umount -f "$m" 2>/dev/null || umount -l "$m"
  done
  if [[ -n $(mounts_below "$dir") ]]; then
    echo "$BENCH_TAG: something is still mounted below '$dir'; leaving it" >&2
  else
    rm -rf --one-file-system "$dir"
  fi
  return 0
}

# The cleanup() of a driver that runs one benchmark program at a time (pid in BENCH_PID, named
# `name`) with its files in WORK: stops the program (SIGINT: it cleans up after itself; SIGKILL
# after 30 s), then as a last resort SIGKILLs by pid what still names WORK (`kill_rounds` passes),
# unmounts what is left below it and removes it. Exits with the status it was called with.
cleanup_bench_run() {
  local rc=$? name=$1 kill_rounds=$2
  trap '' INT TERM HUP
  set +e
  if [[ -n $BENCH_PID ]]; then
    stop_child "$BENCH_PID" "$name" INT 30
    BENCH_PID=""
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    kill_pids_naming "$WORK" "$kill_rounds"
    unmount_and_remove "$WORK"
  fi
  exit "$rc"
}

# ---- the metadata file ($META: key<TAB>value lines) ------------------------------------------

meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

# The date, the command line and the machine.
meta_machine() {
  meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
  meta command "$COMMAND_LINE"
  meta nproc "$(nproc)"
  meta kernel "$(uname -r)"
  meta cpu "$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  meta mem_kib "$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
}

# What else is using the CPUs right now: "command xN (CPU%)" for every command over 5% over one
# second; `skip` is an extended regex of commands to leave out (the benchmark's own processes).
busy_processes() {
  command -v top >/dev/null || { echo "unknown (no top)"; return 0; }
  top -b -n 2 -d 1 -w 512 2>/dev/null | awk -v skip="$1" '
    /^ *PID / { block++; next }
    block == 2 && NF >= 12 && $9 + 0 >= 5 && $12 !~ "^(" skip ")$" {
      if (!($12 in n)) order[++k] = $12
      n[$12]++; cpu[$12] += $9
    }
    END { for (i = 1; i <= k; i++) { c = order[i]; printf "%s%s x%d (%.0f%% CPU)", sep, c, n[c], cpu[c]; sep = ", " } }
  '
  return 0
}
