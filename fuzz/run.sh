#!/usr/bin/env bash
# Builds erofs_fuzz (clang, libFuzzer + ASan + UBSan) in BUILD_DIR and fuzzes the EROFS reader
# for SECONDS, starting from fresh mkfs.erofs seeds. Exits non-zero on any finding (crash,
# sanitizer report, timeout, out-of-memory); the reproducer is left in BUILD_DIR/fuzz-artifacts/
# and can be replayed with: BUILD_DIR/bin/erofs_fuzz <artifact>.
# Usage: fuzz/run.sh BUILD_DIR SECONDS [extra libFuzzer flags...]
set -euo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS [libFuzzer flags...]}
seconds=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS [libFuzzer flags...]}
shift 2
source_dir=$(cd "$(dirname "$0")/.." && pwd)

CXX=clang++ cmake -S "$source_dir" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFERRY_FUZZ=ON -DFERRY_TESTS=OFF >/dev/null
cmake --build "$build" --target erofs_fuzz -j2

seeds="$build/fuzz-seeds"
corpus="$build/fuzz-corpus"      # grows across runs; libFuzzer writes new inputs here
artifacts="$build/fuzz-artifacts"
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$artifacts"
"$source_dir/fuzz/make_corpus.sh" "$seeds"

status=0
"$build/bin/erofs_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" "$corpus" "$seeds" || status=$?
if [ "$status" -ne 0 ]; then
  echo "erofs_fuzz found a problem (exit $status); reproducers in $artifacts:" >&2
  ls -l "$artifacts" >&2
  exit "$status"
fi
echo "erofs_fuzz: no findings in ${seconds}s"
