#!/usr/bin/env bash
# Lazy pull benchmark (issue 16 point 8): a Ferry image read lazily from a registry on loopback
# through ferryd's registry backend and blob cache, against pulling the whole OCI image first.
#   (a) startup: read about 5% of the image (a few hundred files of 64 KiB or more, drawn at
#       random). Ferry: fetch the bootstrap layer, start ferryd (registry backend, empty cache),
#       read the files. Full pull: `skopeo copy` to a local OCI layout + `umoci unpack`, then
#       read the same files. Target <= 0.2x.
#   (b) a full read of the image (every file, in tree order) through the lazy fetch against
#       `curl` of the same blobs (the transfer floor here). Target: curl's time / Ferry's >= 0.7.
#   (c) bytes the registry sent / bytes read for (a) (registry log). Target <= 1.3.
#   (d) the fully cached state: the cache holds every blob's device, so the kernel's erofs mounts
#       the bootstrap over the cache files (loop devices); a cold read of the whole tree through
#       ferryd (warm cache, empty page cache) against the kernel reading the same devices.
#
# Usage: bench/lazy_bench.sh [--roots "DIR..."] [--size MIB] [--rounds N] [--out FILE] [--no-doc]
#                            [--keep]
#   --roots "DIR..."  where the image's data comes from (default /usr/share)
#   --size MIB        about how much of it (default 1024)
#   --rounds N        rounds of (a); times are medians (default 3)
#   --out FILE        the markdown file whose lazy_bench section is rewritten (docs/benchmarks.md)
#   --no-doc          print the table only
#   --keep            keep the temp dir
#
# Needs root, build/bin/{ferryd,ferry-image}, docker-registry, skopeo, umoci, curl, python3,
# losetup. Everything lives in one temp dir (under $TMPDIR, else /var/tmp): the registry, its
# storage, the images, the cache, the mounts; all of it is stopped, unmounted and removed on exit
# and on Ctrl-C. Nothing listens beyond 127.0.0.1. Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_lib_init lazy_bench "$@"

ROOTS=/usr/share
SIZE_MIB=1024
ROUNDS=3
OUT=docs/benchmarks.md
WRITE_DOC=1
KEEP=0
FERRYD=$PWD/build/bin/ferryd
TOOL=$PWD/build/bin/ferry-image
while (($#)); do
  case $1 in
    --roots) need_val "$@"; ROOTS=$2; shift 2 ;;
    --size) need_val "$@"; SIZE_MIB=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done
is_uint "$SIZE_MIB" || die "--size needs a positive number of MiB"
is_uint "$ROUNDS" || die "--rounds needs a positive number"
((EUID == 0)) || die "run as root (mounts, loop devices, umoci keeps owners)"
for b in "$FERRYD" "$TOOL"; do [[ -x $b ]] || die "no $b (build it: cmake --build build --target ferryd ferry-image)"; done
for t in docker-registry skopeo umoci curl python3 losetup; do command -v "$t" >/dev/null || die "$t is not installed"; done
resolve_out

