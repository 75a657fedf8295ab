"""Helpers the whole-system benchmark scripts share."""
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")


def quick_and_json_args():
    """--quick and --json=OUT, the flags every workload script takes; the
    build is checked first."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    require_build()
    return args


def require_build():
    if not os.access(os.path.join(BIN, "coordctl"), os.X_OK):
        sys.exit("build first: scripts/build.sh")


def timed(args, **kwargs):
    """Wall seconds of one run of `args`; a failing run ends the benchmark."""
    start = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    took = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"run failed: {' '.join(args[:6])}...\n{result.stdout[-2000:]}"
                 f"\n{result.stderr[-2000:]}")
    return took


def median(values):
    return statistics.median(values)
