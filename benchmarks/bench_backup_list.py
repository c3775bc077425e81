"""Benchmark of ``pond backup list`` against a backup with many restore points of a pond with
many files, on a local S3 server (moto on loopback).

    python benchmarks/bench_backup_list.py                    # 30 restore points x 10,000 files
    python benchmarks/bench_backup_list.py --points 10 --files 1000

A manifest names every file of its snapshot (~180 bytes each), so listing the restore points
must not download every manifest whole: each push also writes a small summary. The backups
are synthesized (pond.json, manifests with made-up files, summaries): list reads nothing
else. Prints the manifests' total size and the median of ``--rounds`` in-process
``list_backups`` calls, of a backup without summaries (as older pondfs pushed them) and of
the same one with them (and ``--objects`` content objects), in the same run, and of listing
every key of the latter (what list did before it listed only manifests and summaries). Run
by hand; not part of the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from s3_server import S3Server  # noqa: E402

from pondfs import backup  # noqa: E402


def synthesize(client, bucket: str, points: int, files: int) -> int:
    """Two backups of the same ``points`` restore points of ``files`` files each: ``old/``
    as an older pondfs pushed them (manifests only), ``new/`` with summaries; the size of
    one backup's manifests."""
    for prefix in ("old", "new"):
        client.put_object(Bucket=bucket, Key=f"{prefix}/pond.json",
                          Body=json.dumps({"format": "pondfs-backup", "version": 1,
                                           "table_id": "bench"}).encode())
    total = 0
    for txn in range(1, points + 1):
        entries = [backup.FileEntry(f"objects/{sha[:2]}/{sha}", 70_000 + i, sha)
                   for i, sha in ((i, hashlib.sha256(b"%d" % i).hexdigest())
                                  for i in range(files))]
        manifest = backup.Manifest(table_id="bench", txn=txn, table_version=txn, txn_time_ns=0,
                                   pushed_at="2026-01-01T00:00:00Z", host="bench",
                                   files=entries, uploaded_files=files,
                                   uploaded_bytes=sum(e.size for e in entries))
        body = manifest.to_json()
        total += len(body)
        for prefix in ("old", "new"):
            client.put_object(Bucket=bucket, Key=f"{prefix}/{manifest.name}", Body=body)
        client.put_object(Bucket=bucket, Key=f"new/summaries/{txn:012d}.json",
                          Body=backup.RestorePoint.of(manifest).to_json())
    return total


def main() -> None:
    """Synthesize the backup, then time list_backups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=30)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--objects", type=int, default=0,
                        help="empty content objects to put in each backup too (list should "
                             "not read them)")
    args = parser.parse_args()
    with S3Server.start() as server:
        os.environ.update({k: v for k, v in server.env().items() if k.startswith("AWS_")})
        client = server.client()
        client.create_bucket(Bucket="bench-list")
        size = synthesize(client, "bench-list", args.points, args.files)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: client.put_object(Bucket="bench-list", Key=key, Body=b""),
                          [f"new/objects/{i:02x}/{i:064x}" for i in range(args.objects)]))
        print(f"{args.points} restore points x {args.files} files: manifests "
              f"{size / 1e6:.1f} MB; {args.objects} objects in the backup with summaries")
        for prefix, what in (("old", "manifests only"), ("new", "with summaries")):
            url = f"s3://bench-list/{prefix}"
            assert len(backup.list_backups(url)) == args.points
            times = [timed(lambda url=url: backup.list_backups(url)) for _ in range(args.rounds)]
            report(f"list_backups, {what}", times)
        location = backup.S3Location("bench-list", "new")
        report("listing every key of the backup with summaries (as list did before)",
               [timed(backup.Bucket(location).listing) for _ in range(args.rounds)])


def timed(func) -> float:
    """Seconds ``func()`` takes."""
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def report(what: str, times: list[float]) -> None:
    """One result line: the median and range of ``times``."""
    print(f"  {what}: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {len(times)} rounds)")

if __name__ == "__main__":
    main()
