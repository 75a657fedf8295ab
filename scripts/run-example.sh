#!/usr/bin/env bash
# The README's main job: installs dependencies, builds, and runs the example
# suite over local workers with `coordctl run`, twice: the second run is served
# from the result cache.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
report_dir="${REPORT_DIR:-build/reports}"
mkdir -p "$report_dir"
echo "== first run: tests the cache does not know yet run on 4 local workers"
build/bin/coordctl run examples/suite.json --workers=4 \
  --json="$report_dir/example.json" --junit="$report_dir/example.xml" \
  --html="$report_dir/example.html"
echo "== second run: nothing changed, so every result comes from the cache"
build/bin/coordctl run examples/suite.json --workers=4
echo "== reports: $report_dir/example.json, example.xml, example.html"
