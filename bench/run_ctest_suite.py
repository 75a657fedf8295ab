#!/usr/bin/env python3
"""A real CTest suite (workload 4): Testfleet's own unit tests, as CTest knows
them (one CTest test per GoogleTest case, gtest_discover_tests), through
`ctest -j N` and through `coordctl run --from-ctest` on the same slots.

The CTest files of the build tree are copied to a temporary tree first, so
neither tool writes into the build's own Testing/ folder (this benchmark may
run under that build's ctest). Both tools get one unmeasured run first: ctest
keeps its cost data, Testfleet its history. Testfleet's measured runs carry a
new environment value each (`defaults.env.BENCH_ROUND`), so nothing comes from
the cache; its history, kept per test id, still orders the work.

  bench/run_ctest_suite.py [--label=unit] [--slots=2] [--repeat=3] [--quick] [--json=OUT]

--quick keeps the tests of a few fast GoogleTest suites and runs once. Prints
a Markdown table. Fails only when a run fails, never on a time.
"""
import argparse
import json
import os
import shutil
import tempfile

from benchlib import BIN, ROOT, median, require_build, timed

QUICK_SUITES = ["DigestTest", "UnitsTest", "ActionKeyTest", "SuiteLoaderTest"]


def copy_ctest_tree(build, tree):
    """Every CTestTestfile.cmake of `build`, at the same relative place."""
    for folder, dirs, files in os.walk(build):
        dirs[:] = [d for d in dirs if d not in ("Testing", "CMakeFiles")]
        if "CTestTestfile.cmake" in files:
            target = os.path.join(tree, os.path.relpath(folder, build))
            os.makedirs(target, exist_ok=True)
            shutil.copy(os.path.join(folder, "CTestTestfile.cmake"), target)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--label", default="unit")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    require_build()
    work = tempfile.mkdtemp(prefix="tf-ctest-suite-")
    try:
        tree = os.path.join(work, "tree")
        copy_ctest_tree(args.build_dir, tree)

        ctest = ["ctest", "--test-dir", tree, "-L", args.label, "-j", str(args.slots), "-Q"]
        importer = [os.path.join(BIN, "coordctl"), "import", f"--from-ctest={tree}",
                    f"--tag={args.label}", "-o", os.path.join(work, "suite.json")]
        if args.quick:
            ctest += ["-R", "^(" + "|".join(QUICK_SUITES) + r")\."]
            importer += [f"--id={suite}.*" for suite in QUICK_SUITES]
        timed(importer)
        with open(os.path.join(work, "suite.json")) as f:
            suite = json.load(f)
        tests = len(suite["tests"])

        timed(ctest)  # leaves CTestCostData.txt for the measured runs
        ctest_walls = [timed(ctest) for _ in range(args.repeat)]

        coordctl = [os.path.join(BIN, "coordctl"), "run", "suite.json",
                    f"--workers={args.slots}", "--cache-dir=cache", "--allow-outside-paths",
                    "--json=report.json"]
        testfleet_walls, sums, longest = [], [], []
        for run in range(args.repeat + 1):  # run 0 records history
            suite.setdefault("defaults", {}).setdefault("env", {})["BENCH_ROUND"] = str(run)
            with open(os.path.join(work, "suite.json"), "w") as f:
                json.dump(suite, f)
            took = timed(coordctl, cwd=work)
            with open(os.path.join(work, "report.json")) as f:
                report = json.load(f)
            summary = report["summary"]
            if summary["passed"] != tests or summary["cached"] != 0:
                raise SystemExit(f"run {run}: {summary} (want {tests} passed, none cached)")
            if run == 0:
                continue
            testfleet_walls.append(took)
            walls = [t["wall_ms"] / 1000 for t in report["tests"]]
            sums.append(sum(walls))
            longest.append(max(walls))

        sum_s, longest_s = median(sums), median(longest)
        bound = max(sum_s / args.slots, longest_s)
        wall = {"ctest": median(ctest_walls), "testfleet": median(testfleet_walls)}
        name = f"Testfleet's {args.label} tests ({tests} CTest tests), {args.slots} slots"
        print(f"| {name} (median of {args.repeat}) | wall s | vs lower bound | vs ctest |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| lower bound max(sum/slots, longest) | {bound:.2f} | 1.000x | |")
        for label, key in ((f"`ctest -j {args.slots}` (cost data from a first run)", "ctest"),
                           (f"`coordctl run --from-ctest --workers={args.slots}` "
                            "(history from a first run, nothing cached)", "testfleet")):
            print(f"| {label} | {wall[key]:.2f} | {wall[key] / bound:.3f}x "
                  f"| {wall[key] / wall['ctest']:.2f}x |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"tests": tests, "slots": args.slots, "repeat": args.repeat,
                           "sum_s": sum_s, "longest_s": longest_s, "bound_s": bound,
                           "wall_s": wall}, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
