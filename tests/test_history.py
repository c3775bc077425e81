"""History you can name and undo: ``pond diff``, ``pond revert``, ``pond tag`` and ``--at``.

The reference for a diff is the host: each transaction of a story is copied out whole with
``pond cp -r --at N`` and read back with plain ``os`` calls; the diff from A to B, applied to
A's copy, must give B's copy, and every line must name a real difference. A revert is checked
the same way against ``pond cat --at`` of the state it puts back.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fuse_helpers import Mount, make_pond
from test_cli import Pond

from pondfs.tinyfs import FS, ROOT_ID, diff, read_all, resolve_at, revert, set_tag, tags

# ---------------------------------------------------------------------- host references


def host_state(top: Path) -> dict[str, tuple[str, bytes]]:
    """Every path below ``top`` (as a pond path) -> (kind, bytes or link target)."""
    state: dict[str, tuple[str, bytes]] = {}
    for here, dirs, files in os.walk(top):
        for name in dirs + files:
            full = Path(here, name)
            rel = "/" + str(full.relative_to(top))
            if full.is_symlink():
                state[rel] = ("symlink", os.readlink(full).encode())
            elif full.is_dir():
                state[rel] = ("directory", b"")
            else:
                state[rel] = ("file", _content(full))
    return state


def _content(path: Path) -> bytes:
    """A file's bytes; a Parquet file's rows (a series read out is merged anew each time)."""
    data = path.read_bytes()
    if data[:4] == b"PAR1":
        return json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str).encode()
    return data


def applied(state: dict, lines: list[str], newer: dict) -> dict:
    """``state`` with a diff's ``lines`` applied; added and modified paths take ``newer``'s
    value. Renames move whole subtrees, the innermost rename of a path winning."""
    removed = {line[2:] for line in lines if line.startswith("- ")}
    renames = dict(line[2:].split("  (")[0].split(" -> ") for line in lines
                   if line.startswith("R "))

    def moved(path: str) -> str:
        for old in sorted(renames, key=len, reverse=True):
            if path == old or path.startswith(old + "/"):
                return renames[old] + path[len(old):]
        return path

    out = {moved(p): v for p, v in state.items()
           if not any(p == r or p.startswith(r + "/") for r in removed)}
    for line in lines:
        op, path = line[0], line[2:].split("  (")[0]
        if op in "+MT":
            out[path] = newer[path]
    return out


# ---------------------------------------------------------------------- the CLI story


@pytest.fixture
def story(tmp_path: Path) -> tuple[Pond, Path]:
    """A pond through a dozen CLI steps of every kind of change, and a host copy of the
    whole pond as of each transaction (``copies/N``)."""
    pond = Pond(tmp_path / "pond")
    pond.out("init")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha\n")
    (src / "b.txt").write_text("bravo\n")
    (src / "big.bin").write_bytes(os.urandom(200_000))
    (src / "a2.txt").write_text("alpha, second\n")
    for name, rows in (("v1", range(0, 3)), ("v2", range(3, 8))):
        pq.write_table(pa.table({"timestamp": pa.array(list(rows), pa.int64()),
                                 "x": [float(r) for r in rows]}), src / f"{name}.parquet")
    steps = [
        ("mkdir", "/notes"), ("mkdir", "/notes/sub"),
        ("cp", str(src / "a.txt"), str(src / "b.txt"), "/notes"),
        ("cp", str(src / "big.bin"), "/notes/sub/big.bin"),
        ("cp", "--format", "series", str(src / "v1.parquet"), "/s.series"),
        ("cp", str(src / "a2.txt"), "/notes/a.txt"),
        ("mv", "/notes/b.txt", "/notes/sub/c.txt"),
        ("cp", "--format", "series", str(src / "v2.parquet"), "/s.series"),
        ("mv", "/notes/sub", "/moved"),
        ("ln", "-s", "/notes/a.txt", "/link"),
        ("rm", "/moved/big.bin"),
        ("mv", "/notes/a.txt", "/moved/c.txt"),
    ]
    for step in steps:
        pond.out(*step)
    copies = tmp_path / "copies"
    copies.mkdir()
    last = pond.txns()[0]
    for txn in range(1, last + 1):
        pond.out("cp", "-r", "--at", str(txn), "pond:/", str(copies / str(txn)))
    return pond, copies


def test_diff_matches_host_copies(story: tuple[Pond, Path]) -> None:
    """For every pair of transactions A < B, A's host copy with ``pond diff A B`` applied is
    B's host copy; every M line names bytes that differ; every transaction alone is the
    diff from its predecessor; ``-o json`` says the same as the lines."""
    pond, copies = story
    last = pond.txns()[0]
    states = {t: host_state(copies / str(t)) for t in range(1, last + 1)}
    for a in range(1, last):
        for b in range(a + 1, last + 1):
            lines = pond.text("diff", str(a), str(b)).splitlines()
            assert applied(states[a], lines, states[b]) == states[b], (a, b, lines)
            for line in lines:
                if line.startswith("M "):
                    path = line[2:].split("  (")[0]
                    assert states[b][path] != applied(states[a], [], states[b]).get(
                        path, states[a].get(path)) or path.endswith(".series"), line
            if b == a + 1:
                assert pond.text("diff", str(b)).splitlines() == lines
    assert pond.text("diff", "2").splitlines() == ["+ /notes"]
    renamed = pond.text("diff", "8").splitlines()
    assert renamed == ["R /notes/b.txt -> /notes/sub/c.txt"]
    series = pond.text("diff", "9").splitlines()
    assert series == ["M /s.series  (+5 rows, 3..7)"]
    as_json = pond.json("diff", "1", str(last))
    assert [f"{c['op']} {c['path']}" for c in as_json if c["op"] != "R"] == [
        line.split("  (")[0] for line in pond.text("diff", "1", str(last)).splitlines()
        if not line.startswith("R ")]
    only = pond.text("diff", "1", str(last), "/moved").splitlines()
    assert only and all(" /moved" in line for line in only)


def test_revert_and_tags(story: tuple[Pond, Path], tmp_path: Path) -> None:
    """A revert is one transaction putting the paths back as they were (``pond cat --at``
    the state before); one that a later transaction conflicts with is refused naming the
    path, unless --force; a series revert drops exactly the rows that transaction added.
    Tags name transactions for --at; bad and unknown names fail in one line."""
    pond, copies = story
    last = pond.txns()[0]
    # The newest transaction moved /notes/a.txt: undone, the tree is as at last - 1.
    assert pond.text("revert", str(last)) == f"transaction {last + 1}\n"
    pond.out("cp", "-r", "pond:/", str(tmp_path / "after"))
    assert host_state(tmp_path / "after") == host_state(copies / str(last - 1))
    assert pond.txns()[0] == last + 1
    assert f"revert {last}" in pond.json("log")[0]["command"]
    # Transaction 7 rewrote /notes/a.txt, which later ones moved and moved back: refused.
    line = pond.fails("revert", "7", mentions="/notes/a.txt")
    assert "--force" in line
    pond.out("revert", "--force", "7")
    assert pond.out("cat", "/notes/a.txt") == pond.out("cat", "--at", "6", "/notes/a.txt")
    # The series: revert the transaction that appended v2; its rows go, v1's stay.
    pond.out("revert", "9", "/s.series")
    now = pq.read_table(io.BytesIO(pond.out("cat", "/s.series")))
    before = pq.read_table(io.BytesIO(pond.out("cat", "--at", "8", "/s.series")))
    assert now.to_pylist() == before.to_pylist()
    # --to: /moved as it was at transaction 9 (before it existed: removed).
    pond.out("revert", "--to", "9", "/moved")
    assert pond.fails("ls", "/moved", mentions="/moved")
    pond.out("revert", "--to", "10", "/moved")
    pond.out("cp", "-r", "pond:/moved", str(tmp_path / "moved10"))
    pond.out("cp", "-r", "--at", "10", "pond:/moved", str(tmp_path / "ref10"))
    assert host_state(tmp_path / "moved10") == host_state(tmp_path / "ref10")
    pond.check_ok()

    pond.out("tag", "field-2025", "8")
    pond.out("tag", "newest")
    listed = [line.split("\t")[:2] for line in pond.text("tag").splitlines()]
    assert ["field-2025", "8"] in listed and ["newest", str(pond.txns()[1])] in listed
    assert pond.out("cat", "--at", "field-2025", "/notes/a.txt") == \
        pond.out("cat", "--at", "8", "/notes/a.txt")
    assert pond.text("diff", "field-2025", "9") == pond.text("diff", "8", "9")
    tagged = pond.json("log")[0]
    assert tagged["rows"] == 0 and "tag newest" in tagged["command"]
    log = pond.json("log")
    when = next(row["time"] for row in log if row["txn"] == 8)
    txn_at = max(row["txn"] for row in log if row["time"] <= when)
    # The log shows whole seconds: the end of that second is at or after all of them.
    assert pond.text("ls", "--at", when.replace(" ", "T") + ".999999", "/") == \
        pond.text("ls", "--at", str(txn_at), "/")
    pond.out("tag", "-d", "newest")
    assert "newest" not in pond.text("tag")
    for args, mentions in ((("tag", "9lives"), "bad tag name"),
                           (("tag", "-d", "nosuch"), "nosuch"),
                           (("cat", "--at", "nosuch", "/link"), "no tag 'nosuch'"),
                           (("ls", "--at", "12:xx", "/"), "not a transaction number"),
                           (("diff", "999"), "no transaction 999"),
                           (("revert", "/x"), "which transaction")):
        pond.fails(*args, mentions=mentions)


# ---------------------------------------------------------------------- tinyfs level


def test_diff_cost_follows_the_transactions(store) -> None:
    """A diff of one small transaction in a pond of many files reads that transaction's
    rows and the listings on its paths: other directories' partitions are never read."""
    fs = FS(store)
    for d in range(20):
        dir_id = fs.mkdir(ROOT_ID, f"d{d}")
        for f in range(50):
            fs.write_content(fs.create(dir_id, f"f{f}"), [b"x"])
    fs.commit("fill")
    target = fs.resolve("/d7/f3")
    fs.write_content(target, [b"changed"])
    txn = fs.commit("change")
    assert txn is not None
    read: list[str] = []
    partition = store.partition

    def counted(part_id: str, as_of: int):
        read.append(part_id)
        return partition(part_id, as_of)

    store.partition = counted  # type: ignore[method-assign]
    try:
        assert [c.line() for c in diff(fs, txn - 1, txn)] == ["M /d7/f3"]
    finally:
        del store.partition
    assert set(read) <= {ROOT_ID, fs.resolve("/d7")}


