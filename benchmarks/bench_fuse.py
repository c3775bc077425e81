"""Benchmark mount.pondfs against a passthrough FUSE baseline measured in the same run.

    sudo .venv/bin/python benchmarks/bench_fuse.py [--size-mb 1024] [--files 10000]

Each workload runs on both mounts, on the same data:
- sequential write of a SIZE file (dd bs=1M from a host file in page cache), close included;
- sequential cold read (after a remount and dropping the page cache), then a cached read,
  compared with reading the host file from page cache;
- ``cp -r`` of FILES files of 4 KiB into the mount (and, for pondfs, the Delta commits it
  took);
- ``ls -l`` of the FILES-entry directory and ``stat`` of every file by name, both cold;
- the pondfs daemon's peak RSS (VmHWM) over all of it.

Needs root (to drop the page cache) and /dev/fuse. Prints a table and ratios
(pondfs / baseline, >1 is faster for rates, <1 is faster for times).
"""

from __future__ import annotations

import argparse
import os
import shutil
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
        subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
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


def workloads(kind: str, store: Path, mnt: Path, work: Path, size_mb: int, nfiles: int,
              big_source: Path, small_source: Path) -> dict[str, float]:
    log = work / f"{kind}.log"
    r: dict[str, float] = {}
    rss = 0.0
    with mounted(kind, store, mnt, log) as pid:
        seconds = timed("dd", f"if={big_source}", f"of={mnt / 'big'}", "bs=1M", "status=none")
        r["write MB/s"] = size_mb * 1.048576 / seconds
        before = _transactions(store) if kind == "pondfs" else 0
        seconds = timed("cp", "-r", str(small_source), str(mnt / "files"))
        r["cp -r files/s"] = nfiles / seconds
        rss = max(rss, peak_rss_mib(pid))
    if kind == "pondfs":
        r["cp -r commits"] = _transactions(store) - before
    drop_caches()
    with mounted(kind, store, mnt, log) as pid:
        seconds = timed("dd", f"if={mnt / 'big'}", "of=/dev/null", "bs=1M", "status=none")
        r["cold read MB/s"] = size_mb * 1.048576 / seconds
        seconds = timed("dd", f"if={mnt / 'big'}", "of=/dev/null", "bs=1M", "status=none")
        r["cached read MB/s"] = size_mb * 1.048576 / seconds
        rss = max(rss, peak_rss_mib(pid))
    drop_caches()
    with mounted(kind, store, mnt, log) as pid:
        r["ls -l s"] = timed("ls", "-l", str(mnt / "files"))
        rss = max(rss, peak_rss_mib(pid))
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
    parser.add_argument("--workdir", default=None, help="scratch directory on local disk")
    args = parser.parse_args()
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
    host_cached = args.size_mb * 1.048576 / timed("dd", f"if={big}", "of=/dev/null", "bs=1M",
                                                  "status=none")

    from pondfs import pond

    host_dir = work / "host"
    host_dir.mkdir(exist_ok=True)
    pond_dir = work / "pond"
    if not pond_dir.exists():
        pond.init(str(pond_dir))
    results = {
        "passthrough": workloads("passthrough", host_dir, work / "mnt", work, args.size_mb,
                                 args.files, big, small),
        "pondfs": workloads("pondfs", pond_dir, work / "mnt", work, args.size_mb,
                            args.files, big, small),
    }
    base, ours = results["passthrough"], results["pondfs"]
    print(f"{'workload':22} {'passthrough':>12} {'pondfs':>12} {'ratio':>8}")
    for key in ours:
        b = base.get(key)
        ratio = f"{ours[key] / b:8.2f}" if b else ""
        print(f"{key:22} {b if b is not None else float('nan'):12.2f} {ours[key]:12.2f} {ratio}")
    print(f"{'host cached read MB/s':22} {host_cached:12.2f} {ours['cached read MB/s']:12.2f}"
          f" {ours['cached read MB/s'] / host_cached:8.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
