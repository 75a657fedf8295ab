#!/usr/bin/env python3
"""Makespan on skewed durations (workload 2): the same seeded suite through
Testfleet and the tools people use instead, on the same slots, in one run.

2,000 tests (default) of tf_probe: half sleep, half spin the CPU, durations
log-normal with 3% long tests holding about 60% of the time. Real runs:
`coordctl run` (a first run records history, the second is measured, with an
input changed so nothing comes from the cache), `ctest -j` (the second run
uses the cost data of the first), `xargs -P`, GNU `parallel -j`, and two
splits fixed before running, each shard a sequential chain of the same
commands, the shards side by side: by historic timings (greedy, longest first
on the durations Testfleet measured in its first run: what CircleCI and
Knapsack's regular mode do) and round-robin (GoogleTest sharding). The lower
bound is max(sum / slots, longest) over the durations of the measured run.

  bench/run_makespan.py [--tests=2000] [--slots=2] [--quick] [--json=OUT]

Prints a Markdown table. Fails only when a run fails, never on a time.
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, require_build, timed


def durations_ms(n, seed):
    """Log-normal short tests plus 3% long ones holding most of the time."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 33 == 0:  # 3%
            out.append(rng.uniform(300, 900))
        else:
            out.append(min(200.0, rng.lognormvariate(math.log(6), 0.8)))
    rng.shuffle(out)
    return out


def command(i, ms):
    # The index makes every command (and so every cache key) unique: equal
    # commands would otherwise be answered from the cache within a run.
    kind = "--spin-ms" if i % 2 else "--sleep-ms"
    return [os.path.join(BIN, "tf_probe"), f"{kind}={int(round(ms))}", f"--test={i}"]


def static_split(durations_known, slots):
    """Greedy longest-first split by known durations (test indices per shard)."""
    loads = [0.0] * slots
    shards = [[] for _ in range(slots)]
    for i in sorted(range(len(durations_known)), key=lambda i: -durations_known[i]):
        shard = loads.index(min(loads))
        loads[shard] += durations_known[i]
        shards[shard].append(i)
    return shards


def round_robin(count, slots):
    return [list(range(shard, count, slots)) for shard in range(slots)]


def run_shards(shards, tests, work, name):
    """Each shard's commands one after another, the shards side by side: a
    split fixed before running, run for real. Returns the makespan."""
    processes = []
    start = time.monotonic()
    for k, shard in enumerate(shards):
        path = os.path.join(work, f"{name}-{k}.txt")
        with open(path, "w") as f:
            for i in shard:
                f.write(" ".join(tests[i]["cmd"]) + "\n")
        processes.append(subprocess.Popen(["sh", "-c", f"xargs -P 1 -L 1 env < {path}"],
                                          stdout=subprocess.DEVNULL))
    if any(p.wait() != 0 for p in processes):
        sys.exit(f"a {name} shard failed")
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.tests = 100
    require_build()
    work = tempfile.mkdtemp(prefix="tf-makespan-")
    try:
        planned = durations_ms(args.tests, seed=20261123)
        tests = [{"id": f"t{i}", "cmd": command(i, ms)}
                 for i, ms in enumerate(planned)]
        with open(os.path.join(work, "suite.json"), "w") as f:
            json.dump({"name": "skewed", "inputs": ["run.txt"], "tests": tests}, f)
        os.makedirs(os.path.join(work, "ctest"))
        with open(os.path.join(work, "ctest", "CTestTestfile.cmake"), "w") as f:
            for t in tests:
                f.write(f'add_test({t["id"]} {" ".join(t["cmd"])})\n')
        with open(os.path.join(work, "commands.txt"), "w") as f:
            for t in tests:
                f.write(" ".join(t["cmd"]) + "\n")

        coordctl = [os.path.join(BIN, "coordctl"), "run", "suite.json",
                    f"--workers={args.slots}", "--cache-dir=cache"]
        wall = {}
        # Run 1 records history; run 2, with a new input, runs everything again.
        for run in (1, 2):
            with open(os.path.join(work, "run.txt"), "w") as f:
                f.write(f"run {run}\n")
            took = timed(coordctl + [f"--json=report{run}.json"], cwd=work)
            if run == 1:
                wall["testfleet_first_run"] = took
        wall["testfleet"] = took
        with open(os.path.join(work, "report1.json")) as f:
            first = {t["id"]: t["wall_ms"] / 1000 for t in json.load(f)["tests"]}
        with open(os.path.join(work, "report2.json")) as f:
            second = {t["id"]: t["wall_ms"] / 1000 for t in json.load(f)["tests"]}
        ids = [t["id"] for t in tests]
        real = [second[i] for i in ids]
        known = [first[i] for i in ids]

        ctest = ["ctest", "--test-dir", "ctest", "-j", str(args.slots), "-Q"]
        timed(ctest, cwd=work)  # leaves CTestCostData.txt for the next
        wall["ctest"] = timed(ctest, cwd=work)
        wall["xargs"] = timed(["sh", "-c", f"xargs -P {args.slots} -L 1 env < commands.txt"],
                              cwd=work)
        if shutil.which("parallel"):
            wall["parallel"] = timed(
                ["sh", "-c", f"parallel -j {args.slots} < commands.txt"], cwd=work)
        static = run_shards(static_split(known, args.slots), tests, work, "static")
        shards = run_shards(round_robin(len(tests), args.slots), tests, work, "round-robin")

        bound = max(sum(real) / args.slots, max(real))
        # The first run, with no history, against its own run's bound.
        first_bound = max(sum(known) / args.slots, max(known))
        rows = [
            ("lower bound max(sum/slots, longest)", bound, "computed"),
            (f"`coordctl run --workers={args.slots}` (history from a first run)",
             wall["testfleet"], "real"),
            (f"`coordctl run --workers={args.slots}`, the first run (no history)",
             wall["testfleet_first_run"],
             f"real, against that run's own bound, {first_bound:.2f} s", first_bound),
            (f"`ctest -j {args.slots}` (cost data from a first run)", wall["ctest"], "real"),
            (f"`xargs -P {args.slots}`", wall["xargs"], "real"),
        ]
        if "parallel" in wall:
            rows.append((f"GNU `parallel -j {args.slots}`", wall["parallel"], "real"))
        rows.append(("static split by historic timings (CircleCI, Knapsack)",
                     static, "real"))
        rows.append(("round-robin split (GoogleTest sharding)", shards, "real"))
        print(f"| {args.tests} skewed tests, {args.slots} slots | makespan s | vs lower bound | |")
        print("| --- | ---: | ---: | --- |")
        for name, seconds, how, *own_bound in rows:
            ratio = seconds / (own_bound[0] if own_bound else bound)
            print(f"| {name} | {seconds:.2f} | {ratio:.3f}x | {how} |")
        if args.json:
            with open(args.json, "w") as f:
                makespan = {"bound": bound, "static_split": static,
                            "round_robin": shards, **wall}
                json.dump({"tests": args.tests, "slots": args.slots,
                           "sum_s": sum(real), "longest_s": max(real),
                           "first_run_bound_s": first_bound,
                           "makespan_s": makespan}, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
