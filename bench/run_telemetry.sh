#!/usr/bin/env bash
# What measuring costs: the worker's overhead per test against `/usr/bin/time -v`
# on the same command, and the CPU the memory sampling takes.
#
#   bench/run_telemetry.sh            # 1,000 sequential tests; 8 sleepers x 2 s
#   bench/run_telemetry.sh --quick    # 100 tests; 4 sleepers x 1 s
set -euo pipefail
cd "$(dirname "$0")/.."
tests=1000 sleepers=8 sleep_s=2
[ "${1:-}" = "--quick" ] && tests=100 sleepers=4 sleep_s=1
. scripts/lib.sh
require_build
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time: scripts/install-deps.sh" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# 1. One slot, one test after another: everything but the test is overhead.
write_suite "$work/true.json" bench "$tests" /bin/true
start=$(date +%s.%N)
for i in $(seq "$tests"); do /bin/true "$i"; done
plain=$(seconds "$start" "$(date +%s.%N)")
start=$(date +%s.%N)
for i in $(seq "$tests"); do /usr/bin/time -v /bin/true "$i" 2>/dev/null; done
timev=$(seconds "$start" "$(date +%s.%N)")
start=$(date +%s.%N)
"$bin/coordctl" run "$work/true.json" --workers=1 --cache-dir="$work/cache1" >/dev/null 2>&1
testfleet=$(seconds "$start" "$(date +%s.%N)")

echo "| $tests sequential runs of \`/bin/true\` | total s | per test ms |"
echo "| --- | ---: | ---: |"
for row in "shell loop, no measurement:$plain" "\`/usr/bin/time -v\` each:$timev" \
           "\`coordctl run --workers=1\` (cold cache):$testfleet"; do
  printf '| %s | %s | %s |\n' "${row%%:*}" "${row##*:}" \
    "$(awk -v t="${row##*:}" -v n="$tests" 'BEGIN { printf "%.3f", t * 1000 / n }')"
done

# 2. Sampling: the CPU of the coordctl process itself while tests sleep.
write_suite "$work/sleep.json" bench "$sleepers" sleep "$sleep_s"
echo
echo "| $sleepers tests sleeping ${sleep_s} s at once | coordctl user+sys CPU s |"
echo "| --- | ---: |"
for interval in 0 100ms 10ms; do
  /usr/bin/time -f "%U %S" -o "$work/cpu" "$bin/coordctl" run "$work/sleep.json" \
    --workers="$sleepers" --sample-interval="$interval" --cache-dir="$work/cache-$interval" >/dev/null 2>&1
  printf '| sampling %s | %s |\n' "$([ "$interval" = 0 ] && echo off || echo "every $interval")" \
    "$(awk '{ printf "%.3f", $1 + $2 }' "$work/cpu")"
done
