"""The Delta Lake persistence (pondfs.oplog) on real tables in a temporary directory."""

from __future__ import annotations

import errno
import functools
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from blake3 import blake3
from deltalake import DeltaTable

from pondfs.oplog import OplogPersistence, create_pond, maintain, open_pond
from pondfs.oplog import schema as schema_module
from pondfs.oplog import table as table_module
from pondfs.oplog.lock import WriterLock, lock_holder
from pondfs.oplog.objects import ObjectStore
from pondfs.tinyfs import (
    DIRECTORY,
    FILE,
    FS,
    ROOT_ID,
    SERIES,
    Checker,
    CorruptContent,
    DirOp,
    FsError,
    NodeVersion,
    PondLocked,
    TxnInfo,
    new_node_id,
    read_all,
)

REPO = Path(__file__).resolve().parents[1]
FAR_FUTURE = 10**9


def txn_info(txn: int, command: str = "test", rows: int = 0) -> TxnInfo:
    return TxnInfo(txn=txn, timestamp_ns=time.time_ns(), command=command, user="tester", rows=rows)


def file_version(part_id: str, txn: int, node_id: str | None = None, version: int = 1,
                 content: bytes = b"data") -> NodeVersion:
    return NodeVersion(
        part_id=part_id, node_id=node_id or new_node_id(), version=version, txn=txn,
        kind=FILE, format="data", size=len(content),
        blake3=blake3(content).hexdigest(), content=content,
    )


@pytest.fixture
def pond(tmp_path: Path) -> OplogPersistence:
    store = create_pond(tmp_path / "pond")
    yield store
    store.close()


