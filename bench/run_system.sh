#!/usr/bin/env bash
# Whole-system benchmark: the same N trivial tests (`true`) through Testfleet's
# `coordctl run` and through the tools people use instead, on the same slots,
# in one run. Prints a Markdown table; --json=FILE also writes the figures.
#
#   bench/run_system.sh                 # 10,000 tests, 2 slots, median of 3
#   bench/run_system.sh --quick         # 500 tests, 1 repetition: CI smoke
#   bench/run_system.sh --tests=2000 --slots=2 --repeat=5 --json=out.json
#
# Fails only when a run fails, never on a time.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=10000 slots=2 repeat=3 json=""
for arg in "$@"; do
  case "$arg" in
    --quick) tests=500 repeat=1 ;;
    --tests=*) tests="${arg#*=}" ;;
    --slots=*) slots="${arg#*=}" ;;
    --repeat=*) repeat="${arg#*=}" ;;
    --json=*) json="${arg#*=}" ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done

. scripts/lib.sh
require_build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The same commands for everyone: `true <i>`, distinct so every test has its own key.
write_suite "$work/suite.json" trivial "$tests" true
mkdir -p "$work/ctest"
awk -v n="$tests" 'BEGIN { for (i = 0; i < n; i++) printf "add_test(t%d \"/bin/true\" \"%d\")\n", i, i }' \
  > "$work/ctest/CTestTestfile.cmake"

# Runs "$@" `repeat` times; prints the median wall seconds. A failing run aborts.
measure() {
  local times=()
  for _ in $(seq "$repeat"); do
    [ -n "${before:-}" ] && eval "$before"
    local start end
    start=$(now)
    "$@" >"$work/last.log" 2>&1 || { echo "run failed: $*" >&2; tail -20 "$work/last.log" >&2; exit 1; }
    end=$(now)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.6f", b - a }')")
  done
  printf '%s\n' "${times[@]}" | median
}

declare -A wall
before=""
wall[xargs]=$(measure sh -c "seq $tests | xargs -P $slots -n 1 true")
if command -v parallel >/dev/null; then
  wall[parallel]=$(measure sh -c "seq $tests | parallel -j $slots true")
fi
wall[ctest]=$(measure ctest --test-dir "$work/ctest" -j "$slots" -Q)
before="rm -rf '$work/cache'"
wall[cold]=$(measure "$bin/coordctl" run "$work/suite.json" --workers="$slots" --cache-dir="$work/cache")
before=""
wall[warm]=$(measure "$bin/coordctl" run "$work/suite.json" --workers="$slots" --cache-dir="$work/cache")
grep -q "$tests cached" "$work/last.log" || { echo "warm run was not fully cached" >&2; cat "$work/last.log" >&2; exit 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "| $tests tests of \`true\`, $slots slots (median of $repeat) | wall s | per test ms | vs xargs |"
echo "| --- | ---: | ---: | ---: |"
row() { printf '| %s | %.2f | %.3f | %sx |\n' "$1" "$2" "$(awk -v w="$2" -v n="$tests" 'BEGIN { print w * 1000 / n }')" "$(ratio "$2" "${wall[xargs]}")"; }
row "\`xargs -P $slots\`" "${wall[xargs]}"
[ -n "${wall[parallel]:-}" ] && row "GNU \`parallel -j $slots\`" "${wall[parallel]}"
row "\`ctest -j $slots\`" "${wall[ctest]}"
row "\`coordctl run --workers=$slots\`, cold cache" "${wall[cold]}"
row "\`coordctl run --workers=$slots\`, warm (all cached)" "${wall[warm]}"

if [ -n "$json" ]; then
  {
    printf '{"tests": %d, "slots": %d, "repeat": %d, "wall_s": {' "$tests" "$slots" "$repeat"
    first=1
    for k in "${!wall[@]}"; do
      [ $first -eq 1 ] || printf ', '
      printf '"%s": %s' "$k" "${wall[$k]}"
      first=0
    done
    printf '}}\n'
  } > "$json"
fi
