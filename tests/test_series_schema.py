"""The series schema guard: which versions join a series, and what a refused one leaves.

The reference is pyarrow and DuckDB on the same Parquet files: a series that was let in reads
as pyarrow's permissive concat of its versions (and as DuckDB's ``union_by_name`` read of
them); a version that cannot join is refused with one line, and the pond is as it was. A
history written below the guard (as a pond from before it could hold) is reported by
``pond check``, and reading it is one clear error, never a traceback.
"""

from __future__ import annotations

import errno
import io
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fuse_helpers import Mount
from test_cli import Pond, refuse, stored_state
from test_hydrovu import (  # noqa: F401 (credentials, hydrovu, location: fixtures)
    RESOURCE,
    collect,
    credentials,
    expected,
    hydrovu,
    location,
    series_path,
    setup,
    stored,
)

from pondfs import pond
from pondfs.resources import makedirs
from pondfs.testing.fake_hydrovu import DEMO_DATA_DIR, FakeHydroVu
from pondfs.tinyfs import FS, INLINE_LIMIT, SERIES, Checker, FsError, SchemaConflict, TxnInfo
from pondfs.tinyfs.formats import join_schema, parquet_bytes


def series_table(times: list[int], **columns: pa.Array) -> pa.Table:
    return pa.table({"timestamp": pa.array(times, pa.int64()), **columns})


#: Histories the rule lets in: each a list of versions, oldest first.
ACCEPTED = {
    "int32 widens to int64": [
        series_table([1, 2], x=pa.array([1, 2], pa.int32())),
        series_table([3], x=pa.array([2**40], pa.int64()))],
    "int64 then int32": [
        series_table([1], x=pa.array([2**40], pa.int64())),
        series_table([2], x=pa.array([7], pa.int32()))],
    "int to double": [
        series_table([1, 2], x=pa.array([1, 2], pa.int64())),
        series_table([3], x=pa.array([2.5], pa.float64()))],
    "unsigned to a wider signed": [
        series_table([1], x=pa.array([200], pa.uint8())),
        series_table([2], x=pa.array([-5], pa.int8()))],
    "a new column": [
        series_table([1, 2], x=pa.array([1.0, 2.0])),
        series_table([3], x=pa.array([3.0]), y=pa.array(["new"]))],
    "a missing column": [
        series_table([1], x=pa.array([1.0]), y=pa.array(["a"])),
        series_table([2], x=pa.array([2.0]))],
    "an all-null column takes any type": [
        series_table([1], x=pa.array([None], pa.null())),
        series_table([2], x=pa.array(["s"]))],
}

#: Versions the rule refuses after ``series_table([1], x=<the first>)``: (first, second).
REFUSED = {
    "double then string": (pa.array([1.0]), pa.array(["a"])),
    "string then double": (pa.array(["a"]), pa.array([1.0])),
    "int then bool": (pa.array([1]), pa.array([True])),
    "uint64 then a signed int": (pa.array([1], pa.uint64()), pa.array([1], pa.int64())),
    "timestamp unit": (pa.array([1], pa.timestamp("ms")), pa.array([1], pa.timestamp("us"))),
}


def reference(versions: list[pa.Table]) -> pa.Table:
    """What a series of ``versions`` reads as: pyarrow's permissive concat, by time."""
    merged = pa.concat_tables(versions, promote_options="permissive")
    return merged.take(pc.sort_indices(merged, [("timestamp", "ascending")]))


def new_series(fs: FS, name: str = "s.series") -> str:
    return fs.create(fs.resolve("/"), name, SERIES)


# ---------------------------------------------------------------------- tinyfs


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_an_accepted_history_reads_as_pyarrow_concat(fs: FS, case: str) -> None:
    """Each version in its own transaction, and all in one (merged while pending)."""
    versions = ACCEPTED[case]
    apart, together = new_series(fs, "apart.series"), new_series(fs, "together.series")
    fs.commit("create")
    for table in versions:
        fs.append_series(apart, table)
        fs.commit("append")
        fs.append_series(together, table)
    fs.commit("append all")
    want = reference(versions)
    for node_id in (apart, together):
        assert fs.read_series(node_id).equals(want)
        assert fs.series_schema(node_id) == want.schema
    assert Checker(fs).run().problems == []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_version_that_cannot_join_is_refused_and_nothing_staged(fs: FS, case: str) -> None:
    first, second = REFUSED[case]
    node_id = new_series(fs)
    fs.append_series(node_id, series_table([1], x=first))
    fs.commit("first")
    with pytest.raises(SchemaConflict) as raised:
        fs.append_series(node_id, series_table([2], x=second), what="v2 to s.series")
    assert raised.value.errno == errno.EINVAL
    assert str(raised.value).startswith(
        f"v2 to s.series: column 'x' is {second.type} but the series has {first.type}")
    assert not fs.dirty
    assert fs.read_series(node_id).equals(series_table([1], x=first))


