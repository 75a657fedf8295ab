#!/usr/bin/env bash
# Growth with suite size (workload 5): for each size, a fresh coordinator
# takes a suite of `true` tests, first with no worker connected (so the whole
# suite sits in its queue), then with one 2-slot worker that runs it. Prints a
# Markdown table; --json=FILE also writes the figures.
#
#   bench/run_growth.sh                       # 500, 5,000, 50,000, 100,000 tests
#   bench/run_growth.sh --quick               # 500 and 2,000: CI smoke
#   bench/run_growth.sh --sizes=1000,10000 --repeat=3 --json=growth.json
#   bench/run_growth.sh --no-cache-service    # the coordinator schedules only
#   bench/run_growth.sh --report-interval=20ms  # the worker's, for an A/B
#
# Columns: submit (coordctl submit, no --wait: read, hash, send, stored),
# queued RSS growth per test (coordinator VmRSS with the suite queued minus
# before, over the tests), run (submit to the end of the last test), the
# coordinator's CPU per test over the whole run (utime+stime from /proc), its
# CPU against one fork+exec of `true` measured in the same run, its
# peak RSS (VmHWM), and the size of the JSON report. Fails only on a broken
# run, never on a time. With --repeat=N each column is the median of N runs.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="500,5000,50000,100000" repeat=1 json="" coordinator_flags=() worker_flags=()
for arg in "$@"; do
  case "$arg" in
    # Scheduling alone: workers then run uncached, the coordinator serves no puts.
    --no-cache-service) coordinator_flags+=(--no-cache-service) ;;
    --report-interval=*) worker_flags+=("$arg") ;;
    --quick) sizes="500,2000" ;;
    --sizes=*) sizes="${arg#*=}" ;;
    --repeat=*) repeat="${arg#*=}" ;;
    --json=*) json="${arg#*=}" ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
. scripts/lib.sh
require_build
work=$(mktemp -d)
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }
# The CPU one fork+exec of `true` costs here (xargs and the child, user and
# system), measured in this run: what the coordinator's CPU per test is
# weighed against, so the ratio holds across machines.
fork_exec_cpu_us() {
  python3 -c 'import resource, subprocess, sys
n = int(sys.argv[1])
subprocess.run(f"seq {n} | xargs -P 2 -n 1 true", shell=True, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{(r.ru_utime + r.ru_stime) * 1e6 / n:.1f}")' "$1"
}

# One fresh coordinator, one suite of n tests; prints "submit_s run_s
# bytes_per_test cpu_us peak_mib report_mib".
measure() {
  local n=$1 dir="$work/$1-$2"
  mkdir -p "$dir"
  write_suite "$dir/suite.json" growth "$n" true
  "$bin/coordinator" --listen=127.0.0.1:0 --data-dir="$dir/data" --max-suite-tests=1000000 \
    "${coordinator_flags[@]}" >"$dir/coordinator.log" 2>&1 &
  coordinator=$!
  pids+=("$coordinator")
  address="127.0.0.1:$(listening_port "$dir/coordinator.log")"
  rss_before=$(status_kb "$coordinator" VmRSS)
  cpu_before=$(cpu_s "$coordinator")

  start=$(now)
  suite_id=$("$bin/coordctl" submit "$dir/suite.json" --coordinator="$address" \
    --cache-dir="$dir/cc" 2>"$dir/submit.log") || { cat "$dir/submit.log" >&2; exit 1; }
  submitted=$(now)
  rss_queued=$(status_kb "$coordinator" VmRSS)

  "$bin/worker" --coordinator="$address" --slots=2 --workspace="$dir" --name=w \
    --spool-dir="$dir/spool" "${worker_flags[@]}" >"$dir/worker.log" 2>&1 &
  pids+=("$!")
  "$bin/coordctl" watch "$suite_id" --coordinator="$address" >"$dir/watch.log" 2>&1 ||
    { tail "$dir/watch.log" >&2; exit 1; }
  finished=$(now)
  cpu_after=$(cpu_s "$coordinator")
  peak=$(status_kb "$coordinator" VmHWM)
  "$bin/coordctl" report "$suite_id" --coordinator="$address" --json="$dir/report.json" \
    >/dev/null 2>&1 || { echo "report of $n tests failed" >&2; exit 1; }
  grep -q "\"passed\": $n" "$dir/report.json" || { echo "not all $n passed" >&2; exit 1; }
  report_bytes=$(stat -c %s "$dir/report.json")
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()

  awk -v s="$start" -v q="$submitted" -v f="$finished" -v rb="$rss_before" -v rq="$rss_queued" \
    -v c0="$cpu_before" -v c1="$cpu_after" -v pk="$peak" -v rep="$report_bytes" -v n="$n" \
    'BEGIN { printf "%.3f %.2f %.0f %.1f %.1f %.2f\n", q - s, f - s, (rq - rb) * 1024 / n,
             (c1 - c0) * 1e6 / n, pk / 1024, rep / 1048576 }'
  rm -rf "$dir"
}

rows=() records=()
IFS=, read -ra list <<<"$sizes"
for n in "${list[@]}"; do
  for r in $(seq "$repeat"); do measure "$n" "$r"; done >"$work/runs-$n"
  # The median of each column (the machine is noisy; CPU per test follows it).
  read -r submit_s run_s per_test_bytes cpu_us peak_mib report_mib <<<"$(for c in 1 2 3 4 5 6; do
    cut -d' ' -f"$c" "$work/runs-$n" | median '%s '
  done)"
  fork_us=$(for r in $(seq "$repeat"); do fork_exec_cpu_us "$((n < 5000 ? n : 5000))"; done | median "%.1f")
  share=$(awk -v c="$cpu_us" -v f="$fork_us" 'BEGIN { printf "%.1f", 100 * c / f }')
  rows+=("| $n | $submit_s | $per_test_bytes | $run_s | $cpu_us | $fork_us | $share% | $peak_mib | $report_mib |")
  records+=("{\"tests\": $n, \"submit_s\": $submit_s, \"queued_bytes_per_test\": $per_test_bytes, \"run_s\": $run_s, \"coordinator_cpu_us_per_test\": $cpu_us, \"fork_exec_cpu_us\": $fork_us, \"coordinator_cpu_per_fork_exec\": $(awk -v s="$share" 'BEGIN { print s / 100 }'), \"coordinator_peak_rss_mib\": $peak_mib, \"report_mib\": $report_mib}")
  echo "$n tests: submit ${submit_s}s, run ${run_s}s" >&2
done

echo "| tests | submit s | queued bytes/test | run s (1 worker, 2 slots) | coordinator CPU µs/test | fork+exec of \`true\` CPU µs | coordinator CPU per test / fork+exec | coordinator peak RSS MiB | JSON report MiB |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
if [ -n "$json" ]; then
  (IFS=,; echo "[${records[*]}]") >"$json"
fi
