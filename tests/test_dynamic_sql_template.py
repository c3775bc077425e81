"""The sql-derived and template factories, on real ponds holding the shared HydroVu archives.

Expected values come from DuckDB reading the archive files themselves, never from the code
under test. Most tests use the Python API (one process); one story drives the ``pond``
command as a subprocess for apply errors, ``ls -l`` sizes and ``cat``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pondfs import pond, resources
from pondfs.dynamic import computed, sql_derived, template
from pondfs.kinds import KINDS
from pondfs.query import run_query
from pondfs.resources import SpecError
from pondfs.tinyfs import SERIES, TABLE, FsError, read_all

DATA = Path("/work/shared/data/hydrovu")
DEVICES = {"AT500_1": "NoyoCenterAT500_1", "AT500_2": "NoyoCenterAT500_2",
           "Vulink_1": "NoyoCenterVulink_1", "Vulink_2": "NoyoCenterVulink_2"}
POND_CMD = [sys.executable, "-m", "pondfs.cli"]

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="no shared HydroVu archives")


def archive(device: str) -> str:
    return str(DATA / f"{DEVICES[device]}_archive_20260209.series.parquet")


@pytest.fixture(scope="module")
def base_pond(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pond with the four archives as series /hydrovu/devices/<device>.series, and per
    device a stored directory /reduce/<device> of res=<d>.parquet tables whose columns are
    named as a join and reduce name them (<device>.<Param>.<Unit>.<agg>)."""
    location = tmp_path_factory.mktemp("base") / "pond"
    pond.init(str(location))
    with pond.open_fs(str(location), write=True) as fs:
        devices = resources.makedirs(fs, "/hydrovu/devices")
        reduce_dir = resources.makedirs(fs, "/reduce")
        for device in DEVICES:
            node = fs.create(devices, f"{device}.series", SERIES)
            fs.append_series(node, pq.read_table(archive(device)))
            site = fs.mkdir(reduce_dir, device)
            for res, seconds in (("24h", 86400), ("1h", 3600), ("4h", 14400)):
                node = fs.create(site, f"res={res}.parquet", TABLE)
                fs.write_table(node, reduced(device, seconds))
        fs.commit("set up")
    return location


def dd(query: str) -> pa.Table:
    """DuckDB's answer to ``query`` as an Arrow table."""
    result = duckdb.sql(query).arrow()
    return result.read_all() if isinstance(result, pa.RecordBatchReader) else result


def reduced(device: str, seconds: int) -> pa.Table:
    """avg/min/max per bucket of every parameter, named <device>.<Param>.<Unit>.<agg>."""
    table = pq.read_table(archive(device))
    params = [c for c in table.column_names if c != "timestamp"]
    aggs = ", ".join(f'{agg}("{p}") AS "{device}.{p}.{agg}"'
                     for p in params for agg in ("avg", "min", "max"))
    return dd(f"SELECT timestamp - timestamp % {seconds} AS timestamp, {aggs} "
              f"FROM '{archive(device)}' GROUP BY 1 ORDER BY 1")


@pytest.fixture
def location(base_pond: Path, tmp_path: Path) -> str:
    """A fresh copy of the base pond for one test."""
    copy = tmp_path / "pond"
    shutil.copytree(base_pond, copy)
    return str(copy)


def apply(location: str, kind: str, path: str, spec: dict) -> None:
    """Apply one resource as ``pond apply`` does (one transaction)."""
    resource = resources.Resource(kind, path.rsplit("/", 1)[-1], path, "", spec, "test",
                                  KINDS.settings(kind, spec))
    with pond.open_fs(location, write=True) as fs:
        resources.apply(fs, [resource])
        fs.commit("apply")


def cat(location: str, path: str) -> bytes:
    with pond.open_fs(location) as fs:
        return read_all(fs, fs.resolve(path))


def parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def listing(location: str, path: str) -> dict[str, int]:
    """Names and sizes in a (computed) directory, as ``ls -l`` gets them."""
    with pond.open_fs(location) as fs:
        return {name: fs.stat(node).size
                for name, node in sorted(fs.listdir(fs.resolve(path)).items())}