def test_revert_and_tags_in_tinyfs(store) -> None:
    """revert on a view undoes a transaction's removal and rename; tags resolve."""
    fs = FS(store)
    dir_id = fs.mkdir(ROOT_ID, "d")
    fs.write_content(fs.create(dir_id, "x"), [b"one"])
    fs.commit("make")
    fs.rename(dir_id, "x", ROOT_ID, "y")
    moved = fs.commit("move")
    assert moved is not None
    assert set_tag(fs, "moved", moved, "tag") == moved + 1
    assert tags(store) == {"moved": moved} and resolve_at(store, "moved") == moved
    fs = FS(store)
    assert [c.line() for c in revert(fs, moved)] == ["R /d/x -> /y"]
    fs.commit("revert")
    assert read_all(fs, fs.resolve("/d/x")) == b"one"


# ---------------------------------------------------------------------- mount, S3, backup


@pytest.mark.fuse
def test_mount_at_a_tag(tmp_path: Path) -> None:
    """``mount.pondfs -o at=TAG`` shows the pond as of the tagged transaction; an unknown
    tag fails the mount in one line."""
    pond_path = make_pond(tmp_path / "pond")
    pond = Pond(pond_path)
    (tmp_path / "f").write_text("first\n")
    pond.out("cp", str(tmp_path / "f"), "/f")
    pond.out("tag", "first")
    (tmp_path / "f").write_text("second\n")
    pond.out("cp", str(tmp_path / "f"), "/f")
    m = Mount(pond_path, tmp_path / "mnt", options="at=first").start()
    try:
        assert m.path("f").read_text() == "first\n"
    finally:
        assert m.stop() == 0
    assert m.problems() == []
    (tmp_path / "m2").mkdir()
    done = subprocess.run([sys.executable, "-m", "pondfs.mount", str(pond_path),
                           str(tmp_path / "m2"), "-o", "at=nosuch"], capture_output=True,
                          text=True, timeout=60)
    assert not os.path.ismount(tmp_path / "m2")
    assert done.returncode != 0 and "no tag 'nosuch'" in done.stderr


