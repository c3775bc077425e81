"""The ``temporal-reduce`` factory (DuckPond's reduce): series downsampled to several
resolutions, for charts that pick a resolution by the time window shown.

::

    apiVersion: pondfs/v1
    kind: temporal-reduce
    name: reduce
    path: /reduce
    spec:
      in_pattern: /combined/*          # every matched file is reduced ...
      out_pattern: $0                  # ... into a directory of this name (captures $0, $1..)
      time_column: timestamp           # the default (a stored series knows its own)
      floor: 2000-01-01                # rows before it are clock glitches (the default)
      resolutions: [1h, 2h, 4h, 12h, 24h]     # the default; s, m, h, d, w
      aggregations:                    # the default: avg, min, max of every numeric column
        - type: avg                    # avg, min, max, count (non-null values) or sum
          columns: ["*.C", "Temperature.*"]   # globs over column names; default: all numeric
        - type: max

``/reduce/<name>/res=1h.parquet`` ... ``res=24h.parquet``: one row per bucket that has rows,
ordered by time; the time column holds the bucket's start, buckets are aligned to the epoch
in UTC (``start = floor(time / resolution) * resolution``); the other columns are
``<column>.<type>`` per selected column and aggregation (column order first, then the
aggregations in the order listed). Null values are ignored (a bucket whose values are all
null has null avg/min/max/sum and a count of 0).

Nothing is computed by listing: a file is computed when its size or content is first asked
for, streaming its input a batch at a time (partial sums, counts, minimums and maximums per
bucket, combined at the end), so memory follows the number of buckets, not of rows. Results
are cached by the input's versions: a new version of one input recomputes only its files.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from ..kinds import Kind
from ..resources import Fields, SpecError
from ..tinyfs import FS, DynamicNode, FsError
from .computed import (
    DEFAULT_FLOOR,
    ComputedFile,
    Input,
    StaticDirectory,
    check_template,
    input_mtime_ns,
    iter_batches,
    named_matches,
    parse_duration,
    pattern_field,
    schema_of,
    time_column,
    time_field,
    units_per_second,
    write_parquet,
)

FACTORY = "temporal-reduce"
DEFAULT_RESOLUTIONS = ("1h", "2h", "4h", "12h", "24h")
AGGREGATIONS = ("avg", "min", "max", "count", "sum")
DEFAULT_AGGREGATIONS = ("avg", "min", "max")
#: Rows read per batch.
BATCH_ROWS = 1 << 20


@dataclass(frozen=True)
class Aggregation:
    type: str
    columns: tuple[str, ...] | None  # globs; None: every numeric column


@dataclass(frozen=True)
class ReduceSpec:
    in_pattern: str
    out_pattern: str
    time_column: str
    floor: int | None
    resolutions: tuple[tuple[str, int], ...]  # (as written, seconds)
    aggregations: tuple[Aggregation, ...]

    def settings(self, seconds: int) -> dict:
        """What shapes one output file."""
        return {"time_column": self.time_column, "floor": self.floor, "resolution": seconds,
                "aggregations": [[a.type, list(a.columns) if a.columns else None]
                                 for a in self.aggregations]}


def check(spec: dict) -> ReduceSpec:
    fields = Fields(spec, "spec")
    in_pattern = pattern_field(fields, "in_pattern")
    out_pattern = fields.get("out_pattern", str, "$0")
    check_template(out_pattern, in_pattern, fields.field("out_pattern"))
    column = fields.get("time_column", str, "timestamp")
    floor = time_field(fields, "floor", DEFAULT_FLOOR)
    written = fields.get("resolutions", list, list(DEFAULT_RESOLUTIONS))
    if not written:
        raise SpecError(fields.field("resolutions"), "must list at least one resolution")
    resolutions: list[tuple[str, int]] = []
    for n, text in enumerate(written):
        where = f"{fields.field('resolutions')}[{n}]"
        seconds = parse_duration(text, where)
        if any(text == seen for seen, _ in resolutions):
            raise SpecError(where, f"{text} is listed twice")
        resolutions.append((text, seconds))
    aggregations = []
    listed = fields.get("aggregations", list, [{"type": t} for t in DEFAULT_AGGREGATIONS])
    for n, item in enumerate(listed):
        one = Fields(item, f"{fields.field('aggregations')}[{n}]")
        kind = one.get("type", str)
        if kind not in AGGREGATIONS:
            raise SpecError(one.field("type"), f"unknown aggregation {kind!r} (known: "
                            f"{', '.join(AGGREGATIONS)})")
        columns = one.get("columns", list, None)
        if columns is not None:
            for i, glob in enumerate(columns):
                if not isinstance(glob, str) or not glob:
                    raise SpecError(f"{one.field('columns')}[{i}]",
                                    "must be a column name or glob")
        one.done()
        aggregations.append(Aggregation(kind, tuple(columns) if columns else None))
    if not aggregations:
        raise SpecError(fields.field("aggregations"), "must list at least one aggregation")
    fields.done()
    return ReduceSpec(in_pattern, out_pattern, column, floor, tuple(resolutions),
                      tuple(aggregations))


def build(fs: FS, spec: ReduceSpec, node_id: str) -> DynamicNode:
    return StaticDirectory(lambda: _inputs(fs, spec), lambda: fs.get(node_id).mtime_ns)


def file_name(resolution: str) -> str:
    return f"res={resolution}.parquet"


def _inputs(fs: FS, spec: ReduceSpec) -> Iterable[tuple[str, DynamicNode]]:
    """One directory per matched input; listing it computes nothing."""
    for name, match in named_matches(fs, spec.in_pattern, spec.out_pattern, files_only=True):
        yield name, StaticDirectory(functools.partial(_resolutions, fs, spec, match),
                                    functools.partial(input_mtime_ns, fs, match.node_id))


def _resolutions(fs: FS, spec: ReduceSpec, match: Input) -> list[tuple[str, DynamicNode]]:
    return [(file_name(text), _reduced(fs, spec, match, seconds))
            for text, seconds in spec.resolutions]


def _reduced(fs: FS, spec: ReduceSpec, match: Input, seconds: int) -> ComputedFile:
    """The file of ``match`` reduced to buckets of ``seconds``."""
    return ComputedFile(fs, FACTORY, spec.settings(seconds), lambda: [match.node_id],
                        lambda sink, ids: write_reduced(fs, spec, ids[0], seconds, sink))


def write_reduced(fs: FS, spec: ReduceSpec, node_id: str, seconds: int, sink: BinaryIO
                  ) -> None:
    write_parquet(sink, reduce(fs, spec, node_id, seconds))


def selected(schema: pa.Schema, time_name: str, aggregations: Sequence[Aggregation]
             ) -> list[tuple[str, list[str]]]:
    """``(column, [aggregation types])`` in schema order, for columns some aggregation
    selects (numeric columns only; globs match whole names)."""
    chosen = []
    for field in schema:
        if field.name == time_name or not _numeric(field.type):
            continue
        kinds = [a.type for a in aggregations if a.columns is None or any(
            fnmatch.fnmatchcase(field.name, glob) for glob in a.columns)]
        kinds = list(dict.fromkeys(kinds))
        if kinds:
            chosen.append((field.name, kinds))
    return chosen


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def reduce(fs: FS, spec: ReduceSpec, node_id: str, seconds: int) -> pa.Table:
    """One input reduced to one resolution (see the module's description)."""
    time_name = time_column(fs, node_id, spec.time_column)
    schema = schema_of(fs, node_id)
    if time_name not in schema.names:
        raise FsError(errno.EINVAL, f"{node_id}: no time column {time_name!r}")
    time_type = schema.field(time_name).type
    per_second = units_per_second(time_type)
    width = seconds * per_second
    floor = None if spec.floor is None else spec.floor * per_second
    columns = selected(schema, time_name, spec.aggregations)
    # The partial statistics each column needs.
    stats = {name: _stats_for(kinds) for name, kinds in columns}
    total: pa.Table | None = None
    for batch in iter_batches(fs, node_id, [time_name] + [c for c, _ in columns],
                              batch_size=BATCH_ROWS):
        part = _partial(batch, time_name, width, floor, stats)
        if part is not None:
            total = part if total is None else _merge(total, part, stats)
    if total is None:
        total = pa.table({"bucket": pa.array([], pa.int64())})
    total = total.take(pc.sort_indices(total, [("bucket", "ascending")]))
    out: dict[str, pa.Array | pa.ChunkedArray] = {
        spec.time_column: total.column("bucket").cast(time_type)}
    rows = total.num_rows
    for name, kinds in columns:
        for kind in kinds:
            out[f"{name}.{kind}"] = _final(total, name, kind, schema.field(name).type, rows)
    return pa.table(out)


def _stats_for(kinds: Sequence[str]) -> list[str]:
    need = []
    if "avg" in kinds or "sum" in kinds:
        need.append("sum")
    if "avg" in kinds or "count" in kinds:
        need.append("count")
    need += [k for k in ("min", "max") if k in kinds]
    return need


def _partial(batch: pa.RecordBatch, time_name: str, width: int, floor: int | None,
             stats: dict[str, list[str]]) -> pa.Table | None:
    """Per-bucket sums, counts, minimums and maximums of one batch."""
    times = batch.column(time_name)
    if pa.types.is_timestamp(times.type):
        times = times.cast(pa.int64())
    keep = None
    if times.null_count:
        keep = pc.is_valid(times)
    if floor is not None:
        above = pc.greater_equal(times, floor)
        keep = above if keep is None else pc.and_(keep, above)
    if keep is not None:
        batch = batch.filter(keep)
        times = times.filter(keep)
    if batch.num_rows == 0:
        return None
    buckets = bucket_starts(times, width)
    present = [name for name in stats if name in batch.schema.names]
    table = pa.table([buckets] + [batch.column(n) for n in present],
                     names=["bucket"] + present)
    aggs = [(name, "count" if s == "count" else s,
             pc.CountOptions(mode="only_valid") if s == "count" else None)
            for name in present for s in stats[name]]
    # Named "<column>_<statistic>" by pyarrow.
    return table.group_by("bucket", use_threads=False).aggregate(aggs)


def bucket_starts(times: pa.Array, width: int) -> pa.Array:
    """``floor(times / width) * width`` for integer ``times`` (floor, not truncation, so
    times before the epoch fall in the bucket below)."""
    quotient = pc.divide(times, width)  # truncates toward zero
    starts = pc.multiply(quotient, width)
    if pc.min(times).as_py() < 0:
        below = pc.and_(pc.less(times, 0), pc.not_equal(starts, times))
        starts = pc.subtract(starts, pc.multiply(below.cast(pa.int64()), width))
    return starts


def _merge(total: pa.Table, part: pa.Table, stats: dict[str, list[str]]) -> pa.Table:
    """``total`` and ``part`` (per-bucket partials, each bucket once) as one such table.

    Only the buckets both hold are aggregated again: the rest is appended. Series are
    mostly appended in time order, so this is usually a plain append, and the work and
    memory per batch stay proportional to the batch, not to everything reduced so far (an
    aggregation over all of it cost 1.5 KB of memory per bucket).
    """
    shared = pc.is_in(part.column("bucket"), value_set=total.column("bucket"))
    if not pc.any(shared).as_py():
        return pa.concat_tables([total, part], promote_options="permissive")
    buckets = part.column("bucket").filter(shared)
    in_total = pc.is_in(total.column("bucket"), value_set=buckets)
    merged = _fold([total.filter(in_total), part.filter(shared)], stats)
    return pa.concat_tables([total.filter(pc.invert(in_total)), part.filter(pc.invert(shared)),
                             merged], promote_options="permissive")


def _fold(partials: list[pa.Table], stats: dict[str, list[str]]) -> pa.Table:
    """Partial tables combined into one (sums and counts added, min of minimums...)."""
    table = pa.concat_tables(partials, promote_options="permissive")
    aggs = []
    for name, needed in stats.items():
        for s in needed:
            column = f"{name}_{s}"
            if column in table.column_names:
                aggs.append((column, "sum" if s in ("sum", "count") else s))
    grouped = table.group_by("bucket", use_threads=False).aggregate(aggs)
    # "<name>_<stat>_<how>" back to "<name>_<stat>".
    return grouped.rename_columns([c if c == "bucket" else c.rsplit("_", 1)[0]
                                   for c in grouped.column_names])


def _final(total: pa.Table, name: str, kind: str, value_type: pa.DataType, rows: int
           ) -> pa.Array:
    """The output column ``<name>.<kind>``."""
    def partial(s: str) -> pa.ChunkedArray | None:
        index = total.schema.get_field_index(f"{name}_{s}")
        return total.column(index) if index >= 0 else None

    if kind == "count":
        count = partial("count")
        return pa.repeat(0, rows) if count is None else pc.fill_null(count.cast(pa.int64()), 0)
    if kind == "avg":
        sums, count = partial("sum"), partial("count")
        if sums is None or count is None:
            return pa.nulls(rows, pa.float64())
        return pc.divide(sums.cast(pa.float64()), pc.if_else(
            pc.greater(count, 0), count.cast(pa.float64()), None))
    column = partial(kind)
    if column is None:
        result_type = value_type if kind in ("min", "max") else _sum_type(value_type)
        return pa.nulls(rows, result_type)
    return column


def _sum_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_unsigned_integer(t):
        return pa.uint64()
    if pa.types.is_integer(t):
        return pa.int64()
    return t


KIND = Kind(FACTORY, validate=check, build=build, reads=lambda spec: [spec.in_pattern])
