"""Dynamic nodes (glob, timeseries-join, temporal-reduce) on real ponds and real device data.

Every downsampled value is checked against DuckDB running the same aggregation in SQL on the
original Parquet files (an independent computation), to 1e-9 relative. Cache behaviour is
checked by counting computations (:data:`pondfs.dynamic.computed.COMPUTATIONS`) and by the
files in ``<pond>/cache``.
"""

from __future__ import annotations

import errno
import io
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pondfs import pond
from pondfs.dynamic.computed import COMPUTATIONS
from pondfs.resources import canonical, make_node, makedirs
from pondfs.tinyfs import FS, FsError, read_all

duckdb = pytest.importorskip("duckdb")

DATA = Path("/work/shared/data/hydrovu")
DEVICES = sorted(DATA.glob("*.parquet"))
RESOLUTIONS = {"1h": 3600, "2h": 7200, "4h": 14400, "12h": 43200, "24h": 86400}
FLOOR = 946684800
POND_CMD = [sys.executable, "-m", "pondfs.cli"]

pytestmark = pytest.mark.skipif(len(DEVICES) != 4, reason=f"needs the device data in {DATA}")


def device_name(path: Path) -> str:
    return path.name.split("_archive")[0]


def make_devices(location: Path) -> Path:
    """A pond holding each shared device as /hydrovu/devices/<name>.series (one version)."""
    pond.init(str(location))
    with pond.open_fs(str(location), write=True) as fs:
        folder = makedirs(fs, "/hydrovu/devices")
        for path in DEVICES:
            node = fs.create(folder, device_name(path) + ".series", fmt="series")
            fs.append_series(node, pq.read_table(path))
        fs.commit("devices")
    return location


@pytest.fixture(scope="module")
def devices_pond(tmp_path_factory: pytest.TempPathFactory) -> Path:
    location = make_devices(tmp_path_factory.mktemp("devices") / "pond")
    with pond.open_fs(str(location), write=True) as fs:
        make_node(fs, "temporal-reduce", "/reduce",
                  canonical({"in_pattern": "/hydrovu/devices/*.series"}))
        fs.commit("reduce")
    return location


def read_parquet(fs: FS, path: str) -> pa.Table:
    return pq.read_table(io.BytesIO(read_all(fs, fs.resolve(path))))


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def reference(source: str, seconds: int, columns: list[str], aggs=("avg", "min", "max"),
              floor: int | None = FLOOR, time: str = "timestamp") -> pa.Table:
    """DuckDB's answer: the bucketed aggregation over ``source`` (a FROM clause)."""
    select = []
    for c in columns:
        for a in aggs:
            fn = {"avg": "avg", "min": "min", "max": "max", "count": "count", "sum": "sum"}[a]
            select.append(f"{fn}({quoted(c)}) AS {quoted(c + '.' + a)}")
    where = f"WHERE {time} >= {floor}" if floor is not None else ""
    sql = (f"SELECT floor({time} / {seconds})::BIGINT * {seconds} AS {time}, "
           f"{', '.join(select)} FROM {source} {where} GROUP BY 1 ORDER BY 1")
    return duckdb.sql(sql).to_arrow_table()


def assert_same(got: pa.Table, want: pa.Table, what: str) -> None:
    """Equal column names, equal bucket times, every value equal to 1e-9 relative."""
    assert got.column_names == want.column_names, what
    assert got.num_rows == want.num_rows, what
    for name in got.column_names:
        for i, (a, b) in enumerate(zip(got.column(name).to_pylist(),
                                       want.column(name).to_pylist(), strict=True)):
            if a is None or b is None:
                assert a is None and b is None, (what, name, i, a, b)
            elif not math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0):
                raise AssertionError((what, name, i, a, b))


def value_columns(path: Path) -> list[str]:
    return [f.name for f in pq.read_schema(path) if f.name != "timestamp"]


# ---------------------------------------------------------------------- temporal-reduce


def test_reduce_equals_duckdb_for_every_device_and_resolution(devices_pond: Path) -> None:
    with pond.open_fs(str(devices_pond)) as fs:
        assert sorted(fs.listdir(fs.resolve("/reduce"))) == sorted(map(device_name, DEVICES))
        glitches = 0
        for path in DEVICES:
            raw = pq.read_table(path, columns=["timestamp"]).column("timestamp")
            glitches += sum(1 for t in raw.to_pylist() if t < FLOOR)
            directory = f"/reduce/{device_name(path)}"
            assert sorted(fs.listdir(fs.resolve(directory))) == sorted(
                f"res={r}.parquet" for r in RESOLUTIONS)
            for text, seconds in RESOLUTIONS.items():
                got = read_parquet(fs, f"{directory}/res={text}.parquet")
                want = reference(f"read_parquet('{path}')", seconds, value_columns(path))
                assert_same(got, want, f"{path.name} {text}")
                assert min(got.column("timestamp").to_pylist()) >= FLOOR
        assert glitches, "the shared data should hold clock-glitch rows"