def run_python(code: str, **kwargs) -> subprocess.Popen:
    """Start a fresh interpreter (never fork after deltalake is loaded) running ``code``."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


# -- creating and opening ------------------------------------------------------------------

def test_create_makes_the_layout_and_refuses_an_existing_pond(tmp_path: Path) -> None:
    store = create_pond(tmp_path / "p")
    assert store.last_txn() == 0
    for sub in ("oplog/_delta_log", "objects", "cache"):
        assert (tmp_path / "p" / sub).is_dir()
    with pytest.raises(FsError) as info:
        create_pond(tmp_path / "p")
    assert info.value.errno == errno.EEXIST
    assert str(info.value) == f"{tmp_path / 'p'}: a pond already exists"


def test_open_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FsError) as info:
        open_pond(tmp_path / "missing")
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == f"{tmp_path / 'missing'}: no such pond"

    (tmp_path / "plain").mkdir()
    with pytest.raises(FsError) as info:
        open_pond(tmp_path / "plain")
    assert info.value.errno == errno.EINVAL
    assert "not a pond (no oplog/_delta_log)" in str(info.value)

    (tmp_path / "file").write_text("x")
    with pytest.raises(FsError) as info:
        open_pond(tmp_path / "file")
    assert info.value.errno == errno.ENOTDIR

    older = tmp_path / "older"  # content named by SHA-256, before BLAKE3
    DeltaTable.create(str(older / "oplog"), pa.schema([("part_id", pa.string()),
                                                       ("sha256", pa.string())]))
    with pytest.raises(FsError) as info:
        open_pond(older)
    assert info.value.errno == errno.EINVAL
    assert str(info.value) == (f"{older}: a pond of an older pondfs (content named by SHA-256, "
                               "not blake3): recreate it with this version")


# -- rows ----------------------------------------------------------------------------------

def test_every_field_round_trips(pond: OplogPersistence, tmp_path: Path) -> None:
    child = new_node_id()
    series = new_node_id()
    root = NodeVersion(
        part_id=ROOT_ID, node_id=ROOT_ID, version=1, txn=1, kind=DIRECTORY, mode=0o40755,
        uid=1000, gid=2**32 - 2, atime_ns=1, mtime_ns=2, ctime_ns=3, snapshot=True,
        entries=(DirOp("data", child, FILE), DirOp("gone", series, SERIES, op="remove"),
                 DirOp("link", child, FILE, part_id=new_node_id())),
        xattrs={"user.bin": b"\x00\xff\x80", "user.empty": b""}, timestamp_ns=123,
    )
    data = file_version(ROOT_ID, 1, node_id=child, content=b"\x00hello\xff").evolve(
        nlink=2, rdev=os.makedev(259, 3))
    ts = NodeVersion(
        part_id=ROOT_ID, node_id=series, version=3, txn=1, kind=FILE, format=SERIES,
        size=10, blake3="a" * 64, inline=False, min_time=-5, max_time=2**62,
        time_column="timestamp", deleted=True,
    )
    pond.commit([root, data, ts], txn_info(1, rows=3))

    for store in (pond, open_pond(tmp_path / "pond")):
        listed = store.partition(ROOT_ID, 1)
        expected = sorted([root, data.evolve(content=None), ts], key=lambda v: (v.node_id,
                                                                                v.version))
        assert listed == expected
        assert store.node_versions(series, 1) == [ts]
        assert store.read_inline(listed[[v.node_id for v in listed].index(child)]) == \
            b"\x00hello\xff"
        assert list(store.scan(1)) and sorted(store.scan(1), key=lambda v: v.node_id) == \
            sorted(expected, key=lambda v: v.node_id)


def test_a_pond_from_before_links_is_read_and_gains_their_columns_at_its_first_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_entry = pa.struct([f for f in schema_module.ENTRY_TYPE if f.name != "part_id"])
    old_schema = pa.schema([
        pa.field("entries", pa.list_(old_entry), nullable=False) if f.name == "entries" else f
        for f in schema_module.SCHEMA if f.name not in ("nlink", "rdev")])

    def old_to_table(versions):  # the layout pondfs wrote before hard links
        table = schema_module.to_table(versions)
        entries = [[{k: e[k] for k in old_entry.names} for e in ops]
                   for ops in table.column("entries").to_pylist()]
        columns = {name: table.column(name) for name in old_schema.names if name != "entries"}
        return pa.table({**columns, "entries": entries}, schema=old_schema)

    monkeypatch.setattr(table_module, "SCHEMA", old_schema)
    monkeypatch.setattr(table_module, "to_table", old_to_table)
    store = create_pond(tmp_path / "older")
    fs = FS(store)
    fs.init_root()
    sub = fs.mkdir(ROOT_ID, "sub")
    node = fs.create(sub, "f")
    fs.write_content(node, [b"old bytes"])
    fs.commit("old pondfs")
    store.close()
    monkeypatch.undo()

    store = open_pond(tmp_path / "older")
    assert schema_module.missing_columns(pa.schema(store._table.schema().to_arrow())) == [
        "nlink", "rdev", "entries.part_id"]
    fs = FS(store)
    s = fs.stat(node)
    assert (s.nlink, s.rdev) == (1, 0) and fs.entries(sub)["f"].part_id == ""
    assert Checker(fs).run().problems == []
    fs.link(node, ROOT_ID, "g")
    fifo = fs.mknod(sub, "p", stat.S_IFIFO | 0o644)
    fs.commit("links")
    store.close()

    store = open_pond(tmp_path / "older")
    assert schema_module.missing_columns(pa.schema(store._table.schema().to_arrow())) == []
    store.compact()
    fs = FS(store)
    assert fs.stat(node).nlink == 2 and fs.entries(ROOT_ID)["g"].part_id == sub
    assert fs.kind(fifo) == "fifo" and read_all(fs, fs.resolve("/g")) == b"old bytes"
    assert FS(store, at=1).stat(node).nlink == 1
    assert Checker(fs).run().problems == []


def test_as_of_sees_only_earlier_transactions(pond: OplogPersistence) -> None:
    node = new_node_id()
    other_dir = new_node_id()
    for txn in (1, 2, 3):
        pond.commit([file_version(ROOT_ID, txn, node_id=node, version=txn,
                                  content=b"v%d" % txn)], txn_info(txn))
    # A file moved to another directory has rows in both partitions.
    pond.commit([file_version(other_dir, 4, node_id=node, version=4, content=b"v4")],
                txn_info(4))

    assert [v.version for v in pond.partition(ROOT_ID, 2)] == [1, 2]
    assert [v.version for v in pond.partition(ROOT_ID, FAR_FUTURE)] == [1, 2, 3]
    assert pond.partition(ROOT_ID, 0) == []
    assert [v.version for v in pond.node_versions(node, 3)] == [1, 2, 3]
    moved = pond.node_versions(node, FAR_FUTURE)
    assert [(v.version, v.part_id) for v in moved] == [
        (1, ROOT_ID), (2, ROOT_ID), (3, ROOT_ID), (4, other_dir)]
    assert [pond.read_inline(v) for v in moved] == [b"v1", b"v2", b"v3", b"v4"]
    assert {v.txn for v in pond.scan(2)} == {1, 2}


def test_transaction_numbers_must_follow(pond: OplogPersistence) -> None:
    with pytest.raises(FsError) as info:
        pond.commit([file_version(ROOT_ID, 2)], txn_info(2))
    assert info.value.errno == errno.EINVAL
    assert "does not follow the last committed transaction 0" in str(info.value)

    with pytest.raises(FsError) as info:
        pond.commit([file_version(ROOT_ID, 7)], txn_info(1))
    assert "with txn 7" in str(info.value)
    assert pond.table_version() == 0

    pond.commit([file_version(ROOT_ID, 1)], txn_info(1))
    pond.commit([], txn_info(2, "nothing changed"))
    assert pond.last_txn() == 2
    with pytest.raises(FsError):
        pond.commit([file_version(ROOT_ID, 2)], txn_info(2))
    assert pond.last_txn() == 2


def test_transactions_come_from_their_rows_newest_first(
        pond: OplogPersistence, monkeypatch: pytest.MonkeyPatch) -> None:
    for txn, command in ((1, "init"), (2, "copy a"), (3, "copy b")):
        pond.commit([file_version(ROOT_ID, txn)], txn_info(txn, command, rows=1))
    pond.compact()  # an OPTIMIZE commit, which is no pond transaction
    pond.commit([file_version(ROOT_ID, 4), file_version(ROOT_ID, 4)], txn_info(4, "copy c"))
    assert any(h["operation"] == "OPTIMIZE" for h in pond._table.history())

    def no_history() -> None:
        raise AssertionError("transactions() read the Delta history")

    reader = open_pond(pond.root)
    monkeypatch.setattr(reader._table, "history", no_history)
    txns = reader.transactions(FAR_FUTURE)
    assert [(t.txn, t.command, t.rows) for t in txns] == [
        (4, "copy c", 2), (3, "copy b", 1), (2, "copy a", 1), (1, "init", 1)]
    assert all(t.user == "tester" and t.timestamp_ns > 0 for t in txns)
    assert [t.txn for t in reader.transactions(2)] == [2, 1]
    # The transaction rows are no node's: no listing, history, scan or reference shows them.
    assert {v.part_id for v in reader.scan(FAR_FUTURE)} == {ROOT_ID}
    assert len(reader.partition(ROOT_ID, FAR_FUTURE)) == 5
    assert reader.referenced_objects() == set()


def test_ponds_without_transaction_rows_read_transactions_from_delta_history(
        pond: OplogPersistence, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_module, "txn_row", lambda info: file_version(ROOT_ID, info.txn))
    for txn in (1, 2):  # as committed before transaction rows existed
        pond.commit([file_version(ROOT_ID, txn)], txn_info(txn, f"old {txn}"))
    monkeypatch.undo()
    pond.commit([file_version(ROOT_ID, 3)], txn_info(3, "new"))
    txns = open_pond(pond.root).transactions(FAR_FUTURE)
    assert [(t.txn, t.command) for t in txns] == [(3, "new"), (2, "old 2"), (1, "old 1")]


def test_the_delta_log_stays_bounded_as_history_grows(tmp_path: Path) -> None:
    """Delta cleans up log entries behind its checkpoints (every 100 commits) once they are
    older than the retention; transactions and time travel never needed them."""
    store = create_pond(tmp_path / "pond")
    store._table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    node = new_node_id()
    for txn in range(1, 251):
        store.commit([file_version(ROOT_ID, txn, node, version=txn, content=b"%d" % txn)],
                     txn_info(txn, f"write {txn}"))
    log_dir = tmp_path / "pond" / "oplog" / "_delta_log"
    entries = sorted(p.name for p in log_dir.glob("*.json"))
    assert len(entries) < 120 and entries[0] > f"{100:020d}.json"
    fresh = open_pond(tmp_path / "pond")
    assert fresh.last_txn() == 250
    assert [t.txn for t in fresh.transactions(FAR_FUTURE)] == list(range(250, 0, -1))
    assert [v.txn for v in fresh.node_versions(node, 7)] == list(range(1, 8))
    assert fresh.read_inline(fresh.node_versions(node, 7)[-1]) == b"7"


def test_reader_keeps_its_snapshot_until_refresh(pond: OplogPersistence, tmp_path: Path) -> None:
    pond.commit([file_version(ROOT_ID, 1)], txn_info(1))
    reader = open_pond(tmp_path / "pond")
    late = file_version(ROOT_ID, 2)
    pond.commit([late], txn_info(2))

    assert reader.last_txn() == 1
    assert len(reader.partition(ROOT_ID, FAR_FUTURE)) == 1
    assert reader.node_versions(late.node_id, FAR_FUTURE) == []
    assert [t.txn for t in reader.transactions(FAR_FUTURE)] == [1]
    reader.refresh()
    assert reader.last_txn() == 2
    assert len(reader.partition(ROOT_ID, FAR_FUTURE)) == 2


def test_taking_the_lock_moves_a_stale_writer_to_the_newest_snapshot(
        pond: OplogPersistence, tmp_path: Path) -> None:
    stale = open_pond(tmp_path / "pond")
    with pond.writer_lock("first"):
        pond.commit([file_version(ROOT_ID, 1)], txn_info(1))
    with stale.writer_lock("second"):
        assert stale.last_txn() == 1
        stale.commit([file_version(ROOT_ID, 2)], txn_info(2))
    assert stale.last_txn() == 2


def test_durable_commits_are_readable_after_reopening(tmp_path: Path) -> None:
    store = create_pond(tmp_path / "pond", durable=True)
    for txn in (1, 2):
        store.commit([file_version(new_node_id(), txn, content=b"d%d" % txn)], txn_info(txn))
    again = open_pond(tmp_path / "pond")
    assert again.last_txn() == 2
    assert sorted(again.read_inline(v) for v in again.scan(2)) == [b"d1", b"d2"]


def test_a_durable_commit_also_syncs_the_non_durable_ones_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log entry must not outlive an earlier one: the first durable commit after some
    that were not fsyncs their data files and log entries too, then nothing is owed."""
    store = create_pond(tmp_path / "pond")
    synced: list[str] = []
    real = table_module._fsync_file
    monkeypatch.setattr(table_module, "_fsync_file",
                        lambda path, missing_ok=False: (synced.append(path.name),
                                                        real(path, missing_ok)))
    for txn in (1, 2):
        store.commit([file_version(new_node_id(), txn)], txn_info(txn))
    assert synced == [] and store._unsynced == {1, 2}
    store.durable = True
    store.commit([file_version(new_node_id(), 3)], txn_info(3))
    entries = [name for name in synced if name.endswith(".json")]
    assert entries == [f"{v:020d}.json" for v in (1, 2, 3)]
    # Each commit writes two data files: its node versions' and its transaction row's.
    assert len([name for name in synced if name.endswith(".parquet")]) == 6
    assert store._unsynced == set()
    synced.clear()
    store.commit([file_version(new_node_id(), 4)], txn_info(4))
    assert [name for name in synced if name.endswith(".json")] == [f"{4:020d}.json"]
    # A compaction is a table version too; sync() owes it without a commit.
    store.durable = False
    part = new_node_id()
    for txn in (5, 6):
        store.commit([file_version(part, txn, node_id=new_node_id())], txn_info(txn))
    store.compact()
    assert store._unsynced == {5, 6, 7}
    synced.clear()
    store.sync()
    assert [name for name in synced if name.endswith(".json")] == [
        f"{v:020d}.json" for v in (5, 6, 7)]
    assert store._unsynced == set()
    # So is a checkpoint (made every so many commits, or asked for).
    store.checkpoint()
    synced.clear()
    store.sync()
    assert f"{7:020d}.checkpoint.parquet" in synced and "_last_checkpoint" in synced


