#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and
# runs each for --seconds (default 60). A crash leaves its input in
# build-fuzz/crashes/ and fails the script. Run by scripts/test.sh in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
for arg in "$@"; do
  case "$arg" in
    --seconds=*) seconds="${arg#--seconds=}" ;;
    *) echo "usage: scripts/fuzz.sh [--seconds=N]" >&2; exit 2 ;;
  esac
done
targets=(fuzz_suite_parser fuzz_units fuzz_coordinator_requests fuzz_resource_names
  fuzz_directories)
# -O1 with line tables, as libFuzzer's documentation advises: a fifth less
# compile time than -O2 -g, and the stacks of a crash still name the lines.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DTESTFLEET_FUZZ=ON >/dev/null
ninja -C build-fuzz "${targets[@]}"
mkdir -p build-fuzz/crashes
status=0
for target in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$target"
  mkdir -p "$corpus"
  # Seeds: the example suite and the repository's JSON suites for the parser.
  if [ "$target" = fuzz_suite_parser ]; then cp examples/suite.json "$corpus/" ; fi
  if [ "$target" = fuzz_resource_names ]; then
    printf 'team/a/uploads/0c1d/blobs/%064d/42/meta' 0 >"$corpus/seed-write"
    printf 'blobs/%064d/7' 0 >"$corpus/seed-read"
  fi
  echo "fuzz: $target for ${seconds}s"
  if ! "build-fuzz/bin/$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix=build-fuzz/crashes/"$target"- "$corpus" >"build-fuzz/$target.log" 2>&1; then
    echo "fuzz: $target FAILED; see build-fuzz/$target.log and build-fuzz/crashes/" >&2
    tail -40 "build-fuzz/$target.log" >&2
    status=1
  else
    grep -aE "stat::number_of_executed_units|stat::peak_rss_mb" "build-fuzz/$target.log" | sed "s/^/  /"
  fi
done
exit $status