def test_tags_travel_with_s3_and_backups(url: str, s3, tmp_path: Path) -> None:
    """A pond in S3 keeps tags; a backup carries them and ``pond restore --at`` takes a
    time."""
    pond = Pond(Path(url))  # type: ignore[arg-type]
    pond.env.update(s3.env())
    pond.env["POND"] = url
    pond.out("init")
    (tmp_path / "f").write_text("one\n")
    pond.out("cp", str(tmp_path / "f"), "/f")
    pond.out("tag", "one")
    (tmp_path / "f").write_text("two\n")
    pond.out("cp", str(tmp_path / "f"), "/f")
    assert pond.out("cat", "--at", "one", "/f") == b"one\n"

    local = Pond(tmp_path / "local")
    local.env.update(s3.env())
    local.out("init")
    local.out("cp", str(tmp_path / "f"), "/f")
    local.out("tag", "release")
    backup = url.replace("/field/noyo", "/backup")
    local.out("backup", "push", backup)
    local.out("restore", backup, str(tmp_path / "restored"))
    restored = Pond(tmp_path / "restored")
    assert restored.text("tag") == local.text("tag")
    assert restored.out("cat", "--at", "release", "/f") == b"two\n"
    pushed = local.json("log")  # newest first: the push's run record, then what it pushed
    first = pushed[1]["txn"]
    local.out("cp", str(tmp_path / "f"), "/g")
    local.out("backup", "push", backup)
    when = pushed[0]["time"].replace(" ", "T") + ".999999"  # after point 1, before the cp
    local.out("restore", "--at", when, backup, str(tmp_path / "by-time"))
    assert Pond(tmp_path / "by-time").txns()[0] == first
    local.fails("restore", "--at", "release", backup, str(tmp_path / "x"),
                mentions="a tag is read inside the pond")