# -- content -------------------------------------------------------------------------------

def test_store_is_inline_just_below_the_limit(pond: OplogPersistence) -> None:
    limit = 100
    below = pond.store([b"a" * 40, b"b" * 59], limit)
    assert below.inline == b"a" * 40 + b"b" * 59
    assert below.size == 99
    assert below.blake3 == blake3(below.inline).hexdigest()
    assert list(pond.object_ids()) == []

    at = pond.store([b"c" * 60, b"d" * 40], limit)
    assert at.inline is None and at.size == 100
    assert at.blake3 == blake3(b"c" * 60 + b"d" * 40).hexdigest()
    assert list(pond.object_ids()) == [at.blake3]
    with pond.open_object(at.blake3) as reader:
        reader.seek(60)
        assert reader.read(5) == b"ddddd"
        reader.seek(0)
        assert reader.read() == b"c" * 60 + b"d" * 40

    empty = pond.store([], limit)
    assert empty.inline == b"" and empty.size == 0
    again = pond.store(iter([b"c" * 60 + b"d" * 40]), limit)
    assert again == at  # the same content is stored once
    assert list(pond.object_ids()) == [at.blake3]


def test_large_objects_hash_right_from_one_reused_buffer(pond: OplogPersistence) -> None:
    """Chunks may be views of one buffer (hashing overlaps the writing, in a worker
    thread); reading into one reused buffer, or by read() of any size, verifies."""
    content = os.urandom(5 * 1024 * 1024 + 3)
    buffer = memoryview(bytearray(1024 * 1024))

    def views():
        for start in range(0, len(content), len(buffer)):
            piece = content[start : start + len(buffer)]
            buffer[: len(piece)] = piece
            yield buffer[: len(piece)]

    stored = pond.store(views(), 1024)
    assert stored.blake3 == blake3(content).hexdigest()
    for size in (1024 * 1024, 200_000, 4096):
        got = bytearray()
        into = bytearray(size)
        with pond.open_object(stored.blake3) as reader:
            while n := reader.readinto(into):
                got += into[:n]
                into[:] = bytes(size)  # the caller reuses its buffer at once
        assert got == content
    with pond.open_object(stored.blake3) as reader:
        assert reader.read() == content