def append(location: str, path: str, table: pa.Table) -> None:
    with pond.open_fs(location, write=True) as fs:
        fs.append_series(fs.resolve(path), table)
        fs.commit("append")


def assert_close(got: pa.Table, want: pa.Table) -> None:
    """Equal column names and rows; floats to 1e-9 relative (nulls where nulls are)."""
    assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows
    for name in got.column_names:
        a, b = got.column(name), want.column(name)
        if pa.types.is_floating(a.type):
            assert a.is_null().equals(b.is_null()), name
            b = b.cast(a.type)
            bound = pc.multiply(pc.max_element_wise(pc.abs(a), pc.abs(b)), 1e-9)
            close = pc.less_equal(pc.abs(pc.subtract(a, b)), bound)
            assert pc.all(close).as_py() in (True, None), name
        else:
            assert a.to_pylist() == b.to_pylist(), name


HOURLY = """
    SELECT timestamp - timestamp % 3600 AS timestamp,
           avg("Temperature.C") AS "Temperature.C.avg",
           min("Temperature.C") AS "Temperature.C.min",
           max("Temperature.C") AS "Temperature.C.max",
           count(*) AS n
    FROM source WHERE timestamp >= 946684800 GROUP BY 1
"""


def duckdb_hourly(*files: str) -> pa.Table:
    return dd(HOURLY.replace("source", f"read_parquet({list(files)}, union_by_name=true)")
              + " ORDER BY 1")


# ---------------------------------------------------------------------- sql-derived


def test_sql_over_one_series_equals_duckdb(location: str) -> None:
    apply(location, "sql-derived", "/derived/hourly.parquet", {
        "source": "/hydrovu/devices/AT500_1.series", "mode": "series", "query": HOURLY})
    got = parquet(cat(location, "/derived/hourly.parquet"))
    want = duckdb_hourly(archive("AT500_1"))
    assert got.num_rows > 3000
    assert_close(got, want)  # series mode: ordered by time without an ORDER BY
    assert listing(location, "/derived")["hourly.parquet"] == len(
        cat(location, "/derived/hourly.parquet"))


def test_sql_union_of_matches_and_one_output_per_match(location: str) -> None:
    apply(location, "sql-derived", "/derived/all.parquet", {
        "source": "/hydrovu/devices/*.series", "mode": "series", "query": HOURLY})
    apply(location, "sql-derived", "/derived/hourly", {
        "source": "/hydrovu/devices/*_{1,2}.series", "name": "$0-$1-hourly.parquet",
        "mode": "series", "query": HOURLY})
    union = parquet(cat(location, "/derived/all.parquet"))
    assert_close(union, duckdb_hourly(*(archive(d) for d in DEVICES)))
    sizes = listing(location, "/derived/hourly")
    assert list(sizes) == [f"{d.replace('_', '-')}-hourly.parquet" for d in sorted(DEVICES)]
    for device in DEVICES:
        name = f"{device.replace('_', '-')}-hourly.parquet"
        data = cat(location, f"/derived/hourly/{name}")
        assert sizes[name] == len(data)
        assert_close(parquet(data), duckdb_hourly(archive(device)))


def test_sql_named_inputs_join(location: str) -> None:
    query = """
        SELECT water.timestamp, water."Temperature.C" AS water, air."Temperature.C" AS air,
               air."Baro.psi" AS baro
        FROM water JOIN air ON water.timestamp = air.timestamp ORDER BY 1, 2, 3, 4"""
    apply(location, "sql-derived", "/derived/both.parquet", {
        "inputs": {"water": "/hydrovu/devices/AT500_*.series",
                   "air": "/hydrovu/devices/Vulink_1.series"},
        "query": query})
    got = parquet(cat(location, "/derived/both.parquet"))
    water = f"read_parquet({[archive('AT500_1'), archive('AT500_2')]}, union_by_name=true)"
    want = dd(query.replace("FROM water", f"FROM {water} AS water")
              .replace("JOIN air", f"JOIN '{archive('Vulink_1')}' AS air"))
    assert got.num_rows > 10000
    assert_close(got, want)


