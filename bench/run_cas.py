#!/usr/bin/env python3
"""The REAPI blob store, whole-system: a real cache_server on loopback and
cas_bench as its client, with `cp` of the same file on the same disk as the
yardstick for ByteStream, and (full runs, when installed) Bazel uploading the
same 11,000-file tree. Writes JSON to --json.

  bench/run_cas.py [--quick] [--json=OUT]
"""
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time

from benchlib import BIN, median, quick_and_json_args, timed

HERE = os.path.dirname(os.path.abspath(__file__))


def start_cache(work):
    log = open(os.path.join(work, "cache.log"), "w")
    server = subprocess.Popen(
        [os.path.join(BIN, "cache_server"), "--listen=127.0.0.1:0",
         f"--data-dir={work}/cache", "--cache-max-bytes=16GiB"],
        stdout=log, stderr=subprocess.STDOUT)
    for _ in range(500):
        text = open(os.path.join(work, "cache.log")).read()
        found = re.search(r"listening on port (\d+)", text)
        if found:
            return server, f"127.0.0.1:{found.group(1)}"
        time.sleep(0.02)
    server.kill()
    raise SystemExit("cache_server did not start:\n" + text)


def cas_bench(*args):
    result = subprocess.run([os.path.join(BIN, "cas_bench"), *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"cas_bench {args[0]} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def make_tree(root, files, total_bytes):
    """`files` files of skewed sizes summing to about `total_bytes`, in
    folders of 100, as a source tree is (bazel#14513: 11,000 files, 21 MB)."""
    rng = random.Random(14513)
    weights = [rng.lognormvariate(0, 1.2) for _ in range(files)]
    scale = total_bytes / sum(weights)
    for i, weight in enumerate(weights):
        folder = os.path.join(root, f"d{i // 100:03d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"f{i:05d}.txt"), "wb") as f:
            f.write(rng.randbytes(max(1, int(weight * scale))))


def bazel_upload(work, files, total_bytes, address):
    """Bazel itself uploading a tree of the same shape: one genrule writing
    `files` outputs, built without a remote cache and then, after a clean,
    against an empty one; the difference is the upload."""
    if shutil.which("bazel") is None:
        return None
    ws = os.path.join(work, "bazel-ws")
    os.makedirs(ws)
    open(os.path.join(ws, "WORKSPACE"), "w").close()
    size = max(1, total_bytes // files)
    command = (f"mkdir -p $(RULEDIR)/t && for i in $$(seq 0 {files - 1}); do "
               f"head -c {size} /dev/urandom > $(RULEDIR)/t/f$$(printf %05d $$i).txt; done")
    with open(os.path.join(ws, "BUILD"), "w") as f:
        f.write(f"""genrule(
    name = "tree",
    outs = {json.dumps([f"t/f{i:05d}.txt" for i in range(files)])},
    cmd = {json.dumps(command)},
)
""")
    root = os.path.join(work, "bazel-root")
    base = ["bazel", "--bazelrc=/dev/null", f"--output_user_root={root}",
            "--max_idle_secs=120"]
    build = base + ["build", "--spawn_strategy=local", "//:tree"]
    timed(build, cwd=ws)  # server start, analysis, first run
    timed(base + ["clean"], cwd=ws)
    local_s = timed(build, cwd=ws)
    timed(base + ["clean"], cwd=ws)
    remote_s = timed(build + [f"--remote_cache=grpc://{address}"], cwd=ws)
    subprocess.run(base + ["shutdown"], cwd=ws, capture_output=True)
    return {"files": files, "bytes": size * files, "build_local_s": local_s,
            "build_and_upload_s": remote_s, "upload_s": remote_s - local_s}


def main():
    args = quick_and_json_args()
    digests = 5_000 if args.quick else 100_000
    files, tree_bytes = (1_100, 2_100_000) if args.quick else (11_000, 21_000_000)
    big = (16 if args.quick else 1024) << 20
    actions = 500 if args.quick else 20_000
    work = tempfile.mkdtemp(prefix="testfleet-cas-bench-", dir=os.environ.get("TMPDIR"))
    server, address = start_cache(work)
    try:
        out = {"find_missing": cas_bench("find-missing", f"--cas={address}",
                                         f"--count={digests}")}
        make_tree(os.path.join(work, "tree"), files, tree_bytes)
        out["upload_tree"] = cas_bench("upload-tree", f"--cas={address}",
                                       f"--dir={work}/tree")
        # The big file: random bytes (nothing compresses them), on the disk
        # the cache is on; `cp` of it there is the yardstick.
        blob = os.path.join(work, "big.bin")
        with open(blob, "wb") as f:
            chunk = os.urandom(16 << 20)
            for i in range(big // len(chunk)):
                f.write(chunk[:8] + i.to_bytes(8, "little") + chunk[16:])
        # `cp` into the page cache, and `cp` until the copy is on the disk.
        cp, cp_sync = [], []
        for i in range(3):
            copy = os.path.join(work, f"copy{i}.bin")
            cp.append(timed(["cp", blob, copy]))
            os.remove(copy)
            subprocess.run(["sync"])
            cp_sync.append(timed(["sh", "-c", f"cp {blob} {copy} && sync"]))
            os.remove(copy)
        stream = cas_bench("bytestream", f"--cas={address}", f"--file={blob}",
                           f"--out={work}/read.bin")
        os.remove(os.path.join(work, "read.bin"))
        stream["cp_s"] = median(cp)
        stream["cp_mib_s"] = big / (1 << 20) / median(cp)
        stream["cp_sync_s"] = median(cp_sync)
        stream["cp_sync_mib_s"] = big / (1 << 20) / median(cp_sync)
        out["bytestream"] = stream
        out["action_results"] = cas_bench("action-results", f"--cas={address}",
                                          f"--count={actions}")
        if not args.quick:
            out["bazel_upload"] = bazel_upload(work, files, tree_bytes, address)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    fm, tree, stream, ac = (out["find_missing"], out["upload_tree"],
                            out["bytestream"], out["action_results"])
    rows = ["| measure | value |", "| --- | ---: |",
            f"| FindMissingBlobs, {fm['digests']:,} digests (half present), median of 5 "
            f"| {fm['median_ms']:.0f} ms |",
            f"| upload of {tree['files']:,} files, {tree['bytes'] / 1e6:.1f} MB: hashing "
            f"| {tree['hash_s']:.2f} s |",
            f"| ... FindMissingBlobs and batches | {tree['upload_s']:.2f} s |",
            f"| ... again, all present | {tree['second_pass_s']:.2f} s |",
            f"| ByteStream write, {stream['bytes'] >> 20} MiB | {stream['write_mib_s']:.0f} MiB/s |",
            f"| ByteStream read | {stream['read_mib_s']:.0f} MiB/s |",
            f"| `cp` of the same file, median of 3 | {stream['cp_mib_s']:.0f} MiB/s |",
            f"| `cp` and `sync` of the same file, median of 3 "
            f"| {stream['cp_sync_mib_s']:.0f} MiB/s |",
            f"| GetActionResult over loopback, {ac['entries']:,} entries: p50 / p99 "
            f"| {ac['p50_us']:.0f} / {ac['p99_us']:.0f} µs |"]
    if out.get("bazel_upload"):
        b = out["bazel_upload"]
        rows.append(f"| Bazel 4.2: build of {b['files']:,} outputs without / with an upload "
                    f"| {b['build_local_s']:.1f} / {b['build_and_upload_s']:.1f} s |")
    print("\n".join(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