def test_objects_are_fsynced_only_by_durable_commits(
        pond: OplogPersistence, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(
        f"/proc/self/fd/{fd}")), real(fd)))
    content = b"x" * 100_000
    stored = pond.store([content], 1024)
    assert synced == []  # a pond cp: nothing waits for the disk
    version = file_version(ROOT_ID, 1).evolve(inline=False, content=None, size=len(content),
                                              blake3=stored.blake3)
    pond.durable = True
    pond.commit([version], txn_info(1))
    object_path = str(pond.objects.path(stored.blake3))
    assert object_path in synced
    log_entry = str(pond.root / "oplog" / "_delta_log" / f"{1:020d}.json")
    assert synced.index(object_path) < synced.index(os.path.realpath(log_entry))
    synced.clear()
    pond.store([b"y" * 100_000], 1024)  # durable now: fsynced before it is named
    named = pond.objects.path(blake3(b"y" * 100_000).hexdigest())
    assert "/.tmp-" in synced[0] and str(named.parent) in synced


def flip_a_byte(path: Path, offset: int) -> None:
    """Corrupt the object at ``path`` as a failing disk would: one bit, size unchanged."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


def through_a_pipe(feed: Callable[[int], object]) -> bytes:
    """What ``feed(fd)`` writes into a pipe (read meanwhile, so large writes do not block)."""
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        functools.partial(os.read, read_end, 1 << 20), b"")))
    reader.start()
    try:
        feed(write_end)
    finally:
        os.close(write_end)
        reader.join()
        os.close(read_end)
    return b"".join(chunks)


def test_a_flipped_byte_in_an_object_is_caught(pond: OplogPersistence) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    stored = pond.store([content], 1024)
    store = ObjectStore(pond.root / "objects")
    assert store.verify(stored.blake3)
    path = store.path(stored.blake3)
    flip_a_byte(path, 2 * 1024 * 1024)

    assert not store.verify(stored.blake3)
    with pond.open_object(stored.blake3) as reader, pytest.raises(CorruptContent) as info:
        while reader.read(65536):
            pass
    assert stored.blake3 in str(info.value)
    assert info.value.errno == errno.EIO

    path.unlink()
    with pytest.raises(CorruptContent, match=stored.blake3):
        pond.open_object(stored.blake3)


def test_files_are_copied_in_and_out_whatever_the_descriptors(tmp_path: Path) -> None:
    """put_file and copy_to copy in the kernel where they can (file to file), else with
    sendfile (to a pipe, from another filesystem), else through a buffer (from a pipe, to a
    file opened for appending): the same bytes and name every way."""
    store = ObjectStore(tmp_path / "objects")
    store.root.mkdir()
    content = os.urandom(2 * 16 * 1024 * 1024 + 12345)  # pieces of 16 MiB and a short one
    name = blake3(content).hexdigest()
    sources = [tmp_path / "source"]
    if Path("/dev/shm").is_dir():  # another filesystem: no copy_file_range there
        sources.append(Path(tempfile.mkdtemp(dir="/dev/shm")) / "source")
    for source in sources:
        source.write_bytes(content)
        with open(source, "rb") as f:
            assert store.put_file(f.fileno(), durable=False) == (name, len(content))
    seen: list[int] = []

    def feed(fd: int) -> None:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(content)

    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (feed(write_end), os.close(write_end)))
    writer.start()
    assert store.put_file(read_end, progress=seen.append) == (name, len(content))
    writer.join()
    os.close(read_end)
    assert sum(seen) == len(content)
    assert list(store.ids()) == [name]

    out = tmp_path / "out"
    out.write_bytes(b"kept\n")
    with open(out, "r+b") as f:
        f.seek(5)
        assert store.copy_to(name, f.fileno()) == len(content)
    with open(out, "ab") as f:
        store.copy_to(name, f.fileno())
    assert out.read_bytes() == b"kept\n" + content + content
    assert through_a_pipe(lambda fd: store.copy_to(name, fd)) == content


def test_a_corrupt_object_is_never_copied_out(tmp_path: Path) -> None:
    """copy_to either writes the whole verified object or leaves no byte of it behind."""
    store = ObjectStore(tmp_path / "objects")
    store.root.mkdir()
    name, size = store.put([os.urandom(40 * 1024 * 1024 + 5)])
    flip_a_byte(store.path(name), size - 3)  # found only at the very end
    out = tmp_path / "out"
    for mode in ("r+b", "ab"):
        out.write_bytes(b"kept\n")
        with open(out, mode) as f, pytest.raises(CorruptContent, match=name):
            f.seek(5)
            store.copy_to(name, f.fileno())
        assert out.read_bytes() == b"kept\n"

    def refused(fd: int) -> None:
        with pytest.raises(CorruptContent, match=name):
            store.copy_to(name, fd)

    assert through_a_pipe(refused) == b""  # verified before the first byte


def test_storing_50_mib_keeps_memory_bounded(pond: OplogPersistence) -> None:
    chunk = 1024 * 1024
    expected = blake3()

    def chunks():
        for i in range(50):
            block = bytes([i]) * chunk
            expected.update(block)
            yield block

    tracemalloc.start()
    try:
        stored = pond.store(chunks(), 64 * 1024)
        with pond.open_object(stored.blake3) as reader:
            while reader.read(chunk):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == 50 * chunk and stored.inline is None
    assert stored.blake3 == expected.hexdigest()
    assert peak < 8 * chunk, f"peak {peak} bytes"


# -- the writer lock -----------------------------------------------------------------------

def test_a_second_writer_in_another_process_is_refused_with_the_holder(
        pond: OplogPersistence) -> None:
    lock_path = pond.root / "lock"
    with pond.writer_lock("mount at /mnt/x"):
        assert pond.holds_lock
        proc = run_python(f"""
            from pondfs.oplog import open_pond
            from pondfs.tinyfs import PondLocked
            try:
                with open_pond({str(pond.root)!r}).writer_lock("pond copy"):
                    print("acquired")
            except PondLocked as exc:
                print("locked:", exc.holder)
        """)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.startswith("locked: ")
        assert f"pid {os.getpid()}" in out and "mount at /mnt/x" in out
        assert "mount at /mnt/x" in lock_holder(lock_path)
        with pytest.raises(PondLocked, match="mount at /mnt/x"):
            with WriterLock(lock_path, "same process"):
                pass
    assert not pond.holds_lock
    assert lock_holder(lock_path) is None
    with WriterLock(lock_path, "after release"):
        assert "after release" in lock_holder(lock_path)


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    lock_path = tmp_path / "lock"
    proc = run_python(f"""
        import time
        from pondfs.oplog.lock import WriterLock
        with WriterLock({str(lock_path)!r}, "doomed writer"):
            print("holding", flush=True)
            time.sleep(60)
    """)
    try:
        assert proc.stdout.readline().strip() == "holding"
        with pytest.raises(PondLocked, match="doomed writer"):
            with WriterLock(lock_path, "waiting"):
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    assert lock_holder(lock_path) is None  # the dead holder's line is stale
    with WriterLock(lock_path, "survivor"):
        assert "survivor" in lock_holder(lock_path)


def test_a_writer_waits_briefly_for_a_finishing_holder_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder that says it is finishing (a mount being unmounted), or a mount whose mount
    point is gone, is waited for (up to FINISHING_WAIT); any other holder is refused at
    once."""
    from pondfs.oplog import lock as lock_module

    lock_path = tmp_path / "lock"
    for holder, finish in (("pond cp", True),
                           (lock_module.MOUNT_HOLDER + str(tmp_path / "not mounted"), False)):
        first = WriterLock(lock_path, holder)
        first.__enter__()
        try:
            if finish:
                start = time.monotonic()
                with pytest.raises(PondLocked):  # not finishing yet: at once
                    with WriterLock(lock_path, "impatient"):
                        pass
                assert time.monotonic() - start < 1
                first.finishing()
                assert "finishing" in lock_holder(lock_path)
            releaser = threading.Timer(0.5, first.__exit__, (None, None, None))
            releaser.start()
            start = time.monotonic()
            with WriterLock(lock_path, "patient"):
                waited = time.monotonic() - start
                assert "patient" in lock_holder(lock_path)
            assert 0.3 < waited < lock_module.FINISHING_WAIT, holder
        finally:
            first.__exit__(None, None, None)
    # A mount whose mount point is mounted is not finishing; one that stays is given up on.
    mounted = WriterLock(lock_path, lock_module.MOUNT_HOLDER + "/")
    with mounted:
        with pytest.raises(PondLocked, match="mounted read-write at /"):
            with WriterLock(lock_path, "impatient"):
                pass
        mounted.finishing()
        monkeypatch.setattr(lock_module, "FINISHING_WAIT", 1.0)
        start = time.monotonic()
        with pytest.raises(PondLocked, match="finishing"):
            with WriterLock(lock_path, "patient"):
                pass
        assert time.monotonic() - start >= 1.0


