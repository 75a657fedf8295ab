#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every unit and
# integration test with CTest, then the fuzz targets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
# The parsers, the REAPI name and Directory checks and the coordinator's
# request handlers under libFuzzer: a 15 s smoke each (scripts/fuzz.sh
# --seconds=N for longer runs).
scripts/fuzz.sh --seconds="${FUZZ_SECONDS:-15}"
