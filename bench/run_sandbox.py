#!/usr/bin/env python3
"""Workers without a checkout (workload 8), whole-system, in one run:

1. Materializing one test's sandbox of 5,000 files and 500 MB from a real
   cache_server: cold (empty file cache: download, write, link) and warm (all
   in the file cache: folders and hard links), against `cp -r` and `cp -al`
   of the same tree on the same disk.
2. Workload 2's skewed suite (run_makespan.py's durations, every test with
   the same 20 data files as inputs) on a worker with no checkout against
   one with a shared workspace: same coordinator flags, same slots, fresh
   coordinators so nothing comes from the cache, runs alternated.
3. Uploads: `coordctl submit --from-ctest` of a CTest project's build tree
   (the GoogleTest fixture project, built here), first, unchanged, and after
   one file changed; and of Testfleet's own build tree (first and again).

  bench/run_sandbox.py [--quick] [--json=OUT]
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, ROOT, median, quick_and_json_args, timed
from run_cas import make_tree, start_cache
from run_makespan import command, durations_ms


def start(work, name, args):
    log_path = os.path.join(work, f"{name}.log")
    log = open(log_path, "w")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    return process, log_path


def port_of(log_path, process):
    for _ in range(1000):
        found = re.search(r"listening on port (\d+)", open(log_path).read())
        if found:
            return f"127.0.0.1:{found.group(1)}"
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise SystemExit(f"no port in {log_path}:\n{open(log_path).read()[-2000:]}")


def materialize(work, files, total_bytes, rounds):
    tree = os.path.join(work, "tree")
    make_tree(tree, files, total_bytes)
    server, address = start_cache(work)
    try:
        result = subprocess.run(
            [os.path.join(BIN, "sandbox_bench"), f"--cas={address}", f"--tree={tree}",
             f"--work={work}/sandboxes", f"--rounds={rounds}"],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"sandbox_bench failed:\n{result.stderr[-2000:]}")
        out = json.loads(result.stdout)
    finally:
        server.kill()
        server.wait()
    copies = {"cp_r": [], "cp_al": []}
    for _ in range(rounds):
        for key, flags in (("cp_r", "-r"), ("cp_al", "-al")):
            target = os.path.join(work, "copy")
            copies[key].append(timed(["cp", flags, tree, target]))
            shutil.rmtree(target)
    out.update({"bytes": sum(os.path.getsize(os.path.join(d, f))
                             for d, _, fs in os.walk(tree) for f in fs),
                "cp_r_s": copies["cp_r"], "cp_al_s": copies["cp_al"],
                "cp_r_median_s": median(copies["cp_r"]),
                "cp_al_median_s": median(copies["cp_al"])})
    shutil.rmtree(tree)
    return out


def skewed_suite(folder, tests):
    """Workload 2's tests, each reading the same 20 data files."""
    os.makedirs(os.path.join(folder, "data"), exist_ok=True)
    for i in range(20):
        with open(os.path.join(folder, "data", f"d{i:02d}.txt"), "w") as f:
            f.write(f"data file {i}\n" * 200)
    suite = {"name": "skewed-sandbox", "defaults": {"timeout": "60s"},
             "inputs": ["data/*.txt"],
             "tests": [{"id": f"t{i}", "cmd": command(i, ms)}
                       for i, ms in enumerate(durations_ms(tests, 7))]}
    path = os.path.join(folder, "suite.json")
    with open(path, "w") as f:
        json.dump(suite, f)
    return path


def run_fleet(work, suite, sandboxed, slots, tag):
    """One coordinator and one worker of `slots` slots; `coordctl submit
    --wait` timed from the start of the submit (uploads included)."""
    data = os.path.join(work, f"coord-{tag}")
    coordinator, log = start(work, f"coord-{tag}", [
        os.path.join(BIN, "coordinator"), "--listen=127.0.0.1:0", f"--data-dir={data}"])
    address = port_of(log, coordinator)
    worker_args = [os.path.join(BIN, "worker"), f"--coordinator={address}",
                   f"--slots={slots}", f"--name=w-{tag}",
                   f"--spool-dir={work}/spool-{tag}"]
    worker_args += ([f"--file-cache-dir={work}/files-{tag}"] if sandboxed
                    else [f"--workspace={os.path.dirname(suite)}"])
    worker, _ = start(work, f"worker-{tag}", worker_args)
    try:
        submit = [os.path.join(BIN, "coordctl"), "submit", suite,
                  f"--coordinator={address}", "--wait", f"--cache-dir={work}/cc-{tag}",
                  f"--json={work}/report-{tag}.json"]
        if not sandboxed:
            submit.append("--no-upload")
        took = timed(submit)
        report = json.load(open(f"{work}/report-{tag}.json"))
        if report["summary"]["passed"] != report["summary"]["total"]:
            raise SystemExit(f"{tag}: not every test passed")
        return took
    finally:
        for process in (worker, coordinator):
            process.kill()
            process.wait()


