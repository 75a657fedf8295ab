#!/usr/bin/env python3
"""Failures first (workload 11): how soon the first failure is reported when
a change broke a few tests, and what ordering for it costs the makespan.

The suite is workload 2's (2,000 tf_probe tests, skewed log-normal
durations); 5 of them, chosen at random, read their exit code from an input
file of their own. A first run passes and leaves history; then the five
files say "exit 1" (their inputs changed, so those tests break), and the
same suite runs on one coordinator (`--no-cache-service`: every test runs)
with one worker of 2 slots, once with failures first (the default) and once
with `--longest-first`, and under `ctest -j 2` (with its cost data from a
passing run). Time to the first failure: the report's `first_failure_ms`
for Testfleet, the first `***Failed` line for CTest; makespan: submitted to
finished.

  bench/run_first_failure.py [--tests=2000] [--quick] [--json=OUT]
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, require_build
from run_makespan import command, durations_ms

SLOTS = 2
BROKEN = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_coordinator(work, port, extra):
    log = open(os.path.join(work, "coordinator.log"), "a")
    process = subprocess.Popen(
        [os.path.join(BIN, "coordinator"), f"--listen=127.0.0.1:{port}",
         f"--data-dir={os.path.join(work, 'data')}", "--no-cache-service", *extra],
        stdout=log, stderr=subprocess.STDOUT)
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.02)
    sys.exit("the coordinator did not start; see coordinator.log")


def submit(work, port, report, expect_failure):
    # A worker registers again within seconds of a coordinator's restart;
    # the suite waits for it, so the makespan would count that wait.
    for _ in range(300):
        listed = subprocess.run(
            [os.path.join(BIN, "coordctl"), "workers", f"--coordinator=127.0.0.1:{port}"],
            capture_output=True, text=True).stdout
        if "bench" in listed:
            break
        time.sleep(0.1)
    run = subprocess.run(
        [os.path.join(BIN, "coordctl"), "submit", "suite.json",
         f"--coordinator=127.0.0.1:{port}", "--wait", "--no-upload",
         f"--json={report}"],
        cwd=work, capture_output=True, text=True)
    if run.returncode != (1 if expect_failure else 0):
        sys.exit(f"coordctl submit exited {run.returncode}:\n{run.stderr[-3000:]}")
    with open(os.path.join(work, report)) as f:
        return json.load(f)


def set_broken(work, broken, code):
    for i in broken:
        with open(os.path.join(work, "in", f"t{i}.txt"), "w") as f:
            f.write(f"{code}\n")


def ctest_run(work):
    """(seconds to the first ***Failed line or None, makespan)."""
    start = time.monotonic()
    process = subprocess.Popen(["ctest", "--test-dir", "ctest", "-j", str(SLOTS)],
                               cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    first = None
    for line in process.stdout:
        if first is None and "***Failed" in line:
            first = time.monotonic() - start
    process.wait()
    return first, time.monotonic() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.tests = 200
    require_build()
    work = tempfile.mkdtemp(prefix="tf-first-failure-")
    processes = []
    try:
        planned = durations_ms(args.tests, seed=20261127)
        broken = sorted(random.Random(7).sample(range(args.tests), BROKEN))
        os.makedirs(os.path.join(work, "in"))
        tests = []
        for i, ms in enumerate(planned):
            test = {"id": f"t{i}", "cmd": command(i, ms)}
            if i in broken:
                test["cmd"].append(f"--exit-from=in/t{i}.txt")
                test["inputs"] = [f"in/t{i}.txt"]
            tests.append(test)
        with open(os.path.join(work, "suite.json"), "w") as f:
            json.dump({"name": "first-failure", "tests": tests}, f)
        os.makedirs(os.path.join(work, "ctest"))
        with open(os.path.join(work, "ctest", "CTestTestfile.cmake"), "w") as f:
            for t in tests:
                argv = [a.replace("--exit-from=", f"--exit-from={work}/") for a in t["cmd"]]
                f.write(f'add_test({t["id"]} {" ".join(argv)})\n')

        port = free_port()
        coordinator = start_coordinator(work, port, [])
        worker = subprocess.Popen(
            [os.path.join(BIN, "worker"), f"--coordinator=127.0.0.1:{port}",
             f"--slots={SLOTS}", f"--workspace={work}", "--name=bench"],
            stdout=open(os.path.join(work, "worker.log"), "w"), stderr=subprocess.STDOUT)
        processes = [worker, coordinator]
        set_broken(work, broken, 0)
        submit(work, port, "passing.json", expect_failure=False)  # history
        set_broken(work, broken, 1)
        first = submit(work, port, "failures-first.json", expect_failure=True)
        coordinator.terminate()
        coordinator.wait(timeout=60)
        coordinator = start_coordinator(work, port, ["--longest-first"])
        processes = [worker, coordinator]
        longest = submit(work, port, "longest-first.json", expect_failure=True)

        set_broken(work, broken, 0)
        ctest_run(work)  # cost data of a passing run
        set_broken(work, broken, 1)
        ctest_first, ctest_makespan = ctest_run(work)

        rows = []
        for name, report in (("failures first", first), ("longest first", longest)):
            s = report["summary"]
            rows.append({"order": name, "first_failure_s": s["first_failure_ms"] / 1000,
                         "makespan_s": s["wall_ms"] / 1000, "failed": s["failed"]})
        rows.append({"order": f"ctest -j {SLOTS}", "first_failure_s": ctest_first,
                     "makespan_s": ctest_makespan, "failed": BROKEN})
        print(f"| {args.tests} tests, {BROKEN} broken by a changed input, {SLOTS} slots | "
              "first failure s | share of makespan | makespan s |")
        print("| --- | ---: | ---: | ---: |")
        for r in rows:
            share = r["first_failure_s"] / r["makespan_s"] if r["first_failure_s"] else None
            print(f"| {r['order']} | {r['first_failure_s']:.2f} | "
                  f"{'' if share is None else f'{100 * share:.1f}%'} | {r['makespan_s']:.2f} |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"tests": args.tests, "broken": BROKEN, "slots": SLOTS,
                           "runs": rows}, f, indent=2)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
