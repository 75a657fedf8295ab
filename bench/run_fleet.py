#!/usr/bin/env python3
"""The coordinator at fleet scale (workload 10): the real coordinator binary,
with its store and cache, against bench/fleet_sim, one process that plays N
workers of 8 slots over N connections (register, pull, heartbeat, report as
the worker does; a test "runs" for its duration without a process).

Per fleet size: dispatches per second, PullWork latency (calls that got
work, started while work was queued) p50 and p99, the share of slot time
busy while work was queued, coordinator CPU per test and resident memory,
RPC errors. And whether the simulator kept up: how late its timers fired
(p99), and the most bytes left unread in the connections' sockets at the
coordinator's end and at the simulator's (sampled every 250 ms). Each
pull's latency is split at the coordinator's time stamps: before its
handler got the call, in the handler, after it answered (their p99s).
Durations are log-normal, mean 1 s (--mean-ms); each run is one suite, or 20
suites submitted at once. Each test's history knows its duration exactly,
unless --run-sigma spreads each run around it (a log-normal factor).

  bench/run_fleet.py [--quick] [--json=OUT] [--workers=100,1000,5000]
                     [--tests=200000] [--suites=1,20] [--sigma=1]
                     [--mean-ms=1000] [--run-sigma=0] [--repeat=1]
                     [--coordinator-nice=0]

--repeat=N runs each size N times in a row; the table shows each figure's
median over them and every run's PullWork p99 (this host's p99 at 1,000
workers varies by 2x from run to run). The JSON keeps every run, and the
medians under "medians".

--coordinator-nice=N starts the coordinator at that nice value (below 0
needs root). The simulator shares this host's cores with the coordinator;
-10 gives the coordinator the cores first, as a host of its own would, and
leaves the simulator what is left over.

Fails when a run fails (an RPC error, a test not reported), never on a time.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, require_build


def run_one(work, workers, tests, suites, sigma, mean_ms, run_sigma, coordinator_nice):
    data = os.path.join(work, f"data-{workers}-{suites}")
    log_path = os.path.join(work, f"coordinator-{workers}-{suites}.log")
    coordinator = subprocess.Popen(
        [os.path.join(BIN, "coordinator"), "--listen=127.0.0.1:0", f"--data-dir={data}",
         f"--max-workers={max(10000, workers)}"],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
        preexec_fn=(lambda: os.nice(coordinator_nice)) if coordinator_nice else None)
    try:
        address = None
        for _ in range(500):
            found = re.search(r"listening on port (\d+)", open(log_path).read())
            if found:
                address = f"127.0.0.1:{found.group(1)}"
                break
            if coordinator.poll() is not None:
                break
            time.sleep(0.02)
        if address is None:
            sys.exit(f"the coordinator did not start:\n{open(log_path).read()[-2000:]}")
        sim = subprocess.run(
            [os.path.join(BIN, "fleet_sim"), f"--coordinator={address}",
             f"--workers={workers}", "--slots=8", f"--tests={tests}",
             f"--suites={suites}", f"--sigma={sigma}", f"--mean-ms={mean_ms}",
             f"--run-sigma={run_sigma}",
             f"--coordinator-pid={coordinator.pid}"],
            capture_output=True, text=True, timeout=3600)
        try:
            figures = json.loads(sim.stdout)
        except json.JSONDecodeError:
            sys.exit(f"fleet_sim failed ({workers} workers):\n{sim.stdout[-3000:]}"
                     f"\n{sim.stderr[-3000:]}")
        # An overloaded coordinator's errors are a figure too; the run fails
        # after the table.
        figures["first_errors"] = sim.stderr.strip().splitlines()[:5]
        return figures
    finally:
        coordinator.terminate()
        coordinator.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def medians(runs):
    """One row: each figure's median over `runs` (of one size); the errors
    of the worst run; the size as it was. Per-second series are left to the
    runs themselves."""
    row = {key: value for key, value in runs[0].items() if not isinstance(value, list)}
    for key, value in row.items():
        if key in ("workers", "suites", "tests", "slots"):
            continue
        if key in ("errors", "duplicates_or_rejected"):
            row[key] = max(run[key] for run in runs)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = statistics.median(run[key] for run in runs)
    row["pull_with_work_p99_ms_each_run"] = [run["pull_with_work_p99_ms"] for run in runs]
    return row


def split_p99s(row):
    """A pull's p99 before, in and after the coordinator's handler; None
    when the pulls came back without the coordinator's time stamps."""
    parts = [row.get(f"pull_{part}_coordinator_p99_ms") for part in ("before", "in", "after")]
    return None if None in parts else parts