# -- keeping it fast and small -------------------------------------------------------------

def test_commits_across_many_directories_compact_each_partition_once_it_is_crowded(
        tmp_path: Path) -> None:
    """A commit touching 40 directories adds a data file to each: compacting them all after
    every such commit made it seconds long. Each partition is compacted once it has gained
    compact_after_files files, so 24 such commits compact 3 times (and the table stays
    readable)."""
    store = create_pond(tmp_path / "pond", compact_after_files=8)
    dirs = [new_node_id() for _ in range(40)]
    for txn in range(1, 25):
        store.commit([file_version(d, txn, content=b"%d" % txn) for d in dirs], txn_info(txn))
    optimizations = [h for h in store._table.history() if h["operation"] == "OPTIMIZE"]
    assert len(optimizations) == 24 // 9  # the first after 9 files (the base one and 8 new)
    assert max(store._files().files_per_partition().values()) <= 9
    assert all(len(store.partition(d, FAR_FUTURE)) == 24 for d in dirs)


def test_auto_compaction_bounds_the_data_files(tmp_path: Path) -> None:
    store = create_pond(tmp_path / "pond", compact_after_files=16, reopen_after_commits=50)
    dirs = [new_node_id() for _ in range(3)]
    written = {d: [] for d in dirs}
    most_files = 0
    for txn in range(1, 151):
        v = file_version(dirs[txn % 3], txn, content=b"%d" % txn)
        written[v.part_id].append(v)
        store.commit([v], txn_info(txn))
        most_files = max(most_files, *store._files().files_per_partition().values())
    assert most_files <= 16 + 1  # per partition: its compacted file and 16 new ones
    assert any(h["operation"] == "OPTIMIZE" for h in store._table.history())
    for d in dirs:
        listed = store.partition(d, FAR_FUTURE)
        assert listed == sorted((v.evolve(content=None) for v in written[d]),
                                key=lambda v: v.node_id)
        assert [store.read_inline(v) for v in listed] == \
            [v.content for v in sorted(written[d], key=lambda v: v.node_id)]
    assert len(store.transactions(FAR_FUTURE)) == 150


