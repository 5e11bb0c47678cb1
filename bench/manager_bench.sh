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

# The report: markdown from the JSON results; only the text between our markers is replaced
# (the file is read again right before the write, and replaced atomically).
WRITE_TO=""
[[ $WRITE_DOC -eq 0 ]] || WRITE_TO=$OUT
BENCH_DIR=$SCRIPT_DIR "$PYTHON" - "$META" "$WRITE_TO" "${results[@]}" <<'PYEOF'
import json, os, sys

sys.path.insert(0, os.environ["BENCH_DIR"])
from doc_section import rewrite_section
from report_rows import f2, f3, handover_target_row, verdict

HEADING = "## End to end: ferry-snapshotter failover and hot upgrade"
CRASH_P99_TARGET = 10.0  # ms, kill -> first read
UPGRADE_P99_TARGET = 1.0  # ms, longest gap of the hand-over (takeover .. old process exited)

meta_path, out_path, *pairs = sys.argv[1:]
meta = {}
with open(meta_path, encoding="utf-8") as f:
    for line in f:
        if "\t" in line:
            k, v = line.rstrip("\n").split("\t", 1)
            meta[k] = v
results = []
for p in pairs:
    name, path = p.split("=", 1)
    with open(path, encoding="utf-8") as f:
        results.append((name, json.load(f)))

def title(r):
    c = r["config"]
    d = "dedicated daemon" if c["daemon_mode"] == "dedicated" else "shared daemon"
    n = f"{c['images']} image{'s' if c['images'] != 1 else ''}"
    s = "hot standby" if c["hot_standby"] else "no hot standby (cold successor)"
    return f"{n}, {d}, {s}"
def row(label, s):
    if not s or s.get("n", 0) == 0:
        return f"| {label} | — | — | — | — |"
    return f"| {label} | {f3(s['min'])} | {f3(s['median'])} | {f3(s['p99'])} | {f3(s['max'])} |"
def mib(k): return f"{k / 1024:.1f}"

out = []
w = out.append
build = meta.get("build_rel", "build")
w("_Generated by `bench/manager_bench.sh`; everything between the manager-bench markers is rewritten by "
  "each run._")
w("")
w(f"- **Date:** {meta.get('date', '?')}")
w(f"- **Machine:** {meta.get('nproc', '?')} CPUs ({meta.get('cpu', '?')}), "
  f"{int(meta.get('mem_kib', '0')) / 1048576:.1f} GiB RAM, Linux {meta.get('kernel', '?')}")
w(f"- **Command:** `{meta.get('command', 'bench/manager_bench.sh')}`, which ran, one after the other:")
for name, r in results:
    w(f"  - `{build}/bin/manager_bench {meta.get('args_' + name, '?')} --out-json FILE`")
if results:
    c = results[0][1]["config"]
    w(f"- **Binaries:** `{build}/bin/ferry-snapshotter` managing `{build}/bin/ferryd` ({c['ferryd_version']}); "
      f"upgrades alternate with `{build}/bin/ferryd-next` ({c['ferryd_next_version']})")
    w("- **Manager config:** `recover_policy = \"failover\"`, `failover_policy = \"resend\"`, "
      "`recover_attempts = 3`, `threads_number` default (4), log level info; `daemon_mode` and "
      "`hot_standby` per configuration")
    w(f"- **Images:** built by `mkfs.erofs --chunksize=65536 --blobdev=BLOB` (localfs blob backend), mounted "
      f"with `POST /api/v1/mounts`; the reader's image has {c['image0_files']} files "
      f"({c['image0_bytes'] / 1048576:.1f} MiB), the others 8 small files each (all distinct)")
busy = [meta.get("busy_start", "")] + [meta.get("busy_after_" + n, "") for n, _ in results]
busy = [b for b in dict.fromkeys(busy) if b.strip()]
w(f"- **Load average** (1, 5, 15 min): {meta.get('loadavg_start', '?')} at the start, "
  f"{meta.get('loadavg_end', '?')} at the end; other processes above 5% CPU (sampled 1 s at the start "
  f"and after each configuration): {'; '.join(busy) if busy else 'none'}")
w("")

w("### Targets")
w("")
w("| target | configuration | measured | result |")
w("|---|---|---:|---|")
for name, r in results:
    if "crash" in r:
        s = r["crash"]["kill_to_first_read_ms"]
        w(f"| crash blackout p99 < {CRASH_P99_TARGET:g} ms (kill -> first read) | {title(r)} | {f2(s['p99'])} ms "
          f"(median {f2(s['median'])}) | {verdict(s['p99'] < CRASH_P99_TARGET)} |")
for name, r in results:
    if "upgrade" in r:
        whole = r["upgrade"]["blackout_ms"]
        w(handover_target_row(title(r), r["upgrade"], r["idle"], UPGRADE_P99_TARGET,
                              f"whole call: p99 {f2(whole['p99'])}, median {f2(whole['median'])}"))
