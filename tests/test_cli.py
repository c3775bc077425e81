"""The ``pond`` command, run as a subprocess on real temporary ponds.

Each test drives one pond through a story, because every ``pond`` run costs a Python start-up.
A command that succeeds must print nothing on stderr; one that fails must print exactly one
line there (no traceback), exit non-zero, and leave the pond exactly as it was.
"""

from __future__ import annotations

import functools
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from shapes import make_linked_source, shape

DEMO = Path(__file__).resolve().parent.parent / "pondfs" / "demo"
POND_CMD = [sys.executable, "-m", "pondfs.cli"]
#: A pond run is mostly Python start-up: independent reads run side by side.
WORKERS = min(4, os.cpu_count() or 1)
T = TypeVar("T")


def side_by_side(*calls: Callable[[], T]) -> list[T]:
    """Call independent ``calls`` at once (each pond run is mostly Python start-up)."""
    with ThreadPoolExecutor(WORKERS) as pool:
        running = [pool.submit(call) for call in calls]
        return [future.result() for future in running]


class Pond:
    """A pond at ``location`` and the ``pond`` command that works on it (through $POND)."""

    def __init__(self, location: Path):
        self.location = location
        self.env = {k: v for k, v in os.environ.items() if k != "POND"}
        self.env["POND"] = str(location)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*POND_CMD, *args], env=self.env, capture_output=True,
                              timeout=timeout)

    def out(self, *args: str) -> bytes:
        """Run a command that must succeed quietly; its stdout."""
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stderr.decode())
        assert done.stderr == b"", (args, done.stderr.decode())
        return done.stdout

    def text(self, *args: str) -> str:
        return self.out(*args).decode()

    def outs(self, **commands: tuple[str, ...]) -> dict[str, bytes]:
        """Run independent read commands side by side; each one's stdout by its name."""
        outputs = side_by_side(*(functools.partial(self.out, *args)
                                 for args in commands.values()))
        return dict(zip(commands, outputs, strict=True))

    def json(self, *args: str):
        return json.loads(self.out(*args, "-o", "json"))

    def txns(self) -> list[int]:
        """The pond's transaction numbers, newest first (``pond log -o json``)."""
        return [row["txn"] for row in self.json("log")]

    def fails(self, *args: str, mentions: str) -> str:
        """Run a command that must fail with one line on stderr mentioning ``mentions``."""
        done = self.run(*args)
        err = done.stderr.decode()
        assert done.returncode != 0, (args, done.stdout)
        assert "Traceback" not in err, err
        assert err.startswith(f"pond {args[0]}: ") and f": {args[0]}: " not in err, err
        assert err.endswith("\n") and err.count("\n") == 1, (args, err)
        assert mentions in err, (args, err)
        return err.strip()

    def check_ok(self) -> None:
        assert self.text("check").splitlines()[-1].endswith(": ok")


def stored_state(pond: Pond) -> dict[str, bytes]:
    """The pond's committed state on disk: its oplog files and lock, byte for byte.

    Content objects are left out: an interrupted write may leave an unreferenced object,
    which ``pond check`` notes and ``pond maintain`` reclaims.
    """
    files = {}
    for path in sorted(pond.location.rglob("*")):
        rel = path.relative_to(pond.location)
        if path.is_file() and rel.parts[0] in ("oplog", "lock"):
            files[str(rel)] = path.read_bytes()
    return files


def refuse(pond: Pond, *args: str, mentions: str) -> str:
    """``pond ARGS`` fails with one line and the pond's stored state does not change."""
    before = stored_state(pond)
    line = pond.fails(*args, mentions=mentions)
    assert stored_state(pond) == before, f"{args} changed the pond"
    return line


def refuse_together(pond: Pond, *cases: tuple[tuple[str, ...], str]) -> None:
    """:func:`refuse` for each ``(args, mentions)``, side by side: only for commands that
    fail before they would take the writer lock."""
    before = stored_state(pond)
    side_by_side(*(functools.partial(pond.fails, *args, mentions=mentions)
                   for args, mentions in cases))
    assert stored_state(pond) == before


