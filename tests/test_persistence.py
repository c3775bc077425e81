"""The persistence interface: both stores answer all of it, and only oplog knows Delta Lake.

The ``store`` fixture (conftest.py) gives each store, in memory and a Delta table on disk,
holding the root directory as transaction 1. References: the bytes written and their BLAKE3
hash computed here with the blake3 library, the host filesystem (what a copied pond's files
are), and the source tree itself (which modules import deltalake).
"""

from __future__ import annotations

import ast
import errno
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from blake3 import blake3

import pondfs
from pondfs.oplog import open_pond
from pondfs.oplog.snapshot import finish_copy, prepare_copy
from pondfs.tinyfs import (
    FILE,
    FS,
    INLINE_LIMIT,
    ROOT_ID,
    Checker,
    FsError,
    MemoryPersistence,
    NodeVersion,
    Persistence,
    TxnInfo,
    new_node_id,
)

PACKAGE = Path(pondfs.__file__).parent

#: Every public method of the interface, each exercised below.
INTERFACE = {
    "last_txn", "partition", "node_versions", "scan", "changes", "read_inline",
    "open_object", "store", "store_file", "copy_object", "commit", "transactions",
    "writer_lock", "finishing", "refresh", "sync", "object_ids", "referenced_objects",
    "snapshot", "cache_dir", "disk_dir", "close",
}


def file_row(txn: int, content: bytes, stored_inline: bool) -> NodeVersion:
    """A file in the root directory holding ``content``, inline or as an object."""
    return NodeVersion(
        part_id=ROOT_ID, node_id=new_node_id(), version=1, txn=txn, kind=FILE,
        format="data", size=len(content), blake3=blake3(content).hexdigest(),
        inline=stored_inline, content=content if stored_inline else None,
    )


def test_the_interface_is_the_methods_exercised_here() -> None:
    declared = {name for name, _ in inspect.getmembers(Persistence, inspect.isfunction)
                if not name.startswith("_")}
    assert declared == INTERFACE


def test_both_stores_answer_every_method_of_the_interface(store: Persistence,
                                                          tmp_path: Path) -> None:
    big, other, small = os.urandom(INLINE_LIMIT + 7), os.urandom(INLINE_LIMIT), b"small"
    assert store.last_txn() == 1
    assert store.referenced_objects() == set()  # only the root directory so far

    as_object = store.store([big[:1000], big[1000:]], INLINE_LIMIT)
    assert (as_object.blake3, as_object.size, as_object.inline) == (
        blake3(big).hexdigest(), len(big), None)
    inline = store.store([small], INLINE_LIMIT)
    assert inline.inline == small and inline.blake3 == blake3(small).hexdigest()
    source = tmp_path / "source"
    source.write_bytes(other)
    progress: list[int] = []
    with open(source, "rb") as f:
        from_file = store.store_file(f.fileno(), INLINE_LIMIT, progress.append)
    assert from_file.blake3 == blake3(other).hexdigest() and sum(progress) == len(other)
    with store.open_object(as_object.blake3) as reader:
        assert reader.read() == big
    copy = tmp_path / "copy"
    with open(copy, "wb") as out:
        store.copy_object(as_object.blake3, out.fileno())
    assert copy.read_bytes() == big
    assert set(store.object_ids()) == {as_object.blake3, from_file.blake3}

    with store.writer_lock("test"):
        rows = [file_row(2, big, False), file_row(2, small, True)]
        store.commit(rows, TxnInfo(2, time.time_ns(), "two files"))
        store.sync()
        store.finishing()
    store.refresh()
    assert store.last_txn() == 2
    # Named by a row: the big file's object; the object stored from a file is not.
    assert store.referenced_objects() == {as_object.blake3}
    listed = {v.node_id: v for v in store.partition(ROOT_ID, 2)}
    assert set(listed) == {ROOT_ID} | {r.node_id for r in rows}
    assert {v.node_id for v in store.partition(ROOT_ID, 1)} == {ROOT_ID}
    assert [v.txn for v in store.node_versions(rows[1].node_id, 2)] == [2]
    assert {v.node_id for v in store.scan(2)} == set(listed)
    assert {v.node_id for v in store.changes(1, 2)} == {r.node_id for r in rows}
    assert store.read_inline(listed[rows[1].node_id]) == small
    assert [(t.txn, t.command) for t in store.transactions(2)][0] == (2, "two files")

    cache, disk = store.cache_dir(), store.disk_dir()
    if isinstance(store, MemoryPersistence):
        assert cache is None and disk is None
        with pytest.raises(FsError) as refused:
            store.snapshot()
        assert refused.value.errno == errno.ENOTSUP
    else:
        assert cache is not None and cache.is_dir() and disk is not None and disk.is_dir()
        snapshot = store.snapshot()
        reopened = open_pond(disk)
        assert (snapshot.txn, snapshot.pond_id) == (2, reopened.table_id)
        reopened.close()
        assert {f.blake3 for f in snapshot.data if f.blake3} == {as_object.blake3}
    store.close()