def test_maintain_removes_only_what_no_row_references(pond: OplogPersistence) -> None:
    kept = pond.store([b"k" * 5000], 100)
    old_version = file_version(ROOT_ID, 1, content=b"")
    old_version = old_version.evolve(inline=False, blake3=kept.blake3, size=kept.size,
                                     content=None)
    pond.commit([old_version], txn_info(1))
    # A newer version drops the object; time travel still needs it.
    pond.commit([old_version.evolve(version=2, txn=2, inline=True, content=b"small",
                                    blake3="", size=5)], txn_info(2))
    for txn in range(3, 8):
        pond.commit([file_version(ROOT_ID, txn, content=b"f%d" % txn)], txn_info(txn))
    orphan = pond.store([b"o" * 5000], 100)
    young = pond.store([b"y" * 5000], 100)
    long_ago = time.time() - 3600
    for digest in (kept.blake3, orphan.blake3):
        os.utime(ObjectStore(pond.root / "objects").path(digest), (long_ago, long_ago))

    report = maintain(pond, retention_hours=0.5)

    assert report["objects_removed"] == [orphan.blake3]
    assert set(pond.object_ids()) == {kept.blake3, young.blake3}
    # One file for the partition's rows, one for the transaction rows.
    assert report["data_files_after"] == 2 < report["data_files_before"]
    with pond.open_object(kept.blake3) as reader:
        assert reader.read() == b"k" * 5000
    assert not pond.holds_lock

    report = maintain(pond, retention_hours=0)
    assert report["objects_removed"] == [young.blake3]
    assert report["files_vacuumed"] >= 7  # the small files the compaction replaced
    assert set(pond.object_ids()) == {kept.blake3}
    fresh = open_pond(pond.root)
    listed = fresh.partition(ROOT_ID, FAR_FUTURE)
    assert len(listed) == 7
    assert [fresh.read_inline(v) for v in listed if v.inline][-1] == b"f7"
    assert any((pond.root / "oplog" / "_delta_log").glob("*.checkpoint.parquet"))
