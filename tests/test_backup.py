"""Backup and restore against a real S3 server (moto's, on loopback): push, incremental push,
restore at each restore point, an interrupted push, corruption, credentials and buckets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from pondfs import backup, pond
from pondfs.backup_manifests import load_manifest
from pondfs.s3 import Bucket, S3Error, S3Location, Stored
from pondfs.tinyfs import DIRECTORY, SERIES, SPECIAL_KINDS, SYMLINK

sys.path.insert(0, str(Path(__file__).parent))
from s3_server import S3Server  # noqa: E402
from shapes import make_linked_source, shape  # noqa: E402

OBJECT_SIZE = 70 * 1024  # above the inline limit: stored as a content object


# ---------------------------------------------------------------------- helpers


def pond_cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "pondfs.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def write(pond_dir: Path, files: dict[str, bytes], command: str = "test write") -> int:
    """Write ``files`` (path -> bytes; '/d/' paths make directories) as one transaction."""
    with pond.open_fs(str(pond_dir), write=True, holder="test") as fs:
        for path, data in files.items():
            dir_id = fs.resolve("/")
            parts = path.strip("/").split("/")
            for part in parts[:-1]:
                dir_id = fs.lookup(dir_id, part) or fs.mkdir(dir_id, part)
            node = fs.lookup(dir_id, parts[-1]) or fs.create(dir_id, parts[-1])
            fs.write_content(node, [data])
        txn = fs.commit(command)
    assert txn is not None
    return txn


def make_pond(path: Path, objects: int = 3, small: int = 5) -> Path:
    pond.init(str(path))
    files = {f"/big/b{i}.bin": os.urandom(OBJECT_SIZE) for i in range(objects)}
    files.update({f"/small/s{i}.txt": f"reading {i}\n".encode() for i in range(small)})
    write(path, files)
    with pond.open_fs(str(path), write=True, holder="test") as fs:
        series = fs.create(fs.resolve("/"), "temp.series", SERIES)
        fs.append_series(series, pa.table({"timestamp": pa.array([1, 2, 3], pa.int64()),
                                           "t": [10.5, 11.0, 11.5]}))
        fs.symlink(fs.resolve("/"), "latest", "/big/b0.bin")
        fs.commit("test series")
    return path


def contents(pond_dir: Path, at: int | None = None) -> tuple[dict[str, bytes], list]:
    """Every path's bytes (as ``pond cat`` reads them; a special file's kind and device)
    and every oplog row, as of ``at``."""
    with pond.open_fs(str(pond_dir), at=at) as fs:
        files = {}
        for path, node_id in fs.walk("/"):
            kind = fs.kind(node_id)
            if kind == DIRECTORY:
                files[path] = b"<dir>"
            elif kind == SYMLINK:
                files[path] = b"-> " + fs.readlink(node_id).encode()
            elif kind in SPECIAL_KINDS:
                files[path] = f"<{kind} {fs.stat(node_id).rdev}>".encode()
            else:
                with fs.open_read(node_id) as f:
                    files[path] = f.read()
        rows = sorted(fs.store.scan(fs.as_of), key=lambda v: (v.node_id, v.version))
    return files, rows


def assert_same_pond(original: Path, restored: Path, env: dict[str, str],
                     at: int | None = None) -> None:
    assert contents(restored) == contents(original, at)
    check = pond_cli("--pond", str(restored), "check", env=env)
    assert "ok" in check.stdout


def keys(s3: S3Server, url: str) -> dict[str, str]:
    """ETag of every key under ``url``."""
    location = S3Location.parse(url)
    found = {}
    for page in s3.client().get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=location.prefix + "/"):
        for item in page.get("Contents", ()):
            found[item["Key"]] = item["ETag"]
    return found


def server_requests(s3: S3Server, since: int = 0) -> list[str]:
    """The request lines the server logged after byte ``since`` of its log."""
    with open(s3.log_path, "rb") as f:
        f.seek(since)
        return [line for line in f.read().decode(errors="replace").splitlines()
                if '"PUT ' in line or '"GET ' in line or '"POST ' in line]


# ---------------------------------------------------------------------- tests


def test_url_parsing():
    assert S3Location.parse("s3://bkt/a/b/") == S3Location("bkt", "a/b")
    assert S3Location.parse("s3://bkt").key("pond.json") == "pond.json"
    assert S3Location("bkt", "p").key("x/y") == "p/x/y"
    assert str(S3Location("bkt", "p")) == "s3://bkt/p"
    for bad in ("/tmp/x", "s3:///x", "http://bkt/x", "s3://bkt/x?y=1"):
        with pytest.raises(S3Error, match="S3"):
            S3Location.parse(bad)


def test_which_points_are_kept():
    # Restore points 1..5, their manifests written 0, 1, 2, 24 and 25 hours after the first.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stored = {f"manifests/{txn:012d}.json": Stored(f"manifests/{txn:012d}.json", 1, "",
                                                   start + timedelta(hours=hours))
              for txn, hours in zip(range(1, 6), (0, 1, 2, 24, 25), strict=True)}
    txns = [1, 2, 3, 4, 5]
    assert backup._kept_points(txns, stored, 2, None) == [4, 5]
    assert backup._kept_points(txns, stored, 9, None) == txns
    assert backup._kept_points(txns, stored, None, 3600) == [4, 5]
    assert backup._kept_points(txns, stored, None, 0) == [5]
    assert backup._kept_points(txns, stored, None, 23 * 3600) == [3, 4, 5]
    assert backup._kept_points(txns, stored, None, 24 * 3600) == [2, 3, 4, 5]
    assert backup._kept_points(txns, stored, 3, 3600) == [3, 4, 5]  # either keeps: kept


def test_incremental_push_and_restore_each_point(aws, url, tmp_path, monkeypatch):
    original = make_pond(tmp_path / "pond")
    first = backup.push(original, url, progress=False)
    assert first.uploaded_files == first.files > 0
    txn1 = first.txn
    before = keys(aws, url)

    # Add data: a new object, a large one (multipart both ways), a changed small file.
    monkeypatch.setattr(backup, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    write(original, {"/big/new.bin": os.urandom(OBJECT_SIZE),
                     "/big/large.bin": os.urandom(13 * 1024 * 1024),
                     "/small/s0.txt": b"changed\n"})
    log_start = os.path.getsize(aws.log_path)
    second = backup.push(original, url, progress=False)
    after = keys(aws, url)
    puts = [r for r in server_requests(aws, log_start) if '"PUT ' in r]

    # Only the new files went up; nothing already there was touched.
    new_keys = set(after) - set(before)
    assert {k: after[k] for k in before} == before
    assert second.uploaded_files == len(new_keys) - 2  # and the manifest and its summary
    assert second.uploaded_files < second.files
    assert not any("/big/b0" in r for r in puts)
    # Data first, log after, manifest last (its summary after it).
    paths = [r.split()[6] for r in puts if "uploadId" not in r or "partNumber" in r]
    log_at = [i for i, p in enumerate(paths) if "/_delta_log/" in p]
    data_at = [i for i, p in enumerate(paths) if "/objects/" in p or ".parquet" in p
               and "/_delta_log/" not in p]
    assert log_at and data_at and max(data_at) < min(log_at)
    assert "/manifests/" in paths[-2] and "/summaries/" in paths[-1]

    # Nothing new: nothing goes up.
    assert backup.push(original, url, progress=False).up_to_date

    listed = backup.list_backups(url)
    assert [p.txn for p in listed] == [txn1, second.txn]
    assert (listed[1].files, listed[1].bytes) == (second.files, second.bytes)
    env = aws.env()
    log_start = os.path.getsize(aws.log_path)
    shown = pond_cli("backup", "list", url, env=env).stdout
    assert str(second.txn) in shown and "MiB" in shown
    # list reads the restore points' summaries, not their (large) manifests.
    gets = [r for r in server_requests(aws, log_start) if '"GET ' in r]
    assert sum(".json" in r and "/summaries/" in r for r in gets) == 2
    assert not any(".json" in r and "/manifests/" in r for r in gets)
    lists = [r.split("prefix=")[1].split("&")[0] for r in gets if "list-type=2" in r]
    prefix = S3Location.parse(url).prefix
    assert sorted(lists) == [f"{prefix}/manifests/", f"{prefix}/summaries/"]  # not the data
    assert pond_cli("backup", "verify", url, env=env).stdout.strip().endswith(": ok")

    latest = tmp_path / "restored-latest"
    done = pond_cli("restore", url, str(latest), env=env)
    assert f"restored transaction {second.txn}" in done.stdout
    assert_same_pond(original, latest, env)
    old = tmp_path / "restored-old"
    pond_cli("restore", "--at", str(txn1), url, str(old), env=env)
    assert_same_pond(original, old, env, at=txn1)
    # Time travel works in the restored pond too.
    assert contents(latest, txn1) == contents(original, txn1)
    def cat(pond_dir: Path) -> bytes:
        return subprocess.run(
            [sys.executable, "-m", "pondfs.cli", "--pond", str(pond_dir), "cat",
             "/big/large.bin", "/temp.series"],
            env=env, capture_output=True, check=True).stdout

    assert cat(latest) == cat(original)


def test_restore_keeps_hard_links_and_special_files(aws, url, tmp_path):
    env = aws.env()
    original = tmp_path / "pond"
    pond.init(str(original))
    host = make_linked_source(tmp_path / "host")
    pond_cli("--pond", str(original), "cp", "-r", str(host), "/tree", env=env)
    first = backup.push(original, url, progress=False).txn
    pond_cli("--pond", str(original), "rm", "/tree/a/one", env=env)
    pond_cli("--pond", str(original), "ln", "/tree/b/big", "/tree/a/big-too", env=env)
    backup.push(original, url, progress=False)

    latest, old = tmp_path / "latest", tmp_path / "old"
    pond_cli("restore", url, str(latest), env=env)
    pond_cli("restore", "--at", str(first), url, str(old), env=env)
    assert_same_pond(original, latest, env)  # every row: names, link counts, devices
    assert_same_pond(original, old, env, at=first)
    reference = tmp_path / "reference"
    subprocess.run(["cp", "-a", str(host), str(reference)], check=True)
    pond_cli("--pond", str(old), "cp", "-r", "pond:/tree", str(tmp_path / "out"), env=env)
    assert shape(tmp_path / "out") == shape(reference)
    with pond.open_fs(str(latest)) as fs:
        big = fs.resolve("/tree/big")
        assert fs.resolve("/tree/a/big-too") == fs.resolve("/tree/b/big") == big
        assert fs.stat(big).nlink == 3 and fs.stat(fs.resolve("/tree/a/one-again")).nlink == 2


def test_interrupted_push_resumes(aws, url, tmp_path, expect_warnings):
    original = make_pond(tmp_path / "pond", objects=150)
    env = aws.env(POND=str(original), POND_LOCK_LEASE="2")
    push = subprocess.Popen([sys.executable, "-m", "pondfs.cli", "backup", "push", "-j", "1",
                             url], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len([k for k in keys(aws, url) if "/objects/" in k]) < 20:
        assert push.poll() is None, "the push finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    push.send_signal(signal.SIGKILL)
    push.wait()
    partial = keys(aws, url)
    assert not any("/manifests/" in k for k in partial)
    assert not any("/_delta_log/" in k for k in partial)  # the log goes up last
    with pytest.raises(backup.BackupError, match="no restore point"):
        backup.restore(url, tmp_path / "too-early", progress=False)
    assert not (tmp_path / "too-early").exists()

    # The killed push's lock holds until its lease runs out, then the next push takes over.
    with pytest.raises(backup.BackupError, match=f"in use by another backup command: pid "
                                                 f"{push.pid} .*: pond backup push"):
        backup.push(original, url, progress=False)
    time.sleep(2.5)
    with expect_warnings(f"took over the writer lock of {url}, whose lease ran out .*: pid "
                         f"{push.pid} .*: pond backup push"):
        resumed = backup.push(original, url, progress=False)
    assert 0 < resumed.uploaded_files < resumed.files
    assert backup.verify(url, progress=False).ok
    restored = tmp_path / "restored"
    backup.restore(url, restored, progress=False)
    assert_same_pond(original, restored, aws.env())


def uploads(s3: S3Server, url: str) -> dict[str, int]:
    """The multipart uploads in progress under ``url``: key -> parts stored so far."""
    location = S3Location.parse(url)
    client = s3.client()
    found = client.list_multipart_uploads(Bucket=location.bucket, Prefix=location.prefix + "/")
    return {upload["Key"]: len(client.list_parts(Bucket=location.bucket, Key=upload["Key"],
                                                 UploadId=upload["UploadId"]).get("Parts", ()))
            for upload in found.get("Uploads", ())}


def test_push_aborts_interrupted_multipart_uploads(aws, url, tmp_path, expect_warnings):
    original = make_pond(tmp_path / "pond", objects=1, small=1)
    write(original, {"/big/large.bin": os.urandom(3 * backup.MULTIPART_THRESHOLD)})
    env = aws.env(POND=str(original), POND_LOCK_LEASE="1")
    push = subprocess.Popen([sys.executable, "-m", "pondfs.cli", "backup", "push", "-j", "1",
                             url], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(uploads(aws, url).values()):  # killed once a part of a large object is up
        assert push.poll() is None, "the push finished before its multipart upload was seen"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    push.send_signal(signal.SIGKILL)
    push.wait()
    left = list(uploads(aws, url))
    assert len(left) == 1 and "/objects/" in left[0]
    # The killed push's lease (1 s) runs out. Ages come from the store's Last-Modified and
    # Date headers, whole seconds each: a measured age may be up to 1 s short.
    time.sleep(3)

    # Younger than the safety age (1 hour by default): perhaps another push's, left alone.
    with expect_warnings(f"took over the writer lock of {url}, whose lease ran out .*: pid "
                         f"{push.pid} .*: pond backup push"):
        done = backup.push(original, url, progress=False)
    assert done.aborted_uploads == 0 and not done.up_to_date
    assert list(uploads(aws, url)) == left
    # Older than the age asked for: aborted, counted in the summary; the backup is whole.
    again = pond_cli("backup", "push", "--abort-uploads-after", "0", url, env=env)
    assert again.stdout.startswith("nothing to push")
    assert again.stdout.strip().endswith("aborted 1 interrupted multipart upload(s)")
    assert uploads(aws, url) == {}
    assert backup.verify(url, progress=False).ok


def test_corrupt_and_missing_objects_are_named(aws, url, tmp_path):
    original = make_pond(tmp_path / "pond")
    backup.push(original, url, progress=False)
    location = S3Location.parse(url)
    client = aws.client()
    objects = sorted(k for k in keys(aws, url) if "/objects/" in k)
    corrupt, missing = objects[0], objects[1]
    client.put_object(Bucket=location.bucket, Key=corrupt, Body=os.urandom(OBJECT_SIZE))
    env = aws.env()

    checked = pond_cli("backup", "verify", url, env=env, check=False)
    assert checked.returncode == 1
    assert f"corrupt: {location.relative(corrupt)}" in checked.stdout
    assert "1 problem(s)" in checked.stdout

    target = tmp_path / "restored"
    failed = pond_cli("restore", url, str(target), env=env, check=False)
    assert failed.returncode == 1
    assert location.relative(corrupt) in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert not target.exists()
    assert sorted(os.listdir(tmp_path)) == ["pond"]  # no half-restored directory left

    # Sizes only: a same-size corruption passes; that is what the full verify is for.
    assert pond_cli("backup", "verify", "--quick", url, env=env).returncode == 0

    client.delete_object(Bucket=location.bucket, Key=missing)
    quick = pond_cli("backup", "verify", "--quick", url, env=env, check=False)
    assert quick.returncode == 1 and f"missing: {location.relative(missing)}" in quick.stdout
    checked = pond_cli("backup", "verify", url, env=env, check=False)
    assert checked.returncode == 1
    assert f"missing: {location.relative(missing)}" in checked.stdout
    failed = pond_cli("restore", url, str(target), env=env, check=False)
    assert failed.returncode == 1 and location.relative(missing) in failed.stderr
    assert not target.exists()

    # A damaged summary: list falls back to the manifest, verify names it.
    summary = location.key(f"summaries/{backup.list_backups(url)[0].txn:012d}.json")
    client.put_object(Bucket=location.bucket, Key=summary, Body=b"junk")
    listed = pond_cli("backup", "list", url, env=env)
    assert listed.stdout.count("\n") == 2 and "reading its manifest instead" in listed.stderr
    checked = pond_cli("backup", "verify", "--quick", url, env=env, check=False)
    assert checked.returncode == 1
    assert f"problem: {location.relative(summary)} is unreadable" in checked.stdout
    client.delete_object(Bucket=location.bucket, Key=summary)

    # Repair: drop the corrupt copy; the next push puts back what the bucket lacks.
    client.delete_object(Bucket=location.bucket, Key=corrupt)
    assert backup.push(original, url, progress=False).uploaded_files == 2
    assert backup.verify(url, progress=False).ok


def test_wrong_credentials_one_line(aws, url, tmp_path):
    original = make_pond(tmp_path / "pond", objects=1, small=1)
    for bad in ({"AWS_SECRET_ACCESS_KEY": "wrong"}, {"AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY"}):
        env = aws.env(POND=str(original), **bad)
        for args in (["backup", "push", url], ["backup", "list", url],
                     ["restore", url, str(tmp_path / "r")]):
            done = pond_cli(*args, env=env, check=False)
            assert done.returncode == 1
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert "denied" in lines[0] and "credentials" in lines[0]
    assert not (tmp_path / "r").exists()


def test_missing_bucket_one_line(aws, tmp_path):
    original = make_pond(tmp_path / "pond", objects=1, small=1)
    env = aws.env(POND=str(original))
    done = pond_cli("backup", "push", "s3://no-such-bucket/x", env=env, check=False)
    assert (done.returncode, done.stderr) == (
        1, "pond backup push: bucket 'no-such-bucket' does not exist\n")
    done = pond_cli("restore", "s3://no-such-bucket/x", str(tmp_path / "r"), env=env,
                    check=False)
    assert (done.returncode, done.stderr) == (
        1, "pond restore: bucket 'no-such-bucket' does not exist\n")
    done = pond_cli("backup", "push", "/not/s3", env=env, check=False)
    assert done.returncode == 1 and "not an S3 URL" in done.stderr


def test_unreachable_endpoint_one_line(s3, tmp_path):
    env = s3.env(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    done = pond_cli("backup", "list", "s3://bkt-x/p", env=env, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("pond backup list: ") and done.stderr.count("\n") == 1
    assert "Could not connect" in done.stderr


def test_restore_refuses_existing_pond_and_unknown_point(aws, url, tmp_path):
    original = make_pond(tmp_path / "pond", objects=1, small=1)
    txn = backup.push(original, url, progress=False).txn
    with pytest.raises(backup.BackupError, match="already exists"):
        backup.restore(url, original, progress=False)
    with pytest.raises(backup.BackupError, match=f"restore points: {txn}"):
        backup.restore(url, tmp_path / "r", at=txn - 1, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    backup.restore(url, empty, progress=False)  # an empty directory is fine
    assert contents(empty) == contents(original)


def test_push_refuses_another_pond_and_a_diverged_copy(aws, url, tmp_path):
    original = make_pond(tmp_path / "pond", objects=1, small=1)
    backup.push(original, url, progress=False)
    other = make_pond(tmp_path / "other", objects=1, small=1)
    with pytest.raises(backup.BackupError, match="another pond"):
        backup.push(other, url, progress=False)

    # A copy restored from the backup and changed, while the original moved on.
    copy = tmp_path / "copy"
    backup.restore(url, copy, progress=False)
    write(original, {"/small/s0.txt": b"original moved on\n"})
    backup.push(original, url, progress=False)
    write(copy, {"/small/s0.txt": b"the copy changed\n"})
    with pytest.raises(backup.BackupError, match="history differs"):
        backup.push(copy, url, progress=False)


def manifest_files(url: str, txn: int) -> set[str]:
    """The keys of restore point ``txn``: its manifest, its summary and every file it
    names."""
    location = S3Location.parse(url)
    manifest = load_manifest(Bucket(location), txn)
    return ({location.key(manifest.name), location.key(f"summaries/{txn:012d}.json")}
            | {location.key(f.path) for f in manifest.files})


def test_forget_keeps_what_kept_points_need_and_prunes_the_rest(aws, url, tmp_path):
    original = make_pond(tmp_path / "pond")
    env = aws.env(POND=str(original))
    location = S3Location.parse(url)
    txn1 = backup.push(original, url, progress=False).txn
    at_txn1 = contents(original)
    # Point 2: a file overwritten, one deleted, one added; compacted, so the Delta data
    # files point 1 named are no longer the pond's.
    write(original, {"/small/s0.txt": b"overwritten\n", "/big/new.bin": os.urandom(OBJECT_SIZE)})
    pond_cli("rm", "/big/b1.bin", env=env)
    pond_cli("maintain", "--retention-hours", "0", env=env)
    txn2 = backup.push(original, url, progress=False).txn
    at_txn2 = contents(original)
    # Point 3: more changes, compacted again.
    write(original, {"/small/s1.txt": b"overwritten too\n"})
    pond_cli("rm", "/small/s2.txt", env=env)
    pond_cli("maintain", "--retention-hours", "0", env=env)
    txn3 = backup.push(original, url, progress=False).txn
    assert txn1 < txn2 < txn3

    # A dry run says what would go and deletes nothing; --keep-within 1h keeps all three.
    before = keys(aws, url)
    dry = pond_cli("backup", "forget", "--keep-last", "1", "--dry-run", url, env=env).stdout
    would = [line.split(": ", 1)[1] for line in dry.splitlines()
             if line.startswith("would delete: ")]
    assert keys(aws, url) == before
    assert f"{location.prefix}/manifests/{txn1:012d}.json" in {location.key(w) for w in would}
    assert not {location.key(w) for w in would} & manifest_files(url, txn3)
    within = pond_cli("backup", "forget", "--keep-within", "1h", "--dry-run", url, env=env)
    assert "would forget 0 restore point(s)" in within.stdout

    # Forget point 1: its manifest and the data files only it named go.
    needed = manifest_files(url, txn2) | manifest_files(url, txn3)
    done = pond_cli("backup", "forget", "--keep-last", "2", url, env=env).stdout
    after = keys(aws, url)
    deleted = set(before) - set(after)
    assert f"forgot 1 restore point(s) at {url} ({txn1})" in done
    assert f"deleted {len(deleted)} file(s)" in done
    assert len(deleted) > 1 and any("/oplog/" in k and k.endswith(".parquet") for k in deleted)
    assert set(after) == needed | {location.key("pond.json")}
    restored2 = tmp_path / "restored-2"
    pond_cli("restore", "--at", str(txn2), url, str(restored2), env=env)
    assert contents(restored2) == at_txn2
    assert "ok" in pond_cli("--pond", str(restored2), "check", env=env).stdout

    # Forget point 2 as well: only what point 3 needs is left, and it restores whole.
    done = pond_cli("backup", "forget", "--keep-last", "1", url, env=env).stdout
    final = keys(aws, url)
    assert f"deleted {len(set(after) - set(final))} file(s)" in done
    assert set(final) == manifest_files(url, txn3) | {location.key("pond.json")}
    assert len(set(after) - set(final)) == len(would) - len(deleted)
    verified = pond_cli("backup", "verify", url, env=env).stdout.strip()
    assert ": 1 restore point(s), " in verified and verified.endswith(": ok")
    assert pond_cli("backup", "verify", "--at", str(txn3), url, env=env).stdout.strip() \
        .endswith(": ok")
    restored3 = tmp_path / "restored-3"
    pond_cli("restore", url, str(restored3), env=env)
    assert_same_pond(original, restored3, env)
    # Forgetting restore points drops no history: the forgotten ones read with --at.
    assert contents(restored3, txn1) == at_txn1
    assert contents(restored3, txn2) == at_txn2

    # A forgotten point is a one-line error, for restore and verify alike.
    for args in (["restore", "--at", str(txn1), url, str(tmp_path / "r")],
                 ["backup", "verify", "--at", str(txn2), url]):
        failed = pond_cli(*args, env=env, check=False)
        assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
        assert "is not a restore point" in failed.stderr and f"restore points: {txn3}" in \
            failed.stderr
    assert not (tmp_path / "r").exists()


def test_forget_refuses_bad_input_in_one_line(aws, url, tmp_path):
    original = make_pond(tmp_path / "pond", objects=1, small=1)
    backup.push(original, url, progress=False)
    before = keys(aws, url)
    env = aws.env()
    log_start = os.path.getsize(aws.log_path)
    for args, message in [
        (["--keep-last", "0", url], "--keep-last must be at least 1"),
        ([url], "say which restore points to keep"),
        (["--keep-within", "ten days", url], "not a duration: 'ten days'"),
        (["--keep-last", "1", "s3://no-such-bucket/x"], "bucket 'no-such-bucket' does not exist"),
        (["--keep-last", "1", "/not/s3"], "not an S3 URL"),
        (["--keep-last", "1", url + "-elsewhere"], "holds no pond backup"),
    ]:
        failed = pond_cli("backup", "forget", *args, env=env, check=False)
        assert failed.returncode == 1 and failed.stdout == ""
        assert failed.stderr.startswith("pond backup forget: ") and message in failed.stderr
        assert failed.stderr.count("\n") == 1
    assert not [r for r in server_requests(aws, log_start) if '"GET ' not in r]  # no writes
    wrong = pond_cli("backup", "forget", "--keep-last", "1", url,
                     env=aws.env(AWS_SECRET_ACCESS_KEY="wrong"), check=False)
    assert wrong.returncode == 1 and "denied" in wrong.stderr and wrong.stderr.count("\n") == 1
    # While a push holds the backup's lock, forget deletes nothing and names the push.
    with backup._backup_lock(Bucket(S3Location.parse(url)), "pond backup push"):
        busy = pond_cli("backup", "forget", "--keep-last", "1", url, env=env, check=False)
    assert busy.returncode == 1 and busy.stderr.count("\n") == 1
    assert f"in use by another backup command: pid {os.getpid()} " in busy.stderr
    assert ": pond backup push (since " in busy.stderr
    misplaced = pond_cli("backup", "push", "--keep-last", "1", url, env=env, check=False)
    assert misplaced.stderr == ("pond backup push: --keep-last is an option of pond backup "
                                "forget\n")
    assert keys(aws, url) == before


@pytest.mark.parametrize("kind", [backup.Manifest, backup.RestorePoint])
@pytest.mark.parametrize("data", [b"[1, 2]", b"7", b"{not json", b'{"format": "other"}'])
def test_unreadable_manifests_and_summaries_are_named(kind, data):
    with pytest.raises(backup.BackupError, match="manifests/x.json is unreadable"):
        kind.from_json(data, "manifests/x.json")
