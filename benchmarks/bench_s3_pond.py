"""Benchmark of ``pond`` commands on a pond in S3 (moto's server on loopback) against the same
commands on a pond on the local disk, in the same run.

    python benchmarks/bench_s3_pond.py [--rounds 5] [--mib 64]

Each number is the wall time of one ``pond`` process (start-up included: that is what a
user waits for), the median over ``--rounds``: ``mkdir`` (a transaction), ``ls -l /``,
``cp`` of a ``--mib`` MiB file (a content object), and ``cat`` of it from an empty object
cache (another machine) and from a warm one. moto's server is one Python process and bounds
the S3 numbers; compare the rows, not absolutes with real S3. Run by hand; not part of the
test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from s3_server import S3Server  # noqa: E402


def timed(args: list[str], env: dict[str, str]) -> float:
    """Seconds one ``pond`` command took; it must succeed."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pondfs.cli", *args], env=env,
                          capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pond {' '.join(args)} failed: {done.stderr.decode()}")
    return seconds


def measure(pond: str, env: dict[str, str], big: Path, rounds: int, work: Path) -> dict:
    """Median seconds of each command on the pond at ``pond``."""
    env = {**env, "POND": pond, "XDG_CACHE_HOME": str(work / "cache")}
    timed(["init"], env)
    results: dict[str, list[float]] = {"mkdir": [], "ls -l": [], "cp": [], "cat cold": [],
                                       "cat warm": []}
    for i in range(rounds):
        results["mkdir"].append(timed(["mkdir", f"/d{i}"], env))
        results["ls -l"].append(timed(["ls", "-l", "/"], env))
        results["cp"].append(timed(["cp", str(big), f"/big{i}.bin"], env))
        cold = {**env, "XDG_CACHE_HOME": str(work / f"cold{i}")}
        results["cat cold"].append(timed(["cat", f"/big{i}.bin"], cold))
        results["cat warm"].append(timed(["cat", f"/big{i}.bin"], env))
    return {name: statistics.median(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, \
            S3Server.start(Path(tmp) / "moto.log") as server:
        work = Path(tmp)
        server.client().create_bucket(Bucket="bench-s3-pond")
        big = work / "big.bin"
        big.write_bytes(os.urandom(args.mib * 1024 * 1024))
        env = server.env()
        s3 = measure("s3://bench-s3-pond/pond", env, big, args.rounds, work / "s3")
        local = measure(str(work / "local" / "pond"), env, big, args.rounds, work / "local")
    print(f"{'command':<10} {'S3 (s)':>8} {'disk (s)':>9}")
    for name in s3:
        print(f"{name:<10} {s3[name]:>8.2f} {local[name]:>9.2f}")


if __name__ == "__main__":
    main()