def no_checkout_against_workspace(work, tests, slots, rounds):
    suite = skewed_suite(os.path.join(work, "skewed"), tests)
    walls = {"workspace": [], "sandboxed": []}
    for round_ in range(rounds):
        for mode in ("workspace", "sandboxed"):
            walls[mode].append(run_fleet(work, suite, mode == "sandboxed", slots,
                                         f"{mode}-{round_}"))
    return {"tests": tests, "slots": slots, "wall_s": walls,
            "workspace_median_s": median(walls["workspace"]),
            "sandboxed_median_s": median(walls["sandboxed"])}


def submit_line(work, address, args, tag):
    result = subprocess.run(
        [os.path.join(BIN, "coordctl"), "submit", *args, f"--coordinator={address}",
         f"--cache-dir={work}/cc-upload"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"submit {tag} failed:\n{result.stderr[-2000:]}")
    found = re.search(r"inputs: sent (\d+) of (\d+) files and (\d+) of (\d+) folders "
                      r"\(([^)]*)\)", result.stderr)
    return {"files_sent": int(found.group(1)), "files": int(found.group(2)),
            "folders_sent": int(found.group(3)), "folders": int(found.group(4)),
            "sent": found.group(5)}


def uploads(work, quick):
    source = os.path.join(work, "fixture-src")
    shutil.copytree(os.path.join(ROOT, "integration_tests/fixtures/gtest_project"), source)
    build = os.path.join(work, "fixture-build")
    timed(["cmake", "-S", source, "-B", build, "-G", "Ninja"])
    timed(["cmake", "--build", build])
    # Room for Testfleet's own build tree: blobs evicted before the submit
    # pins them would refuse it.
    coordinator, log = start(work, "coord-upload", [
        os.path.join(BIN, "coordinator"), "--listen=127.0.0.1:0",
        f"--data-dir={work}/coord-upload", "--cache-max-bytes=8GiB"])
    address = port_of(log, coordinator)
    out = {}
    try:
        steps = [("first", None), ("unchanged", None),
                 ("one_file_changed", os.path.join(source, "data/values.txt"))]
        fixture = []
        for tag, change in steps:
            if change:
                with open(change, "a") as f:
                    f.write("changed\n")
            start_time = time.monotonic()
            line = submit_line(work, address, [f"--from-ctest={build}"], tag)
            line.update({"step": tag, "submit_s": time.monotonic() - start_time})
            fixture.append(line)
        out["fixture"] = fixture
        if not quick:
            own = []
            for tag in ("first", "unchanged"):
                start_time = time.monotonic()
                line = submit_line(work, address,
                                   [f"--from-ctest={os.path.join(ROOT, 'build')}"], tag)
                line.update({"step": tag, "submit_s": time.monotonic() - start_time})
                own.append(line)
            out["testfleet_build"] = own
    finally:
        coordinator.kill()
        coordinator.wait()
    return out


def main():
    args = quick_and_json_args()
    files, total = (500, 20_000_000) if args.quick else (5_000, 500_000_000)
    rounds = 2 if args.quick else 5
    tests = 200 if args.quick else 2_000
    work = tempfile.mkdtemp(prefix="tf-sandbox-bench-", dir="/var/tmp")
    try:
        result = {"materialize": materialize(work, files, total, rounds)}
        print(json.dumps(result["materialize"]), file=sys.stderr, flush=True)
        result["workload2"] = no_checkout_against_workspace(
            work, tests, 2, 1 if args.quick else 3)
        print(json.dumps(result["workload2"]), file=sys.stderr, flush=True)
        result["uploads"] = uploads(work, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = result["materialize"]
    w = result["workload2"]
    print(f"materialize {m['files']} files, {m['bytes'] / 1e6:.0f} MB: cold "
          f"{m['cold_median_s']:.3f} s, warm {m['warm_median_s']:.3f} s; cp -r "
          f"{m['cp_r_median_s']:.3f} s, cp -al {m['cp_al_median_s']:.3f} s")
    print(f"workload 2 ({w['tests']} tests): no checkout {w['sandboxed_median_s']:.2f} s, "
          f"shared workspace {w['workspace_median_s']:.2f} s "
          f"({w['sandboxed_median_s'] / w['workspace_median_s']:.3f}x)")
    for name, steps in result["uploads"].items():
        for step in steps:
            print(f"upload {name} {step['step']}: {step['files_sent']} of {step['files']} "
                  f"files, {step['folders_sent']} of {step['folders']} folders, "
                  f"{step['sent']}, submit {step['submit_s']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