def test_listing_computes_nothing_and_stat_computes_one(tmp_path: Path) -> None:
    location = make_devices(tmp_path / "pond")
    with pond.open_fs(str(location), write=True) as fs:
        make_node(fs, "temporal-reduce", "/reduce",
                  canonical({"in_pattern": "/hydrovu/devices/*.series"}))
        fs.commit("reduce")
    cache = location / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    before = sum(COMPUTATIONS.values())
    with pond.open_fs(str(location)) as fs:
        for name in fs.listdir(fs.resolve("/reduce")):
            fs.listdir(fs.resolve(f"/reduce/{name}"))
            fs.stat(fs.resolve(f"/reduce/{name}"))
        assert sum(COMPUTATIONS.values()) == before
        assert not cache.exists() or not any(cache.rglob("dyn-*"))
        device = device_name(DEVICES[0])
        one = fs.resolve(f"/reduce/{device}/res=4h.parquet")
        size = fs.stat(one).size
        assert sum(COMPUTATIONS.values()) == before + 1
        # The size is exact, and reading (now or in another view) computes nothing more.
        assert len(read_all(fs, one)) == size
    with pond.open_fs(str(location)) as fs:
        assert len(read_all(fs, fs.resolve(f"/reduce/{device}/res=4h.parquet"))) == size
    assert sum(COMPUTATIONS.values()) == before + 1
    assert len(list(cache.rglob("dyn-*"))) == 1


