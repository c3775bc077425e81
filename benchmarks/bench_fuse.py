"""Benchmark mount.pondfs against a passthrough FUSE baseline measured in the same run.

    sudo .venv/bin/python benchmarks/bench_fuse.py [--size-mb 1024] [--files 10000]
        [--rounds 3] [--only write,cp,read,ls,stat]

Each workload runs on both mounts, on the same data:
- sequential write of a SIZE file (dd bs=1M from a host file in page cache), close included;
- sequential cold read (after a remount and dropping the page cache), then a cached read,
  compared with reading the host file from page cache right after it;
- ``cp -r`` of FILES files of 4 KiB into the mount (and, for pondfs, the Delta commits it
  took);
- ``ls -l`` of the FILES-entry directory and ``stat`` of every file by name, both cold;
- the pondfs daemon's peak RSS (VmHWM) over all of it.

Needs root (to drop the page cache) and /dev/fuse. Rounds alternate the two mounts, each on
a fresh store; prints the medians and their ratios (pondfs / baseline, >1 is faster for
rates, <1 is faster for times).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSTHROUGH = [sys.executable, str(HERE / "passthrough.py")]
MOUNT_PONDFS = [sys.executable, "-m", "pondfs.mount"]


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


@contextmanager
def mounted(kind: str, store: Path, mountpoint: Path, log: Path):
    """Mount ``store`` (a host dir for the passthrough, a pond for pondfs); yield the
    daemon's pid; unmount and wait for the daemon on exit."""
    mountpoint.mkdir(exist_ok=True)
    if kind == "passthrough":
        command = [*PASSTHROUGH, str(store), str(mountpoint)]
    else:
        command = [*MOUNT_PONDFS, str(store), str(mountpoint), "-f"]
    with open(log, "ab") as out:
        daemon = subprocess.Popen(command, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.ismount(mountpoint):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not mount; see {log}")
            time.sleep(0.02)
        yield daemon.pid
    finally:
        done = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
        if done.returncode != 0 and os.path.ismount(mountpoint):  # busy: detach it
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True)
        try:
            daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True)
            daemon.kill()
            daemon.wait()


def timed(*command: str, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


STAT_SCRIPT = "import os,sys\nfor p in sys.stdin.read().split('\\n'):\n    p and os.stat(p)\n"


WORKLOADS = ("write", "cp", "read", "ls", "stat")


def workloads(kind: str, store: Path, mnt: Path, work: Path, size_mb: int, nfiles: int,
              big_source: Path, small_source: Path, only: set[str]) -> dict[str, float]:
    """One round of the ``only`` workloads on a fresh ``store``; rates, times, peak RSS.
    The host page-cache read is timed right after the mount's cached read (same load)."""
    log = work / f"{kind}.log"
    r: dict[str, float] = {}
    rss = 0.0
    big = mnt / "big"
    with mounted(kind, store, mnt, log) as pid:
        if only & {"write", "read"}:
            seconds = timed("dd", f"if={big_source}", f"of={big}", "bs=1M", "status=none")
            if "write" in only:
                r["write MB/s"] = size_mb * 1.048576 / seconds
        if only & {"cp", "ls", "stat"}:
            before = _transactions(store) if kind == "pondfs" else 0
            seconds = timed("cp", "-r", str(small_source), str(mnt / "files"))
            if "cp" in only:
                r["cp -r files/s"] = nfiles / seconds
                if kind == "pondfs":
                    r["cp -r commits"] = _transactions(store) - before
        rss = max(rss, peak_rss_mib(pid))
    if "read" in only:
        drop_caches()
        with mounted(kind, store, mnt, log) as pid:
            seconds = timed("dd", f"if={big}", "of=/dev/null", "bs=1M", "status=none")
            r["cold read MB/s"] = size_mb * 1.048576 / seconds
            seconds = timed("dd", f"if={big}", "of=/dev/null", "bs=1M", "status=none")
            r["cached read MB/s"] = size_mb * 1.048576 / seconds
            timed("cat", str(big_source))  # back in the page cache after drop_caches
            seconds = timed("dd", f"if={big_source}", "of=/dev/null", "bs=1M", "status=none")
            r["host cached read MB/s"] = size_mb * 1.048576 / seconds
            rss = max(rss, peak_rss_mib(pid))
    if "ls" in only:
        drop_caches()
        with mounted(kind, store, mnt, log) as pid:
            r["ls -l s"] = timed("ls", "-l", str(mnt / "files"))
            rss = max(rss, peak_rss_mib(pid))
    if "stat" in only:
        drop_caches()
        names = "\n".join(str(mnt / "files" / f"f{i:05}") for i in range(nfiles))
        with mounted(kind, store, mnt, log) as pid:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", STAT_SCRIPT], input=names.encode(), check=True)
            r["stat s"] = time.perf_counter() - start
            rss = max(rss, peak_rss_mib(pid))
    r["peak RSS MiB"] = rss
    return r


def _transactions(pond_path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pondfs import pond\n"
         "with pond.open_fs(sys.argv[1]) as fs: print(len(fs.transactions()))",
         str(pond_path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, alternating the two mounts; medians are printed")
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--workdir", default=None, help="scratch directory on local disk")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not only <= set(WORKLOADS):
        parser.error(f"--only: unknown workload(s) {', '.join(sorted(only - set(WORKLOADS)))}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pondfs-bench-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    big = work / "big.src"
    with open(big, "wb") as f:
        for _ in range(args.size_mb):
            f.write(os.urandom(1024 * 1024))
    small = work / "small.src"
    small.mkdir(exist_ok=True)
    for i in range(args.files):
        (small / f"f{i:05}").write_bytes(os.urandom(4096))
    timed("cat", str(big))  # into the page cache: both sides read it from memory

    from pondfs import pond

    results: dict[str, list[dict[str, float]]] = {"passthrough": [], "pondfs": []}
    for round_ in range(args.rounds):
        for kind in results:
            store = work / f"{kind}-{round_}"
            if kind == "pondfs":
                pond.init(str(store))
            else:
                store.mkdir()
            results[kind].append(workloads(kind, store, work / "mnt", work, args.size_mb,
                                           args.files, big, small, only))
            shutil.rmtree(store, ignore_errors=True)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    base, ours = (_medians(results[kind]) for kind in ("passthrough", "pondfs"))
    print(f"medians of {args.rounds} rounds; ratio = pondfs / baseline "
          "(>1 is faster for rates, <1 is faster for times)")
    print(f"{'workload':22} {'passthrough':>12} {'pondfs':>12} {'ratio':>8}")
    for key in ours:
        if key == "host cached read MB/s":
            continue
        b = base.get(key)
        ratio = f"{ours[key] / b:8.2f}" if b else ""
        print(f"{key:22} {b if b is not None else float('nan'):12.2f} {ours[key]:12.2f} {ratio}")
    if "read" in only:
        ratios = [r["cached read MB/s"] / r["host cached read MB/s"] for r in results["pondfs"]]
        print(f"{'cached vs host cache':22} {ours['host cached read MB/s']:12.2f}"
              f" {ours['cached read MB/s']:12.2f} {statistics.median(ratios):8.2f}"
              "   (host read timed right after each cached read; median of the ratios)")
    shutil.rmtree(work, ignore_errors=True)


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


if __name__ == "__main__":
    main()
