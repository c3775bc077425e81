"""The ``timeseries-join`` streams a window of time at a time: with windows of a few rows the
result is the same as DuckDB's whole-table join, across versions that overlap in time,
repeated times, rows outside the range or before the floor, columns some versions lack (and a
column whose type changes), and a stored file of several unsorted row groups."""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pondfs import pond
from pondfs.dynamic import join
from pondfs.resources import canonical, make_node, makedirs
from pondfs.tinyfs import read_all

duckdb = pytest.importorskip("duckdb")

T0 = 1_700_000_000
FLOOR = 946_684_800


def at(*ks: int) -> list[int]:
    return [T0 + 10 * k for k in ks]


# Each input's versions (oldest first), as stored.
S1 = [
    {"timestamp": at(*range(0, 41)), "x.u": [float(k) for k in range(0, 41)]},
    {"timestamp": at(*range(30, 71)), "x.u": [100.0 + k for k in range(30, 71)],
     "y.u": [None if k % 7 == 0 else 200.0 + k for k in range(30, 71)]},  # y: a new column
    {"timestamp": [100] + at(*range(5, 16)),  # 100: a clock glitch
     "x.u": [-1.0] + [None if k == 9 else 300.0 + k for k in range(5, 16)]},
]
S2 = [
    {"timestamp": at(*range(20, 91, 3)), "x.u": [400.0 + k for k in range(20, 91, 3)],
     "z.u": [500.0 + k for k in range(20, 91, 3)]},
    {"timestamp": at(*range(100, 121)), "z.u": list(range(100, 121))},  # z: int64 now
]
# A stored (not series) table: unsorted, a time twice (the later row wins), 4-row groups.
TABLE_KS = [77, 52, 110, 60, 95, 52, 61, 99, 50, 108, 70, 71, 72, 90]
TABLE = {"timestamp": at(*TABLE_KS),
         "x.u": [None if k in (60, 72) else 600.0 + i for i, k in enumerate(TABLE_KS)]}
SPEC = {"inputs": [
    {"pattern": "/dev/a/*.series", "scope": "A"},
    {"pattern": "/dev/b/*.series", "scope": "B", "range": {"begin": T0 + 250}},
    {"pattern": "/dev/table.parquet", "scope": "A"},  # later: wins on A.x.u unless null
]}


@pytest.fixture(scope="module")
def location(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("join") / "pond"
    pond.init(str(where))
    with pond.open_fs(str(where), write=True) as fs:
        for folder, versions in (("/dev/a", S1), ("/dev/b", S2)):
            node = fs.create(makedirs(fs, folder), "s.series", fmt="series")
            for columns in versions:
                fs.append_series(node, pa.table(columns))
                fs.commit("version")
        sink = io.BytesIO()
        pq.write_table(pa.table(TABLE), sink, row_group_size=4)
        fs.write_content(fs.create(fs.resolve("/dev"), "table.parquet"), [sink.getvalue()])
        make_node(fs, "timeseries-join", "/joined", canonical(SPEC))
        fs.commit("setup")
    return where


def reference() -> pa.Table:
    """DuckDB's answer: per input the newest row of each time (versions in order), then a
    full outer join on time, the later input winning on a shared column unless null."""
    con = duckdb.connect()
    inputs = [("s1", S1, FLOOR), ("s2", S2, T0 + 250), ("t", [TABLE], FLOOR)]
    for name, versions, low in inputs:
        tables = [pa.table(v).append_column("_o", pa.array(range(n * 1000, n * 1000 +
                                                                 len(v["timestamp"]))))
                  for n, v in enumerate(versions)]
        con.register(f"{name}_raw", pa.concat_tables(tables, promote_options="permissive"))
        con.execute(f"CREATE TABLE {name} AS SELECT * EXCLUDE (_o) FROM {name}_raw "
                    f"WHERE timestamp >= {low} "
                    "QUALIFY row_number() OVER (PARTITION BY timestamp ORDER BY _o DESC) = 1")
    return con.sql(
        'SELECT timestamp, coalesce(t."x.u", s1."x.u") AS "A.x.u", s1."y.u" AS "A.y.u", '
        's2."x.u" AS "B.x.u", s2."z.u" AS "B.z.u" FROM '
        "(SELECT timestamp FROM s1 UNION SELECT timestamp FROM s2 UNION "
        "SELECT timestamp FROM t) times LEFT JOIN s1 USING (timestamp) "
        "LEFT JOIN s2 USING (timestamp) LEFT JOIN t USING (timestamp) ORDER BY timestamp"
    ).to_arrow_table()


def test_join_node_equals_duckdb(location: Path) -> None:
    with pond.open_fs(str(location)) as fs:
        got = pq.read_table(io.BytesIO(read_all(fs, fs.resolve("/joined"))))
    want = reference()
    assert got.column_names == want.column_names
    assert got.to_pydict() == want.to_pydict()


@pytest.mark.parametrize("window_rows", [1, 5, 23, 1 << 20])
def test_join_in_small_windows_is_the_same(location: Path, window_rows: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(join, "WINDOW_ROWS", window_rows)
    sink = io.BytesIO()
    with pond.open_fs(str(location)) as fs:
        join.write_join(fs, join.check(SPEC), sink)
    written = pq.ParquetFile(io.BytesIO(sink.getvalue()))
    if window_rows < 10:
        assert written.metadata.num_row_groups > 10  # many windows, each written in turn
    got = written.read()
    assert got.schema.field("B.z.u").type == pa.float64()
    assert got.to_pydict() == reference().to_pydict()


def test_windows_cover_the_pieces_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(join, "WINDOW_ROWS", 10)

    class Source:
        pieces = [join._Piece(io.BytesIO, 0, 100, 0, 99),      # dense: cut evenly
                  join._Piece(io.BytesIO, 0, 4, 200, 203),     # after a gap
                  join._Piece(io.BytesIO, 0, 3, 202, 210)]
    windows = list(join._windows([Source()]))
    assert windows[0][0] == 0 and windows[-1][1] == 211
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in pairwise(windows))
    assert len(windows) >= 11