def test_pond_query_reads_derived_files(location: str) -> None:
    apply(location, "sql-derived", "/derived/hourly", {
        "source": "/hydrovu/devices/*.series", "name": "$0.parquet", "mode": "series",
        "query": HOURLY})
    with pond.open_fs(location) as fs:
        got = run_query(fs, "SELECT count(*) AS n, sum(n) AS readings "
                            "FROM '/derived/hourly/*.parquet'").to_pylist()
    per_device = [duckdb_hourly(archive(d)) for d in DEVICES]
    assert got == [{"n": sum(t.num_rows for t in per_device),
                    "readings": sum(pc.sum(t["n"]).as_py() for t in per_device)}]
    apply(location, "template", "/site/pages", {
        "input": "/reduce/*", "name": "$0.md", "template": "{{ name }}"})
    with pond.open_fs(location) as fs, pytest.raises(
            FsError, match="/site/pages/AT500_1.md: not a Parquet file"):
        run_query(fs, "SELECT * FROM '/site/pages/AT500_1.md'")


def test_sql_cache_hits_and_new_versions(location: str) -> None:
    apply(location, "sql-derived", "/derived/hourly", {
        "source": "/hydrovu/devices/*.series", "name": "$0.parquet", "mode": "series",
        "query": HOURLY})
    before = {d: cat(location, f"/derived/hourly/{d}.parquet") for d in DEVICES}
    computed_so_far = computed.COMPUTATIONS["sql-derived"]
    assert {d: cat(location, f"/derived/hourly/{d}.parquet") for d in DEVICES} == before
    assert listing(location, "/derived/hourly") == {f"{d}.parquet": len(before[d])
                                                     for d in sorted(DEVICES)}
    assert computed.COMPUTATIONS["sql-derived"] == computed_so_far  # all cache hits

    # Two new hours of readings for one device: only its output is recomputed.
    last = pq.read_table(archive("Vulink_2"))["timestamp"][-1].as_py()
    new = pa.table({"timestamp": [last + 7200, last + 10800],
                    "Temperature.C": [21.5, 22.5]})
    append(location, "/hydrovu/devices/Vulink_2.series", new)
    after = {d: cat(location, f"/derived/hourly/{d}.parquet") for d in DEVICES}
    assert computed.COMPUTATIONS["sql-derived"] == computed_so_far + 1
    assert {d for d in DEVICES if after[d] != before[d]} == {"Vulink_2"}
    result = parquet(after["Vulink_2"])
    tail = result.slice(result.num_rows - 2).to_pylist()
    bucket = (last + 7200) // 3600 * 3600
    assert [row["timestamp"] for row in tail] == [bucket, bucket + 3600]
    assert [row["Temperature.C.avg"] for row in tail] == [21.5, 22.5]


def test_sql_moved_input_changes_the_result(location: str) -> None:
    """A file moved from one table's directory to the other's keeps its node id and bytes;
    the result still changes (the bindings are in the cache key)."""
    with pond.open_fs(location, write=True) as fs:
        top = fs.resolve("/")
        a, b = fs.mkdir(top, "a"), fs.mkdir(top, "b")
        for directory, name, rows in ((a, "x.series", 3), (a, "y.series", 2),
                                      (b, "z.series", 1)):
            fs.append_series(fs.create(directory, name, SERIES),
                             pa.table({"timestamp": list(range(1, rows + 1))}))
        fs.commit("tables")
    apply(location, "sql-derived", "/derived/count.parquet", {
        "inputs": {"left": "/a/*.series", "right": "/b/*.series"},
        "query": "SELECT (SELECT count(*) FROM left) AS l, (SELECT count(*) FROM right) AS r"})
    assert parquet(cat(location, "/derived/count.parquet")).to_pylist() == [{"l": 5, "r": 1}]
    with pond.open_fs(location, write=True) as fs:
        fs.rename(fs.resolve("/a"), "y.series", fs.resolve("/b"), "a.series")
        fs.commit("move")
    assert parquet(cat(location, "/derived/count.parquet")).to_pylist() == [{"l": 3, "r": 3}]


