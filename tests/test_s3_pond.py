"""Ponds that live in S3 (``pond --pond s3://bucket/prefix``), against a real S3 server (moto's,
on loopback): every command on an S3 pond, content objects in the bucket, time travel, the
single-writer lease (a second writer, a crashed one, a stalled one), mounts, and bad input.

A failing command must print exactly one line on stderr, exit non-zero and write nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fuse_helpers import Mount

from pondfs import pond
from pondfs.oplog import open_pond
from pondfs.s3 import Bucket, S3Location
from pondfs.tinyfs import FsError, PondLocked, TxnInfo, content_hash

DEMO = Path(__file__).resolve().parent.parent / "pondfs" / "demo"
BIG = 300 * 1024  # above the inline limit: a content object


class S3Pond:
    """A pond location in a fresh bucket, with the environment ``pond`` runs with: the test
    server's AWS settings and a local cache of this test's own (a machine of its own)."""

    def __init__(self, server, url: str, cache: Path):
        self.server = server
        self.url = url
        self.location = S3Location.parse(url)
        self.env = server.env(POND=url, XDG_CACHE_HOME=str(cache))

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pondfs.cli", *args],
                              env={**self.env, **(env or {})}, capture_output=True,
                              timeout=timeout)

    def out(self, *args: str, env: dict[str, str] | None = None) -> bytes:
        """Run a command that must succeed quietly; its stdout."""
        done = self.run(*args, env=env)
        assert done.returncode == 0, (args, done.stderr.decode())
        assert done.stderr == b"", (args, done.stderr.decode())
        return done.stdout

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a command that must fail with one line on stderr; that line."""
        done = self.run(*args, env=env)
        assert done.returncode != 0, (args, done.stdout.decode())
        lines = done.stderr.decode().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    def keys(self) -> dict[str, str]:
        """ETag of every key below the pond's prefix (what the bucket holds of it)."""
        found = {}
        pages = self.server.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self.location.prefix + "/")
        for page in pages:
            for item in page.get("Contents", ()):
                found[self.location.relative(item["Key"])] = item["ETag"]
        return found


