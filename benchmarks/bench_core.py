#!/usr/bin/env python3
"""Core pond benchmarks (issue 2, point 9). Run by hand, not by the test suite.

    /work/venv/bin/python benchmarks/bench_core.py            # all four, default sizes
    /work/venv/bin/python benchmarks/bench_core.py --quick    # smaller smoke run
    /work/venv/bin/python benchmarks/bench_core.py --only cptree --only bigfile

1. cptree   `pond cp -r` of 10,000 files of 1 KiB (real pond, subprocess): one commit;
            time(10,000)/time(1,000) <= 12; ratio to host `cp -r` of the same tree.
2. history  `pond ls /` on a pond of 10,000 transactions vs one of 100: <= 2x.
            Building the 10,000 transactions (in-process, one fs.commit each) dominates
            (5-10 minutes). The built ponds get a log retention of 0 s instead of the
            pond's 1 hour, as if their commits had spanned hours: Delta then cleans up the
            log behind each checkpoint, as it does in a pond that lives that long.
            --history-cache DIR keeps the built ponds for the next run.
3. bigfile  1 GiB `pond cp` in and `pond cat` out vs host `cp`: >= 0.3x and >= 0.5x,
            peak RSS of the pond process < 256 MiB.
4. series   a series of 500 daily versions: reading one day touches only the version that
            overlaps it (and how long that takes against reading the whole series).

Each prints medians of several runs and its ratios; a summary table comes last. Scratch
directories live under $TMPDIR (default /tmp) and are removed afterwards (--keep keeps them).
The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

BENCHMARKS = ("cptree", "history", "bigfile", "series")


# ------------------------------------------------------------------------------ 1. cp -r

def make_tree(root: Path, files: int, per_dir: int, size: int = 1024) -> None:
    """``files`` files of ``size`` random bytes under ``root``: flat when ``per_dir`` is 0,
    else ``per_dir`` files in each of subdirectories d000, d001, ..."""
    root.mkdir(parents=True)
    rng = random.Random(files)
    for i in range(files):
        here = root if not per_dir else root / f"d{i // per_dir:03d}"
        if per_dir and i % per_dir == 0:
            here.mkdir()
        (here / f"f{i:05d}.bin").write_bytes(rng.randbytes(size))


def bench_cptree(args: argparse.Namespace, summary: c.Summary) -> None:
    small, large = (200, 2000) if args.quick else (1000, 10000)
    layout = "flat" if not args.per_dir else f"{args.per_dir} per directory"
    c.header(f"1. pond cp -r of {small:,} and {large:,} files of 1 KiB ({layout}), "
             f"{args.runs} runs")
    with c.scratch("cptree", args.keep) as work:
        trees = {}
        for n in (0, small, large):
            trees[n] = work / f"tree{n}"
            make_tree(trees[n], n, args.per_dir)
        c.sync()
        pond_times: dict[int, list[float]] = {n: [] for n in trees}
        host_times: dict[int, list[float]] = {n: [] for n in (small, large)}
        rss: dict[int, float] = {}
        for r in range(args.runs):
            for n in (0, small, large):
                if n:
                    dest = work / "hostcopy"
                    host_times[n].append(c.run(["cp", "-r", str(trees[n]), str(dest)]).seconds)
                    shutil.rmtree(dest)
                    c.sync()
                loc = str(work / f"pond{n}-{r}")
                c.pond(loc, "init")
                done = c.pond(loc, "cp", "-r", str(trees[n]), "/tree")
                pond_times[n].append(done.seconds)
                rss[n] = max(rss.get(n, 0.0), done.max_rss_mib)
                if r == args.runs - 1 and n:
                    names = n if not args.per_dir else -(-n // args.per_dir)
                    check_one_commit(loc, n, names, summary, f"cp -r {n:,} files")
                shutil.rmtree(loc)
                c.sync()
        for n in (small, large):
            c.detail(f"host cp -r {n:>6,} files: {c.spread(host_times[n])}")
        for n in (0, small, large):
            c.detail(f"pond cp -r {n:>6,} files: {c.spread(pond_times[n])}, "
                     f"peak RSS {rss[n]:.0f} MiB")
        t0, ts, tl = (c.median(pond_times[n]) for n in (0, small, large))
        ratio = tl / ts
        hs, hl = c.median(host_times[small]), c.median(host_times[large])
        c.detail(f"time({large:,}) / time({small:,}) = {ratio:.2f}  (target <= 12)")
        if ts - t0 > 0.05 * ts:
            c.detail(f"same without start-up (empty-tree copy {t0:.3f} s subtracted): "
                     f"{(tl - t0) / (ts - t0):.2f}")
        else:
            c.detail(f"(empty-tree copy {t0:.3f} s: start-up dominates the {small:,} copy)")
        c.detail(f"pond / host cp -r time at {large:,} files: {tl / hl:.1f}x "
                 f"({large / tl:,.0f} vs {large / hl:,.0f} files/s); "
                 f"at {small:,}: {ts / hs:.1f}x")
        c.detail(f"pond files/s without start-up: {(large - small) / (tl - ts):,.0f} "
                 f"(marginal, between {small:,} and {large:,})")
        summary.add(f"cp -r time({large // 1000}k)/time({small / 1000:g}k)", f"{ratio:.2f}",
                    "<= 12", ratio <= 12)
        summary.add(f"cp -r {large // 1000}k: pond/host time", f"{tl / hl:.1f}x "
                    f"({tl:.2f} s vs {hl:.3f} s)", "report", None)
        summary.add(f"cp -r {large // 1000}k: pond peak RSS", f"{rss[large]:.0f} MiB",
                    "report", None)


def check_one_commit(loc: str, files: int, names: int, summary: c.Summary, what: str) -> None:
    """The copy must be exactly one transaction after init, holding a row per file."""
    txns = json.loads(c.pond(loc, "log", "-o", "json", capture=True).stdout)
    copies = [t for t in txns if " cp " in f" {t['command']} " and t["txn"] > 1]
    listed = c.pond(loc, "ls", "/tree", capture=True).stdout.decode().split()
    rows = copies[0]["rows"] if copies else 0
    ok = len(txns) == 2 and len(copies) == 1 and rows >= files + 1 and len(listed) == names
    c.detail(f"{what}: {len(txns)} transactions in the pond ({len(copies)} by the copy, "
             f"{rows:,} rows); /tree lists {len(listed):,} names")
    summary.add(f"{what}: commits", f"{len(copies)} (+init)", "1", ok)


# ------------------------------------------------------------------------------ 2. history

HISTORY_DIRS = 10
HISTORY_FILES = 100


def build_history(loc: str, txns: int, label: str) -> dict:
    """A pond of exactly ``txns`` transactions, built in-process, one ``fs.commit`` each.

    The namespace ends the same whatever ``txns`` is (root: 10 directories and a README;
    each directory up to 100 small files), so only the history differs. After the mkdirs,
    of every 20 transactions 18 write or rewrite /dK/fNNN, one rewrites /README and one
    renames a root directory back and forth (/dK <-> /dK.old): the root directory and its
    partition gain history too, not just the leaves."""
    from deltalake import DeltaTable

    from pondfs import pond

    start = time.perf_counter()
    pond.init(loc)
    DeltaTable(str(Path(loc) / "oplog")).alter.set_table_properties(
        {"delta.logRetentionDuration": "interval 0 seconds"})
    latencies: list[float] = []
    with pond.open_fs(loc, write=True, holder=f"bench_core history ({label})") as fs:
        root = fs.resolve("/")
        dirs: list[tuple[str, str]] = []  # (node id, current name)
        files: dict[tuple[int, int], str] = {}
        readme = None
        for i in range(txns - 1):
            j = i - HISTORY_DIRS
            if j < 0:
                dirs.append((fs.mkdir(root, f"d{i}"), f"d{i}"))
            elif j % 20 == 19:
                k = (j // 20) % HISTORY_DIRS
                node, name = dirs[k]
                new = name[:-4] if name.endswith(".old") else name + ".old"
                fs.rename(root, name, root, new)
                dirs[k] = (node, new)
            elif j % 20 == 9:
                if readme is None:
                    readme = fs.create(root, "README")
                fs.write_content(readme, [f"pond history, transaction {i + 2}\n".encode()])
            else:
                k, f = j % HISTORY_DIRS, (j // HISTORY_DIRS) % HISTORY_FILES
                node = files.get((k, f))
                if node is None:
                    node = files[(k, f)] = fs.create(dirs[k][0], f"f{f:03d}")
                fs.write_content(node, [f"{i}\n".encode() * 8])
            t = time.perf_counter()
            fs.commit(f"bench {i}")
            latencies.append(time.perf_counter() - t)
            if txns >= 2000 and (i + 2) % 1000 == 0:
                recent = sorted(latencies[-1000:])
                c.detail(f"[{label}] {i + 2:>6,} transactions, {time.perf_counter() - start:6.1f}"
                         f" s; commit p50 {recent[500] * 1e3:.0f} ms, "
                         f"p99 {recent[990] * 1e3:.0f} ms")
        assert fs.as_of == txns, (fs.as_of, txns)
        files_now = fs.store.data_file_count()
        table_version = fs.store.table_version()
    seconds = time.perf_counter() - start
    lat = sorted(latencies)
    return {"seconds": seconds, "data_files": files_now, "table_version": table_version,
            "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]}


def in_process_ls(loc: str) -> dict[str, float]:
    """Seconds to open the pond (store + view) and to list / , in this process."""
    from pondfs import pond

    t0 = time.perf_counter()
    with pond.open_fs(loc) as fs:
        t1 = time.perf_counter()
        names = sorted(fs.listdir(fs.resolve("/")))
        t2 = time.perf_counter()
    assert names, "empty root"
    return {"open": t1 - t0, "list": t2 - t1, "total": t2 - t0}


def bench_history(args: argparse.Namespace, summary: c.Summary) -> None:
    few = 100
    many = 1000 if args.quick else args.history_txns
    reps = max(args.runs * 2 + 1, 5)
    c.header(f"2. pond ls / with {many:,} transactions vs {few}, median of {reps}")
    with c.scratch("history", args.keep) as work:
        ponds = {}
        for n in (few, many):
            cached = Path(args.history_cache) / f"pond{n}" if args.history_cache else None
            if cached is not None and (cached / "oplog").is_dir():
                c.detail(f"reusing {cached}")
                ponds[n] = str(cached)
                continue
            loc = str(cached) if cached is not None else str(work / f"pond{n}")
            built = build_history(loc, n, f"{n} txns")
            c.detail(f"built {n:,} transactions in {built['seconds']:.1f} s "
                     f"({built['seconds'] / n * 1e3:.0f} ms each; commit p50 "
                     f"{built['p50'] * 1e3:.0f} ms, p99 {built['p99'] * 1e3:.0f} ms); "
                     f"{built['data_files']} data files, Delta version {built['table_version']}")
            ponds[n] = loc
        for n, loc in ponds.items():
            log_dir = Path(loc) / "oplog" / "_delta_log"
            checkpoints = len(list(log_dir.glob("*.checkpoint.parquet")))
            entries = len(list(log_dir.glob("*.json")))
            txns = json.loads(c.pond(loc, "log", "-o", "json", "-n", "1", capture=True).stdout)
            c.detail(f"pond {n:>6,}: newest transaction {txns[0]['txn']:,}, "
                     f"{checkpoints} Delta checkpoints, {entries:,} log entries")
        c.sync()
        startup = [c.run([c.POND, "--version"]).seconds for _ in range(reps)]
        sub: dict[int, list[float]] = {few: [], many: []}
        subl: dict[int, list[float]] = {few: [], many: []}
        inproc: dict[int, list[dict[str, float]]] = {few: [], many: []}
        for _ in range(reps):  # interleaved, so drifting load hits both alike
            for n in (few, many):
                sub[n].append(c.pond(ponds[n], "ls", "/").seconds)
                subl[n].append(c.pond(ponds[n], "ls", "-l", "/").seconds)
                inproc[n].append(in_process_ls(ponds[n]))
        c.detail(f"python start-up + imports (pond --version): {c.spread(startup)}")
        for n in (few, many):
            c.detail(f"pond ls /    {n:>6,} txns: {c.spread(sub[n])}")
        for n in (few, many):
            c.detail(f"pond ls -l / {n:>6,} txns: {c.spread(subl[n])}")
        for n in (few, many):
            parts = {k: c.median([d[k] for d in inproc[n]]) for k in ("open", "list", "total")}
            c.detail(f"in-process   {n:>6,} txns: open {parts['open'] * 1e3:.1f} ms + "
                     f"resolve/listdir {parts['list'] * 1e3:.1f} ms = "
                     f"{parts['total'] * 1e3:.1f} ms")
        for n in (few, many):  # reads the transaction rows
            logs = [c.pond(ponds[n], "log", "-n", "1").seconds for _ in range(3)]
            c.detail(f"pond log -n 1 {n:>6,} txns: {c.spread(logs)}")
        ratio = c.median(sub[many]) / c.median(sub[few])
        ratio_l = c.median(subl[many]) / c.median(subl[few])
        tin = {n: c.median([d["total"] for d in inproc[n]]) for n in (few, many)}
        ratio_in = tin[many] / tin[few]
        c.detail(f"ratio pond ls / ({many:,}/{few}): {ratio:.2f} (target <= 2); "
                 f"ls -l: {ratio_l:.2f}; in-process open+list: {ratio_in:.2f}")
        summary.add(f"ls / {many // 1000}k txns vs {few} (subprocess)",
                    f"{ratio:.2f}x ({c.median(sub[many]):.2f} s vs {c.median(sub[few]):.2f} s)",
                    "<= 2x", ratio <= 2)
        summary.add(f"ls / {many // 1000}k vs {few}, in-process open+list",
                    f"{ratio_in:.2f}x ({tin[many] * 1e3:.0f} ms vs {tin[few] * 1e3:.0f} ms)",
                    "report", None)


# ------------------------------------------------------------------------------ 3. big file

def bench_bigfile(args: argparse.Namespace, summary: c.Summary) -> None:
    size = 128 * c.MiB if args.quick else args.big_mib * c.MiB
    c.header(f"3. a {size // c.MiB} MiB file: pond cp in, pond cat out, vs host cp; "
             f"{args.runs} runs")
    with c.scratch("bigfile", args.keep) as work:
        src = work / "big.bin"
        digest = hashlib.sha256()
        with open(src, "wb") as out:
            for _ in range(size // c.MiB):
                chunk = os.urandom(c.MiB)
                digest.update(chunk)
                out.write(chunk)
        want = digest.hexdigest()
        c.sync()
        t = {k: [] for k in ("host", "host_sync", "cp", "cat", "startup")}
        rss = {"cp": 0.0, "cat": 0.0}
        for r in range(args.runs):
            copy = work / "copy.bin"
            t["host"].append(c.run(["cp", str(src), str(copy)]).seconds)
            copy.unlink()
            c.sync()
            t["host_sync"].append(c.run(["sh", "-c", f"cp '{src}' '{copy}' && sync '{copy}'"]
                                        ).seconds)
            copy.unlink()
            c.sync()
            t["startup"].append(c.run([c.POND, "--version"]).seconds)
            loc = str(work / f"pond{r}")
            c.pond(loc, "init")
            c.sync()
            done = c.pond(loc, "cp", str(src), "/big.bin")
            t["cp"].append(done.seconds)
            rss["cp"] = max(rss["cp"], done.max_rss_mib)
            c.sync()
            done = c.pond(loc, "cat", "/big.bin", stdout_path=copy)
            t["cat"].append(done.seconds)
            rss["cat"] = max(rss["cat"], done.max_rss_mib)
            if copy.stat().st_size != size:
                raise RuntimeError(f"pond cat wrote {copy.stat().st_size} bytes, not {size}")
            if r == 0:
                got = hashlib.sha256()
                with open(copy, "rb") as f:
                    while chunk := f.read(c.MiB):
                        got.update(chunk)
                if got.hexdigest() != want:
                    raise RuntimeError("pond cat returned different bytes")
            copy.unlink()
            shutil.rmtree(loc)
            c.sync()
        mb = size / 1e6
        med = {k: c.median(v) for k, v in t.items()}
        for k, label in (("host", "host cp"), ("host_sync", "host cp + sync FILE"),
                         ("cp", "pond cp (in)"), ("cat", "pond cat > file (out)")):
            c.detail(f"{label:<22} {c.spread(t[k])}  = {mb / med[k]:7.0f} MB/s")
        c.detail(f"pond start-up (pond --version): {c.spread(t['startup'])}")
        c.detail(f"peak RSS: pond cp {rss['cp']:.0f} MiB, pond cat {rss['cat']:.0f} MiB")
        r_in, r_out = med["host"] / med["cp"], med["host"] / med["cat"]
        s = med["startup"]
        c.detail(f"pond cp  / host cp throughput: {r_in:.2f} (target >= 0.3); vs cp+sync: "
                 f"{med['host_sync'] / med['cp']:.2f}; without start-up: "
                 f"{med['host'] / max(med['cp'] - s, 1e-9):.2f}")
        c.detail(f"pond cat / host cp throughput: {r_out:.2f} (target >= 0.5); without "
                 f"start-up: {med['host'] / max(med['cat'] - s, 1e-9):.2f}")
        label = f"{size // c.MiB} MiB"
        summary.add(f"{label} pond cp in / host cp", f"{r_in:.2f}x ({mb / med['cp']:.0f} vs "
                    f"{mb / med['host']:.0f} MB/s)", ">= 0.3x", r_in >= 0.3)
        summary.add(f"{label} pond cat out / host cp", f"{r_out:.2f}x ({mb / med['cat']:.0f} "
                    f"vs {mb / med['host']:.0f} MB/s)", ">= 0.5x", r_out >= 0.5)
        peak = max(rss.values())
        summary.add(f"{label} peak RSS (cp, cat)", f"{rss['cp']:.0f}, {rss['cat']:.0f} MiB",
                    "< 256 MiB", peak < 256)


# ------------------------------------------------------------------------------ 4. series

DAY_US = 86_400 * 1_000_000
MINUTE_US = 60 * 1_000_000
SERIES_START = datetime(2023, 1, 1, tzinfo=UTC)


def day_table(day: int):
    """One day of minute readings: 1,440 rows, a UTC timestamp and four sensor columns
    (random walks rounded as instruments report them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    base = int(SERIES_START.timestamp() * 1e6) + day * DAY_US
    stamps = pa.array([base + i * MINUTE_US for i in range(1440)], pa.timestamp("us", "UTC"))
    columns = {"timestamp": stamps}
    for k, (name, level, step) in enumerate((("temperature", 12.0, 0.02),
                                             ("conductivity", 48000.0, 5.0),
                                             ("depth", 3.5, 0.002), ("ph", 7.9, 0.001))):
        noise = pc.subtract(pc.random(1440, initializer=day * 8 + k), 0.5)
        walk = pc.add(pc.multiply(pc.cumulative_sum(noise), step), level)
        columns[name] = pc.round(walk, 3)
    return pa.table(columns)


class Touches:
    """Counts what a view's persistence is asked for: versions' content (read_inline,
    open_object) and, underneath, oplog data files decoded for inline content."""

    def __init__(self, store):
        self.versions: list[tuple[str, int]] = []
        self.objects = 0
        self.files_decoded = 0
        self.rows_decoded = 0
        self.bytes_decoded = 0
        read_inline, open_object = store.read_inline, store.open_object

        def counted_inline(version):
            self.versions.append((version.node_id, version.version))
            return read_inline(version)

        def counted_object(digest):
            self.objects += 1
            return open_object(digest)

        store.read_inline = counted_inline
        store.open_object = counted_object
        reader = getattr(store, "_reader", None)  # OplogPersistence internals, if present
        if reader is not None and hasattr(reader, "inline_contents"):
            decode = reader.inline_contents

            def counted_decode(file):
                contents = decode(file)
                self.files_decoded += 1
                self.rows_decoded += len(contents)
                self.bytes_decoded += contents.nbytes
                return contents

            reader.inline_contents = counted_decode

    @property
    def touched(self) -> int:
        return len(self.versions) + self.objects

    def snapshot(self) -> Touches:
        """A frozen copy of the counts so far (later reads do not change it)."""
        copy = object.__new__(Touches)
        copy.__dict__.update(self.__dict__, versions=list(self.versions))
        return copy


def bench_series(args: argparse.Namespace, summary: c.Summary) -> None:
    from pondfs import pond

    versions = 100 if args.quick else args.series_versions
    reps = max(args.runs, 3) + 2
    path = "/hydrovu/station.series"
    c.header(f"4. a series of {versions} daily versions (1,440 rows each): one day vs all, "
             f"median of {reps} cold reads")
    with c.scratch("series", args.keep) as work:
        loc = str(work / "pond")
        t0 = time.perf_counter()
        pond.init(loc)
        stored = {"inline": 0, "object": 0}
        with pond.open_fs(loc, write=True, holder="bench_core series") as fs:
            d = fs.mkdir(fs.resolve("/"), "hydrovu")
            node = fs.create(d, "station.series", "series")
            fs.commit("setup")
            for day in range(versions):
                fs.append_series(node, day_table(day))
                fs.commit(f"day {day}")
                stored["inline" if fs.get(node).inline else "object"] += 1
        c.detail(f"built in {time.perf_counter() - t0:.1f} s; versions stored inline: "
                 f"{stored['inline']}, as objects: {stored['object']}")
        day = versions // 2
        start = int(SERIES_START.timestamp() * 1e6) + day * DAY_US
        window = (start, start + DAY_US - 1)
        results = {"day": [], "all": []}
        touches: dict[str, Touches] = {}
        warm: list[float] = []
        for _ in range(reps):
            for what, bounds in (("day", window), ("all", (None, None))):
                with pond.open_fs(loc) as fs:
                    node = fs.resolve(path)
                    counter = Touches(fs.store)
                    seconds, table = c.timed(fs.read_series, node, *bounds)
                    expected = 1440 if what == "day" else 1440 * versions
                    if table.num_rows != expected:
                        raise RuntimeError(f"read {table.num_rows} rows, expected {expected}")
                    results[what].append(seconds)
                    touches[what] = counter.snapshot()
                    if what == "day":
                        warm.append(c.timed(fs.read_series, node, *bounds)[0])
        with pond.open_fs(loc) as fs:
            overlapping = sum(1 for v in fs.versions(fs.resolve(path))
                              if v.min_time is not None and v.min_time <= window[1]
                              and v.max_time >= window[0])
        tday, tall = c.median(results["day"]), c.median(results["all"])
        for what in ("day", "all"):
            k = touches[what]
            c.detail(f"read_series {what:>3}: {c.spread(results[what])}; versions touched "
                     f"{k.touched} of {versions}; oplog data files decoded {k.files_decoded} "
                     f"({k.rows_decoded} inline contents, {k.bytes_decoded / 1e6:.1f} MB)")
        c.detail(f"one day warm (same view again): {c.spread(warm)}")
        c.detail(f"whole series / one day: {tall / tday:.1f}x the time")
        ok = touches["day"].touched == overlapping == 1
        summary.add(f"series {versions}v: versions touched for 1 day",
                    f"{touches['day'].touched} (of {versions})", f"{overlapping} overlapping",
                    ok)
        summary.add(f"series {versions}v: time 1 day vs whole",
                    f"{tday * 1e3:.0f} ms vs {tall * 1e3:.0f} ms ({tall / tday:.1f}x)",
                    "report", None)
        summary.add(f"series {versions}v: inline data decoded for 1 day",
                    f"{touches['day'].rows_decoded} contents, "
                    f"{touches['day'].bytes_decoded / 1e6:.1f} MB", "report", None)


# ------------------------------------------------------------------------------ main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller smoke run (2k files, 1k txns, 128 MiB, 100 versions)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS,
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 3, quick 2)")
    parser.add_argument("--per-dir", type=int, default=0,
                        help="cptree: files per subdirectory (default 0: one flat directory)")
    parser.add_argument("--history-txns", type=int, default=10_000,
                        help="history: transactions of the big pond (default 10000)")
    parser.add_argument("--history-cache", metavar="DIR",
                        help="history: build the ponds in DIR and keep them; reuse them "
                             "when present (the build of 10,000 commits takes minutes)")
    parser.add_argument("--big-mib", type=int, default=1024,
                        help="bigfile: size in MiB (default 1024)")
    parser.add_argument("--series-versions", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep scratch directories")
    args = parser.parse_args()
    args.runs = args.runs or (2 if args.quick else 3)
    chosen = args.only or list(BENCHMARKS)
    summary = c.Summary()
    print(c.compile_pondfs())
    print(f"pond: {c.POND}\npython: {sys.executable}\ncpus: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.2f}\nscratch: {os.environ.get('TMPDIR', '/tmp')}")
    started = time.perf_counter()
    for name in BENCHMARKS:
        if name in chosen:
            t = time.perf_counter()
            globals()[f"bench_{name}"](args, summary)
            c.detail(f"({name} took {time.perf_counter() - t:.0f} s)")
    summary.print()
    print(f"\ntotal {time.perf_counter() - started:.0f} s; "
          f"load average now {os.getloadavg()[0]:.2f}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
