#!/usr/bin/env bash
# Runs the dashboard's browser test and keeps its screenshots of the fleet,
# suite and test pages as docs/dashboard-*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
scripts/build.sh >/dev/null
TESTFLEET_SCREENSHOTS_DIR="$PWD/docs" build/bin/integration_test \
  --gtest_filter='DashboardBrowserTest.*'
ls -l docs/dashboard-*.png