@pytest.fixture
def s3pond(aws, url, tmp_path, monkeypatch) -> S3Pond:
    """An S3 location for a new pond; this process' cache is under tmp_path too."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return S3Pond(aws, url, tmp_path / "cache")


def test_every_command_works_on_a_pond_in_s3(s3pond: S3Pond, tmp_path: Path) -> None:
    big = os.urandom(BIG)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "note.txt").write_text("first\n")
    series = DEMO / "NoyoCenterAT500_1.parquet"

    assert b"transaction 1" in s3pond.out("init")
    s3pond.out("mkdir", "-p", "/hydrovu/devices")
    s3pond.out("cp", str(tmp_path / "big.bin"), str(tmp_path / "note.txt"), "/hydrovu")
    s3pond.out("cp", "--format", "series", str(series), "/hydrovu/devices/at500.series")
    (tmp_path / "note.txt").write_text("second\n")
    s3pond.out("cp", str(tmp_path / "note.txt"), "/hydrovu/note.txt")

    listing = s3pond.out("ls", "-l", "/hydrovu").decode()
    assert f" {BIG} " in listing and "big.bin" in listing and "devices" in listing
    assert s3pond.out("cat", "/hydrovu/big.bin") == big
    assert s3pond.out("cat", "/hydrovu/note.txt") == b"second\n"
    assert s3pond.out("cat", "--at", "3", "/hydrovu/note.txt") == b"first\n"  # time travel
    assert s3pond.out("ls", "--at", "2", "/hydrovu").split() == [b"devices"]
    rows = pq.read_table(series).num_rows
    count = s3pond.out("query", "-o", "csv",
                       "SELECT count(*) AS n FROM '/hydrovu/devices/*.series'").split()
    assert count == [b'"n"', str(rows).encode()]
    log = s3pond.out("log").decode().splitlines()
    assert [line.split()[0] for line in log[1:]] == ["5", "4", "3", "2", "1"]
    assert "pond cp --format series" in log[2]
    assert "ok" in s3pond.out("check").decode()

    # Everything is in the bucket: the Delta table and the content object, by its hash;
    # the lease is gone once the writers finished.
    keys = s3pond.keys()
    digest = content_hash(big)
    assert f"objects/{digest[:2]}/{digest}" in keys
    assert any(k.startswith("oplog/_delta_log/") for k in keys)
    assert any(k.startswith("oplog/part_id=") for k in keys)
    assert "lock" not in keys

    # Another machine (an empty cache) reads the same bytes, fetched from the bucket.
    elsewhere = {"XDG_CACHE_HOME": str(tmp_path / "elsewhere")}
    assert s3pond.out("cat", "/hydrovu/big.bin", env=elsewhere) == big
    assert (tmp_path / "elsewhere" / "pondfs" / "ponds").is_dir()


def test_a_corrupt_object_in_the_bucket_is_named(s3pond: S3Pond, tmp_path: Path) -> None:
    big = os.urandom(BIG)
    (tmp_path / "big.bin").write_bytes(big)
    s3pond.out("init")
    s3pond.out("cp", str(tmp_path / "big.bin"), "/big.bin")
    digest = content_hash(big)
    damaged = bytearray(big)
    damaged[1000] ^= 1
    s3pond.server.client().put_object(Bucket=s3pond.location.bucket,
                                      Key=s3pond.location.key(f"objects/{digest[:2]}/{digest}"),
                                      Body=bytes(damaged))
    fresh = {"XDG_CACHE_HOME": str(tmp_path / "fresh")}  # nothing cached yet
    line = s3pond.fails("cat", "/big.bin", env=fresh)
    assert digest in line and "corrupt" in line
    done = s3pond.run("check", env={"XDG_CACHE_HOME": str(tmp_path / "fresh2")})
    assert done.returncode == 1 and digest in done.stdout.decode()
    cached = list((tmp_path / "fresh").rglob(digest))
    assert cached == []  # bad bytes are never cached under the object's name


def test_objects_no_row_needs_are_removed_from_the_bucket(s3pond: S3Pond,
                                                          tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(BIG))
    (tmp_path / "b.bin").write_bytes(os.urandom(BIG))
    s3pond.out("init")
    s3pond.out("cp", str(tmp_path / "a.bin"), str(tmp_path / "b.bin"), "/")
    with pond.open_fs(s3pond.url, write=True, holder="test") as fs:
        # An object stored but never committed (an interrupted writer) is what maintain
        # may remove; every object a row names stays.
        stray = fs.store.store([os.urandom(BIG)], inline_limit=64 * 1024).blake3
    objects = {k for k in s3pond.keys() if k.startswith("objects/")}
    assert len(objects) == 3
    report = s3pond.out("maintain", "--retention-hours", "0").decode()
    assert f"objects_removed: ['{stray}']" in report
    assert {k for k in s3pond.keys() if k.startswith("objects/")} == \
        objects - {f"objects/{stray[:2]}/{stray}"}
    assert "ok" in s3pond.out("check").decode()


# ---------------------------------------------------------------------- the writer lease


def test_the_store_honours_conditional_writes(aws, url) -> None:
    """What the lease stands on (and Delta's commits too): a PUT with If-None-Match: * fails
    on an existing key, one with If-Match fails on a changed key, and so does a delete."""
    bucket = Bucket(S3Location.parse(url))
    first = bucket.put_new("k", b"one")
    assert first is not None
    assert bucket.put_new("k", b"two") is None
    second = bucket.replace("k", b"three", first)
    assert second is not None and second != first
    assert bucket.replace("k", b"four", first) is None
    assert bucket.delete("k", first) is False
    assert bucket.get_bytes("k") == b"three"
    assert bucket.delete("k", second) is True
    assert bucket.head("k") is None



def test_a_second_writer_waits_then_is_refused_with_the_holder_named(s3pond: S3Pond
                                                                    ) -> None:
    s3pond.out("init")
    before = s3pond.out("log")
    holder = open_pond(s3pond.url)
    with holder.writer_lock("collector at the dock"):  # as during one of its commits
        reader = open_pond(s3pond.url)
        assert "collector at the dock" in reader.lock_holder()
        line = s3pond.fails("--wait", "1", "mkdir", "/theirs")
        assert line.startswith("pond mkdir: pond is locked by another writer: pid ")
        assert "collector at the dock" in line
        assert s3pond.out("log") == before  # untouched, and readers need no lock
    assert reader.lock_holder() is None
    reader.close()
    holder.close()
    s3pond.out("mkdir", "/theirs")  # released: the next writer goes ahead
    assert s3pond.out("ls").split() == [b"theirs"]


def test_writers_racing_for_the_pond_commit_one_at_a_time(s3pond: S3Pond) -> None:
    s3pond.out("init")
    names = [f"d{i}" for i in range(4)]
    racing = [subprocess.Popen([sys.executable, "-m", "pondfs.cli", "mkdir", f"/{name}"],
                               env=s3pond.env, stderr=subprocess.PIPE) for name in names]
    made = []
    for name, process in zip(names, racing, strict=True):
        stderr = process.communicate(timeout=120)[1].decode()
        assert process.returncode == 0, stderr  # each waits for the lease, then rebases
        made.append(name)
    assert sorted(s3pond.out("ls").decode().split()) == made
    log = s3pond.out("log").decode().splitlines()
    assert len(log) == 2 + len(made)  # header, init, one transaction each
    assert "ok" in s3pond.out("check").decode()


def test_a_crashed_writers_lease_runs_out(s3pond: S3Pond) -> None:
    """The rule: a lock not renewed for its lease time (POND_LOCK_LEASE, 60 s by default)
    was left by a crashed writer, and the next writer takes it over with a warning."""
    s3pond.out("init")
    lease = {"POND_LOCK_LEASE": "3"}
    doomed = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pondfs.oplog import open_pond\n"
         "with open_pond(sys.argv[1]).writer_lock('doomed writer'):\n"
         "    print('locked', flush=True)\n    time.sleep(600)\n", s3pond.url],
        env={**s3pond.env, **lease}, stdout=subprocess.PIPE, text=True)
    try:
        assert doomed.stdout.readline().strip() == "locked"
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    killed = time.monotonic()
    store = open_pond(s3pond.url)  # in-process: well within the lease time
    try:
        with pytest.raises(PondLocked, match="doomed writer"), store.writer_lock("early"):
            pass
    finally:
        store.close()
    assert time.monotonic() - killed < 3
    time.sleep(4.5)  # the lease time, plus the store's one-second clock
    done = s3pond.run("mkdir", "/x", env=lease)
    assert done.returncode == 0, done.stderr.decode()
    warning = done.stderr.decode()
    assert "took over the writer lock" in warning and "doomed writer" in warning
    assert s3pond.out("ls").split() == [b"x"]
    assert "lock" not in s3pond.keys()


def test_a_writer_that_lost_its_lease_commits_nothing(s3pond: S3Pond, monkeypatch,
                                                      expect_warnings) -> None:
    s3pond.out("init")
    monkeypatch.setenv("POND_LOCK_LEASE", "1.5")
    with pond.open_fs(s3pond.url, write=True, holder="stalled writer") as fs:
        fs.mkdir(fs.resolve("/"), "late")
        with fs.writer_lock("test: too late"):  # as FS.commit takes it
            # Another writer took the lease over (as if this one had stalled past it).
            s3pond.server.client().put_object(
                Bucket=s3pond.location.bucket, Key=s3pond.location.key("lock"),
                Body=b'{"holder": "usurper", "lease_seconds": 60}')
            with expect_warnings(f"writer lock {s3pond.url}/lock lost: another writer took "
                                 "the lock over"):
                time.sleep(1.5)  # the next renewal finds the lock changed
                commit = fs.begin_commit("test: too late")
                assert commit is not None
                with pytest.raises(FsError, match="lost the writer lock"):
                    commit.store()
    assert s3pond.out("ls") == b""
    assert s3pond.out("log").decode().count("\n") == 2  # header and init only


def test_a_commit_on_a_stale_snapshot_fails_instead_of_interleaving(s3pond: S3Pond) -> None:
    """Delta's conditional PUT is the last line of defence: two stores open at the same
    snapshot cannot both commit the next transaction."""
    s3pond.out("init")
    stale = open_pond(s3pond.url)
    try:
        s3pond.out("mkdir", "/winner")
        info = TxnInfo(txn=stale.last_txn() + 1, timestamp_ns=time.time_ns(),
                       command="stale writer", user="test")
        with pytest.raises(FsError, match="commit of transaction 2 failed"):
            stale.commit([], info)
    finally:
        stale.close()
    log = s3pond.out("log").decode()
    assert "pond mkdir /winner" in log and "stale writer" not in log


# ---------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_and_writes_nothing(s3pond: S3Pond) -> None:
    s3pond.out("init")
    before = s3pond.keys()
    assert s3pond.fails("init") == f"pond init: {s3pond.url}: a pond already exists"
    bucket = s3pond.location.bucket
    assert s3pond.fails("ls", env={"POND": f"s3://{bucket}/elsewhere"}) == \
        f"pond ls: s3://{bucket}/elsewhere: no such pond"
    s3pond.server.client().put_object(Bucket=bucket, Key="notes/readme.txt", Body=b"hi")
    assert "not a pond" in s3pond.fails("ls", env={"POND": f"s3://{bucket}/notes"})
    assert "not empty and not a pond" in s3pond.fails("init",
                                                      env={"POND": f"s3://{bucket}/notes"})
    assert s3pond.fails("ls", env={"POND": "s3://no-such-bucket-here/p"}) == \
        "pond ls: bucket 'no-such-bucket-here' does not exist"
    assert "bucket 'no-such-bucket-here' does not exist" in s3pond.fails(
        "init", env={"POND": "s3://no-such-bucket-here/p"})
    denied = s3pond.fails("mkdir", "/x", env={"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert f"access to bucket '{bucket}' denied" in denied and "credentials" in denied
    assert "no AWS credentials" in s3pond.fails(
        "ls", env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert "not an S3 URL" in s3pond.fails("ls", env={"POND": "s3:/bucket"})
    assert "unsupported pond URL" in s3pond.fails("ls", env={"POND": "gs://bucket/p"})
    assert "is a pond in S3" in s3pond.fails("backup", "push", f"s3://{bucket}/backup")
    assert s3pond.keys() == before  # nothing was written by any of them


# ---------------------------------------------------------------------- mounts


@pytest.mark.fuse
def test_read_only_mount_of_a_pond_in_s3(s3pond: S3Pond, tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(big)
    s3pond.out("init")
    s3pond.out("mkdir", "/data")
    s3pond.out("cp", str(tmp_path / "big.bin"), "/data/big.bin")
    (tmp_path / "big.bin").write_bytes(b"changed\n")
    s3pond.out("cp", str(tmp_path / "big.bin"), "/data/big.bin")

    now = Mount(s3pond.url, tmp_path / "now", "ro")
    then = Mount(s3pond.url, tmp_path / "then", "ro,at=3")
    try:
        now.start()
        then.start()
        assert sorted(os.listdir(now.path("data"))) == ["big.bin"]
        assert now.path("data", "big.bin").read_bytes() == b"changed\n"
        assert then.path("data", "big.bin").read_bytes() == big  # byte-identical, via S3
        with pytest.raises(OSError):
            now.path("data", "new.txt").write_text("no")
        # The read-only mount follows the pond: another writer's transaction shows.
        s3pond.out("cp", str(tmp_path / "big.bin"), "/data/later.bin")
        deadline = time.monotonic() + 20
        while not now.path("data", "later.bin").exists():
            assert time.monotonic() < deadline, "the mount did not follow the pond"
            time.sleep(0.2)
        assert now.path("data", "later.bin").read_bytes() == b"changed\n"
        assert not then.path("data", "later.bin").exists()  # at= stays at its transaction
    finally:
        now.stop()
        then.stop()
    assert now.status == 0 and then.status == 0
    assert now.problems() == [] and then.problems() == []


@pytest.mark.fuse
def test_read_write_mount_of_a_pond_in_s3(s3pond: S3Pond, tmp_path: Path) -> None:
    s3pond.out("init")
    data = os.urandom(BIG)
    mount = Mount(s3pond.url, tmp_path / "mnt", "commit_interval=0.2")
    try:
        mount.start()
        mount.path("notes").mkdir()
        mount.path("notes", "a.bin").write_bytes(data)
        s3pond.out("mkdir", "/other")  # the mount holds the lease for its commits only
        # umount returns before the daemon's last commit: a writer right after it waits
        # for the finishing holder instead of failing.
        subprocess.run(["fusermount3", "-u", str(mount.mountpoint)], check=True)
        s3pond.out("mkdir", "/after")
    finally:
        mount.stop()
    assert mount.status == 0 and mount.problems() == []
    assert s3pond.out("ls").split() == [b"after", b"notes", b"other"]
    assert s3pond.out("cat", "/notes/a.bin") == data
    assert "lock" not in s3pond.keys()
    assert "ok" in s3pond.out("check").decode()