errors = sum(r["reader"]["errors"] + r["reader"]["mismatches"] for _, r in results)
fails = sum(r.get("manager_failures", 0) for _, r in results)
w(f"| no read errors, no wrong bytes, no failure recorded by the manager | all | {errors} errors / wrong "
  f"reads, {fails} failures | {verdict(errors == 0 and fails == 0)} |")
w("")

for name, r in results:
    w(f"### {title(r)}")
    w("")
    kinds = [k for k in ("crash", "upgrade") if k in r]
    w(f"{r['config']['rounds']} rounds of {' and '.join(kinds)}, interleaved, each followed by a 200 ms idle "
      f"window; {r['config']['reader_threads']} reader threads. Milliseconds.")
    w("")
    w("| ms | min | median | p99 | max |")
    w("|---|---:|---:|---:|---:|")
    if "crash" in r:
        c = r["crash"]
        w(row("**crash: kill -> first read**", c["kill_to_first_read_ms"]))
        w(row("crash: longest gap between reads around the kill", c["longest_gap_ms"]))
        w(row("crash: kill -> old process gone (pidfd)", c["kill_to_gone_ms"]))
        w(row("crash: manager's failover (death notice -> start answered)", c["manager_failover_ms"]))
    if "upgrade" in r:
        u = r["upgrade"]
        w(row("**upgrade: hand-over blackout (takeover .. old process exited)**", u["handover_ms"]))
        w(row("upgrade: longest gap during the whole call", u["blackout_ms"]))
        w(row("upgrade: `PUT /api/v1/nydusd/upgrade` call", u["call_ms"]))
        w(row("upgrade: manager's duration_ms for the daemon", u["manager_upgrade_ms"]))
    w(row("idle: longest gap in 200 ms, nothing happening", r["idle"]["max_gap_ms"]))
    if "handover_length_max_gap_ms" in r["idle"]:
        w(row("idle: longest gap in a window as long as the round's hand-over (the control)",
              r["idle"]["handover_length_max_gap_ms"]))
    w("")
    rd = r["reader"]
    bad = rd["errors"] + rd["mismatches"]
    src = ", ".join(f"{k}: {v}" for k, v in r.get("crash", {}).get("sources", {}).items())
    ev = ", ".join(f"{k} {v}" for k, v in sorted(r.get("events", {}).items()))
    w(f"Reader: {rd['ops']:,} reads, {rd['errors']} errors, {rd['mismatches']} with wrong bytes"
      + (" (**must be 0**)" if bad else "") + "."
      + (f" Failovers served by: {src}." if src else "")
      + f" Manager records: {ev}." + f" Load average {r.get('loadavg_start', '?')} at the start of this "
      f"configuration, {r.get('loadavg_end', '?')} at its end.")
    for f in rd.get("failures", []):
        w(f"- reader failure: `{f}`")
    w("")

up = [(n, r) for n, r in results if "upgrade" in r]
if up:
    phases = ["before the takeover", "takeover and start", "old process exiting", "after the switch", "unknown"]
    w("### Where the longest gap of each upgrade falls")
    w("")
    w("Rounds whose longest gap starts in each phase of the call, with the median gap there (ms). Phases from "
      "the daemon's log (1 ms timestamps): before the new process took the state over (state fetch, "
      "`--version` check, successor start-up), takeover and start, the old process leaving, and after the "
      "switch (the call then starts a new hot standby).")
    w("")
    w("| configuration | " + " | ".join(phases) + " |")
    w("|---|" + "---:|" * len(phases))
    for name, r in up:
        cells = []
        for ph in phases:
            g = sorted(x["blackout_ms"] for x in r["upgrade"]["rounds"] if x.get("phase") == ph)
            cells.append(f"{len(g)} ({f2(g[len(g) // 2])})" if g else "0")
        w(f"| {title(r)} | " + " | ".join(cells) + " |")
    w("")

w("### Memory (VmRSS, MiB)")
w("")
w("| configuration | manager | daemon(s) | hot standby | manager after setup | daemon(s) after setup |")
w("|---|---:|---:|---:|---:|---:|")
for name, r in results:
    e, s = r.get("rss_end", {}), r.get("rss_start", {})
    w(f"| {title(r)} | {mib(e.get('manager_kib', 0))} | {mib(e.get('daemons_kib', 0))} "
      f"({e.get('daemons', 0)}) | {mib(e.get('standbys_kib', 0))} ({e.get('standbys', 0)}) | "
      f"{mib(s.get('manager_kib', 0))} | {mib(s.get('daemons_kib', 0))} |")
w("")
w("After the last round (the first columns) and after setup; `/proc/PID/status` VmRSS of the "
  "ferry-snapshotter process, of the serving ferryd process(es) listed by `GET /api/v1/daemons` and of "
  "the hot standby (a child of the manager started with `--upgrade`, not listed as a daemon).")
