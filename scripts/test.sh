#!/usr/bin/env bash
# The whole test suite: release build + every test (unit and end-to-end, as root), the unit
# tests again under AddressSanitizer + UndefinedBehaviorSanitizer, and a bounded fuzzing run.
# Usage: scripts/test.sh            (FERRY_FUZZ_SECONDS=N to change the fuzzing time, 0 to skip)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${FERRY_JOBS:-2}
fuzz_seconds=${FERRY_FUZZ_SECONDS:-60}

scripts/setup.sh

echo "== release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "== sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" --target unit_tests

status=0
echo "== all tests (release)"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600 || status=1

echo "== unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -L unit --timeout 600 || status=1

if [[ "$fuzz_seconds" != 0 && -x fuzz/run.sh ]]; then
  echo "== fuzzing the EROFS reader for ${fuzz_seconds}s"
  fuzz/run.sh build-fuzz "$fuzz_seconds" || status=1
  echo "== fuzzing the HTTP request parser for 20s"
  mkdir -p build-fuzz/http-corpus build-fuzz/fuzz-artifacts
  if cmake --build build-fuzz --target http_request_fuzz -j"$jobs"; then
    build-fuzz/bin/http_request_fuzz -max_total_time=20 -timeout=10 -rss_limit_mb=2048 -max_len=70000 -dict=fuzz/http.dict \
      -artifact_prefix=build-fuzz/fuzz-artifacts/ -print_final_stats=1 build-fuzz/http-corpus || status=1
  else
    status=1
  fi
fi

if ((status)); then echo "TESTS FAILED"; else echo "ALL TESTS PASSED"; fi
exit "$status"