def test_a_snapshot_copied_file_by_file_is_the_same_pond(tmp_path: Path) -> None:
    """Every file a snapshot names is on the disk with its size (an object's bytes hash to
    its name), and copying them, and only them, makes a pond that reads the same, with
    content objects as read-only as the original's."""
    from pondfs import pond

    original = tmp_path / "pond"
    pond.init(str(original))
    with pond.open_fs(str(original), write=True) as fs:
        for n, size in enumerate((10, INLINE_LIMIT, 3 * INLINE_LIMIT)):
            node = fs.create(ROOT_ID, f"f{n}")
            fs.write_content(node, [bytes([n]) * size])
        fs.commit("three files")
    store = open_pond(original)
    snapshot = store.snapshot()
    for f in snapshot.data + snapshot.log:
        assert (original / f.path).stat().st_size == f.size
        if f.blake3 is not None:
            assert blake3((original / f.path).read_bytes()).hexdigest() == f.blake3
    assert len([f for f in snapshot.data if f.blake3]) == 2
    assert [f.path for f in snapshot.log] == sorted(f.path for f in snapshot.log)

    copy = tmp_path / "copy"
    prepare_copy(copy)
    for f in snapshot.data + snapshot.log:
        (copy / f.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original / f.path, copy / f.path)
    finish_copy(copy, snapshot.hint)
    copied = open_pond(copy)
    assert copied.last_txn() == store.last_txn() == snapshot.txn
    assert copied.table_id == snapshot.pond_id
    assert sorted(copied.scan(snapshot.txn), key=repr) == sorted(store.scan(snapshot.txn),
                                                                   key=repr)
    assert copied.transactions(snapshot.txn) == store.transactions(snapshot.txn)
    assert snapshot.txn_time_ns == store.transactions(snapshot.txn)[0].timestamp_ns
    for f in snapshot.data:
        if f.blake3 is not None:
            assert (copy / f.path).stat().st_mode == (original / f.path).stat().st_mode
    report = Checker(FS(copied)).run()
    assert report.ok, report.problems
    copied.close()
    store.close()


def test_a_durable_commit_syncs_before_it_returns(store: Persistence,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fs = FS(store)
    syncs: list[int] = []
    real = store.sync
    monkeypatch.setattr(store, "sync", lambda: (syncs.append(store.last_txn()), real()))
    for durable in (False, True):
        fs.create(ROOT_ID, f"durable-{durable}")
        commit = fs.begin_commit("test")
        assert commit is not None
        commit.store(durable)
        commit.finish()
    assert syncs == [3]  # once, after the durable commit landed


def test_a_durable_commit_whose_sync_fails_is_committed(store: Persistence,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The transaction landed before its sync failed: the view has it, the error is raised,
    and the next commit follows it."""
    fs = FS(store)
    fs.create(ROOT_ID, "a")

    def failing_sync() -> None:
        raise FsError(errno.EIO, "fsync failed")

    monkeypatch.setattr(store, "sync", failing_sync)
    commit = fs.begin_commit("first")
    assert commit is not None
    with pytest.raises(FsError, match="fsync failed"):
        commit.store(durable=True)
    assert fs.as_of == 2 and not fs.dirty
    monkeypatch.undo()
    fs.create(ROOT_ID, "b")
    assert fs.commit("second") == 3
    assert sorted(FS(store).listdir(ROOT_ID)) == ["a", "b"]


# ---------------------------------------------------------------- only oplog knows Delta Lake


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text()))
            for path in sorted(PACKAGE.rglob("*.py"))]


def test_only_oplog_imports_deltalake_anywhere_in_its_code() -> None:
    """Imports at any depth (a function's lazy import included)."""
    importers = set()
    for name, tree in _modules():
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "deltalake" for n in names):
                importers.add(name)
    assert importers and all(n.startswith("pondfs/oplog/") for n in importers), importers


def test_the_layout_is_spelled_only_in_oplog_layout() -> None:
    """No string (docstrings aside) outside pondfs/oplog/layout.py spells a path of the
    pond's layout."""
    spelled = []
    for name, tree in _modules():
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                           ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings \
                    and any(word in node.value for word in ("_delta_log", "_last_checkpoint",
                                                            "objects/", "oplog/")):
                spelled.append((name, node.lineno, node.value))
    assert {name for name, _, _ in spelled} <= {"pondfs/oplog/layout.py"}, spelled


_WATCH_IMPORTS = """
import builtins, json, sys

importers = set()
real_import = builtins.__import__

def watching(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "?")
    if level == 0 and name.split(".")[0] == "deltalake" and \\
            not importer.startswith("deltalake"):
        importers.add(importer)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = watching
loaded = {}
for module in sys.argv[1:]:
    __import__(module)
    loaded[module] = "deltalake" in sys.modules
print(json.dumps({"importers": sorted(importers), "loaded": loaded}))
"""


def test_importing_backup_mount_and_the_cli_reaches_deltalake_only_through_oplog() -> None:
    """In a fresh interpreter: backup and mount load no deltalake at all (the parent of a
    background mount never does); the CLI loads it through pondfs.oplog only."""
    done = subprocess.run(
        [sys.executable, "-c", _WATCH_IMPORTS, "pondfs.backup", "pondfs.mount", "pondfs.cli"],
        capture_output=True, text=True, check=True, timeout=120)
    found = json.loads(done.stdout)
    assert found["loaded"] == {"pondfs.backup": False, "pondfs.mount": False,
                               "pondfs.cli": True}
    assert found["importers"] and all(
        name.startswith("pondfs.oplog.") for name in found["importers"]), found