w("")

w("How the numbers are taken:")
w("")
w("- **Setup:** a real `ferry-snapshotter --config config.toml` in a private temp dir (root, system "
  "socket, logs all below it); images mounted through `POST /api/v1/mounts`; the manager starts the "
  "ferryd daemons and, with `hot_standby`, a standby per daemon.")
w("- **Reader:** a process of its own with several threads; each keeps the image's 4 data files "
  "(1 MiB + 13.2 KiB, 512 KiB, 256 KiB, 293 KiB) open with `O_DIRECT` and loops `pread` of 4 KiB at "
  "pseudo-random aligned offsets of a pseudo-random file, so every read is a FUSE request the daemon must "
  "answer; every byte is compared with the source, and the steady-clock time of every successful "
  "completion is recorded. With the shared daemon it reads the first image through its bind mount.")
w("- **Crash round:** `kill -9` of the pid that `GET /api/v1/daemons` lists for the reader's daemon. "
  "**Longest gap** = the longest gap between consecutive completions (all threads merged) overlapping "
  "[kill, the first read completed after the old process is gone (its pidfd fired)]: once it is gone only "
  "the successor answers, and a read completing between the kill and that moment can still be the dying "
  "process's answer; **kill -> first read** = from the kill to the end of that gap. The manager's figure is the `failover` record's `duration_ms` (death notice "
  "-> the successor confirmed RUNNING; a hot standby starts by itself on the daemon's exit, before the "
  "manager asks).")
w("- **Upgrade round:** `PUT /api/v1/nydusd/upgrade` with `nydusd_path` alternating between ferryd and "
  "ferryd-next. **Hand-over blackout** = the longest gap between consecutive completions overlapping "
  "[the new process began the takeover, the old process exited] (times from the daemon's log, in "
  "microseconds; 0.1 ms wider before, and 1 ms after for the kernel's teardown of the old process, which "
  "follows its last log line): the switch itself, where both "
  "processes serve the connection. **Longest gap during the whole call** = the same over [request sent, "
  "answer received]; the call also includes the `--version` check, the new binary's start-up (during "
  "which the old daemon serves alone, sharing the 2 CPUs with a starting process; the manager starts "
  "the new process before it fetches the fresh state, so this happens before the hand-over), the state "
  "fetch and the start of a new hot standby. **Idle control**: in the idle window after each upgrade "
  "round, the longest gap overlapping a window as long as that round's hand-over window: what the "
  "hand-over figure would be if the switch cost nothing.")
w("- **Between rounds** the benchmark polls (deadlines, no fixed sleeps) until the manager lists the daemon "
  "`RUNNING` with a new pid, and with `hot_standby` until the standby is back (`standby_pid` in "
  "`GET /api/v1/daemons`, listed once the standby has taken the state over and waits READY for the "
  "daemon's exit), and until the reader has made progress.")
w("- **Statistics:** p99 is the nearest-rank 99th percentile, which with fewer than 100 rounds is the "
  "maximum. **Idle** is the machine's own noise floor for the same reader.")
w("")
w("<details><summary>Per-round figures (ms)</summary>")
w("")
for name, r in results:
    w(f"**{title(r)}**")
    w("")
    w("| round | crash: kill -> first read | crash: longest gap | manager failover | successor | "
      "upgrade hand-over | upgrade: whole call's longest gap | gap starts at | phase | upgrade call | idle |")
    w("|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|")
    cr = r.get("crash", {}).get("rounds", [])
    ur = r.get("upgrade", {}).get("rounds", [])
    idle = r["idle"].get("rounds", [])
    for i in range(max(len(cr), len(ur), len(idle))):
        c = cr[i] if i < len(cr) else None
        u = ur[i] if i < len(ur) else None
        w(f"| {i + 1} | {f2(c['kill_to_first_read_ms']) if c else '—'} | {f2(c['longest_gap_ms']) if c else '—'} | "
          f"{f2(c['manager_failover_ms']) if c else '—'} | {c['source'] if c else '—'} | "
          f"{f2(u['handover_ms']) if u and u.get('handover_ms') is not None else '—'} | "
          f"{f2(u['blackout_ms']) if u else '—'} | {f2(u['gap_ms_after_call'][0]) if u else '—'} | "
          f"{u.get('phase', '?') if u else '—'} | "
          f"{f2(u['call_ms']) if u else '—'} | {f2(idle[i]) if i < len(idle) else '—'} |")
    w("")
w("</details>")
body = "\n".join(out) + "\n"
sys.stdout.write(body)

if out_path:
    rewrite_section(out_path, "manager-bench", HEADING, body, "manager_bench.sh")
PYEOF
[[ $WRITE_DOC -eq 0 ]] || log "wrote the manager-bench section of $OUT"
exit "$status"
