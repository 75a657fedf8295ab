#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every unit and
# integration test with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
