#!/usr/bin/env python3
"""Dynamic nodes (issue 4, point 6). Run by hand, not by the test suite.

    /work/venv/bin/python benchmarks/bench_dynamic.py                 # all three, 5 rounds
    /work/venv/bin/python benchmarks/bench_dynamic.py --skip-large    # without the 20M rows

* **cold**: a pond holding the four shared devices as series and a ``temporal-reduce`` over
  them; each round empties the derived cache, opens a fresh view and computes all five
  resolutions of all four devices (20 files, each written to the cache as Parquet). The
  baseline is DuckDB running the equivalent SQL (``floor(timestamp / r) * r``, avg/min/max of
  every column, ``timestamp >= 2000-01-01``) on the same Parquet files, each result fetched
  as an Arrow table; DataFusion running the same SQL is shown too. Target: pond <= 1.5x
  DuckDB (the ratio of medians).
* **warm**: reading a cached derived file (the largest ``res=1h.parquet``) through a view,
  against reading a plain stored file of the same bytes. Target: >= 0.8x the plain speed.
* **large**: a synthetic series of 20 million rows (timestamp + 8 float64 columns, one row a
  minute, four versions of 5 million rows) reduced to all five resolutions in a fresh
  process; its peak RSS (``ru_maxrss``) must stay under 1 GiB.
* **join**: a ``timeseries-join`` of three synthetic series of 5 million rows each (timestamp +
  8 float64 columns; five versions each, the series offset and at different cadences so rows
  only partly coincide) computed in a fresh process; peak RSS under 1 GiB too.

The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datafusion
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pondfs import pond
from pondfs.resources import canonical, make_node, makedirs
from pondfs.tinyfs import read_all

SHARED = Path("/work/shared/data/hydrovu")
FLOOR = 946_684_800
RESOLUTIONS = {"1h": 3600, "2h": 7200, "4h": 14400, "12h": 43200, "24h": 86400}
COLD_TARGET = 1.5
WARM_TARGET = 0.8
RSS_LIMIT = 1 << 30
LARGE_ROWS = 20_000_000
LARGE_VERSIONS = 4
JOIN_SERIES, JOIN_ROWS, JOIN_VERSIONS = 3, 5_000_000, 5


def device_name(path: Path) -> str:
    return path.name.split("_archive")[0]


def make_devices_pond(location: Path, devices: list[Path]) -> None:
    pond.init(str(location))
    with pond.open_fs(str(location), write=True) as fs:
        folder = makedirs(fs, "/hydrovu/devices")
        for path in devices:
            node = fs.create(folder, device_name(path) + ".series", fmt="series")
            fs.append_series(node, pq.read_table(path))
        make_node(fs, "temporal-reduce", "/reduce",
                  canonical({"in_pattern": "/hydrovu/devices/*.series"}))
        fs.commit("bench setup")


def pond_cold(location: Path, devices: list[Path]) -> float:
    """Seconds to compute every resolution of every device from an empty cache."""
    shutil.rmtree(location / "cache", ignore_errors=True)
    started = time.perf_counter()
    with pond.open_fs(str(location)) as fs:
        for path in devices:
            for r in RESOLUTIONS:
                fs.stat(fs.resolve(f"/reduce/{device_name(path)}/res={r}.parquet"))
    return time.perf_counter() - started


def reduce_sql(source: str, seconds: int, columns: list[str], time: str = "timestamp") -> str:
    select = ", ".join(f'{fn}("{c}") AS "{c}.{fn}"' for c in columns
                       for fn in ("avg", "min", "max"))
    return (f"SELECT floor({time} / {seconds}) * {seconds} AS timestamp, {select} "
            f"FROM {source} WHERE {time} >= {FLOOR} GROUP BY 1 ORDER BY 1")


def columns_of(path: Path) -> list[str]:
    return [f.name for f in pq.read_schema(path) if f.name != "timestamp"]


def duckdb_cold(devices: list[Path]) -> float:
    started = time.perf_counter()
    con = duckdb.connect()
    for path in devices:
        for seconds in RESOLUTIONS.values():
            con.sql(reduce_sql(f"read_parquet('{path}')", seconds,
                               columns_of(path))).to_arrow_table()
    con.close()
    return time.perf_counter() - started


def datafusion_cold(devices: list[Path]) -> float:
    started = time.perf_counter()
    ctx = datafusion.SessionContext()
    for i, path in enumerate(devices):
        ctx.register_parquet(f"d{i}", str(path))
        for seconds in RESOLUTIONS.values():
            # DataFusion reads this column as a timestamp: back to epoch seconds.
            ctx.sql(reduce_sql(f"d{i}", seconds, columns_of(path),
                               "arrow_cast(timestamp, 'Int64')")).to_arrow_table()
    return time.perf_counter() - started


def warm(location: Path, devices: list[Path], rounds: int) -> tuple[float, float, int]:
    """Median seconds to read a cached derived file and a plain file of the same bytes."""
    biggest = max(devices, key=lambda p: p.stat().st_size)
    derived = f"/reduce/{device_name(biggest)}/res=1h.parquet"
    with pond.open_fs(str(location)) as fs:
        data = read_all(fs, fs.resolve(derived))
    with pond.open_fs(str(location), write=True) as fs:
        if fs.lookup(fs.resolve("/"), "plain.parquet") is None:
            node = fs.create(fs.resolve("/"), "plain.parquet")
            fs.write_content(node, [data])
            fs.commit("plain copy")
    times: dict[str, list[float]] = {"derived": [], "plain": []}
    with pond.open_fs(str(location)) as fs:
        for _ in range(rounds * 4):
            for what, path in (("derived", derived), ("plain", "/plain.parquet")):
                started = time.perf_counter()
                node = fs.resolve(path)
                size = fs.stat(node).size
                with fs.open_read(node) as f:
                    got = f.read()
                times[what].append(time.perf_counter() - started)
                assert len(got) == size == len(data)
    return statistics.median(times["derived"]), statistics.median(times["plain"]), len(data)


def make_large(location: Path) -> None:
    """A pond with one series of LARGE_ROWS rows (in LARGE_VERSIONS versions)."""
    pond.init(str(location))
    per = LARGE_ROWS // LARGE_VERSIONS
    with pond.open_fs(str(location), write=True) as fs:
        node = fs.create(makedirs(fs, "/big"), "sensor.series", fmt="series")
        make_node(fs, "temporal-reduce", "/reduce", canonical({"in_pattern": "/big/*.series"}))
        fs.commit("large setup")
        for v in range(LARGE_VERSIONS):
            start = FLOOR + v * per * 60
            times = pa.array(range(start, start + per * 60, 60), pa.int64())
            columns = {"timestamp": times}
            for c in range(8):
                columns[f"P{c}.unit"] = pc.multiply(pc.random(per), 100.0)
            fs.append_series(node, pa.table(columns))
            fs.commit(f"large version {v}")
            del columns, times


def reduce_large(location: str) -> dict:
    """In a fresh process: reduce the large series to every resolution."""
    started = time.perf_counter()
    rows = {}
    with pond.open_fs(location) as fs:
        for r in RESOLUTIONS:
            node = fs.resolve(f"/reduce/sensor/res={r}.parquet")
            fs.stat(node)
            with fs.open_read(node) as f:
                rows[r] = pq.ParquetFile(f).metadata.num_rows
    return {"seconds": time.perf_counter() - started, "rows": rows,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def make_join(location: Path) -> None:
    """A pond with JOIN_SERIES series of JOIN_ROWS rows (JOIN_VERSIONS versions each) and a
    timeseries-join of them at /joined."""
    pond.init(str(location))
    per = JOIN_ROWS // JOIN_VERSIONS
    with pond.open_fs(str(location), write=True) as fs:
        folder = makedirs(fs, "/big")
        nodes = [fs.create(folder, f"s{i}.series", fmt="series") for i in range(JOIN_SERIES)]
        make_node(fs, "timeseries-join", "/joined", canonical({"inputs": [
            {"pattern": "/big/s*.series", "scope": "S$0"}]}))
        fs.commit("join setup")
        for i, node in enumerate(nodes):
            step = 60 + 30 * i  # 60 s, 90 s, 120 s: every third minute all three have a row
            for v in range(JOIN_VERSIONS):
                start = FLOOR + i * 3600 + v * per * step
                columns = {"timestamp": pa.array(range(start, start + per * step, step),
                                                 pa.int64())}
                for c in range(8):
                    columns[f"P{c}.unit"] = pc.multiply(pc.random(per), 100.0)
                fs.append_series(node, pa.table(columns))
                fs.commit(f"join series {i} version {v}")
                del columns


def join_large(location: str) -> dict:
    """In a fresh process: compute the join of the large series."""
    started = time.perf_counter()
    with pond.open_fs(location) as fs:
        node = fs.resolve("/joined")
        size = fs.stat(node).size
        with fs.open_read(node) as f:
            meta = pq.ParquetFile(f).metadata
    return {"seconds": time.perf_counter() - started, "rows": meta.num_rows,
            "columns": meta.num_columns, "bytes": size,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def in_fresh_process(make: str, run: str, location: Path) -> tuple[float, dict]:
    """Seconds to build a pond with ``make`` (in one process), and what ``run`` returned
    on it (in another, so its peak RSS is its own)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                    f" import bench_dynamic as b; from pathlib import Path; "
                    f"b.{make}(Path(sys.argv[2]))",
                    str(Path(__file__).parent), str(location)], check=True)
    made = time.perf_counter() - started
    done = subprocess.run([sys.executable, __file__, run, str(location)],
                          check=True, capture_output=True, text=True)
    return made, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--only-join", action="store_true", help="only the large join")
    parser.add_argument("--reduce-large", help=argparse.SUPPRESS)
    parser.add_argument("--join-large", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reduce_large:
        print(json.dumps(reduce_large(args.reduce_large)))
        return 0
    if args.join_large:
        print(json.dumps(join_large(args.join_large)))
        return 0
    if args.only_join:
        return 1 if bench_join() else 0
    devices = sorted(args.data.glob("*.parquet"))
    rows = sum(pq.read_metadata(p).num_rows for p in devices)
    missed = False
    with tempfile.TemporaryDirectory(prefix="bench-dynamic-") as tmp:
        location = Path(tmp) / "pond"
        make_devices_pond(location, devices)
        pond_cold(location, devices)  # warm-up (imports, page cache)
        duckdb_cold(devices)
        results: dict[str, list[float]] = {"pond": [], "duckdb": [], "datafusion": []}
        for _ in range(args.rounds):
            results["pond"].append(pond_cold(location, devices))
            results["duckdb"].append(duckdb_cold(devices))
            results["datafusion"].append(datafusion_cold(devices))
        medians = {k: statistics.median(v) for k, v in results.items()}
        ratio = medians["pond"] / medians["duckdb"]
        print(f"cold: {len(devices)} devices, {rows} rows, {len(RESOLUTIONS)} resolutions "
              f"({len(devices) * len(RESOLUTIONS)} files), median of {args.rounds}:")
        for k, v in medians.items():
            print(f"  {k:<10} {v * 1000:8.1f} ms")
        print(f"  pond/duckdb = {ratio:.2f} (target <= {COLD_TARGET}); pond/datafusion = "
              f"{medians['pond'] / medians['datafusion']:.2f}")
        missed |= ratio > COLD_TARGET

        derived, plain, size = warm(location, devices, args.rounds)
        speed = plain / derived
        print(f"warm: {size / 1e6:.2f} MB file: derived {size / derived / 1e6:,.0f} MB/s "
              f"({derived * 1000:.2f} ms), plain {size / plain / 1e6:,.0f} MB/s "
              f"({plain * 1000:.2f} ms); derived/plain speed = {speed:.2f} "
              f"(target >= {WARM_TARGET})")
        missed |= speed < WARM_TARGET

    if not args.skip_large:
        with tempfile.TemporaryDirectory(prefix="bench-dynamic-large-") as tmp:
            location = Path(tmp) / "pond"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                            " import bench_dynamic as b; from pathlib import Path; "
                            "b.make_large(Path(sys.argv[2]))",
                            str(Path(__file__).parent), str(location)], check=True)
            made = time.perf_counter() - started
            done = subprocess.run([sys.executable, __file__, "--reduce-large", str(location)],
                                  check=True, capture_output=True, text=True)
            result = json.loads(done.stdout)
            print(f"large: {LARGE_ROWS:,} rows x 8 float columns (made in {made:.1f} s); "
                  f"5 resolutions reduced in {result['seconds']:.1f} s "
                  f"({LARGE_ROWS * len(RESOLUTIONS) / result['seconds'] / 1e6:.1f} M rows/s "
                  f"over the five passes), output rows {result['rows']}; peak RSS "
                  f"{result['maxrss'] / 2**20:.0f} MiB (limit {RSS_LIMIT / 2**20:.0f} MiB)")
            missed |= result["maxrss"] >= RSS_LIMIT
        missed |= bench_join()
    return 1 if missed else 0


def bench_join() -> bool:
    """Print the large join's measurements; True when its peak RSS misses the limit."""
    with tempfile.TemporaryDirectory(prefix="bench-dynamic-join-") as tmp:
        made, result = in_fresh_process("make_join", "--join-large", Path(tmp) / "pond")
    print(f"join: {JOIN_SERIES} series x {JOIN_ROWS:,} rows x 8 float columns (made in "
          f"{made:.1f} s) joined in {result['seconds']:.1f} s: {result['rows']:,} rows x "
          f"{result['columns']} columns, {result['bytes'] / 2**20:.0f} MiB; peak RSS "
          f"{result['maxrss'] / 2**20:.0f} MiB (limit {RSS_LIMIT / 2**20:.0f} MiB)")
    return result["maxrss"] >= RSS_LIMIT


if __name__ == "__main__":
    sys.exit(main())