def test_the_rule_agrees_with_pyarrow_on_what_it_lets_in() -> None:
    """Where the rule joins two types, the type is pyarrow's permissive promotion."""
    types = [pa.int8(), pa.uint8(), pa.int16(), pa.uint32(), pa.int32(), pa.int64(),
             pa.uint64(), pa.float32(), pa.float64(), pa.string(), pa.large_string(),
             pa.binary(), pa.bool_(), pa.null(), pa.timestamp("s")]
    joined = 0
    for a in types:
        for b in types:
            sa, sb = pa.schema([("x", a)]), pa.schema([("x", b)])
            try:
                got = join_schema(sa, sb, "t")
            except SchemaConflict:
                continue
            joined += 1
            assert got == pa.unify_schemas([sa, sb], promote_options="permissive"), (a, b)
    assert 0 < joined < len(types) ** 2


def append_below_the_guard(fs: FS, node_id: str, table: pa.Table) -> None:
    """Commit ``table`` as a new version of series ``node_id`` straight through the
    persistence, as a pond written before the guard may hold."""
    latest = fs.get(node_id)
    stored = fs.store.store([parquet_bytes(table)], INLINE_LIMIT)
    txn = fs.store.last_txn() + 1
    times = table.column("timestamp")
    fs.store.commit([latest.evolve(
        version=latest.version + 1, txn=txn, blake3=stored.blake3, size=stored.size,
        inline=stored.inline is not None, content=stored.inline,
        min_time=pc.min(times).as_py(), max_time=pc.max(times).as_py())],
        TxnInfo(txn, time.time_ns(), "below the guard", rows=1))


def test_a_bad_history_is_reported_by_check_and_is_an_error_to_read(fs: FS) -> None:
    node_id = new_series(fs)
    fs.append_series(node_id, series_table([1], x=pa.array([1.0])))
    fs.commit("first")
    append_below_the_guard(fs, node_id, series_table([2], x=pa.array(["a"])))
    old = FS(fs.store)
    assert Checker(old).run().problems == [
        "series /s.series: column 'x' is string in v2, double in the versions before it"]
    for read in (old.read_series, old.series_schema):
        with pytest.raises(SchemaConflict) as raised:
            read(node_id)
        assert raised.value.errno == errno.EIO and "column 'x' is string" in str(raised.value)
    with pytest.raises(FsError, match="column 'x'"):
        old.append_series(node_id, series_table([3], x=pa.array([2.0])))


# ---------------------------------------------------------------------- pond cp and pond check


def write(tmp_path: Path, name: str, table: pa.Table) -> str:
    path = tmp_path / name
    pq.write_table(table, path)
    return str(path)


@pytest.fixture
def cli_pond(tmp_path: Path) -> Pond:
    made = Pond(tmp_path / "pond")
    made.out("init")
    made.out("mkdir", "/m")
    return made


def test_pond_cp_widens_and_reads_as_duckdb_union_by_name(cli_pond: Pond, tmp_path: Path
                                                          ) -> None:
    """int32 -> int64 -> double in x, y new in v2 and missing in v3: pond cat equals DuckDB's
    union_by_name read of the same files (and pyarrow's concat)."""
    versions = [series_table([1, 2], x=pa.array([1, 2], pa.int32())),
                series_table([4], x=pa.array([2**40], pa.int64()), y=pa.array(["b"])),
                series_table([3], x=pa.array([0.5]))]
    files = [write(tmp_path, f"v{i}.parquet", t) for i, t in enumerate(versions, 1)]
    for f in files:
        cli_pond.out("cp", "--format", "series", f, "/m/s.series")
    got = pq.read_table(io.BytesIO(cli_pond.out("cat", "/m/s.series")))
    duck = duckdb.sql(f"SELECT * FROM read_parquet({files!r}, union_by_name=true) "
                      "ORDER BY timestamp").arrow()
    if isinstance(duck, pa.RecordBatchReader):
        duck = duck.read_all()
    assert got.to_pydict() == duck.to_pydict()
    assert [f.type for f in got.schema] == [f.type for f in duck.schema]
    assert got.equals(reference(versions))
    assert cli_pond.json("query", "SELECT sum(x) AS s FROM '/m/s.series'") == [
        {"s": 1 + 2 + 2**40 + 0.5}]
    cli_pond.check_ok()