@pytest.mark.parametrize(("spec", "field", "reason"), [
    ({"source": "/x/*", "query": "SELEC 1"}, "spec.query", "ParserError"),
    ({"source": "/x/*", "query": "SELECT * FROM other"}, "spec.query", "'other' not found"),
    ({"source": "/x/*", "query": "CREATE TABLE t AS SELECT 1"}, "spec.query", "DDL"),
    ({"source": "/x/*", "query": "COPY (SELECT 1) TO '/tmp/x.csv'"}, "spec.query", "DML"),
    ({"source": "/x/*", "query": "SELECT 1; SELECT 2"}, "spec.query", "single SQL"),
    ({"source": "/x/*", "query": "  "}, "spec.query", "must not be empty"),
    ({"source": "/x/*"}, "spec.query", "missing"),
    ({"query": "SELECT 1"}, "spec.source", "neither"),
    ({"source": "/x", "inputs": {"a": "/y"}, "query": "SELECT 1"}, "spec.source", "both"),
    ({"source": "x/*", "query": "SELECT 1"}, "spec.source", "absolute"),
    ({"source": "/x/[a", "query": "SELECT 1"}, "spec.source", "unclosed '['"),
    ({"source": "/x/*", "name": "$1.parquet", "query": "SELECT 1"}, "spec.name",
     "refers to capture 1"),
    ({"inputs": {"Water": "/x"}, "query": "SELECT 1"}, "spec.inputs.Water", "lower-case"),
    ({"inputs": {"w": 3}, "query": "SELECT 1"}, "spec.inputs.w", "must be a string"),
    ({"inputs": {}, "query": "SELECT 1"}, "spec.inputs", "at least one"),
    ({"inputs": {"w": "/x"}, "name": "$0", "query": "SELECT 1"}, "spec.name", "one file"),
    ({"source": "/x", "query": "SELECT 1", "mode": "stream"}, "spec.mode", "table, series"),
    ({"source": "/x", "query": "SELECT 1", "time_column": "t"}, "spec.time_column",
     "mode: series"),
    ({"source": "/x", "query": "SELECT 1", "qeury": "x"}, "spec.qeury", "unknown field"),
])
def test_sql_spec_errors_name_the_field(spec: dict, field: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        sql_derived.check(spec)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_sql_column_errors_before_and_after_apply(location: str) -> None:
    bad = {"source": "/hydrovu/devices/AT500_1.series", "query": 'SELECT "Temp.C" FROM source'}
    sql_derived.check(bad)  # a column is only known once the inputs are
    with pond.open_fs(location) as fs:
        with pytest.raises(SpecError, match=r'spec.query: Schema error: No field named "Temp.C"'):
            sql_derived.verify(fs, sql_derived.check(bad))
        with pytest.raises(SpecError, match="spec.time_column: .* no column 'timestamp'"):
            sql_derived.verify(fs, sql_derived.check(
                {**bad, "mode": "series", "query": 'SELECT "DO.mg/L" FROM source'}))
        assert sql_derived.verify(fs, sql_derived.check({**bad, "query": HOURLY}))
        # Nothing to plan against yet: the error comes when the file is read.
        assert not sql_derived.verify(fs, sql_derived.check(
            {"inputs": {"a": "/hydrovu/devices/*", "b": "/nowhere/*"}, "query": "SELECT 1"}))
    apply(location, "sql-derived", "/derived/bad.parquet", bad)
    with pond.open_fs(location) as fs, pytest.raises(FsError, match="No field named"):
        read_all(fs, fs.resolve("/derived/bad.parquet"))


def test_sql_over_a_computed_input_is_planned_once_it_is_cached(location: str) -> None:
    apply(location, "sql-derived", "/derived/hourly", {
        "source": "/hydrovu/devices/*.series", "name": "$0.parquet", "mode": "series",
        "query": HOURLY})
    daily = {"source": "/derived/hourly/*.parquet", "name": "$0.parquet",
             "query": 'SELECT timestamp - timestamp % 86400 AS day, max("Temp.C.max") '
                      "FROM source GROUP BY 1"}
    with pond.open_fs(location) as fs:
        # Planning would compute the hourly files.
        assert not sql_derived.verify(fs, sql_derived.check(daily))
        so_far = computed.COMPUTATIONS["sql-derived"]
        read_all(fs, fs.resolve("/derived/hourly/AT500_1.parquet"))
        assert computed.COMPUTATIONS["sql-derived"] == so_far + 1
        with pytest.raises(SpecError, match='No field named "Temp.C.max"'):
            sql_derived.verify(fs, sql_derived.check(daily))
    daily["query"] = daily["query"].replace("Temp.C", "Temperature.C")
    apply(location, "sql-derived", "/derived/daily", daily)
    got = parquet(cat(location, "/derived/daily/AT500_1.parquet")).sort_by("day")
    hourly = HOURLY.replace("source", f"'{archive('AT500_1')}'")
    want = dd('SELECT timestamp - timestamp % 86400 AS day, max("Temperature.C.max") '
              f'AS "max(source.Temperature.C.max)" FROM ({hourly}) GROUP BY 1 ORDER BY 1')
    assert_close(got, want)


# ---------------------------------------------------------------------- template


SITE_PAGE = """\
# {{ name }} (site {{ captures[0] }})
resolutions: {{ resolutions | map(attribute='name') | join(', ') }}
{% for p in parameters -%}
## {{ p.label }} [{{ p.slug }}]
{% for i in p.instruments %}- {{ i.label }}: {{ i.columns.avg }} | {{ i.columns.min }} | \
{{ i.columns.max }}
{% endfor %}{% endfor -%}
"""


def test_template_per_match_captures_schema_and_resolutions(location: str) -> None:
    apply(location, "template", "/site/sites", {
        "input": "/reduce/*", "name": "$0.md", "template": SITE_PAGE})
    sizes = listing(location, "/site/sites")
    assert list(sizes) == [f"{d}.md" for d in sorted(DEVICES)]
    page = cat(location, "/site/sites/AT500_1.md").decode()
    assert sizes["AT500_1.md"] == len(page.encode())
    lines = page.splitlines()
    assert lines[:2] == ["# AT500_1 (site AT500_1)", "resolutions: 1h, 4h, 24h"]
    assert "## % Saturation O₂ (% sat) [saturation-o2-sat]" in lines
    assert "## Level: Depth to Water (m) [level-depth-to-water-m]" in lines
    at = lines.index("## DO (mg/L) [do-mg-l]")
    assert lines[at + 1] == "- AT500_1: AT500_1.DO.mg/L.avg | AT500_1.DO.mg/L.min | " \
                            "AT500_1.DO.mg/L.max"
    assert sum(line.startswith("## ") for line in lines) == 15  # every AT500 parameter


def test_template_context_of_a_file_match() -> None:
    described = template.describe_columns(pa.schema([
        ("timestamp", pa.int64()), ("Temperature.C", pa.float64()),
        ("AT500_1.Temperature.C.avg", pa.float64()), ("Vulink_1.Temperature.C.max", pa.float64()),
        ("count", pa.int64()), ("pH.pH.sum", pa.float64())]), "timestamp")
    assert [(c["instrument"], c["parameter"], c["unit"], c["aggregation"])
            for c in described["columns"]] == [
        ("", "Temperature", "C", ""), ("AT500_1", "Temperature", "C", "avg"),
        ("Vulink_1", "Temperature", "C", "max"), ("", "count", "", ""), ("", "pH", "pH", "sum")]
    temperature = described["parameters"][0]
    assert [(i["instrument"], i["columns"]) for i in temperature["instruments"]] == [
        ("", {"value": "Temperature.C"}), ("AT500_1", {"avg": "AT500_1.Temperature.C.avg"}),
        ("Vulink_1", {"max": "Vulink_1.Temperature.C.max"})]
    assert described["instruments"] == ["AT500_1", "Vulink_1"]
    assert [r["name"] for r in template.resolutions(
        "/r", ["res=24h.parquet", "res=2h.parquet", "x.md", "res=30m.parquet",
               "res=odd.parquet"])] == ["30m", "2h", "24h", "odd"]


PARAMETER_PAGE = """\
{{ parameter.label }}
{% for s in parameter.sources %}{{ s.label }} {{ s.columns.avg }} {{ s.resolutions[0].path }}
{% endfor %}"""


def test_template_per_parameter_and_one_index(location: str) -> None:
    apply(location, "template", "/site/params", {
        "input": "/reduce/*", "each": "parameter", "name": "$0.md",
        "template": PARAMETER_PAGE})
    apply(location, "template", "/site/index", {
        "input": "/reduce/*", "each": "all", "name": "index.md",
        "template": "{% for m in matches %}{{ m.name }}: {{ m.parameters | length }}\n"
                    "{% endfor %}"})
    names = list(listing(location, "/site/params"))
    assert "temperature-c.md" in names and "pulse-hz.md" in names
    assert len(names) == 18  # 15 of the AT500s (Temperature too), Baro, Battery Level, Pulse
    page = cat(location, "/site/params/temperature-c.md").decode().splitlines()
    assert page == ["Temperature (C)"] + [
        f"{d} {d}.Temperature.C.avg /reduce/{d}/res=1h.parquet" for d in sorted(DEVICES)]
    assert cat(location, "/site/index/index.md").decode() == \
        "AT500_1: 15\nAT500_2: 15\nVulink_1: 3\nVulink_2: 4\n"


def test_template_new_input_version_and_template_file(location: str) -> None:
    with pond.open_fs(location, write=True) as fs:
        site = resources.makedirs(fs, "/site")
        node = fs.create(site, "page.md.j2")
        fs.write_content(node, [b"{{ name }}: "
                                b"{{ columns | map(attribute='name') | join(', ') }}\n"])
        fs.commit("template")
    apply(location, "template", "/site/pages", {
        "input": "/hydrovu/devices/Vulink_*.series", "name": "Vulink_$0.md",
        "template_file": "/site/page.md.j2"})
    first = cat(location, "/site/pages/Vulink_2.md")
    assert first == b"Vulink_2.series: Baro.psi, Battery Level.%, Pulse.Hz, Temperature.C\n"
    assert listing(location, "/site/pages")["Vulink_2.md"] == len(first)  # renders Vulink_1
    so_far = computed.COMPUTATIONS["template"]
    assert cat(location, "/site/pages/Vulink_2.md") == first
    assert listing(location, "/site/pages")["Vulink_2.md"] == len(first)
    assert computed.COMPUTATIONS["template"] == so_far

    # A new version with a new column: its page changes, the other one is not recomputed.
    other = cat(location, "/site/pages/Vulink_1.md")
    append(location, "/hydrovu/devices/Vulink_2.series",
           pa.table({"timestamp": [1_800_000_000], "Salinity.psu": [33.1]}))
    assert cat(location, "/site/pages/Vulink_2.md") == \
        b"Vulink_2.series: Baro.psi, Battery Level.%, Pulse.Hz, Temperature.C, Salinity.psu\n"
    assert cat(location, "/site/pages/Vulink_1.md") == other
    assert computed.COMPUTATIONS["template"] == so_far + 1

    # A new version of the template file: every page changes.
    with pond.open_fs(location, write=True) as fs:
        fs.write_content(fs.resolve("/site/page.md.j2"), [b"{{ output }} {{ captures }}\n"])
        fs.commit("template v2")
    assert cat(location, "/site/pages/Vulink_1.md") == b"Vulink_1.md ['1']\n"


@pytest.mark.parametrize(("spec", "field", "reason"), [
    ({"name": "$0.md", "template": "x"}, "spec.input", "missing"),
    ({"input": "/r/*", "template": "x"}, "spec.name", "missing"),
    ({"input": "/r/*", "name": "$1.md", "template": "x"}, "spec.name", "refers to capture 1"),
    ({"input": "/r/*", "name": "$1.md", "each": "parameter", "template": "x"}, "spec.name",
     "slug"),
    ({"input": "/r/*", "name": "$0.md", "each": "all", "template": "x"}, "spec.name",
     "each: all"),
    ({"input": "/r/*", "name": "$0.md", "each": "site", "template": "x"}, "spec.each",
     "match, parameter, all"),
    ({"input": "/r/*", "name": "$0.md"}, "spec.template", "neither"),
    ({"input": "/r/*", "name": "$0.md", "template": "x", "template_file": "/t"},
     "spec.template", "both"),
    ({"input": "/r/*", "name": "$0.md", "template": "a\n{% for x in y %}"}, "spec.template",
     "line 2"),
    ({"input": "/r/*", "name": "$0.md", "template_file": "t.j2"}, "spec.template_file",
     "absolute"),
    ({"input": "/r/*", "name": "$0.md", "template": "x", "extra": 1}, "spec.extra",
     "unknown field"),
])
def test_template_spec_errors_name_the_field(spec: dict, field: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        template.check(spec)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_template_errors_at_render_name_the_template(location: str) -> None:
    apply(location, "template", "/site/bad", {
        "input": "/reduce/*", "name": "$0.md", "template": "{{ nope }}"})
    with pond.open_fs(location) as fs, pytest.raises(
            FsError, match="spec.template: rendering AT500_1.md: .*'nope' is undefined"):
        read_all(fs, fs.resolve("/site/bad/AT500_1.md"))
    # Sandboxed: a template cannot reach Python internals.
    apply(location, "template", "/site/evil", {
        "input": "/reduce/*", "name": "$0.md",
        "template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    with pond.open_fs(location) as fs, pytest.raises(FsError, match="unsafe|SecurityError"):
        read_all(fs, fs.resolve("/site/evil/AT500_1.md"))


# ---------------------------------------------------------------------- the pond command


def run_pond(location: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "POND": location}
    return subprocess.run([*POND_CMD, *args], env=env, capture_output=True, timeout=120)


def test_pond_command_story(location: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: pondfs/v1\nkind: sql-derived\nname: bad\npath: /derived/bad\n"
        "spec:\n  source: /hydrovu/devices/*.series\n  query: SELEC * FROM source\n")
    done = run_pond(location, "apply", "-f", str(bad))
    assert done.returncode != 0
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "document 1 (sql-derived bad): spec.query: SQL error: ParserError" in err
    # A misspelt column, found by planning the query against the inputs' schemas.
    bad.write_text(bad.read_text().replace("SELEC * FROM source", 'SELECT "Temp.C" FROM source'))
    done = run_pond(location, "apply", "-f", str(bad))
    assert done.returncode != 0 and done.stderr.count(b"\n") == 1
    assert 'document 1 (sql-derived bad): spec.query: Schema error: No field named "Temp.C"' \
        in done.stderr.decode()
    assert run_pond(location, "ls", "/").stdout.split() == [b"hydrovu", b"reduce"]

    good = tmp_path / "good.yaml"
    good.write_text(f"""\
apiVersion: pondfs/v1
kind: sql-derived
name: hourly
path: /derived/hourly
spec:
  source: /hydrovu/devices/*.series
  name: $0.parquet
  mode: series
  query: |{''.join(f'{chr(10)}    {line}' for line in HOURLY.strip().splitlines())}
---
apiVersion: pondfs/v1
kind: template
name: sites
path: /site/sites
spec:
  input: /reduce/*
  name: $0.md
  template: |
    # {{{{ name }}}}
    {{% for p in parameters %}}- {{{{ p.label }}}}
    {{% endfor %}}
""")
    done = run_pond(location, "apply", "-f", str(good))
    assert done.returncode == 0, done.stderr.decode()
    sizes = {}
    for directory in ("/derived/hourly", "/site/sites"):
        done = run_pond(location, "ls", "-l", directory)
        assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
        rows = [line.split() for line in done.stdout.decode().splitlines()]
        assert len(rows) == 4
        sizes[directory] = {row[-1]: int(row[4]) for row in rows}
    hourly = run_pond(location, "cat", "/derived/hourly/Vulink_1.parquet").stdout
    assert sizes["/derived/hourly"]["Vulink_1.parquet"] == len(hourly)
    assert_close(parquet(hourly), duckdb_hourly(archive("Vulink_1")))
    page = run_pond(location, "cat", "/site/sites/Vulink_1.md").stdout
    assert sizes["/site/sites"]["Vulink_1.md"] == len(page)
    assert page.decode() == "# Vulink_1\n- Baro (psi)\n- Battery Level (%)\n- Temperature (C)\n\n"


# ---------------------------------------------------------------------- with the other factories

SITE_OBSERVABLE = """\
---
title: {{ name }}
---
# {{ name }}

```js
const files = ({
{%- for r in resolutions %}
  {{ r.name | tojson }}: FileAttachment({{ ("data/reduce/" ~ name ~ "/" ~ r.file) | tojson }}),
{%- endfor %}
});
const seconds = {{ resolutions | map(attribute="seconds") | list | tojson }};
```
{% for p in parameters %}
## {{ p.label }}

```js
Plot.plot({y: {label: {{ p.label | tojson }}}, x: {type: "utc"}, marks: [
{%- for i in p.instruments %}
  Plot.areaY(data, {x: "timestamp", y1: {{ i.columns.min | tojson }}, \
y2: {{ i.columns.max | tojson }}, fillOpacity: 0.2}),
  Plot.lineY(data, {x: "timestamp", y: {{ i.columns.avg | tojson }}, \
stroke: {{ i.label | tojson }}}),
{%- endfor %}
]})
```
{% endfor -%}
"""


def test_template_over_join_and_reduce_pages_for_a_site(location: str) -> None:
    """The issue-7 pipeline in small: devices joined per site, reduced, one Observable page
    per site and one per parameter (line of avg, min-max band per instrument)."""
    sites = {"Center": ("AT500_1", "Vulink_1"), "North": ("AT500_2", "Vulink_2")}
    for site, devices in sites.items():
        apply(location, "timeseries-join", f"/combined/{site}", {"inputs": [
            {"pattern": f"/hydrovu/devices/{d}.series", "scope": d} for d in devices]})
    apply(location, "temporal-reduce", "/reduced", {
        "in_pattern": "/combined/*", "out_pattern": "$0", "resolutions": ["24h", "1h"]})
    apply(location, "template", "/site/sites", {
        "input": "/reduced/*", "name": "$0.md", "template": SITE_OBSERVABLE})
    apply(location, "template", "/site/params", {
        "input": "/reduced/*", "each": "parameter", "name": "$0.md",
        "template": PARAMETER_PAGE})
    assert list(listing(location, "/site/sites")) == ["Center.md", "North.md"]
    page = cat(location, "/site/sites/North.md").decode()
    assert '  "1h": FileAttachment("data/reduce/North/res=1h.parquet"),' in page
    assert "const seconds = [3600, 86400];" in page
    assert page.count("\n## ") == 18  # every parameter of an AT500 and a Vulink_2
    temperature = page[page.index("## Temperature (C)"):].split("```")[1]
    assert 'Plot.lineY(data, {x: "timestamp", y: "AT500_2.Temperature.C.avg", ' \
           'stroke: "AT500_2"}),' in temperature
    assert 'y1: "Vulink_2.Temperature.C.min", y2: "Vulink_2.Temperature.C.max"' in temperature
    # Names with '%' and non-ASCII characters stay intact, as JSON strings.
    assert 'y: "AT500_2.% Saturation O₂.% sat.avg", stroke: "AT500_2"' in page

    assert cat(location, "/site/params/temperature-c.md").decode().splitlines() == [
        "Temperature (C)",
        "AT500_1 AT500_1.Temperature.C.avg /reduced/Center/res=1h.parquet",
        "Vulink_1 Vulink_1.Temperature.C.avg /reduced/Center/res=1h.parquet",
        "AT500_2 AT500_2.Temperature.C.avg /reduced/North/res=1h.parquet",
        "Vulink_2 Vulink_2.Temperature.C.avg /reduced/North/res=1h.parquet"]
    # The page's data really has those columns.
    reduced_1h = parquet(cat(location, "/reduced/North/res=1h.parquet"))
    assert {"AT500_2.Temperature.C.avg", "Vulink_2.Temperature.C.max"} <= set(
        reduced_1h.column_names)
