#!/usr/bin/env bash
# Soak test (not in CI): suites run one after another while workers and the
# coordinator are killed with SIGKILL at random and restarted; every report must
# list every test exactly once, passed. Loopback only, bounded in time.
#
#   scripts/chaos.sh              # 10 minutes
#   scripts/chaos.sh --minutes=2
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10
seconds=""
for arg in "$@"; do
  case "$arg" in
    --minutes=*) minutes="${arg#*=}" ;;
    --seconds=*) seconds="${arg#*=}" ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
. scripts/lib.sh
require_build
work=$(mktemp -d)
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; kill -9 "${workers[@]}" "${coordinator:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A free loopback port, kept across coordinator restarts.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo $((20000 + RANDOM % 20000)))
address="127.0.0.1:$port"
start_coordinator() {
  "$bin/coordinator" --listen="$address" --data-dir="$work/coordinator" --lease=2s \
    >>"$work/coordinator.log" 2>&1 &
  coordinator=$!
}
workers=()
start_worker() {
  local name="w$RANDOM"
  "$bin/worker" --coordinator="$address" --slots=2 --workspace="$work" --name="$name" \
    --spool-dir="$work/spool-$name" \
    >>"$work/workers.log" 2>&1 &
  workers+=($!)
}

tests=200
awk -v n="$tests" 'BEGIN {
  srand(7); printf "{\"name\": \"chaos\", \"tests\": ["
  for (i = 0; i < n; i++) printf "%s{\"id\": \"t%d\", \"cmd\": [\"sleep\", \"%.2f\"], \"env\": {\"RUN\": \"RUN_ID\"}}", (i ? ", " : ""), i, 0.01 + rand() * 0.09
  print "]}" }' > "$work/template.json"

start_coordinator
for _ in 1 2 3; do start_worker; done
sleep 1
started_at=$(date +%s)
deadline=$(( $(date +%s) + ${seconds:-$((minutes * 60))} ))
suites=0 failures=0 worker_kills=0 coordinator_kills=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  suites=$((suites + 1))
  # A new env value per suite: nothing comes from the cache.
  sed "s/RUN_ID/$suites-$RANDOM/g" "$work/template.json" > "$work/suite.json"
  "$bin/coordctl" submit "$work/suite.json" --coordinator="$address" --wait \
    --json="$work/report.json" --cache-dir="$work/client" >"$work/client.log" 2>&1 &
  client=$!
  pids=("$client")
  for _ in $(seq 3); do
    sleep "0.$((RANDOM % 9 + 1))"
    kill -0 "$client" 2>/dev/null || break
    if [ $((RANDOM % 4)) -eq 0 ]; then
      kill -9 "$coordinator"; wait "$coordinator" 2>/dev/null || true
      coordinator_kills=$((coordinator_kills + 1))
      start_coordinator
    else
      victim=$((RANDOM % ${#workers[@]}))
      kill -9 "${workers[$victim]}"; wait "${workers[$victim]}" 2>/dev/null || true
      unset "workers[$victim]"; workers=("${workers[@]}")
      worker_kills=$((worker_kills + 1))
      start_worker
    fi
  done
  [ -n "${CHAOS_VERBOSE:-}" ] && tail -1 "$work/client.log"
  if ! wait "$client"; then
    failures=$((failures + 1)); echo "suite $suites: coordctl failed"; tail -5 "$work/client.log"; continue
  fi
  # The report's tests only (insights and regressions name tests too).
  read -r total unique passed < <(python3 -c '
import json, sys
tests = json.load(open(sys.argv[1]))["tests"]
print(len(tests), len({t["id"] for t in tests}),
      sum(t["status"] == "passed" for t in tests))' "$work/report.json")
  if [ "$unique" -ne "$tests" ] || [ "$total" -ne "$tests" ] || [ "$passed" -ne "$tests" ]; then
    failures=$((failures + 1)); echo "suite $suites: $total results, $unique unique, $passed passed"
  fi
done
echo "$suites suites of $tests tests in $(( $(date +%s) - started_at )) s: $worker_kills worker kills, $coordinator_kills coordinator kills, $failures bad reports"
[ "$failures" -eq 0 ]