def test_pond_cp_refuses_a_version_that_cannot_join(cli_pond: Pond, tmp_path: Path) -> None:
    v1 = write(tmp_path, "v1.parquet", series_table([1, 2], x=pa.array([1.0, 2.0])))
    v2 = write(tmp_path, "v2.parquet", series_table([3], x=pa.array(["a"])))
    cli_pond.out("cp", "--format", "series", v1, "/m/s.series")
    log = cli_pond.out("log")
    line = refuse(cli_pond, "cp", "--format", "series", v2, "/m/s.series",
                  mentions=f"{v2}: cannot append to s.series: column 'x' is string but the "
                  "series has double")
    assert line.startswith("pond cp: ")
    assert cli_pond.out("log") == log
    assert pq.read_table(io.BytesIO(cli_pond.out("cat", "/m/s.series"))).equals(
        pq.read_table(v1))
    cli_pond.check_ok()


def test_pond_check_reports_a_bad_history(cli_pond: Pond, tmp_path: Path) -> None:
    v1 = write(tmp_path, "v1.parquet", series_table([1], x=pa.array([1.0])))
    cli_pond.out("cp", "--format", "series", v1, "/m/s.series")
    with pond.open_fs(str(cli_pond.location), write=True) as fs:
        append_below_the_guard(fs, fs.resolve("/m/s.series"),
                               series_table([2], x=pa.array(["a"])))
    done = cli_pond.run("check")
    assert done.returncode == 1
    assert "series /m/s.series: column 'x' is string in v2, double in the versions before " \
        "it" in done.stdout.decode() + done.stderr.decode()
    cli_pond.fails("cat", "/m/s.series", mentions="column 'x' is string but the series has "
                   "double")
    before = stored_state(cli_pond)
    cli_pond.fails("cp", "--format", "series", v1, "/m/s.series", mentions="column 'x'")
    assert stored_state(cli_pond) == before


# ---------------------------------------------------------------------- collectors


def test_the_collector_path_is_guarded(
        location: str, hydrovu: FakeHydroVu, credentials: None,  # noqa: F811 (fixtures)
        tmp_path: Path) -> None:
    """A device series whose column is a string where HydroVu sends floats: that device's
    readings are refused (its failure names the series and the column) and its series is as
    it was; the other devices are collected."""
    device = "NoyoCenterAT500_1"
    column = next(c for c in expected(DEMO_DATA_DIR, device) if c != "timestamp")
    path = series_path(hydrovu, device)
    before = series_table([1], **{column: pa.array(["not a number"])})
    with pond.open_fs(location, write=True) as fs:
        folder = makedirs(fs, path.rsplit("/", 1)[0], 0, 0)
        node_id = fs.create(folder, path.rsplit("/", 1)[1], SERIES)
        fs.append_series(node_id, before)
        fs.commit("a string column")
    setup(location, hydrovu, tmp_path)
    report, txn = collect(location)
    (failure,) = report.failures
    assert failure.startswith(f"{RESOURCE}: device {device} (location ")
    assert f"{path}: column {column!r} is double but the series has string" in failure
    assert txn is not None
    with pond.open_fs(location) as fs:
        assert fs.read_series(fs.resolve(path)).equals(before)
        assert Checker(fs).run().problems == []
    collected = stored(location, hydrovu)
    assert sorted(collected) == sorted(hydrovu.locations.values())
    for name in collected:
        if name != device:
            assert collected[name] == expected(DEMO_DATA_DIR, name)


# ---------------------------------------------------------------------- the mount


def test_the_mount_reads_a_widened_series_and_cannot_write_one(tmp_path: Path) -> None:
    """Series are read-only through the mount (so the mount adds no versions to guard):
    writing one is EACCES and changes nothing; a widened series reads as pond cat has it;
    a bad history is EIO to read, and the mount lives on."""
    cli = Pond(tmp_path / "pond")
    cli.out("init")
    versions = ACCEPTED["int32 widens to int64"]
    for i, table in enumerate(versions):
        cli.out("cp", "--format", "series", write(tmp_path, f"v{i}.parquet", table), "/s.series")
    cli.out("cp", "--format", "series", write(tmp_path, "b.parquet", series_table(
        [1], x=pa.array([1.0]))), "/bad.series")
    with pond.open_fs(str(cli.location), write=True) as fs:
        append_below_the_guard(fs, fs.resolve("/bad.series"),
                               series_table([2], x=pa.array(["a"])))
    state = stored_state(cli)
    m = Mount(cli.location, tmp_path / "mnt").start()
    try:
        mounted = Path(m.mountpoint)
        assert pq.read_table(mounted / "s.series").equals(reference(versions))
        with pytest.raises(PermissionError):
            open(mounted / "s.series", "ab")
        with pytest.raises(OSError) as raised:
            (mounted / "bad.series").read_bytes()
        assert raised.value.errno == errno.EIO
        assert pq.read_table(mounted / "s.series").equals(reference(versions))
    finally:
        status = m.stop()
    assert status == 0, m.log()
    assert stored_state(cli) == state