make_work lazy-bench
META=$WORK/meta
REGISTRY_PID=""
FERRYD_PID=""
LOOPS=()
cleanup() {
  local rc=$?
  trap '' INT TERM HUP
  set +e
  [[ -n $FERRYD_PID ]] && stop_child "$FERRYD_PID" ferryd KILL 5
  for m in $(mounts_below "$WORK"); do umount "$m" 2>/dev/null || umount -l "$m"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
  [[ -n $REGISTRY_PID ]] && stop_child "$REGISTRY_PID" docker-registry TERM 5
  kill_pids_naming "$WORK" 3
  if ((KEEP)); then log "kept $WORK"; else unmount_and_remove "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
set_signal_traps

now() { date +%s.%N; }
py() { python3 -c "$@"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---- the registry ----------------------------------------------------------------------------
PORT=$(py 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: $REG
  secret: lazy-bench
EOF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REGISTRY_PID=$!
for ((i = 0; i < 100; i++)); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
curl -fs "http://$REG/v2/" >/dev/null || die "docker-registry did not start: $(tail -3 "$WORK/registry/log")"

# Bytes the registry has sent for blob GETs so far (its "response completed" lines).
registry_sent() {
  py 'import re,sys
n=0
for line in open(sys.argv[1], errors="replace"):
    if "response completed" in line and "/blobs/" in line and "GET" in line:
        m = re.search(r"http.response.written=(\d+)", line)
        if m: n += int(m.group(1))
print(n)' "$WORK/registry/log"
}

# ---- the image: about SIZE_MIB of files from the roots, one OCI layer, then converted ---------
log "collecting about $SIZE_MIB MiB from $ROOTS"
mkdir -p "$WORK/oci"
umoci init --layout "$WORK/oci/layout" >/dev/null
umoci new --image "$WORK/oci/layout:app" >/dev/null
umoci unpack --image "$WORK/oci/layout:app" "$WORK/oci/bundle" >/dev/null
py 'import os,sys
limit = int(sys.argv[1]) << 20
total = 0
with open(sys.argv[2], "w") as out:
    for root in sys.argv[3:]:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                if os.path.islink(p) or not os.path.isfile(p): continue
                try: size = os.path.getsize(p)
                except OSError: continue
                if total >= limit: break
                out.write(p + "\n"); total += size
print(total)' "$SIZE_MIB" "$WORK/files.list" $ROOTS >"$WORK/bytes"
IMAGE_BYTES=$(cat "$WORK/bytes")
tar -C / --no-recursion -cf - -T <(sed 's|^/||' "$WORK/files.list") | tar -C "$WORK/oci/bundle/rootfs" -xf -
log "packing $(py "print(round($IMAGE_BYTES/1048576))") MiB into an OCI image and pushing it"
umoci repack --image "$WORK/oci/layout:app" "$WORK/oci/bundle" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci/layout:app" "docker://$REG/bench/app:oci"
log "converting it with ferry-image convert"
"$TOOL" convert --plain-http --source "$REG/bench/app:oci" --target "$REG/bench/app:ferry" >"$WORK/convert.json"
BOOT_DIGEST=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["bootstrap"]["digest"])' "$WORK/convert.json")
BLOBS=$(py 'import json,sys; print(" ".join(b["digest"] for b in json.load(open(sys.argv[1]))["blobs"]))' "$WORK/convert.json")
BLOB_BYTES=$(py 'import json,sys; print(sum(b["size"] for b in json.load(open(sys.argv[1]))["blobs"]))' "$WORK/convert.json")

# The startup workload: files of 64 KiB or more drawn at random (seeded) until 5% of the image's
# bytes: "a few hundred files", as the issue puts it (a program, its libraries, its data).
py 'import random,os,sys
files = [l.rstrip("\n") for l in open(sys.argv[1])]
files = [f for f in files if os.path.getsize(f) >= 65536]
random.Random(16).shuffle(files)
want, got = int(sys.argv[2]) // 20, 0
with open(sys.argv[3], "w") as out:
    for f in files:
        if got >= want: break
        out.write(f.lstrip("/") + "\n"); got += os.path.getsize(f)
print(got)' "$WORK/files.list" "$IMAGE_BYTES" "$WORK/workload.list" >"$WORK/workload.bytes"
WORKLOAD_BYTES=$(cat "$WORK/workload.bytes")
WORKLOAD_FILES=$(wc -l <"$WORK/workload.list")

read_files() {  # ROOT LIST: reads every listed file under ROOT
  (cd "$1" && tr '\n' '\0' <"$2" | xargs -0 cat >/dev/null)
}

# ---- ferryd over the registry -----------------------------------------------------------------
start_ferryd() {  # NAME CACHE_DIR: mounts the bootstrap at $WORK/NAME/mnt
  local d=$WORK/$1
  mkdir -p "$d/mnt" "$2"
  cat >"$d/config.json" <<EOF
{"device": {"backend": {"type": "registry", "config": {"scheme": "http", "host": "$REG", "repo": "bench/app"}},
            "cache": {"type": "blobcache", "config": {"work_dir": "$2"}}}}
EOF
  "$FERRYD" fuse --mountpoint "$d/mnt" --bootstrap "$WORK/boot/image/image.boot" --config "$d/config.json" \
    --apisock "$d/api.sock" >"$d/log" 2>&1 &
  FERRYD_PID=$!
  for ((i = 0; i < 200; i++)); do
    curl -fs --unix-socket "$d/api.sock" http://x/api/v1/daemon 2>/dev/null | grep -q '"RUNNING"' && return 0
    alive "$FERRYD_PID" || break
    sleep 0.05
  done
  die "ferryd did not start: $(tail -3 "$d/log")"
}
stop_ferryd() {  # NAME
  umount "$WORK/$1/mnt" 2>/dev/null || umount -l "$WORK/$1/mnt"
  stop_child "$FERRYD_PID" ferryd TERM 10
  FERRYD_PID=""
}
fetch_bootstrap() {
  rm -rf "$WORK/boot" && mkdir -p "$WORK/boot"
  curl -fs "http://$REG/v2/bench/app/blobs/$BOOT_DIGEST" | tar -C "$WORK/boot" -xzf -
}

lazy=() full=() fetched=()
for ((r = 1; r <= ROUNDS; r++)); do
  log "(a) round $r: Ferry lazy"
  rm -rf "$WORK/cache-a"
  drop_caches
  sent0=$(registry_sent)
  t0=$(now)
  fetch_bootstrap
  start_ferryd lazy-a "$WORK/cache-a"
  read_files "$WORK/lazy-a/mnt" "$WORK/workload.list"
  t1=$(now)
  sent1=$(registry_sent)
  stop_ferryd lazy-a
  lazy+=("$(py "print($t1 - $t0)")")
  fetched+=("$((sent1 - sent0))")

  log "(a) round $r: full pull (skopeo copy + umoci unpack)"
  rm -rf "$WORK/pull" && mkdir -p "$WORK/pull"
  drop_caches
  t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$REG/bench/app:oci" "oci:$WORK/pull/layout:app"
  umoci unpack --image "$WORK/pull/layout:app" "$WORK/pull/bundle" >/dev/null
  read_files "$WORK/pull/bundle/rootfs" "$WORK/workload.list"
  t1=$(now)
  full+=("$(py "print($t1 - $t0)")")
done

log "(b) a full read through the lazy fetch, and curl of the blobs"
sed 's|^/||' "$WORK/files.list" >"$WORK/all.list"
rm -rf "$WORK/cache-b"
drop_caches
fetch_bootstrap
start_ferryd lazy-b "$WORK/cache-b"
t0=$(now)
read_files "$WORK/lazy-b/mnt" "$WORK/all.list"
t1=$(now)
stop_ferryd lazy-b
full_lazy=$(py "print($t1 - $t0)")
drop_caches
t0=$(now)
for b in $BLOBS; do curl -fs -o /dev/null "http://$REG/v2/bench/app/blobs/$b"; done
t1=$(now)
full_curl=$(py "print($t1 - $t0)")

log "(d) the fully cached state: ferryd over its cache against the kernel's erofs over the same files"
drop_caches
start_ferryd lazy-d "$WORK/cache-b"
t0=$(now)
read_files "$WORK/lazy-d/mnt" "$WORK/all.list"
t1=$(now)
stop_ferryd lazy-d
cached_ferry=$(py "print($t1 - $t0)")
devices=""
for b in $BLOBS; do
  data=$(ls "$WORK/cache-b/${b#sha256:}"*.data 2>/dev/null | head -1)
  [[ -n $data ]] || die "the cache has no data file for $b (ls $WORK/cache-b)"
  loop=$(losetup -f --show -r "$data")
  LOOPS+=("$loop")
  devices+=",device=$loop"
done
mkdir -p "$WORK/kernel"
mount -t erofs -o "ro${devices}" "$WORK/boot/image/image.boot" "$WORK/kernel"
drop_caches
t0=$(now)
read_files "$WORK/kernel" "$WORK/all.list"
t1=$(now)
umount "$WORK/kernel"
cached_kernel=$(py "print($t1 - $t0)")

meta_machine
py 'import statistics,sys
a = [float(x) for x in sys.argv[1].split()]
f = [float(x) for x in sys.argv[2].split()]
fetched = [int(x) for x in sys.argv[3].split()]
image, blob, wl, files = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
full_lazy, full_curl, c_ferry, c_kernel = map(float, sys.argv[8:12])
mib = lambda b: b / 1048576
la, fa = statistics.median(a), statistics.median(f)
fe = statistics.median(fetched)
print("| measure | Ferry | baseline | ratio | target |")
print("|---|---|---|---|---|")
print(f"| (a) read {files} files, {mib(wl):.0f} MiB of {mib(image):.0f} MiB (median of {len(a)}) | lazy {la:.2f} s | full pull + unpack {fa:.2f} s | {la/fa:.2f}x | <= 0.2x |")
print(f"| (b) read the whole image | lazy {full_lazy:.2f} s ({mib(image)/full_lazy:.0f} MiB/s of files) | curl of the blobs {full_curl:.2f} s ({mib(blob)/full_curl:.0f} MiB/s) | {full_curl/full_lazy:.2f} of curl | >= 0.7 |")
print(f"| (c) bytes fetched / bytes read in (a) | {mib(fe):.1f} MiB / {mib(wl):.1f} MiB | | {fe/wl:.2f} | <= 1.3 |")
print(f"| (d) whole image, fully cached, cold page cache | ferryd {c_ferry:.2f} s | kernel erofs over the cache files {c_kernel:.2f} s | {c_ferry/c_kernel:.2f}x | |")
' "${lazy[*]}" "${full[*]}" "${fetched[*]}" "$IMAGE_BYTES" "$BLOB_BYTES" "$WORKLOAD_BYTES" "$WORKLOAD_FILES" \
  "$full_lazy" "$full_curl" "$cached_ferry" "$cached_kernel" >"$WORK/table.md"
cat "$WORK/table.md"
if ((WRITE_DOC)); then
  {
    echo "Command: \`$COMMAND_LINE\` ($(awk -F'\t' '$1=="date"{print $2}' "$META"), $(nproc) CPUs, kernel $(uname -r))."
    echo "Registry: Debian's docker-registry on 127.0.0.1; image: one OCI layer of $(py "print(round($IMAGE_BYTES/1048576))") MiB from $ROOTS, converted with zstd, 1 MiB chunks."
    echo
    cat "$WORK/table.md"
  } >"$WORK/section.md"
  python3 -c 'import sys; sys.path.insert(0, "bench"); import doc_section
doc_section.rewrite_section(sys.argv[1], "lazy_bench", "## Lazy pull from a registry (issue 16)", open(sys.argv[2]).read(), "lazy_bench")' \
    "$OUT" "$WORK/section.md"
  log "wrote the lazy_bench section of $OUT"
fi
