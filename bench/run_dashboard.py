#!/usr/bin/env python3
"""The dashboard's cost to the fleet (workload 9), whole-system, in one run:

1. The makespan of a 10,000-test suite (`true` tests: scheduling-bound, the
   case where serving pages costs the most) on one coordinator with its
   dashboard on and one worker of 2 slots, with 50 suite pages open and
   following it against none. A "page" here is what the suite page asks
   for: the suite, its timeline, its failures, a page of tests, then its
   live stream (Server-Sent Events) read to the end, with the page of tests
   fetched again every 2 s while results come; 50 of them from this
   machine, whose CPU they share. Runs alternate; the makespan is the
   coordinator's own (submitted to finished).
2. Each page's size (bytes over the wire) and time to first paint in
   Debian's Chromium (integration_tests/browser/measure.mjs), on the
   finished suite.

  bench/run_dashboard.py [--quick] [--json=OUT]
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import BIN, ROOT, median, quick_and_json_args

BROWSER_DIR = os.path.join(ROOT, "integration_tests", "browser")


def start(work, name, args):
    log_path = os.path.join(work, f"{name}.log")
    process = subprocess.Popen(args, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    return process, log_path


def wait_for(log_path, process, pattern):
    for _ in range(1000):
        found = re.search(pattern, open(log_path).read())
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise SystemExit(f"{pattern} not in {log_path}:\n{open(log_path).read()[-2000:]}")


def get_json(url):
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.load(response)


def follow(base, suite_id, outcome):
    """What one open suite page fetches, then its live stream to the end."""
    received = 0
    try:
        state = get_json(f"{base}/api/suites/{suite_id}")
        for path in ("timeline", "results?filter=failed&limit=200", "results?limit=100"):
            with urllib.request.urlopen(f"{base}/api/suites/{suite_id}/{path}", timeout=60) as r:
                received += len(r.read())
        url = f"{base}/api/suites/{suite_id}/events?from={state['feed']['rows']}"
        with urllib.request.urlopen(url, timeout=120) as stream:
            tail = b""
            table_at = time.monotonic() + 2
            while True:
                data = stream.read1(1 << 16)
                if not data:
                    break
                received += len(data)
                # The page fetches its table again (at most every 2 s) as
                # results arrive.
                if time.monotonic() >= table_at:
                    with urllib.request.urlopen(
                            f"{base}/api/suites/{suite_id}/results?limit=100", timeout=60) as r:
                        received += len(r.read())
                    table_at = time.monotonic() + 2
                tail = (tail + data)[-64:]
                if b"event: end" in tail:
                    outcome["ended"] = True
                    break
    except Exception as error:  # a page that failed is reported, not hidden
        outcome["error"] = str(error)
    outcome["bytes"] = received


def write_suite(work, tests, run):
    path = os.path.join(work, f"suite-{run}.json")
    with open(path, "w") as out:
        json.dump({"name": "dashboard-bench",
                   "tests": [{"id": f"t{i:05d}", "cmd": ["true", f"t{i:05d}"],
                              "env": {"RUN": str(run)}}
                             for i in range(tests)]}, out)
    return path


def cpu_seconds(pid):
    """User + system CPU seconds a process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(work, coordinator, base, tests, pages, run, coordinator_pid):
    suite = write_suite(work, tests, run)
    submitted = subprocess.run(
        [os.path.join(BIN, "coordctl"), "submit", suite, f"--coordinator={coordinator}",
         "--no-upload"], capture_output=True, text=True)
    if submitted.returncode != 0:
        raise SystemExit(f"submit failed: {submitted.stderr[-2000:]}")
    suite_id = submitted.stdout.split("\n")[0].strip()
    coordinator_cpu = cpu_seconds(coordinator_pid)
    pages_cpu = time.process_time()
    outcomes = [{} for _ in range(pages)]
    threads = [threading.Thread(target=follow, args=(base, suite_id, o)) for o in outcomes]
    for thread in threads:
        thread.start()
    for _ in range(36000):
        state = get_json(f"{base}/api/suites/{suite_id}")
        if state["state"] in ("finished", "cancelled"):
            break
        time.sleep(0.5)
    for thread in threads:
        thread.join(timeout=120)
    cpu = {"coordinator_s": cpu_seconds(coordinator_pid) - coordinator_cpu,
           "pages_s": time.process_time() - pages_cpu}
    makespan = (state["finished_at_unix_ms"] - state["submitted_at_unix_ms"]) / 1000
    failed = [o for o in outcomes if not o.get("ended")]
    if failed:
        raise SystemExit(f"{len(failed)} of {pages} pages did not follow to the end: {failed[:3]}")
    return suite_id, makespan, sum(o["bytes"] for o in outcomes), cpu


def measure_pages(base, suite_id, repeat):
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "puppeteer-core")):
        return {"skipped": "integration_tests/browser/node_modules missing: "
                           "scripts/install-deps.sh installs it"}
    query = f"suite_name=dashboard-bench&test_id=t00000&suite_id={suite_id}"
    result = subprocess.run(
        ["node", "measure.mjs", f"--url={base}", f"--suite={suite_id}", f"--test={query}",
         f"--repeat={repeat}"], cwd=BROWSER_DIR, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"measure.mjs failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    args = quick_and_json_args()
    tests = 1000 if args.quick else 10000
    rounds = 1 if args.quick else 3
    pages = 50
    work = tempfile.mkdtemp(prefix="tf-bench-dashboard-")
    coordinator, coordinator_log = start(work, "coordinator", [
        os.path.join(BIN, "coordinator"), "--listen=127.0.0.1:0",
        f"--data-dir={work}/data", "--http-listen=127.0.0.1:0"])
    worker = None
    try:
        address = "127.0.0.1:" + wait_for(coordinator_log, coordinator, r"listening on port (\d+)")
        base = wait_for(coordinator_log, coordinator, r"dashboard on (http://\S+)")
        worker, _ = start(work, "worker", [
            os.path.join(BIN, "worker"), f"--coordinator={address}", "--slots=2",
            f"--workspace={work}", "--name=bench"])
        runs = {"none": [], "followed": []}
        cpu = {"none": [], "followed": []}
        bytes_streamed = []
        last_suite = None
        run = 0
        for _ in range(rounds):
            for condition in ("none", "followed"):
                run += 1
                last_suite, makespan, received, used = run_once(
                    work, address, base, tests, pages if condition == "followed" else 0, run,
                    coordinator.pid)
                runs[condition].append(makespan)
                cpu[condition].append(used)
                if condition == "followed":
                    bytes_streamed.append(received)
                print(f"  {condition}: {makespan:.2f} s, coordinator CPU "
                      f"{used['coordinator_s']:.2f} s, pages' CPU {used['pages_s']:.2f} s",
                      file=sys.stderr)
        none, followed = median(runs["none"]), median(runs["followed"])
        result = {
            "tests": tests, "pages": pages, "rounds": rounds, "slots": 2,
            "makespan_none_s": runs["none"], "makespan_followed_s": runs["followed"],
            "median_none_s": none, "median_followed_s": followed,
            "ratio": followed / none,
            "cpu": cpu,
            "coordinator_cpu_none_s": median([c["coordinator_s"] for c in cpu["none"]]),
            "coordinator_cpu_followed_s": median([c["coordinator_s"] for c in cpu["followed"]]),
            "pages_cpu_s": median([c["pages_s"] for c in cpu["followed"]]),
            "bytes_to_all_pages_median": median(bytes_streamed),
            "page_loads": measure_pages(base, last_suite, 3 if args.quick else 7),
        }
    finally:
        for process in (worker, coordinator):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