def split(row):
    parts = split_p99s(row)
    return "-" if parts is None else " / ".join(f"{p:.1f}" for p in parts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--workers", default="10,100,1000,5000")
    parser.add_argument("--tests", type=int, default=200000)
    parser.add_argument("--suites", default="1,20")
    parser.add_argument("--sigma", type=float, default=1.0)
    # Longer tests: as many workers, fewer dispatches a second.
    parser.add_argument("--mean-ms", type=float, default=1000)
    # Runs that differ from their history, as real ones do.
    parser.add_argument("--run-sigma", type=float, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--coordinator-nice", type=int, default=0)
    args = parser.parse_args()
    if args.repeat < 1:
        sys.exit("--repeat must be at least 1")
    if args.coordinator_nice < 0 and os.geteuid() != 0:
        sys.exit("--coordinator-nice below 0 raises the coordinator's priority, "
                 "which needs root; run as root or leave it at 0")
    require_build()
    sizes = [int(w) for w in args.workers.split(",")]
    suite_counts = [int(s) for s in args.suites.split(",")]
    mean_ms = args.mean_ms
    if args.quick:
        sizes, suite_counts, mean_ms = [20], [1, 4], 50
    work = tempfile.mkdtemp(prefix="tf-fleet-")
    rows = []  # every run
    table = []  # a row of medians for each size
    try:
        for workers in sizes:
            for suites in suite_counts:
                # A fleet of 10 would take an hour over 200,000 tests: it
                # gets the same time's worth of work as the others.
                tests = args.tests if not args.quick else 2000
                tests = min(tests, workers * 8 * 50)
                tests = max(tests, suites)
                runs = []
                for _ in range(args.repeat):
                    figures = run_one(work, workers, tests, suites, args.sigma, mean_ms,
                                      args.run_sigma, args.coordinator_nice)
                    runs.append(figures)
                    print(json.dumps(figures), file=sys.stderr, flush=True)
                rows += runs
                table.append(medians(runs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| workers x 8 slots | suites | tests | dispatches/s | PullWork p50 ms | "
          "p99 ms | slots busy while queued | coordinator CPU µs/test | "
          "coordinator RSS MiB | errors | simulator late p99 ms | "
          "unread KiB max, coordinator / simulator | "
          "p99 ms before / in / after the coordinator | simulator CPU s | "
          "p99 ms, each run |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| ---: | ---: | ---: | ---: | ---: |")
    for r in table:
        each = ", ".join(f"{p99:.0f}" for p99 in r["pull_with_work_p99_ms_each_run"])
        print(f"| {r['workers']} | {r['suites']} | {r['tests']} | {r['dispatches_per_s']:.0f} | "
              f"{r['pull_with_work_p50_ms']:.1f} | {r['pull_with_work_p99_ms']:.1f} | "
              f"{100 * r['busy_while_queued']:.1f}% | {r['coordinator_cpu_us_per_test']:.0f} | "
              f"{r['coordinator_peak_rss_mib']:.0f} | {r['errors']} | "
              f"{r['sim_timer_lag_p99_ms']:.1f} | "
              f"{r['coordinator_unread_kib_max']:.0f} / {r['sim_unread_kib_max']:.0f} | "
              f"{split(r)} | {r['sim_cpu_s']:.1f} | {each} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mean_ms": mean_ms, "sigma": args.sigma, "run_sigma": args.run_sigma,
                       "repeat": args.repeat, "coordinator_nice": args.coordinator_nice, "runs": rows, "medians": table}, f, indent=2)
    # The coordinator runs on this host: every pull with work comes back
    # with its time stamps.
    failed = [r for r in rows if r["errors"] or r["reported"] != r["tests"]
              or split_p99s(r) is None]
    for r in failed:
        print(f"{r['workers']} workers, {r['suites']} suites: {r['errors']} RPC errors, "
              f"{r['reported']} of {r['tests']} tests reported, pulls split: {split(r)}; "
              f"first: {r['first_errors']}", file=sys.stderr)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
