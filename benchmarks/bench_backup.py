"""Benchmark of ``pond backup push`` and ``pond restore`` against a local S3 server (moto on
loopback), with boto3 moving the same pond directory's files in the same run as the baseline.

    python benchmarks/bench_backup.py            # 1 GiB of content: 10,000 small files + large ones
    python benchmarks/bench_backup.py --quick    # 100 MiB, 1,000 small files

The small files are 68 KiB each (just above the inline limit, so each is its own content
object: the per-object cost is what they measure); the rest of the GiB is 16 MiB files
(multipart). Baselines: ``upload_file``/``download_file`` of every file of the pond
directory in a plain loop, and the same on 16 threads (what ``aws s3 sync`` does by default
is 10). moto's server (Python, one process) answers ~20-50 requests/s per connection on
this machine kind, so it bounds every number; compare rows, not absolutes with real S3.
Push and restore run in-process (the ``pond`` command adds its start-up, ~2-3 s here).
Run by hand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from s3_server import S3Server  # noqa: E402

from pondfs import backup, pond  # noqa: E402

MiB = 1024 * 1024
SMALL = 68 * 1024
LARGE = 16 * MiB


def build_pond(root: Path, small: int, large: int) -> tuple[int, int]:
    """A pond with ``small`` small files and ``large`` large ones; (bytes, files) of its
    directory (everything a backup holds)."""
    pond.init(str(root))
    batch = 1000
    for start in range(0, small, batch):
        with pond.open_fs(str(root), write=True, holder="bench") as fs:
            top = fs.lookup(fs.resolve("/"), "small") or fs.mkdir(fs.resolve("/"), "small")
            for i in range(start, min(small, start + batch)):
                fs.write_content(fs.create(top, f"s{i:05d}.bin"), [os.urandom(SMALL)])
            fs.commit(f"bench small {start}")
    with pond.open_fs(str(root), write=True, holder="bench") as fs:
        top = fs.mkdir(fs.resolve("/"), "large")
        for i in range(large):
            fs.write_content(fs.create(top, f"l{i:03d}.bin"),
                             (os.urandom(MiB) for _ in range(LARGE // MiB)))
        fs.commit("bench large")
    files = [p for p in backed_up_files(root)]
    return sum(p.stat().st_size for p in files), len(files)


def backed_up_files(root: Path) -> list[Path]:
    return [p for sub in ("oplog", "objects") for p in (root / sub).rglob("*") if p.is_file()]


def timed(label: str, func, nbytes: int, nfiles: int, rows: list) -> object:
    started = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - started
    rows.append((label, seconds, nbytes / seconds / 1e6 if nbytes else 0.0,
                 nfiles / seconds if nfiles else 0.0))
    print(f"  {label}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return result


def plain_boto3(client, source: Path, files: list[Path], threads: int, work: Path,
                rows: list) -> None:
    """The baseline: upload_file, then download_file, of each file, on ``threads``."""
    bucket = f"plain-{threads}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    nbytes = sum(p.stat().st_size for p in files)

    def upload(path: Path) -> None:
        client.upload_file(str(path), bucket, str(path.relative_to(source)))

    def download(path: Path) -> None:
        dest = work / bucket / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, str(path.relative_to(source)), str(dest))

    label = "plain loop" if threads == 1 else f"{threads} threads"
    for verb, func in (("upload_file", upload), ("download_file", download)):
        if threads == 1:
            def run(func=func) -> None:
                for path in files:
                    func(path)
        else:
            def run(func=func) -> None:
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(func, files))
        timed(f"boto3 {verb}, {label}", run, nbytes, len(files), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 MiB, 1,000 small files")
    parser.add_argument("--jobs", type=int, default=backup.DEFAULT_JOBS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    small, large = (1000, 2) if args.quick else (10_000, 22)
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    rows: list[tuple[str, float, float, float]] = []
    try:
        # Without IAM authentication: it costs moto ~30 ms a request, which real stores
        # do not charge.
        with S3Server.start(work / "moto.log", authenticate=False) as server:
            for name, value in server.env().items():
                if name.startswith("AWS_"):
                    os.environ[name] = value
            client = server.client()
            source = work / "pond"
            print(f"building a pond: {small} x {SMALL // 1024} KiB + {large} x "
                  f"{LARGE // MiB} MiB ...", file=sys.stderr, flush=True)
            nbytes, nfiles = build_pond(source, small, large)
            print(f"pond directory: {nfiles} files, {nbytes / MiB:.0f} MiB", file=sys.stderr)

            url = f"s3://bench-{uuid.uuid4().hex[:8]}/pond"
            client.create_bucket(Bucket=backup.S3Location.parse(url).bucket)
            timed("pond backup push (full)", lambda: backup.push(
                source, url, jobs=args.jobs, progress=False), nbytes, nfiles, rows)
            timed("pond backup push (nothing new)", lambda: backup.push(
                source, url, jobs=args.jobs, progress=False), 0, 0, rows)
            with pond.open_fs(str(source), write=True, holder="bench") as fs:
                top = fs.resolve("/small")
                for i in range(100):
                    fs.write_content(fs.create(top, f"new{i:03d}.bin"), [os.urandom(SMALL)])
                fs.commit("bench 100 more")
            pushed = timed("pond backup push (100 new files)", lambda: backup.push(
                source, url, jobs=args.jobs, progress=False), 100 * SMALL, 100, rows)
            nbytes, nfiles = pushed.bytes, pushed.files  # the pond as restored below
            timed("pond backup verify (download + hash)", lambda: backup.verify(
                url, jobs=args.jobs, progress=False), nbytes, nfiles, rows)
            target = work / "restored"
            timed("pond restore (verify, check)", lambda: backup.restore(
                url, target, jobs=args.jobs, progress=False), nbytes, nfiles, rows)

            files = backed_up_files(source)
            for threads in (1, 16):
                plain_boto3(client, source, files, threads, work, rows)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'workload':40}  {'seconds':>8}  {'MB/s':>8}  {'files/s':>8}")
    for label, seconds, mbps, fps in rows:
        print(f"{label:40}  {seconds:8.2f}  {mbps:8.1f}  {fps:8.0f}")


if __name__ == "__main__":
    main()
