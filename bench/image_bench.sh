#!/usr/bin/env bash
# Image build benchmark (issue 15 point 6): `ferry-image create` against the decompression floor
# (zcat of every layer to /dev/null) and against `umoci unpack` + `mkfs.erofs` of the result,
# the image size against the gzip OCI image, and dedup on an image whose layers repeat files.
#
# Usage: bench/image_bench.sh [--roots "DIR..."] [--layers N] [--rounds N] [--ferry-image PATH]
#                             [--chunk-size N] [--gzip-level N] [--keep]
#
#   --roots "DIR..."   trees whose top-level entries are split into the layers by size
#                      (default "/usr/share /usr/bin /usr/sbin /usr/include": about 1.5 GB here)
#   --layers N         number of layers (default 5)
#   --rounds N         rounds; every time reported is the median (default 3)
#   --ferry-image PATH the binary (default build/bin/ferry-image under the repo root)
#   --chunk-size N     passed to ferry-image (default its own, 1 MiB)
#   --gzip-level N     gzip level of the OCI layers (default 6, what docker and Go use)
#   --keep             keep the temp dir (its path is printed)
#
# Needs root (umoci keeps owners), umoci, mkfs.erofs, gzip, sha256sum, python3. Everything lives
# in one private temp dir (under $TMPDIR, else /var/tmp), removed on exit. Inputs are read warm
# (every layer is read once before timing): the figures compare CPU work, not the disk. Run on a
# quiet machine: the build shares the CPUs with nothing else, and the numbers are wall times.
# Prints a markdown table on stdout (for docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_lib_init image_bench "$@"

ROOTS="/usr/share /usr/bin /usr/sbin /usr/include"
LAYERS=5
ROUNDS=3
TOOL=$PWD/build/bin/ferry-image
CHUNK=()
GZ_LEVEL=6
KEEP=0
while (($#)); do
  case $1 in
    --roots) need_val "$@"; ROOTS=$2; shift 2 ;;
    --layers) need_val "$@"; LAYERS=$2; shift 2 ;;
    --ferry-image) need_val "$@"; TOOL=$2; shift 2 ;;
    --chunk-size) need_val "$@"; CHUNK=(--chunk-size "$2"); shift 2 ;;
    --gzip-level) need_val "$@"; GZ_LEVEL=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) common_arg "$@"; shift "$ARG_SHIFT" ;;
  esac
done
is_uint "$LAYERS" || die "--layers needs a positive number"
is_uint "$ROUNDS" || die "--rounds needs a positive number"
[[ -x $TOOL ]] || die "no ferry-image at $TOOL (build it: cmake --build build --target ferry-image)"
for t in umoci mkfs.erofs gzip sha256sum python3; do command -v "$t" >/dev/null || die "$t is not installed"; done
((EUID == 0)) || die "run as root (umoci unpack keeps owners)"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-image-bench-XXXXXX")
cleanup() {
  if ((KEEP)); then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { python3 -c 'import sys,statistics; print("%.2f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
mib() { python3 -c 'import sys; print("%.1f" % (int(sys.argv[1]) / 1048576))' "$1"; }

# ---- the layers: top-level entries of the roots, spread over N layers by size ----------------
log "splitting $ROOTS into $LAYERS layers"
mkdir -p "$WORK/layers"
du -s --block-size=1 $(for r in $ROOTS; do find "$r" -mindepth 1 -maxdepth 1; done) 2>/dev/null | sort -rn >"$WORK/sizes"
python3 - "$LAYERS" "$WORK/sizes" "$WORK/layers" <<'PY'
import sys
n, sizes, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
groups = [[0, []] for _ in range(n)]
for line in open(sizes):
    size, path = line.rstrip("\n").split("\t", 1)
    g = min(groups, key=lambda x: x[0])
    g[0] += int(size)
    g[1].append(path.lstrip("/"))
for i, (_, paths) in enumerate(groups):
    with open(f"{out}/{i + 1}.list", "w") as f:
        f.write("\n".join(sorted(paths)) + "\n")
PY
layers=()
for i in $(seq 1 "$LAYERS"); do
  tar -C / --numeric-owner --xattrs -cf - -T "$WORK/layers/$i.list" 2>/dev/null | gzip -"$GZ_LEVEL" >"$WORK/layers/$i.tar.gz"
  layers+=("$WORK/layers/$i.tar.gz")
done
gz_bytes=$(cat "${layers[@]}" | wc -c)
tar_bytes=0
for l in "${layers[@]}"; do tar_bytes=$((tar_bytes + $(zcat "$l" | wc -c))); done
log "layers: $(mib "$gz_bytes") MiB gzip, $(mib "$tar_bytes") MiB tar"

# ---- the OCI layout umoci unpacks ----------------------------------------------------------------
oci=$WORK/oci
mkdir -p "$oci/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$oci/blobs/sha256/$d"; echo "$d"; }
diff_ids=""
manifest_layers=""
for l in "${layers[@]}"; do
  d=$(put "$l")
  id=$(zcat "$l" | sha256sum | cut -d' ' -f1)
  diff_ids+="${diff_ids:+,}\"sha256:$id\""
  manifest_layers+="${manifest_layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$l")}"