def split_versions(path: Path) -> list[pa.Table]:
    """A device's rows as three versions with schema drift: the first lacks half the
    columns, the last lacks the other half, and a few rows repeat across versions."""
    table = pq.read_table(path)
    columns = value_columns(path)
    n = table.num_rows
    first = table.slice(0, n // 3).drop_columns(columns[: len(columns) // 2])
    middle = table.slice(n // 3 - 5, n // 3 + 5)
    last = table.slice(2 * n // 3).drop_columns(columns[len(columns) // 2:])
    return [first, middle, last]


def test_schema_drift_nulls_and_aggregations(tmp_path: Path) -> None:
    location = tmp_path / "pond"
    pond.init(str(location))
    path = DEVICES[0]
    versions = split_versions(path)
    with pond.open_fs(str(location), write=True) as fs:
        folder = makedirs(fs, "/data")
        node = fs.create(folder, "dev.series", fmt="series")
        for table in versions:
            fs.append_series(node, table)
            fs.commit("version")
        make_node(fs, "temporal-reduce", "/reduce", canonical({
            "in_pattern": "/data/*.series", "resolutions": ["30m", "1d"],
            "aggregations": [{"type": "avg", "columns": ["*.C", "DO.*"]},
                             {"type": "count"}, {"type": "sum", "columns": ["Depth.m"]},
                             {"type": "max", "columns": ["Temperature.C"]}]}))
        fs.commit("reduce")
    files = []
    for i, table in enumerate(versions):
        files.append(tmp_path / f"v{i}.parquet")
        pq.write_table(table, files[-1])
    source = f"read_parquet({[str(f) for f in files]}, union_by_name = true)"
    with pond.open_fs(str(location)) as fs:
        for text, seconds in (("30m", 1800), ("1d", 86400)):
            got = read_parquet(fs, f"/reduce/dev/res={text}.parquet")
            expect_columns = []
            # Columns come in order of first appearance over the versions.
            seen = [c for v in versions for c in v.column_names if c != "timestamp"]
            for c in dict.fromkeys(seen):
                aggs = [a for a, chosen in (
                    ("avg", c.endswith(".C") or c.startswith("DO.")), ("count", True),
                    ("sum", c == "Depth.m"), ("max", c == "Temperature.C")) if chosen]
                expect_columns += [(c, a) for a in aggs]
            names = ["timestamp"] + [f"{c}.{a}" for c, a in expect_columns]
            assert got.column_names == names
            parts = []
            for c, a in expect_columns:
                one = reference(source, seconds, [c], (a,))
                parts.append(one.column(1))
            want = pa.table([one.column(0)] + parts, names=names)
            assert_same(got, want, text)
            # Buckets from a version without a column count none of its values.
            counts = got.column(f"{versions[-1].column_names[1]}.count").to_pylist()
            assert 0 in counts and max(counts) > 0


def test_new_version_changes_exactly_the_affected_buckets(tmp_path: Path) -> None:
    location = make_devices(tmp_path / "pond")
    with pond.open_fs(str(location), write=True) as fs:
        make_node(fs, "temporal-reduce", "/reduce",
                  canonical({"in_pattern": "/hydrovu/devices/*.series"}))
        fs.commit("reduce")
    changed, other = device_name(DEVICES[1]), device_name(DEVICES[2])
    with pond.open_fs(str(location)) as fs:
        before = {(d, r): read_parquet(fs, f"/reduce/{d}/res={r}.parquet")
                  for d in (changed, other) for r in RESOLUTIONS}
    original = pq.read_table(DEVICES[1])
    times = [t for t in original.column("timestamp").to_pylist() if t >= FLOOR]
    # New rows: inside one existing day (late in the series), plus a day after the end.
    day = (times[-200] // 86400) * 86400
    new_times = [day + 1800 + 60 * i for i in range(3)] + [times[-1] + 86400 * 3]
    column = value_columns(DEVICES[1])[0]
    addition = pa.table({"timestamp": pa.array(new_times, pa.int64()),
                         column: pa.array([1e6, 2e6, None, 3e6], pa.float64())})
    with pond.open_fs(str(location), write=True) as fs:
        fs.append_series(fs.resolve(f"/hydrovu/devices/{changed}.series"), addition)
        fs.commit("new version")
    start = sum(COMPUTATIONS.values())
    with pond.open_fs(str(location)) as fs:
        for r in RESOLUTIONS:
            again = read_parquet(fs, f"/reduce/{other}/res={r}.parquet")
            assert again.equals(before[(other, r)])
        assert sum(COMPUTATIONS.values()) == start, "an unrelated input was recomputed"
        both = tmp_path / "addition.parquet"
        pq.write_table(addition, both)
        for r, seconds in RESOLUTIONS.items():
            after = read_parquet(fs, f"/reduce/{changed}/res={r}.parquet")
            source = f"read_parquet(['{DEVICES[1]}', '{both}'], union_by_name = true)"
            assert_same(after, reference(source, seconds, value_columns(DEVICES[1])), r)
            old = {row["timestamp"]: row for row in before[(changed, r)].to_pylist()}
            new = {row["timestamp"]: row for row in after.to_pylist()}
            affected = {(t // seconds) * seconds for t in new_times}
            assert set(new) - set(old) <= affected and set(new) - set(old)
            differing = {t for t in old if old[t] != new[t]}
            assert differing and differing <= affected, r
        assert sum(COMPUTATIONS.values()) == start + len(RESOLUTIONS)
        for r in RESOLUTIONS:  # a second read is a cache hit
            read_parquet(fs, f"/reduce/{changed}/res={r}.parquet")
        assert sum(COMPUTATIONS.values()) == start + len(RESOLUTIONS)


# ---------------------------------------------------------------------- timeseries-join


def series(fs: FS, folder: str, name: str, *versions: dict) -> str:
    node = fs.create(makedirs(fs, folder), name, fmt="series")
    for columns in versions:
        fs.append_series(node, pa.table(columns))
    return node


def test_join_scopes_outer_join_later_wins_floor_and_ranges(tmp_path: Path) -> None:
    location = tmp_path / "pond"
    pond.init(str(location))
    t0 = 1_700_000_000
    with pond.open_fs(str(location), write=True) as fs:
        series(fs, "/dev/a", "vulink1.series",
               {"timestamp": [120, t0, t0 + 60, t0 + 120], "T.C": [9.0, 1.0, 2.0, 3.0]},
               {"timestamp": [t0 + 120], "T.C": [33.0]})  # newer row for a repeated time
        series(fs, "/dev/a", "vulink2.series",
               {"timestamp": [t0 + 120, t0 + 180], "T.C": [None, 4.0]})
        series(fs, "/dev/b", "at500.series",
               {"timestamp": [t0 + 60, t0 + 240], "DO.mg/L": [7.0, 8.0],
                "T.C": [10.0, 11.0]})
        make_node(fs, "timeseries-join", "/combined/site", canonical({"inputs": [
            {"pattern": "/dev/a/vulink*.series", "scope": "Vulink"},
            {"pattern": "/dev/*/at500.series", "scope": "AT500_$0",
             "range": {"begin": t0 + 100}}]}))
        fs.commit("setup")
    with pond.open_fs(str(location)) as fs:
        got = read_parquet(fs, "/combined/site")
    assert got.column_names == ["timestamp", "Vulink.T.C", "AT500_b.DO.mg/L", "AT500_b.T.C"]
    assert got.to_pydict() == {
        "timestamp": [t0, t0 + 60, t0 + 120, t0 + 180, t0 + 240],
        # 120 is a clock glitch; t0+120 took the newer version of vulink1 (33), and
        # vulink2's null there does not hide it; vulink2 alone has t0+180.
        "Vulink.T.C": [1.0, 2.0, 33.0, 4.0, None],
        "AT500_b.DO.mg/L": [None, None, None, None, 8.0],  # range.begin drops t0+60
        "AT500_b.T.C": [None, None, None, None, 11.0],
    }


def test_join_of_real_devices_equals_duckdb(tmp_path: Path) -> None:
    location = make_devices(tmp_path / "pond")
    vulinks = [p for p in DEVICES if "Vulink" in p.name]
    with pond.open_fs(str(location), write=True) as fs:
        make_node(fs, "timeseries-join", "/combined/center", canonical({"inputs": [
            {"pattern": "/hydrovu/devices/NoyoCenter*.series", "scope": "$0"}]}))
        fs.commit("join")
    with pond.open_fs(str(location)) as fs:
        got = read_parquet(fs, "/combined/center")
    parts = []
    for i, path in enumerate(DEVICES):
        scope = device_name(path).removeprefix("NoyoCenter")
        cols = ", ".join(f"{quoted(c)} AS {quoted(scope + '.' + c)}"
                         for c in value_columns(path))
        parts.append(f"(SELECT DISTINCT ON (timestamp) timestamp, {cols} FROM "
                     f"read_parquet('{path}') WHERE timestamp >= {FLOOR}) d{i}")
    sql = f"SELECT * FROM {parts[0]}"
    for part in parts[1:]:
        sql += f" FULL OUTER JOIN {part} USING (timestamp)"
    want = duckdb.sql(sql + " ORDER BY timestamp").to_arrow_table()
    assert vulinks and got.num_rows == want.num_rows
    assert sorted(got.column_names) == sorted(want.column_names)
    assert got.column("timestamp").to_pylist() == want.column("timestamp").to_pylist()
    assert_same(got, want.select(got.column_names), "join")


# ---------------------------------------------------------------------- glob


def test_glob_entries_are_the_matched_nodes(tmp_path: Path) -> None:
    location = tmp_path / "pond"
    pond.init(str(location))
    with pond.open_fs(str(location), write=True) as fs:
        series(fs, "/sites/north", "temp.series", {"timestamp": [1, 2], "v": [1.0, 2.0]})
        series(fs, "/sites/south", "temp.series", {"timestamp": [3], "v": [3.0]})
        makedirs(fs, "/sites/south/notes")
        note = fs.create(fs.resolve("/sites/south/notes"), "readme.txt")
        fs.write_content(note, [b"hello"])
        make_node(fs, "glob", "/by-site", canonical({
            "in_pattern": "/sites/*/temp.series", "out_pattern": "$0-temp.series"}))
        make_node(fs, "glob", "/dirs", canonical({"in_pattern": "/sites/*"}))
        make_node(fs, "temporal-reduce", "/reduce", canonical({
            "in_pattern": "/by-site/*-temp.series", "resolutions": ["1d"], "floor": None}))
        fs.commit("setup")
    with pond.open_fs(str(location)) as fs:
        assert sorted(fs.listdir(fs.resolve("/by-site"))) == ["north-temp.series",
                                                               "south-temp.series"]
        assert read_all(fs, fs.resolve("/by-site/north-temp.series")) == read_all(
            fs, fs.resolve("/sites/north/temp.series"))
        assert read_all(fs, fs.resolve("/dirs/south/notes/readme.txt")) == b"hello"
        assert sorted(fs.listdir(fs.resolve("/dirs/south"))) == ["notes", "temp.series"]
        assert read_parquet(fs, "/reduce/north/res=1d.parquet").to_pydict() == {
            "timestamp": [0], "v.avg": [1.5], "v.min": [1.0], "v.max": [2.0]}
    with pond.open_fs(str(location), write=True) as fs:
        with pytest.raises(FsError) as caught:
            fs.create(fs.resolve("/by-site"), "new", fmt="data")
        assert caught.value.errno == errno.EROFS


def test_glob_reduce_with_floor_off(tmp_path: Path) -> None:
    location = tmp_path / "pond"
    pond.init(str(location))
    with pond.open_fs(str(location), write=True) as fs:
        series(fs, "/s", "x.series", {"timestamp": [-7200, -1, 0, 3599, 3600],
                                      "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
        make_node(fs, "temporal-reduce", "/reduce", canonical({
            "in_pattern": "/s/*.series", "floor": None, "resolutions": ["1h"]}))
        fs.commit("setup")
    with pond.open_fs(str(location)) as fs:
        got = read_parquet(fs, "/reduce/x/res=1h.parquet").to_pydict()
    # Buckets are floor(t / 1h) * 1h: -1 falls in [-3600, 0), not [0, 3600).
    assert got["timestamp"] == [-7200, -3600, 0, 3600]
    assert got["v.avg"] == [1.0, 2.0, 3.5, 5.0]


# ---------------------------------------------------------------------- the pond command


def pond_cmd(location: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "POND": str(location)}
    done = subprocess.run([*POND_CMD, *args], env=env, capture_output=True, timeout=300)
    if ok:
        assert done.returncode == 0, (args, done.stderr.decode())
    else:
        assert done.returncode != 0, (args, done.stdout.decode())
        err = done.stderr.decode()
        assert "Traceback" not in err and err.count("\n") == 1, err
    return done


RESOURCES = """\
apiVersion: pondfs/v1
kind: temporal-reduce
name: reduce
path: /reduce
spec:
  in_pattern: /combined/*
  resolutions: [1h, 2h, 4h, 12h, 24h]
---
apiVersion: pondfs/v1
kind: glob
name: vulinks
path: /vulinks
spec:
  in_pattern: /hydrovu/devices/NoyoCenterVulink_*.series
  out_pattern: vulink$0.series
---
apiVersion: pondfs/v1
kind: timeseries-join
name: Center
path: /combined/Center
spec:
  inputs:
    - {pattern: /vulinks/*.series, scope: Vulink}
    - {pattern: /hydrovu/devices/NoyoCenterAT500_*.series, scope: AT500}
"""


def test_apply_orders_by_dependency_and_cli_reads(tmp_path: Path) -> None:
    location = make_devices(tmp_path / "pond")
    (tmp_path / "noyo.yaml").write_text(RESOURCES)
    out = pond_cmd(location, "apply", "-f", str(tmp_path / "noyo.yaml")).stdout.decode()
    lines = [line.split()[1] for line in out.splitlines() if line.startswith("created")]
    assert lines == ["/vulinks", "/combined/Center", "/reduce"]
    again = pond_cmd(location, "apply", "-f", str(tmp_path / "noyo.yaml")).stdout.decode()
    assert "nothing changed" in again
    listing = pond_cmd(location, "ls", "/reduce/Center").stdout.decode().split()
    assert sorted(listing) == sorted(f"res={r}.parquet" for r in RESOLUTIONS)
    data = pond_cmd(location, "cat", "/reduce/Center/res=24h.parquet").stdout
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names[0] == "timestamp"
    assert "Vulink.Temperature.C.avg" in table.column_names
    assert "AT500.Temperature.C.max" in table.column_names
    with pond.open_fs(str(location)) as fs:
        assert read_parquet(fs, "/reduce/Center/res=24h.parquet").equals(table)
    described = pond_cmd(location, "describe", "/reduce").stdout.decode()
    assert "kind: temporal-reduce" in described and "in_pattern: /combined/*" in described


BAD = {
    "bad duration": ("kind: temporal-reduce\nname: r\nspec:\n  in_pattern: /hydrovu/*\n"
                     "  resolutions: [1h, 90x]\n", "spec.resolutions[1]"),
    "unknown aggregation": ("kind: temporal-reduce\nname: r\nspec:\n  in_pattern: /hydrovu/*\n"
                            "  aggregations: [{type: median}]\n", "spec.aggregations[0].type"),
    "bad glob": ("kind: glob\nname: g\nspec:\n  in_pattern: /hydrovu/[a\n", "spec.in_pattern"),
    "bad capture": ("kind: glob\nname: g\nspec:\n  in_pattern: /hydrovu/*\n"
                    "  out_pattern: $3\n", "spec.out_pattern"),
    "missing field": ("kind: timeseries-join\nname: j\nspec:\n  inputs:\n"
                      "    - {pattern: /hydrovu/*}\n", "spec.inputs[0].scope"),
    "unknown field": ("kind: glob\nname: g\nspec:\n  in_pattern: /hydrovu/*\n  outpattern: x\n",
                      "spec.outpattern"),
    "bad floor": ("kind: timeseries-join\nname: j\nspec:\n  floor: yesterday\n  inputs:\n"
                  "    - {pattern: /hydrovu/*, scope: x}\n", "spec.floor"),
    "missing input": ("kind: temporal-reduce\nname: r\nspec:\n  in_pattern: /nowhere/*\n",
                      "/nowhere does not exist"),
    "cycle": ("kind: glob\nname: a\npath: /a/x\nspec:\n  in_pattern: /b/*\n---\n"
              "apiVersion: pondfs/v1\nkind: glob\nname: b\npath: /b/y\nspec:\n"
              "  in_pattern: /a/*\n", "cycle"),
}


def test_apply_errors_name_file_document_and_field(tmp_path: Path) -> None:
    location = make_devices(tmp_path / "pond")
    txns = pond_cmd(location, "log").stdout
    for what, (text, mention) in BAD.items():
        path = tmp_path / f"{what.replace(' ', '-')}.yaml"
        path.write_text("apiVersion: pondfs/v1\n" + text)
        err = pond_cmd(location, "apply", "-f", str(path), ok=False).stderr.decode()
        assert mention in err, (what, err)
        if what not in ("cycle",):
            assert str(path) in err and "document 1" in err, (what, err)
        else:
            assert "glob a at /a/x" in err and "glob b at /b/y" in err, err
    assert pond_cmd(location, "log").stdout == txns  # nothing was written


# ---------------------------------------------------------------------- through the mount

@pytest.mark.fuse
def test_mount_shows_dynamic_nodes_read_only_and_follows_new_inputs(tmp_path: Path) -> None:
    from fuse_helpers import Mount

    location = tmp_path / "pond"
    pond.init(str(location))
    device = DEVICES[3]
    table = pq.read_table(device)
    with pond.open_fs(str(location), write=True) as fs:
        folder = makedirs(fs, "/raw")
        node = fs.create(folder, "dev.parquet", fmt="data")
        fs.write_content(node, [pq_bytes(table.slice(0, table.num_rows // 2))])
        make_node(fs, "temporal-reduce", "/reduce", canonical({"in_pattern": "/raw/*.parquet"}))
        make_node(fs, "glob", "/all", canonical({"in_pattern": "/raw/*"}))
        fs.commit("setup")
    mount = Mount(location, tmp_path / "mnt").start()
    try:
        root = mount.path()
        assert sorted(os.listdir(root / "reduce" / "dev")) == sorted(
            f"res={r}.parquet" for r in RESOLUTIONS)
        one = root / "reduce" / "dev" / "res=1h.parquet"
        data = one.read_bytes()
        assert os.stat(one).st_size == len(data)
        with pond.open_fs(str(location)) as fs:
            assert data == read_all(fs, fs.resolve("/reduce/dev/res=1h.parquet"))
        shutil.copy(one, tmp_path / "copy.parquet")
        assert (tmp_path / "copy.parquet").read_bytes() == data
        assert (root / "all" / "dev.parquet").read_bytes() == (root / "raw" /
                                                              "dev.parquet").read_bytes()
        for attempt in (lambda: open(one, "wb"), lambda: open(root / "reduce" / "new", "w"),
                        lambda: os.unlink(one), lambda: os.mkdir(root / "reduce" / "d")):
            with pytest.raises(OSError) as caught:
                attempt()
            assert caught.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        with pytest.raises(OSError) as caught:  # O_TRUNC, even read-only, is a write
            os.open(one, os.O_RDONLY | os.O_TRUNC)
        assert caught.value.errno == errno.EROFS
        assert one.read_bytes() == data
        # A new version of the input, written through the mount itself.
        (root / "raw" / "dev.parquet").write_bytes(pq_bytes(table))
        os.sync()
        fresh = one.read_bytes()
        assert fresh != data and os.stat(one).st_size == len(fresh)
        got = pq.read_table(io.BytesIO(fresh))
        want = reference(f"read_parquet('{device}')", 3600, value_columns(device))
        assert_same(got, want, "after the new version")
    finally:
        status = mount.stop()
    assert status == 0 and not mount.problems(), mount.log()


def pq_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
