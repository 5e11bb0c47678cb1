#!/usr/bin/env bash
# The main job: shows Ferry's promise live. It builds Ferry, packs a sample tree (this
# repository's own sources) into an EROFS image with its data in a blob device, starts
# ferry-snapshotter with recover_policy = "failover", mounts the image through it, and runs a
# reader that verifies every byte it reads. Then it kills the image daemon with SIGKILL, hot-
# upgrades it through PUT /api/v1/nydusd/upgrade (to a second build, ferryd-next, so the version
# visibly changes), and prints a summary: the blackouts the reader saw and its error count.
# Everything runs under a private temporary directory and is cleaned up, also on Ctrl-C.
#
#   scripts/demo.sh [--no-build] [--build-dir DIR] [--crashes N]
# Exit status 0 only when the reader saw zero errors and zero wrong bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
build=build
do_build=1
crashes=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) do_build=0 ;;
    --build-dir) build=$2; shift ;;
    --crashes) crashes=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (mounting needs CAP_SYS_ADMIN): in a root shell 'scripts/demo.sh'," \
    "otherwise 'su -c scripts/demo.sh' (or sudo where installed)" >&2
  exit 1
fi

if [[ $do_build -eq 1 ]]; then
  echo "== building (cmake, ninja -j${FERRY_JOBS:-2})"
  # An existing build directory keeps its settings (scripts/test.sh's, say); a new one is the
  # Release build a package would ship.
  if [[ -f "$build/CMakeCache.txt" ]]; then
    cmake "$build" >/dev/null
  else
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$build" -j"${FERRY_JOBS:-2}" --target ferryd ferryd-next ferry-snapshotter ferryctl
fi
bin=$(cd "$build/bin" && pwd)
for b in ferryd ferryd-next ferry-snapshotter ferryctl; do
  [[ -x "$bin/$b" ]] || { echo "demo: $bin/$b is missing (build it, or drop --no-build)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/ferry-demo-XXXXXX)
sock="$work/system.sock"
ctl() { "$bin/ferryctl" --socket "$sock" "$@"; }
manager_pid=""
reader_pid=""
cleanup() {
  set +e
  [[ -n "$reader_pid" ]] && kill "$reader_pid" 2>/dev/null && wait "$reader_pid" 2>/dev/null
  if [[ -n "$manager_pid" ]]; then
    ctl umount "$work/mnt" >/dev/null 2>&1
    kill -TERM "$manager_pid" 2>/dev/null && wait "$manager_pid" 2>/dev/null
  fi
  # Whatever is still running from this demo's root (daemons, standbys), by pid.
  for p in $(pgrep -f -- "$work/" 2>/dev/null); do [[ $p != $$ ]] && kill -9 "$p" 2>/dev/null; done
  for m in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

now() { date +%s.%N; }
# The daemon's pid as the manager reports it.
daemon_pid() { ctl daemons --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[0]["pid"] if d else 0)'; }
daemon_field() { ctl daemons --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(d[0]['$1'] if d else '')"; }
# Polls (10 s deadline) until the manager reports a RUNNING daemon whose pid is not $1.
wait_new_pid() {
  local old=$1 deadline=$((SECONDS + 10)) pid state
  while ((SECONDS < deadline)); do
    pid=$(daemon_pid 2>/dev/null || echo 0)
    state=$(daemon_field state 2>/dev/null || echo "")
    if [[ "$pid" != 0 && "$pid" != "$old" && "$state" == RUNNING ]]; then echo "$pid"; return 0; fi
    sleep 0.005
  done
  return 1
}

mkdir -p "$work/tree" "$work/mnt"
cp -a "$repo/src" "$repo/docs" "$repo/README.md" "$work/tree/"
echo "== packing $(find "$work/tree" | wc -l) paths into an EROFS image (1 MiB chunks in a blob device)"
mkfs.erofs --quiet --chunksize=1048576 --blobdev="$work/blob" "$work/meta.erofs" "$work/tree"

cat >"$work/config.toml" <<EOF
version = 1
root = "$work/root"
address = "$work/grpc.sock"
daemon_mode = "dedicated"
[daemon]
recover_policy = "failover"
[system]
address = "$sock"
EOF
echo "== starting ferry-snapshotter (recover_policy = \"failover\", root $work/root)"
"$bin/ferry-snapshotter" --config "$work/config.toml" 2>"$work/manager.log" &
manager_pid=$!
for _ in $(seq 1 1000); do [[ -S "$sock" ]] && ctl daemons >/dev/null 2>&1 && break; sleep 0.01; done
ctl daemons >/dev/null || { echo "demo: the manager did not come up"; cat "$work/manager.log"; exit 1; }

echo "== mounting the image at $work/mnt"
ctl mount "$work/mnt" "$work/meta.erofs" --blob "$work/blob"
ctl daemons

echo "== a reader verifies every byte it reads (O_DIRECT: every read reaches the daemon)"
python3 "$repo/scripts/demo_reader.py" --mount "$work/mnt" --source "$work/tree" --out "$work/reader.json" &
reader_pid=$!
sleep 1

events=()
for ((i = 1; i <= crashes; i++)); do
  pid=$(daemon_pid)
  echo "== kill -9 $pid (the image daemon)"
  t=$(now)
  kill -9 "$pid"
  new=$(wait_new_pid "$pid") || { echo "demo: no daemon took over"; ctl records; exit 1; }
  echo "   the manager failed it over to pid $new; the reader carries on"
  events+=("crash $t")
  sleep 0.5
done

old=$(daemon_pid)
echo "== hot upgrade to $bin/ferryd-next (PUT /api/v1/nydusd/upgrade)"
t=$(now)
ctl upgrade "$bin/ferryd-next"
events+=("upgrade $t")
wait_new_pid "$old" >/dev/null || { echo "demo: upgrade did not produce a running daemon"; exit 1; }
ctl daemons
sleep 1

kill -TERM "$reader_pid"; wait "$reader_pid" || true; reader_pid=""
echo "== records"
ctl records

python3 - "$work/reader.json" "${events[@]}" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
gaps = r["gaps"]
def blackout(t):
    # The longest gap between successful reads that overlaps the 3 s after the event.
    best = 0.0
    for start, ms in gaps:
        if start <= t + 3 and start + ms / 1000 >= t - 0.05:
            best = max(best, ms)
    return best
print("== summary")
for ev in sys.argv[2:]:
    kind, t = ev.split()
    b = blackout(float(t))
    print(f"   {kind:8s} blackout seen by the reader: {b:.1f} ms" if b else
          f"   {kind:8s} blackout seen by the reader: < 1 ms (no gap over 1 ms)")
for f in r["failures"]:
    print("   failure:", f)
print(f"summary: {r['ops']} verified reads, {r['errors']} errors, {r['mismatches']} wrong bytes")
sys.exit(0 if r["errors"] == 0 and r["mismatches"] == 0 and r["ops"] > 0 else 1)
EOF
