#!/usr/bin/env bash
# The whole test suite: a Release build (the build type distributions ship; warnings are
# errors here, FERRY_WERROR=ON) + every test (unit and end-to-end, as root), the unit tests
# again under AddressSanitizer + UndefinedBehaviorSanitizer (a Debug build), and a bounded
# fuzzing run.
# Usage: scripts/test.sh            (FERRY_FUZZ_SECONDS=N to change the fuzzing time, 0 to skip)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "test: run as root (the end-to-end tests mount, and setup installs packages): in a root" \
    "shell 'scripts/test.sh', otherwise 'su -c scripts/test.sh' (or sudo where installed)" >&2
  exit 1
fi
jobs=${FERRY_JOBS:-2}
# A compiler cache where one is installed (optional, not a dependency): a second run of the
# suite, in this clone or another, recompiles only what changed.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
fi
fuzz_seconds=${FERRY_FUZZ_SECONDS:-60}

scripts/setup.sh

echo "== release build"
# Release, not RelWithDebInfo: the tests then run the optimisation level packages are built
# with (-O3, where g++ 12 warns differently from -O2), and a failing test is debugged in the
# sanitizer build, which has the debug information.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFERRY_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build build -j"$jobs"

echo "== sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON -DFERRY_WERROR=ON "${launcher[@]}" >/dev/null
cmake --build build-asan -j"$jobs" --target unit_tests

status=0
failures=()  # what failed, repeated at the very end: CI shows only the tail of the output
failed_tests() {  # $1: build dir, $2: stage name
  local log=$1/Testing/Temporary/LastTestsFailed.log
  [[ -f $log ]] && while IFS= read -r line; do failures+=("$2: test ${line#*:}"); done <"$log"
}
echo "== all tests (release)"
rm -f build/Testing/Temporary/LastTestsFailed.log
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600 || { status=1; failed_tests build release; }

echo "== unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -L unit --timeout 600 || { status=1; failed_tests build-asan asan; }

if [[ "$fuzz_seconds" != 0 && -x fuzz/run.sh ]]; then
  echo "== fuzzing the EROFS reader for ${fuzz_seconds}s"
  fuzz/run.sh build-fuzz "$fuzz_seconds" || { status=1; failures+=("fuzz: erofs_fuzz (fuzz/run.sh)"); }
  # The other parsers of untrusted bytes, briefly: the state a successor opens, the HTTP
  # requests of the API sockets (no seeds: the envelope target seals its own inputs, the HTTP
  # and OCI ones start from their dictionaries), the chunk table of a Ferry bootstrap (it
  # rewrites its own headers), tar layers through the builder to an EROFS image (seeded with
  # small tars), the OCI manifests, configs and references a registry or a user hands over, the
  # stored chunks of a compressed blob, the blob cache's chunk maps another daemon left, and
  # ferryd's nydusd config (from its dictionary of keys).
  mkdir -p build-fuzz/fuzz-artifacts
  fuzz/make_layer_seeds.sh build-fuzz/layer_fuzz-seeds
  for target in state_envelope_fuzz:15 http_request_fuzz:20 chunk_table_fuzz:15 layer_fuzz:15 oci_manifest_fuzz:20 chunked_blob_fuzz:15 chunk_map_fuzz:15 daemon_config_fuzz:10; do
    name=${target%%:*}
    secs=${target##*:}
    echo "== fuzzing with $name for ${secs}s"
    extra=()
    seeds=()  # after the corpus: libFuzzer writes new inputs to the first directory
    [[ $name == http_request_fuzz ]] && extra=(-dict=fuzz/http.dict -max_len=70000)
    [[ $name == layer_fuzz ]] && seeds=(build-fuzz/layer_fuzz-seeds)
    [[ $name == oci_manifest_fuzz ]] && extra=(-dict=fuzz/oci.dict)
    [[ $name == daemon_config_fuzz ]] && extra=(-dict=fuzz/daemon_config.dict)
    mkdir -p "build-fuzz/$name-corpus"
    if cmake --build build-fuzz --target "$name" -j"$jobs"; then
      "build-fuzz/bin/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 "${extra[@]}" \
        -artifact_prefix=build-fuzz/fuzz-artifacts/ -print_final_stats=1 "build-fuzz/$name-corpus" "${seeds[@]}" \
        || { status=1; failures+=("fuzz: $name found an input it fails on"); }
    else
      status=1; failures+=("fuzz: $name did not build")
    fi
  done
fi

if ((status)); then
  echo "== what failed"
  printf '  %s\n' "${failures[@]}"
  ls build-fuzz/fuzz-artifacts 2>/dev/null | sed 's/^/  fuzz artifact: /'
  echo "TESTS FAILED"
else
  echo "ALL TESTS PASSED"
fi
exit "$status"