def assert_untouched(pond: Pond, txns: list[int]) -> None:
    """``pond check`` passes and ``pond log`` shows exactly the transactions ``txns``."""
    _, now = side_by_side(pond.check_ok, pond.txns)
    assert now == txns


@pytest.fixture
def pond(tmp_path: Path) -> Pond:
    made = Pond(tmp_path / "pond")
    assert made.text("init").startswith("initialized pond")
    return made


def tree_of(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every entry under ``root`` (not followed through symlinks): kind and content."""
    found: dict[str, tuple[str, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", None)
            else:
                found[rel] = ("file", path.read_bytes())
    return found


def parquet_of(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def write_parquet(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


# ---------------------------------------------------------------------- the user story

def test_series_story(pond: Pond, tmp_path: Path) -> None:
    """init, mkdir -p, two series versions, ls, cat, log, show, stat, query, --at, maintain."""
    at500 = pq.read_table(DEMO / "NoyoCenterAT500_1.parquet")
    vulink = pq.read_table(DEMO / "NoyoCenterVulink_1.parquet")
    half = at500.num_rows // 2
    # The later rows come first: reading must order the union by time, not by version.
    late = write_parquet(at500.slice(half), tmp_path / "late.parquet")
    early = write_parquet(at500.slice(0, half), tmp_path / "early.parquet")
    vulink_file = write_parquet(vulink, tmp_path / "vulink.parquet")
    series = "/hydrovu/devices/at500_1.series"

    assert pond.out("mkdir", "-p", "/hydrovu/devices/") == b""
    pond.out("cp", "--format", "series", str(late), series)  # transaction 3
    pond.out("cp", str(early), series)  # an existing series keeps its format
    pond.out("cp", "--format", "series", str(vulink_file), "/hydrovu/devices/vulink_1.series")
    assert pond.txns() == [5, 4, 3, 2, 1]

    # Columns of the two devices are unified: AT500 rows have a null Baro.psi.
    count_sql = "SELECT count(*) AS n, count(\"Baro.psi\") AS baro " \
                "FROM '/hydrovu/devices/*.series'"
    first_rows = "SELECT timestamp, \"Temperature.C\" FROM '/hydrovu/devices/at500_1.series' " \
                 "ORDER BY timestamp LIMIT 3"
    got = pond.outs(
        merged=("cat", series), first_version=("cat", "--at", "3", series),
        long=("ls", "-l", "/hydrovu/devices"), glob=("ls", "/hydrovu/devices/*.series"),
        two=("ls", "/", "/hydrovu"), past=("ls", "--at", "3", "/hydrovu/devices"),
        stat=("stat", series), versions=("log", series, "-o", "json"),
        newest=("log", "-n", "1", "-o", "json"), show=("show", series, "-o", "json"),
        count_json=("query", count_sql, "-o", "json"), count_table=("query", count_sql),
        first_csv=("query", first_rows, "-o", "csv"),
        oplog=("query", "SELECT max(txn) AS last, count(DISTINCT node_id) AS nodes FROM oplog",
               "-o", "json"),
        oplog_past=("query", "--at", "2", "SELECT max(txn) AS last FROM oplog", "-o", "json"))

    assert parquet_of(got["merged"]).equals(at500)
    assert parquet_of(got["first_version"]).equals(at500.slice(half))

    listing = got["long"].decode().splitlines()
    assert [line.split()[-1] for line in listing] == ["at500_1.series", "vulink_1.series"]
    assert all(line.startswith("-rw") and " series " in line for line in listing)
    assert " v2 " in listing[0] and " v1 " in listing[1]
    assert got["glob"].decode().split() == [
        "/hydrovu/devices/at500_1.series", "/hydrovu/devices/vulink_1.series"]
    assert got["two"].decode().split("\n\n") == ["/:\nhydrovu", "/hydrovu:\ndevices\n"]
    assert got["past"] == b"at500_1.series\n"

    stat = got["stat"].decode()
    assert "format: series" in stat and "versions: 2" in stat and "time column: timestamp" in stat

    versions = json.loads(got["versions"])
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["txn"] for v in versions] == [4, 3]
    assert versions[1]["min_time"] == at500["timestamp"][half].as_py()
    assert versions[0]["max_time"] == at500["timestamp"][half - 1].as_py()
    newest = json.loads(got["newest"])
    assert len(newest) == 1 and newest[0]["txn"] == 5
    assert newest[0]["command"].startswith("pond cp --format series ")
    rows = json.loads(got["show"])
    assert {r["txn"] for r in rows} == {3, 4} and {r["format"] for r in rows} == {"series"}

    expected = {"n": at500.num_rows + vulink.num_rows, "baro": vulink.num_rows}
    assert json.loads(got["count_json"]) == [expected]
    assert [line.split() for line in got["count_table"].decode().splitlines()] == [
        ["n", "baro"], [str(expected["n"]), str(expected["baro"])]]
    first_csv = pacsv.read_csv(io.BytesIO(got["first_csv"]))
    assert first_csv.column("timestamp").to_pylist() == at500["timestamp"][:3].to_pylist()
    assert json.loads(got["oplog"]) == [{"last": 5, "nodes": 5}]
    assert json.loads(got["oplog_past"]) == [{"last": 2}]
    refuse(pond, "query", "SELEC nonsense FROM nowhere", mentions="query")
    refuse(pond, "query", "SELECT * FROM '/hydrovu/nothing/*.series'", mentions="no table")

    pond.check_ok()
    report = pond.text("maintain")
    assert report.strip()
    pond.check_ok()
    assert parquet_of(pond.out("cat", series)).equals(at500)
    assert pond.txns() == [6, 5, 4, 3, 2, 1]  # 6: the maintain's record (pond status)


def test_csv_becomes_parquet(pond: Pond, tmp_path: Path) -> None:
    csv = tmp_path / "readings.csv"
    csv.write_text("timestamp,temperature,site\n300,11.5,a\n100,10.0,b\n200,10.5,a\n")
    more = tmp_path / "more.csv"
    more.write_text("timestamp,temperature,site\n150,9.0,c\n")
    (tmp_path / "linked.csv").symlink_to(more)  # named as a source, a symlink is followed
    header_only = tmp_path / "header.csv"
    header_only.write_text("timestamp,temperature\n")
    pond.out("cp", "--format", "table", str(csv), "/readings.table")
    pond.out("cp", "--format", "series", str(csv), "/readings.series")
    pond.out("cp", str(tmp_path / "linked.csv"), "/readings.series")
    pond.out("cp", "--format", "table", str(header_only), "/empty.table")

    got = pond.outs(table=("cat", "/readings.table"), series=("cat", "/readings.series"),
                    total=("query", "SELECT sum(temperature) AS t FROM '/readings.table'",
                           "-o", "json"),
                    empty=("query", "SELECT count(*) AS n FROM '/empty.table'", "-o", "json"))
    assert parquet_of(got["table"]).to_pydict() == {
        "timestamp": [300, 100, 200], "temperature": [11.5, 10.0, 10.5], "site": ["a", "b", "a"]}
    series = parquet_of(got["series"])
    assert series.column("timestamp").to_pylist() == [100, 150, 200, 300]
    assert series.column("site").to_pylist() == ["b", "c", "a", "a"]
    assert json.loads(got["total"]) == [{"t": 32.0}]
    assert json.loads(got["empty"]) == [{"n": 0}]


# ---------------------------------------------------------------------- files and trees

def make_host_tree(root: Path) -> Path:
    """A host tree with nested directories, an empty one, symlinks and a large binary file."""
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_text("top of the tree\n")
    (root / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 123))
    (root / "nested" / "note.csv").write_text("not,converted\n1,2\n")
    (root / "nested" / "deeper" / "leaf.dat").write_bytes(bytes(range(256)) * 300)
    (root / "link_to_top").symlink_to("top.txt")
    (root / "link_to_dir").symlink_to("nested/deeper")
    (root / "nested" / "dangling").symlink_to("../nowhere")
    return root


def test_files_and_trees(pond: Pond, tmp_path: Path) -> None:
    """cp in and out (files and trees), cat, stat, mv, rm, ln -s and --at on data files."""
    host = make_host_tree(tmp_path / "host")
    big = (host / "big.bin").read_bytes()
    leaf = (host / "nested" / "deeper" / "leaf.dat").read_bytes()
    edited = tmp_path / "edited.txt"
    edited.write_text("edited\n")
    (tmp_path / "into").mkdir()

    pond.out("mkdir", "/files/")  # a trailing slash is fine on a directory
    pond.out("cp", str(host / "top.txt"), str(host / "big.bin"), "/files")  # transaction 3
    pond.out("cp", str(edited), "/files/top.txt")
    pond.out("cp", "-r", str(host), "/tree")
    got = pond.outs(
        both=("cat", "--at", "3", "/files/top.txt", "/files/big.bin"),
        stat=("stat", "/files/top.txt", "/files/big.bin"),
        now=("cat", "/files/top.txt"),
        long=("ls", "-l", "/tree"),
        via_link=("cat", "/tree/link_to_dir/leaf.dat"),
        # A tree back out: byte for byte, with its symlinks and empty directory.
        tree_out=("cp", "-r", "pond:/tree", str(tmp_path / "tree")),
        into=("cp", "-r", "pond:/tree/nested", "pond:/tree/top.txt", str(tmp_path / "into")),
        big_out=("cp", "pond:/files/big.bin", str(tmp_path / "big.out")))

    assert got["both"] == b"top of the tree\n" + big
    small, large = got["stat"].decode().split("  path: ")[1:]
    assert "stored: inline" in small and "format: data" in small and "size: 7 " in small
    assert "stored: object" in large and f"size: {len(big)} " in large
    assert got["now"] == b"edited\n"
    listing = got["long"].decode().splitlines()
    assert any(line.startswith("l") and line.endswith("link_to_top -> top.txt")
               for line in listing)
    assert any(line.startswith("d") and line.endswith(" empty") for line in listing)
    assert got["via_link"] == leaf
    assert tree_of(tmp_path / "tree") == tree_of(host)
    assert sorted(os.listdir(tmp_path / "into")) == ["nested", "top.txt"]
    assert (tmp_path / "into" / "nested" / "dangling").is_symlink()
    assert (tmp_path / "big.out").read_bytes() == big
    (tmp_path / "tree" / "top.txt").write_text("changed on the host\n")
    pond.out("cp", "-r", "pond:/tree", str(tmp_path))  # again: over its files and symlinks
    assert tree_of(tmp_path / "tree") == tree_of(host)

    # mv: a rename, then into a directory; ln -s; rm; rm -r.
    pond.out("mv", "/files/top.txt", "/files/renamed.txt")
    pond.out("mv", "/files/renamed.txt", "/tree/empty")
    pond.out("ln", "-s", "/tree/empty/renamed.txt", "/shortcut")  # transaction 8
    pond.out("rm", "/files/big.bin")
    pond.out("rm", "-r", "/tree/nested")
    got = pond.outs(
        via_link=("cat", "/shortcut"),
        # Like ls: files first, then each directory under a header.
        several=("ls", "/", "/files", "/tree/empty", "/shortcut", "/tree"),
        past=("ls", "--at", "8", "/files"),
        past_big=("cat", "--at", "8", "/files/big.bin"),
        history=("log", "-n", "4", "-o", "json"),
        check=("check",))
    assert got["via_link"] == b"edited\n"
    assert got["several"].decode().split("\n\n") == [
        "/shortcut", "/:\nfiles\nshortcut\ntree", "/files:", "/tree/empty:\nrenamed.txt",
        "/tree:\nbig.bin\nempty\nlink_to_dir\nlink_to_top\ntop.txt\n"]
    assert got["past"] == b"big.bin\n"
    assert got["past_big"] == big
    assert [row["command"].split()[:2] for row in json.loads(got["history"])] == [
        ["pond", "rm"], ["pond", "rm"], ["pond", "ln"], ["pond", "mv"]]
    assert got["check"].decode().splitlines()[-1].endswith(": ok")


def test_a_corrupt_object_is_an_error_and_never_output(pond: Pond, tmp_path: Path) -> None:
    """cat and cp out of a content object whose bytes no longer match its name: one line
    naming the object, exit 1, and not one byte of it written, into a file (taken back),
    a file opened for appending or a pipe (verified first)."""
    content = os.urandom(20 * 1024 * 1024 + 7)
    (tmp_path / "big.bin").write_bytes(content)
    pond.out("cp", str(tmp_path / "big.bin"), "/big.bin")
    out = tmp_path / "out"

    def cat_into(mode: str) -> subprocess.CompletedProcess:
        out.write_bytes(b"kept\n")
        with open(out, mode) as f:
            f.seek(5)
            return subprocess.run([*POND_CMD, "cat", "/big.bin"], env=pond.env, stdout=f,
                                  stderr=subprocess.PIPE, timeout=120)

    done = cat_into("r+b")
    assert done.returncode == 0 and done.stderr == b""
    assert out.read_bytes() == b"kept\n" + content
    [path] = (pond.location / "objects").glob("*/*")
    name = path.name
    path.chmod(0o644)
    with open(path, "r+b") as f:  # one bit, as a failing disk flips it
        f.seek(len(content) - 2)
        last = f.read(1)
        f.seek(len(content) - 2)
        f.write(bytes([last[0] ^ 1]))

    for mode in ("r+b", "ab"):
        done = cat_into(mode)
        err = done.stderr.decode()
        assert done.returncode == 1 and err.count("\n") == 1, err
        assert err.startswith("pond cat: corrupt or missing content: object " + name), err
        assert out.read_bytes() == b"kept\n"
    piped = pond.run("cat", "/big.bin")
    assert piped.returncode == 1 and piped.stdout == b"" and name in piped.stderr.decode()
    line = pond.fails("cp", "pond:/big.bin", str(out), mentions=name)
    assert line.startswith("pond cp: corrupt") and out.read_bytes() == b""
    checked = pond.run("check")
    assert checked.returncode == 1 and name in checked.stdout.decode()


# ---------------------------------------------------------------------- bad input

def test_missing_pond_and_not_a_pond(tmp_path: Path) -> None:
    missing = Pond(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("just a directory\n")
    not_pond = Pond(plain)
    a_file = Pond(plain / "notes.txt")
    no_env = {k: v for k, v in os.environ.items() if k != "POND"}

    def nowhere() -> None:
        done = subprocess.run([*POND_CMD, "ls"], capture_output=True, env=no_env)
        assert done.returncode != 0
        assert done.stderr.decode().count("\n") == 1 and "--pond" in done.stderr.decode()

    def explicit() -> None:
        done = subprocess.run([*POND_CMD, "--pond", str(tmp_path / "other"), "init"],
                              capture_output=True, env=missing.env)
        assert done.returncode == 0 and (tmp_path / "other" / "oplog").is_dir()

    side_by_side(
        lambda: missing.fails("ls", mentions=str(tmp_path / "missing")),
        lambda: missing.fails("mkdir", "-p", "/a", mentions="no such pond"),
        lambda: not_pond.fails("ls", mentions="not a pond"),
        lambda: not_pond.fails("cp", str(plain / "notes.txt"), "/notes.txt",
                               mentions="not a pond"),
        lambda: a_file.fails("init", mentions="not a directory"),
        nowhere, explicit)
    assert not (tmp_path / "missing").exists()
    assert os.listdir(plain) == ["notes.txt"]
    assert (plain / "notes.txt").read_text() == "just a directory\n"


def test_hard_links_and_special_files(pond: Pond, tmp_path: Path) -> None:
    """cp -r in and out keep hard links and special files (as cp -a does: the reference);
    ln, rm, ls -l, stat, log and --at show link counts; cat refuses a FIFO; check passes."""
    host = make_linked_source(tmp_path / "host")
    reference = tmp_path / "reference"
    subprocess.run(["cp", "-a", str(host), str(reference)], check=True)
    pond.out("cp", "-r", str(host), "/tree")
    pond.out("cp", "-r", "pond:/tree", str(tmp_path / "out"))
    assert shape(tmp_path / "out") == shape(reference)
    pond.out("cp", "-r", "pond:/tree", str(tmp_path))  # again, over what it made: the same
    assert shape(tmp_path / "tree") == shape(reference)
    linked = pond.txns()[0]

    pond.out("ln", "/tree/plain", "/tree/b/plain-too")
    pond.out("rm", "/tree/a/one")
    got = pond.outs(
        now=("ls", "-l", "/tree/a", "/tree/b", "/tree"),
        then=("ls", "-l", "--at", str(linked), "/tree/a"),
        stat=("stat", "/tree/null", "/tree/b/plain-too"),
        log=("log", "/tree/b/one-elsewhere", "-o", "json"))
    lines = {line.split()[-1]: line.split() for line in got["now"].decode().splitlines()
             if line[:1] in "-lpscbd" and len(line.split()) > 5}
    assert lines["one-again"][1] == lines["one-elsewhere"][1] == "2"
    assert lines["plain-too"][1] == lines["plain"][1] == "2"
    assert lines["fifo"][0].startswith("p") and "fifo" in lines["fifo"]
    assert lines["sock"][0].startswith("s") and "socket" in lines["sock"]
    if os.geteuid() == 0:
        assert lines["null"][0].startswith("c") and lines["null"][4:6] == ["1,", "3"]
        assert "device: 1, 3" in got["stat"].decode()
    then = [line.split() for line in got["then"].decode().splitlines()]
    assert [(words[1], words[-1]) for words in then] == [("3", "one"), ("3", "one-again")]
    assert [row["links"] for row in json.loads(got["log"])] == [2, 3]
    assert "links: 2" in got["stat"].decode()
    refuse(pond, "cat", "/tree/b/fifo", mentions="/tree/b/fifo: a fifo has no content")
    refuse(pond, "ln", "/tree/a", "/tree/a2", mentions="hard link not allowed for directory")
    refuse(pond, "ln", "/tree/plain", "/tree/b", mentions="exists")
    pond.check_ok()


def test_bad_input_leaves_the_pond_as_it_was(pond: Pond, tmp_path: Path) -> None:
    host = make_host_tree(tmp_path / "host")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 this is not parquet at all\n" * 100)
    good = write_parquet(pq.read_table(DEMO / "NoyoCenterVulink_2.parquet"),
                         tmp_path / "good.parquet")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")
    top = str(host / "top.txt")
    pond.out("mkdir", "-p", "/dir/sub")
    pond.out("cp", top, "/dir/file.txt")
    txns = pond.txns()

    # Refused before any writer lock is taken, so they can run side by side.
    refuse_together(
        pond,
        (("init",), "already exists"),
        # Missing paths, in the pond and on the host.
        (("cat", "/nope"), "/nope"),
        (("ls", "/dir/*.nothing"), "no match"),
        (("ls", "--at", "99", "/"), "99"),
        (("cp", str(tmp_path / "nope"), "/dir/x"), str(tmp_path / "nope")),
        (("cp", "pond:/dir/nope", str(tmp_path / "x")), "/dir/nope"),
        (("cp", "pond:/dir/file.txt", str(tmp_path / "no" / "where")),
         str(tmp_path / "no" / "where")),
        # Directories without -r.
        (("cp", str(host), "/dir/tree"), "-r"),
        (("cp", "pond:/dir", str(tmp_path / "out")), "-r"),
        # Empty paths; writing in the past; copying within the pond.
        (("mkdir", ""), "''"),
        (("cp", top, ""), "''"),
        (("cp", "--at", "1", top, "/dir/y"), "transaction 1"),
        (("cp", "pond:/dir/file.txt", "pond:/dir/copy"), "--help"))
    assert not (tmp_path / "out").exists()

    refuse(pond, "rm", "/dir/nope", mentions="/dir/nope")
    refuse(pond, "mv", "/dir/nope", "/dir/other", mentions="/dir/nope")
    refuse(pond, "cp", top, "/missing/x", mentions="missing")
    refuse(pond, "rm", "/dir/file.txt", "/dir/sub", mentions="-r")  # the file stays too
    # Names that cannot be.
    refuse(pond, "mkdir", "/dir/.", mentions="'.'")
    refuse(pond, "mkdir", "/", mentions="'/'")
    refuse(pond, "mkdir", "-p", "/dir/" + "n" * 300, mentions="too long")
    refuse(pond, "ln", "-s", "/dir/file.txt", "/dir/..", mentions="'..'")
    refuse(pond, "mv", "/dir/file.txt", "/dir/new/", mentions="not a directory")
    refuse(pond, "ln", "-s", "/dir/file.txt", "/dir/link/", mentions="not a directory")
    refuse(pond, "cp", top, "/dir/new/", mentions="not a directory")
    # Things that exist already, or are of the wrong kind.
    refuse(pond, "mkdir", "/dir/sub", mentions="exists")
    refuse(pond, "mkdir", "-p", "/dir/file.txt/x", mentions="not a directory")
    refuse(pond, "cp", top, "/dir/file.txt", "/dir/sub/x", mentions="directory")
    refuse(pond, "mv", "/dir", "/dir/sub", mentions="itself")
    # Content that is not Parquet, as a table or series; a multi-file copy failing late.
    refuse(pond, "cp", "--format", "table", str(junk), "/dir/t.table", mentions="not a Parquet")
    refuse(pond, "cp", "--format", "table", str(good), str(junk), "/dir/sub",
           mentions="junk.parquet")
    refuse(pond, "cp", str(junk), "/dir/file.txt", "--format", "table", mentions="data")
    refuse(pond, "cp", "--format", "series", str(ragged), "/dir/r.series", mentions="ragged.csv")

    assert_untouched(pond, txns)
    assert pond.text("ls", "/dir").split() == ["file.txt", "sub"]


HOLD_LOCK = """
import sys, time
from pondfs.oplog import open_pond
with open_pond(sys.argv[1]).writer_lock("test holder"):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(pond: Pond, seconds: float) -> subprocess.Popen:
    """A process holding the pond's writer lock for ``seconds`` (as a commit does)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(pond.location),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    return holder


def test_a_writer_waits_for_the_lock_then_fails_naming_the_holder(pond: Pond) -> None:
    pond.out("mkdir", "/a")
    txns = pond.txns()
    holder = hold_lock(pond, 120)
    try:
        before = stored_state(pond)
        started = time.monotonic()
        done, maintain, listing = side_by_side(
            lambda: pond.run("--wait", "1", "mkdir", "/b"),
            lambda: pond.run("--wait", "0", "maintain"),
            lambda: pond.text("ls", "/"))
        assert time.monotonic() - started >= 1  # it waited
        for process, command in ((done, "mkdir"), (maintain, "maintain")):
            err = process.stderr.decode()
            assert process.returncode == 1 and err.count("\n") == 1, err
            assert err.startswith(f"pond {command}: pond is locked by another writer: "
                                  f"pid {holder.pid}") and "test holder" in err, err
        assert listing == "a\n"  # readers need no lock
        assert stored_state(pond) == before
    finally:
        holder.kill()
        holder.wait()
    assert_untouched(pond, txns)
    pond.out("mkdir", "/b")
    assert pond.text("ls", "/").split() == ["a", "b"]


def test_a_writer_waits_for_another_writers_commit(pond: Pond) -> None:
    """The lock is held per commit: a writer that finds it taken waits (default 30 s)."""
    holder = hold_lock(pond, 1.5)
    try:
        pond.out("mkdir", "/b")  # waits for the holder, then commits
    finally:
        holder.kill()
        holder.wait()
    assert pond.text("ls", "/").split() == ["b"]
    bad = pond.run("--wait", "soon", "mkdir", "/c")
    assert bad.returncode == 2 and b"not a number of seconds: 'soon'" in bad.stderr


# ---------------------------------------------------------------------- crash atomicity

def data_files(pond: Pond) -> set[Path]:
    """The oplog's Parquet data files (not its commit log)."""
    return {p for p in (pond.location / "oplog").rglob("*.parquet") if "_delta_log" not in p.parts}


@pytest.mark.parametrize(("moment", "sig"), [("copying", signal.SIGKILL),
                                             ("committing", signal.SIGKILL),
                                             ("copying", signal.SIGINT),
                                             ("committing", signal.SIGINT)],
                         ids=["kill-copying", "kill-committing", "ctrl-c-copying",
                              "ctrl-c-committing"])
def test_killed_copy_commits_all_or_nothing(pond: Pond, tmp_path: Path, moment: str,
                                            sig: signal.Signals) -> None:
    """SIGKILL a ``pond cp -r`` of many files while it stores content, or as it commits
    (its oplog data file is written, the Delta log entry not yet), or interrupt it: the pond
    holds all of that transaction or none of it, passes check, and takes the next writer."""
    tree = tmp_path / "many"
    for d in range(30):
        sub = tree / f"d{d:02d}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03d}.txt").write_text(f"file {d}/{f}\n")
    # Large files (stored as objects) come first in the walk, so new objects show the copy
    # is under way with the small files still ahead.
    (tree / "a_large").mkdir()
    for f in range(20):
        (tree / "a_large" / f"blob{f:02d}.bin").write_bytes(os.urandom(100 * 1024))
    txns = pond.txns()
    objects = pond.location / "objects"
    objects_before = sum(1 for _ in objects.rglob("*"))
    data_before = data_files(pond)

    def under_way() -> bool:
        if moment == "copying":
            return sum(1 for _ in objects.rglob("*")) > objects_before + 5
        return bool(data_files(pond) - data_before)

    copier = subprocess.Popen([*POND_CMD, "cp", "-r", str(tree), "/many"], env=pond.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not under_way():
        assert copier.poll() is None, copier.stderr.read().decode()
        assert time.monotonic() < deadline, f"the copy never got to {moment}"
        time.sleep(0.002)
    copier.send_signal(sig)
    code = copier.wait()
    err = copier.stderr.read().decode()
    copier.stdout.close()
    copier.stderr.close()
    # The Delta log entry follows the data file within milliseconds: the copy may finish
    # between the poll and the signal, and then it must have committed everything.
    finished = moment == "committing" and code == 0
    if sig == signal.SIGINT:
        assert finished or (code == 130 and
                            err == "pond: interrupted; nothing was committed\n"), (code, err)
    else:
        assert finished or code == -signal.SIGKILL, code

    _, after, listing = side_by_side(pond.check_ok, pond.txns, lambda: pond.text("ls", "/"))
    if after == txns:
        assert not finished
        assert listing == ""
    else:
        assert after[1:] == txns and (finished or sig == signal.SIGKILL)
        assert listing == "many\n"
    # The lock went with the copy: the next writer commits, while a reader copies out.
    (tmp_path / "after.txt").write_text("after the crash\n")
    copies = [functools.partial(pond.out, "cp", str(tmp_path / "after.txt"), "/after.txt")]
    if after != txns:
        copies.append(functools.partial(pond.out, "cp", "-r", "pond:/many",
                                        str(tmp_path / "back")))
    side_by_side(*copies)
    if after != txns:
        assert tree_of(tmp_path / "back") == tree_of(tree)
    got = pond.outs(cat=("cat", "/after.txt"), log=("log", "-n", "1", "-o", "json"))
    assert got["cat"] == b"after the crash\n"
    assert json.loads(got["log"])[0]["txn"] == after[0] + 1


# ---------------------------------------------------------------------- the command itself

def test_help_and_exit_codes(tmp_path: Path) -> None:
    help_text = subprocess.run([*POND_CMD, "cp", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    assert "pond:/x" in help_text.stdout and "host:x" in help_text.stdout
    assert "unprefixed destination is a host" in " ".join(help_text.stdout.split())

    # main() ends with os._exit: the status must still be the command's.
    script = Path(sys.executable).parent / "pond"
    commands = [POND_CMD] + ([[str(script)]] if script.exists() else [])
    for i, command in enumerate(commands):
        location = tmp_path / f"pond{i}"
        done = subprocess.run([*command, "--pond", str(location), "init"], capture_output=True)
        assert done.returncode == 0 and done.stderr == b""
        done = subprocess.run([*command, "--pond", str(location), "cat", "/nope"],
                              capture_output=True)
        assert done.returncode == 1
    usage = subprocess.run([*POND_CMD, "frobnicate"], capture_output=True, text=True)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