done
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diff_ids" >"$WORK/config.json"
cfg=$(put "$WORK/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
  "$cfg" "$(stat -c %s "$WORK/config.json")" "$manifest_layers" >"$WORK/manifest.json"
man=$(put "$WORK/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
  "$man" "$(stat -c %s "$WORK/manifest.json")" >"$oci/index.json"

# ---- timed runs ----------------------------------------------------------------------------------
cat "${layers[@]}" >/dev/null  # warm
floor=() create=() create_none=() umoci=() mkfs=()
for r in $(seq 1 "$ROUNDS"); do
  log "round $r/$ROUNDS"
  t0=$(now); for l in "${layers[@]}"; do zcat "$l" >/dev/null; done; t1=$(now)
  floor+=("$(python3 -c "print($t1 - $t0)")")

  rm -rf "$WORK/blobs" "$WORK/image.boot"; mkdir -p "$WORK/blobs"
  t0=$(now); "$TOOL" create --bootstrap "$WORK/image.boot" --blob-dir "$WORK/blobs" "${CHUNK[@]}" "${layers[@]}" >"$WORK/summary.json"; t1=$(now)
  create+=("$(python3 -c "print($t1 - $t0)")")

  rm -rf "$WORK/blobs-none" "$WORK/none.boot"; mkdir -p "$WORK/blobs-none"
  t0=$(now); "$TOOL" create --bootstrap "$WORK/none.boot" --blob-dir "$WORK/blobs-none" --compressor none "${CHUNK[@]}" "${layers[@]}" >/dev/null; t1=$(now)
  create_none+=("$(python3 -c "print($t1 - $t0)")")

  rm -rf "$WORK/bundle" "$WORK/mkfs.img"
  t0=$(now); umoci unpack --image "$oci:bench" "$WORK/bundle" >/dev/null; t1=$(now)
  mkfs.erofs --quiet "$WORK/mkfs.img" "$WORK/bundle/rootfs" >/dev/null; t2=$(now)
  umoci+=("$(python3 -c "print($t1 - $t0)")")
  mkfs+=("$(python3 -c "print($t2 - $t1)")")
done

image_bytes=$(( $(cat "$WORK"/blobs/* | wc -c) + $(stat -c %s "$WORK/image.boot") ))
floor_m=$(median "${floor[@]}")
create_m=$(median "${create[@]}")
none_m=$(median "${create_none[@]}")
umoci_m=$(median "${umoci[@]}")
mkfs_m=$(median "${mkfs[@]}")
unpack_total=$(python3 -c "print('%.2f' % ($umoci_m + $mkfs_m))")

# ---- dedup: the same layers twice, the second time with one layer's files again in a new layer --
rm -rf "$WORK/blobs-dup"; mkdir -p "$WORK/blobs-dup"
"$TOOL" create --bootstrap "$WORK/dup.boot" --blob-dir "$WORK/blobs-dup" "${CHUNK[@]}" "${layers[@]}" "${layers[0]}" >"$WORK/dup.json"
dedup_saved=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dedup_saved_bytes"])' "$WORK/dup.json")
dup_stored=$(( $(cat "$WORK"/blobs-dup/* | wc -c) ))

cat <<EOF2
### Building an image: ferry-image create ($LAYERS gzip layers of $ROOTS)

Command: \`$COMMAND_LINE\`; $(nproc) CPUs; medians of $ROUNDS rounds, inputs warm.

| what | wall time (s) | vs floor |
|---|---|---|
| decompression floor: \`zcat\` every layer to /dev/null | $floor_m | 1.00 |
| \`ferry-image create\` (zstd) | $create_m | $(ratio "$create_m" "$floor_m") |
| \`ferry-image create --compressor none\` | $none_m | $(ratio "$none_m" "$floor_m") |
| \`umoci unpack\` + \`mkfs.erofs\` | $unpack_total ($umoci_m + $mkfs_m) | $(ratio "$unpack_total" "$floor_m") |

Targets: create <= 1.5x the floor, and faster than unpack + mkfs.erofs.

| size | MiB | vs gzip OCI |
|---|---|---|
| OCI layers (gzip -$GZ_LEVEL) | $(mib "$gz_bytes") | 1.00 |
| Ferry image, zstd (blobs + bootstrap $(mib "$(stat -c %s "$WORK/image.boot")") MiB) | $(mib "$image_bytes") | $(ratio "$image_bytes" "$gz_bytes") |
| uncompressed tar | $(mib "$tar_bytes") | $(ratio "$tar_bytes" "$gz_bytes") |

Target: zstd image <= 1.05x the gzip OCI image.

Dedup: the same layers plus layer 1 again on top: $(mib "$dedup_saved") MiB referenced instead of
stored; the blobs take $(mib "$dup_stored") MiB against $(mib "$((image_bytes - $(stat -c %s "$WORK/image.boot")))") MiB without the repeated layer.
EOF2
