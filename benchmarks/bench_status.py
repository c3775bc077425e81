"""How long ``pond status`` takes on a pond of many transactions (issue 15: under a second
on 10,000).

Builds a real pond (or reuses the one at --pond) whose transactions are collector runs: every
one a run record of four devices, every tenth one appending rows to a series, as an hourly
collector does for a year; then times ``pond status -o json`` as a user runs it (a new
process), best of three, with and without the quick check.

    python benchmarks/bench_status.py --txns 10000 --pond /tmp/status-pond
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import pyarrow as pa


def build(location: str, txns: int) -> None:
    """A pond of ``txns`` transactions of collector runs (see the module docstring)."""
    from pondfs import pond, runs

    pond.init(location)
    with pond.open_fs(location, write=True, holder="bench_status") as fs:
        root = fs.resolve("/")
        series = fs.create(root, "device.series", "series")
        for n in range(2, txns + 1):
            started = time.time_ns()
            rows = 0
            if n % 10 == 0:
                rows = 60
                times = pa.array(range(n * 3600, n * 3600 + rows), pa.int64())
                fs.append_series(series, pa.table({"timestamp": times,
                                                   "value": pa.array([1.0] * rows)}),
                                 "timestamp")
            devices = {f"device{d}": {"rows": rows if d == 0 else 0, "newest": n * 3600,
                                      "error": None} for d in range(4)}
            record = runs.record(runs.COLLECTOR, "/etc/hydrovu", started_ns=started,
                                 rows=rows, devices=devices, silent_after=1e12)
            fs.commit(f"bench run {n}", runs=[record])
            if n % 1000 == 0:
                print(f"{n} transactions", file=sys.stderr, flush=True)


def timed(location: str, *extra: str) -> float:
    """Seconds of the best of three ``pond status`` runs."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pondfs.cli", "--pond", location,
                               "status", "-o", "json", *extra], capture_output=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(done.stderr.decode())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txns", type=int, default=10_000)
    parser.add_argument("--pond", default="/tmp/bench-status-pond")
    args = parser.parse_args()
    if not os.path.exists(args.pond):
        start = time.perf_counter()
        build(args.pond, args.txns)
        print(f"built {args.txns} transactions in {time.perf_counter() - start:.0f} s")
    print(f"pond status --no-check: {timed(args.pond, '--no-check'):.2f} s")
    print(f"pond status (quick check): {timed(args.pond):.2f} s")


if __name__ == "__main__":
    main()
