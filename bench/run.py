#!/usr/bin/env python3
"""Every benchmark workload in one run on this machine, written to one
Markdown file and one JSON file, with each target (issues 9, 16, 17, 18 and 19) and its ratio.

  bench/run.py                      # full run: about 50 minutes on 2 cores
  bench/run.py --quick --out=DIR    # small sizes, under 3 minutes: CI smoke

Workloads: 1 dispatch (10,000 `true`), 2 makespan (2,000 skewed tests),
3 warm cache, 4 a real CTest suite (Testfleet's unit tests), 5 growth with
suite size, 6 cache latency (cache_bench), 7 the REAPI blob store
(run_cas.py), 8 workers without a checkout (run_sandbox.py), 9 the dashboard
(run_dashboard.py), 10 fleet scale (run_fleet.py), 11 time to the first
failure (run_first_failure.py). Each script also
runs on its own;
this driver gives them JSON files in --out and collects their tables.
Fails only when a run fails, never on a time: targets are printed, not
asserted.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

from benchlib import BIN, ROOT, require_build

HERE = os.path.dirname(os.path.abspath(__file__))


def workloads(quick):
    """(key, title, command writing JSON to {json}) in run order."""
    q = ["--quick"] if quick else []
    sizes = "500,2000" if quick else "500,5000,10000,50000,100000"
    repeat = "1" if quick else "3"
    dispatch_size = 2000 if quick else 10000
    return [
        ("dispatch", "1. 10,000 trivial tests: dispatch overhead",
         [os.path.join(HERE, "run_system.sh"), *q, "--json={json}"]),
        ("makespan", "2. Skewed durations: makespan against the lower bound",
         [sys.executable, os.path.join(HERE, "run_makespan.py"), *q, "--json={json}"]),
        ("warm", "3. Warm cache, then one input changed",
         [os.path.join(HERE, "run_warm.sh"), *q, "--json={json}"]),
        ("ctest_suite", "4. A real CTest suite: Testfleet's unit tests",
         [sys.executable, os.path.join(HERE, "run_ctest_suite.py"), *q, "--json={json}"]),
        ("growth", "5. Growth with suite size",
         [os.path.join(HERE, "run_growth.sh"), f"--sizes={sizes}", f"--repeat={repeat}",
          "--json={json}"]),
        ("scheduling", "5b. Growth, the coordinator scheduling only (`--no-cache-service`)",
         [os.path.join(HERE, "run_growth.sh"), f"--sizes={dispatch_size}", f"--repeat={repeat}",
          "--no-cache-service", "--json={json}"]),
        ("cache", "6. Result cache: latency and throughput",
         # Tail latencies move from run to run: the median of 3 interleaved
         # repetitions of each.
         [os.path.join(BIN, "cache_bench"),
          f"--benchmark_min_time={0.01 if quick else 1}",
          f"--benchmark_repetitions={1 if quick else 3}",
          "--benchmark_enable_random_interleaving=true",
          "--benchmark_report_aggregates_only=true",
          "--benchmark_out={json}", "--benchmark_out_format=json"]),
        ("cas", "7. REAPI blob store: FindMissingBlobs, uploads, ByteStream, "
         "action results",
         [sys.executable, os.path.join(HERE, "run_cas.py"), *q, "--json={json}"]),
        ("sandbox", "8. Workers without a checkout: sandboxes, workload 2, uploads",
         [sys.executable, os.path.join(HERE, "run_sandbox.py"), *q, "--json={json}"]),
        ("dashboard", "9. The dashboard: 50 pages following a suite, page size and paint",
         [sys.executable, os.path.join(HERE, "run_dashboard.py"), *q, "--json={json}"]),
        ("fleet", "10. The coordinator at fleet scale: simulated workers (fleet_sim)",
         [sys.executable, os.path.join(HERE, "run_fleet.py"), *q, "--json={json}"]),
        ("first_failure", "11. Failures first: time to the first failure",
         [sys.executable, os.path.join(HERE, "run_first_failure.py"), *q, "--json={json}"]),
    ]


def medians(results):
    """Each benchmark's median over repetitions (the run itself without them)."""
    chosen = {}
    for b in results["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        if b["run_name"] not in chosen or b.get("aggregate_name") == "median":
            chosen[b["run_name"]] = b
    return chosen


def cache_table(results):
    rows = ["| cache_bench (median of repetitions) | p50 µs | p99 µs | items/s |",
            "| --- | ---: | ---: | ---: |"]
    ordered = sorted(medians(results).items(),
                     key=lambda item: (item[1].get("family_index", 0),
                                       item[1].get("per_family_instance_index", 0)))
    for name, b in ordered:
        p50 = f"{b['p50_us']:.1f}" if "p50_us" in b else ""
        p99 = f"{b['p99_us']:.1f}" if "p99_us" in b else ""
        rate = f"{b['items_per_second'] / 1000:.1f}k" if "items_per_second" in b else ""
        rows.append(f"| `{name}` | {p50} | {p99} | {rate} |")
    return "\n".join(rows)


def bench(results, name):
    for run_name, b in medians(results).items():
        if run_name.split("/")[0] == name:
            return b
    raise SystemExit(f"cache_bench gave no {name}")


def targets(r):
    """(workload, target, measured, met) for each target of issues 9, 16, 17, 18 and 19."""
    out = []
    d = r["dispatch"]["wall_s"]
    out.append(("1", "`coordctl run` cold within 1.2x of `xargs -P2`",
                f"{d['cold'] / d['xargs']:.2f}x", d["cold"] / d["xargs"] <= 1.2))
    growth = {row["tests"]: row for row in r["growth"]}
    largest = max(growth)
    dispatch_size = 10000 if 10000 in growth else largest
    cpu = growth[dispatch_size]["coordinator_cpu_us_per_test"]
    out.append(("1", f"coordinator CPU under 50 µs per test ({dispatch_size:,} tests, "
                "scheduling and serving the cache)", f"{cpu:.1f} µs", cpu < 50))
    if "coordinator_cpu_per_fork_exec" in growth[dispatch_size]:
        share = growth[dispatch_size]["coordinator_cpu_per_fork_exec"]
        out.append(("1", f"coordinator CPU per test at most 3% of one fork+exec of `true` "
                    f"({dispatch_size:,} tests, with the cache service; issue 19)",
                    f"{100 * share:.1f}% ({cpu:.0f} vs "
                    f"{growth[dispatch_size]['fork_exec_cpu_us']:.0f} µs)", share <= 0.03))
    alone = r["scheduling"][0]
    out.append(("1", f"coordinator CPU under 50 µs per test ({alone['tests']:,} tests, "
                "scheduling only: `--no-cache-service`)",
                f"{alone['coordinator_cpu_us_per_test']:.1f} µs",
                alone["coordinator_cpu_us_per_test"] < 50))
    m = r["makespan"]["makespan_s"]
    out.append(("2", "makespan within 1.05x of the lower bound",
                f"{m['testfleet'] / m['bound']:.3f}x", m["testfleet"] <= 1.05 * m["bound"]))
    peers = {k: m[k] for k in ("static_split", "round_robin", "ctest")}
    out.append(("2", "below every static split and `ctest -j`",
                ", ".join(f"{k} {v / m['testfleet']:.3f}x" for k, v in peers.items()),
                all(m["testfleet"] < v for v in peers.values())))
    w = r["warm"]
    out.append(("3", f"warm rerun of {w['tests']:,} tests under 0.5 s, 100% hits",
                f"{w['warm_s']:.3f} s, 100%", w["warm_s"] < 0.5))
    c = r["ctest_suite"]
    out.append(("4", "(no target) against `ctest -j` on the same suite",
                f"{c['wall_s']['testfleet'] / c['wall_s']['ctest']:.2f}x of ctest, "
                f"{c['wall_s']['testfleet'] / c['bound_s']:.2f}x of the bound", None))
    smallest = min(s for s in growth if s >= 2000) if largest >= 2000 else largest
    per_test = {s: growth[s]["run_s"] / s for s in growth}
    out.append(("5", f"linear growth: run time per test at {largest:,} within 1.5x of {smallest:,}",
                f"{per_test[largest] / per_test[smallest]:.2f}x",
                per_test[largest] <= 1.5 * per_test[smallest]))
    queued = growth[largest]["queued_bytes_per_test"]
    out.append(("5", f"coordinator memory under 2 KiB per queued test ({largest:,} tests)",
                f"{queued:.0f} bytes", queued < 2048))
    out.append(("5", f"{largest:,} tests submitted and scheduled, no message-size failure",
                f"submitted in {growth[largest]['submit_s']:.2f} s", True))
    cache = r["cache"]
    lookup = bench(cache, "BM_CacheLookupLatency")
    raw = bench(cache, "BM_RawRocksDbGetLatency")
    batch = bench(cache, "BM_GrpcBatchLookupLatency")
    out.append(("6", "in-process lookup p99 under 100 µs",
                f"{lookup['p99_us']:.1f} µs", lookup["p99_us"] < 100))
    out.append(("6", "lookup p99 within 1.25x of raw RocksDB's p99",
                f"{lookup['p99_us'] / raw['p99_us']:.2f}x "
                f"({lookup['p99_us']:.1f} vs {raw['p99_us']:.1f} µs)",
                lookup["p99_us"] <= 1.25 * raw["p99_us"]))
    out.append(("6", "gRPC batch lookup of 1,000 keys p99 under 10 ms",
                f"{batch['p99_us'] / 1000:.2f} ms", batch["p99_us"] < 10000))
    blob = bench(cache, "BM_BlobRead")
    raw_bytes = bench(cache, "BM_RawRocksDbGetBytes")
    ratio = blob["items_per_second"] / raw_bytes["items_per_second"]
    out.append(("6", "CAS blob reads at least 80% of raw RocksDB Get throughput",
                f"{ratio:.0%} ({blob['items_per_second'] / 1000:.0f}k vs "
                f"{raw_bytes['items_per_second'] / 1000:.0f}k/s)", ratio >= 0.8))
    cas = r["cas"]
    fm = cas["find_missing"]
    out.append(("7", f"FindMissingBlobs of {fm['digests']:,} digests under 300 ms",
                f"{fm['median_ms']:.0f} ms", fm["median_ms"] < 300))
    tree = cas["upload_tree"]
    out.append(("7", f"{tree['files']:,} files, {tree['bytes'] / 1e6:.0f} MB uploaded by our "
                "client (hashing included) under 3 s",
                f"{tree['total_s']:.2f} s", tree["total_s"] < 3))
    bazel = cas.get("bazel_upload")
    if bazel:
        out.append(("7", "(no target) Bazel 4.2 uploading the same tree, for the record",
                    f"{bazel['upload_s']:.1f} s", None))
    s = cas["bytestream"]
    slower = max(s["write_s"], s["read_s"])
    out.append(("7", f"{s['bytes'] >> 20} MiB through ByteStream write and read at "
                "least half the speed of `cp`",
                f"write {s['write_mib_s']:.0f}, read {s['read_mib_s']:.0f}, cp "
                f"{s['cp_mib_s']:.0f} MiB/s ({s['cp_s'] / slower:.2f}x)",
                slower <= 2 * s["cp_s"]))
    out.append(("7", "... against `cp` and `sync` (the copy on the disk)",
                f"cp and sync {s['cp_sync_mib_s']:.0f} MiB/s "
                f"({s['cp_sync_s'] / slower:.2f}x)", slower <= 2 * s["cp_sync_s"]))
    ac = cas["action_results"]
    out.append(("7", "GetActionResult p99 under 1 ms over loopback",
                f"{ac['p99_us'] / 1000:.2f} ms (p50 {ac['p50_us']:.0f} µs)",
                ac["p99_us"] < 1000))
    sb = r["sandbox"]
    m = sb["materialize"]
    tree = f"{m['files']:,} files, {m['bytes'] / 1e6:.0f} MB"
    out.append(("8", f"sandbox of {tree}, warm: at least half the speed of `cp -al`",
                f"warm {m['warm_median_s']:.3f} s, cp -al {m['cp_al_median_s']:.3f} s "
                f"({m['cp_al_median_s'] / m['warm_median_s']:.2f}x of its speed)",
                m["warm_median_s"] <= 2 * m["cp_al_median_s"]))
    out.append(("8", f"(no target) the same sandbox cold: download, write, link",
                f"{m['cold_median_s']:.2f} s (cp -r {m['cp_r_median_s']:.2f} s)", None))
    w = sb["workload2"]
    ratio = w["sandboxed_median_s"] / w["workspace_median_s"]
    out.append(("8", f"workload 2 ({w['tests']:,} tests) without a checkout within 1.1x of "
                "a shared workspace", f"{ratio:.3f}x ({w['sandboxed_median_s']:.2f} vs "
                f"{w['workspace_median_s']:.2f} s)", ratio <= 1.1))
    for name, steps in sb["uploads"].items():
        out.append(("8", f"(no target) uploads of the {name.replace('_', ' ')} tree",
                    "; ".join(f"{s['step'].replace('_', ' ')}: {s['files_sent']} of "
                              f"{s['files']} files, {s['sent']}, {s['submit_s']:.2f} s"
                              for s in steps), None))
    d = r["dashboard"]
    out.append(("9", f"makespan of {d['tests']:,} tests with {d['pages']} suite pages following "
                "it within 3% of none", f"{d['ratio']:.3f}x ({d['median_followed_s']:.2f} vs "
                f"{d['median_none_s']:.2f} s)", d["ratio"] <= 1.03))
    for name, page in d["page_loads"].items():
        if not isinstance(page, dict):
            continue
        out.append(("9", f"(no target) the {name} page in Chromium: size, first paint, drawn",
                    f"{page['bytes'] / 1024:.0f} KiB, {page['first_paint_ms']:.0f} ms, "
                    f"{page['ready_ms']:.0f} ms", None))
    fleet = {(run["workers"], run["suites"]): run for run in r["fleet"]["runs"]}
    smallest = min(w for w, _ in fleet)
    for (workers, suites), run in sorted(fleet.items()):
        label = f"{workers} simulated workers x 8 slots, {suites} suite(s)"
        if workers == 1000:
            out.append(("10", f"{label}: slots busy >= 95% while work is queued",
                        f"{100 * run['busy_while_queued']:.1f}%",
                        run["busy_while_queued"] >= 0.95))
            out.append(("10", f"{label}: PullWork p99 < 50 ms",
                        f"{run['pull_with_work_p99_ms']:.1f} ms",
                        run["pull_with_work_p99_ms"] < 50))
            base = fleet[(smallest, suites)]
            out.append(("10", f"{label}: coordinator CPU per test no higher than at "
                        f"{smallest} workers", f"{run['coordinator_cpu_us_per_test']:.0f} vs "
                        f"{base['coordinator_cpu_us_per_test']:.0f} µs",
                        run["coordinator_cpu_us_per_test"] <=
                        base["coordinator_cpu_us_per_test"]))
        if workers == 5000:
            out.append(("10", f"{label}: served without errors",
                        f"{run['errors']} errors, {run['reported']:,} of {run['tests']:,} "
                        "tests reported",
                        run["errors"] == 0 and run["reported"] == run["tests"]))
    ff = {run["order"]: run for run in r["first_failure"]["runs"]}
    first, longest = ff["failures first"], ff["longest first"]
    share = first["first_failure_s"] / first["makespan_s"]
    out.append(("11", "failures first: the first failure within the first 5% of the makespan",
                f"{100 * share:.1f}% ({first['first_failure_s']:.2f} of "
                f"{first['makespan_s']:.2f} s; longest first "
                f"{longest['first_failure_s']:.2f} s)", share <= 0.05))
    ratio = first["makespan_s"] / longest["makespan_s"]
    out.append(("11", "failures first: makespan within 1% of longest first",
                f"{ratio:.3f}x ({first['makespan_s']:.2f} vs {longest['makespan_s']:.2f} s)",
                ratio <= 1.01))
    return out


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "commit": commit or "unknown",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    require_build()
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, BENCH_ENTRIES="2000" if args.quick else "1000000")

    results, tables = {}, {}
    for key, title, command in workloads(args.quick):
        out = os.path.join(args.out, f"{key}.json")
        command = [part.replace("{json}", out) for part in command]
        print(f"== {title}", file=sys.stderr, flush=True)
        start = time.monotonic()
        run = subprocess.run(command, capture_output=True, text=True, env=env)
        if run.returncode != 0:
            sys.exit(f"{title}: failed\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        print(f"   {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
        with open(out) as f:
            results[key] = json.load(f)
        tables[key] = (title, cache_table(results[key]) if key == "cache" else run.stdout.strip())

    info = machine()
    checks = targets(results)
    mode = "quick (sizes too small to judge the targets)" if args.quick else "full"
    lines = [f"Measured {info['date']} at {info['commit']} on {info['cpus']} CPUs "
             f"({info['cpu']}), Linux {info['kernel']}; `bench/run.py`, {mode}.", "",
             "| workload | target | measured | met |", "| --- | --- | --- | --- |"]
    for workload, target, measured, met in checks:
        verdict = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {workload} | {target} | {measured} | {verdict} |")
    for key, (title, table) in tables.items():
        lines += ["", f"### {title}", "", table]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": info, "quick": args.quick, "workloads": results,
                   "targets": [{"workload": w, "target": t, "measured": m, "met": ok}
                               for w, t, m, ok in checks]}, f, indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
