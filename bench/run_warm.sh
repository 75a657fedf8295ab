#!/usr/bin/env bash
# Warm cache (workload 3): a suite of N tests, each with an input file of its
# own, through `coordctl run` three times: cold, again with nothing changed
# (every result from the cache), and with one input file changed (only its
# test runs). Prints a Markdown table; --json=FILE also writes the figures.
#
#   bench/run_warm.sh               # 2,000 tests, 2 workers, median of 3
#   bench/run_warm.sh --quick       # 200 tests, once: CI smoke
#
# Fails only when a run fails or the cache answers wrongly, never on a time.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=2000 workers=2 repeat=3 json=""
for arg in "$@"; do
  case "$arg" in
    --quick) tests=200 repeat=1 ;;
    --tests=*) tests="${arg#*=}" ;;
    --repeat=*) repeat="${arg#*=}" ;;
    --json=*) json="${arg#*=}" ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
. scripts/lib.sh
require_build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/inputs"
for i in $(seq 0 $((tests - 1))); do echo "input $i" >"$work/inputs/$i.txt"; done
awk -v n="$tests" 'BEGIN {
  printf "{\"name\": \"warm\", \"tests\": ["
  for (i = 0; i < n; i++)
    printf "%s{\"id\": \"t%d\", \"cmd\": [\"cat\", \"inputs/%d.txt\"], \"inputs\": [\"inputs/%d.txt\"]}", (i ? ", " : ""), i, i, i
  print "]}" }' >"$work/suite.json"

# Runs coordctl once; prints "seconds executed cached".
run_once() {
  local start end
  start=$(now)
  "$bin/coordctl" run "$work/suite.json" --workers="$workers" --cache-dir="$work/cache" \
    --json="$work/report.json" >"$work/last.log" 2>&1 ||
    { echo "run failed" >&2; tail -20 "$work/last.log" >&2; exit 1; }
  end=$(now)
  python3 - "$work/report.json" "$start" "$end" <<'EOF'
import json, sys
tests = json.load(open(sys.argv[1]))["tests"]
cached = sum(t["cached"] for t in tests)
print(f"{float(sys.argv[3]) - float(sys.argv[2]):.3f} {len(tests) - cached} {cached}")
EOF
}

cold=() warm=() changed=()
for r in $(seq "$repeat"); do
  rm -rf "$work/cache"
  read -r s executed cached <<<"$(run_once)"
  [ "$executed" -eq "$tests" ] || { echo "cold run executed $executed of $tests" >&2; exit 1; }
  cold+=("$s")
  read -r s executed cached <<<"$(run_once)"
  [ "$cached" -eq "$tests" ] || { echo "warm run: $cached of $tests cached" >&2; exit 1; }
  warm+=("$s")
  echo "changed in round $r" >>"$work/inputs/7.txt"
  read -r s executed cached <<<"$(run_once)"
  [ "$executed" -eq 1 ] || { echo "one changed input re-ran $executed tests" >&2; exit 1; }
  changed+=("$s")
done
cold_s=$(printf '%s\n' "${cold[@]}" | median)
warm_s=$(printf '%s\n' "${warm[@]}" | median)
changed_s=$(printf '%s\n' "${changed[@]}" | median)

echo "| $tests tests, \`coordctl run --workers=$workers\` (median of $repeat) | wall s | tests run | from the cache |"
echo "| --- | ---: | ---: | ---: |"
echo "| cold cache | $cold_s | $tests | 0 |"
echo "| nothing changed | $warm_s | 0 | $tests (100%) |"
echo "| one input file changed | $changed_s | 1 | $((tests - 1)) |"
if [ -n "$json" ]; then
  printf '{"tests": %d, "cold_s": %s, "warm_s": %s, "one_changed_s": %s}\n' \
    "$tests" "$cold_s" "$warm_s" "$changed_s" >"$json"
fi
