"""The ``timeseries-join`` factory: several series joined on their time column into one.

::

    apiVersion: pondfs/v1
    kind: timeseries-join
    name: BDock
    path: /combined/BDock
    spec:
      time_column: timestamp          # the result's time column (the default)
      floor: 2000-01-01               # rows before it are clock glitches (the default)
      inputs:                         # in order: a later input wins where both have a value
        - pattern: /hydrovu/devices/**/BDockVulink.series
          scope: Vulink               # may use the pattern's captures: $0, $1, ...
          range: {end: 2025-10-16T21:00:00Z}
        - pattern: /hydrovu/devices/*/AT500_*.series
          scope: AT500_$1
          range: {begin: 2025-10-16T21:00:00Z}

The node is one read-only Parquet file, ordered by time: a full outer join of every matched
series on time, each column renamed ``<scope>.<column>`` (``Vulink.Temperature.C``), a row
per distinct time. Inputs are taken in the order listed, matches of one pattern in path
order; where two inputs give the same column at the same time, the later one's value wins
unless it is null (so ``Vulink`` split over two devices by ``range`` joins into one column).
Within one series a time that occurs twice keeps its newest row. ``range`` keeps
``begin <= time < end`` (either optional), and ``floor`` drops rows before it.

The join streams: the output schema comes from the inputs' Parquet footers, then the time
axis is cut into windows of about :data:`WINDOW_ROWS` input rows (from each series
version's recorded time range and row count), and each window's rows are read, joined and
appended to the output in turn. Every stored row group is read once; rows it holds for later
windows wait for them.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from itertools import pairwise
from math import ceil, floor
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..kinds import Kind
from ..resources import Fields, SpecError
from ..tinyfs import FS, SERIES, DynamicNode, FsError, GlobError, substitute
from .computed import (
    DEFAULT_FLOOR,
    ROW_GROUP,
    ComputedFile,
    Input,
    check_template,
    pattern_field,
    release_memory,
    resolve_inputs,
    schema_of,
    source,
    time_column,
    time_field,
    units_per_second,
)

FACTORY = "timeseries-join"

#: Input rows a window of time holds (estimated from the inputs' row counts and time ranges):
#: the join reads, joins and writes one window at a time, so memory is bounded by it (and by
#: the size of one stored row group) rather than by the inputs' size.
WINDOW_ROWS = 1 << 20


@dataclass(frozen=True)
class JoinInput:
    pattern: str
    scope: str
    begin: int | None
    end: int | None


@dataclass(frozen=True)
class JoinSpec:
    time_column: str
    floor: int | None
    inputs: tuple[JoinInput, ...]

    def settings(self) -> dict:
        return {"time_column": self.time_column, "floor": self.floor,
                "inputs": [vars(i) for i in self.inputs]}


def check(spec: dict) -> JoinSpec:
    fields = Fields(spec, "spec")
    column = fields.get("time_column", str, "timestamp")
    floor = time_field(fields, "floor", DEFAULT_FLOOR)
    items = fields.get("inputs", list)
    if not items:
        raise SpecError(fields.field("inputs"), "must list at least one input")
    inputs = []
    for n, item in enumerate(items):
        where = f"{fields.field('inputs')}[{n}]"
        one = Fields(item, where)
        pattern = pattern_field(one, "pattern")
        scope = one.get("scope", str)
        check_template(scope, pattern, one.field("scope"))
        begin = end = None
        if one.get("range", dict, None) is not None:
            bounds = Fields(one.mapping["range"], one.field("range"))
            begin = time_field(bounds, "begin", None)
            end = time_field(bounds, "end", None)
            bounds.done()
            if begin is not None and end is not None and end <= begin:
                raise SpecError(bounds.field("end"), "must be after range.begin")
        one.done()
        inputs.append(JoinInput(pattern, scope, begin, end))
    fields.done()
    return JoinSpec(column, floor, tuple(inputs))


def build(fs: FS, spec: JoinSpec, node_id: str) -> DynamicNode:
    def inputs() -> list[Input]:
        return [match for one in spec.inputs for match in resolve_inputs(fs, one.pattern)]

    return ComputedFile(fs, FACTORY, spec.settings(), inputs,
                        lambda sink, _: write_join(fs, spec, sink),
                        default_mtime_ns=fs.get(node_id).mtime_ns)


def write_join(fs: FS, spec: JoinSpec, sink: BinaryIO) -> None:
    """The joined table (see the module's description) as Parquet, a window of time at a
    time: memory holds about :data:`WINDOW_ROWS` input rows, whatever the inputs' size."""
    sources = _sources(fs, spec)
    schema = _outer_join([s.empty() for s in sources], spec.time_column).schema
    with pq.ParquetWriter(sink, schema, compression="snappy", use_dictionary=False) as writer:
        for start, end in _windows(sources):
            parts = [s.window(start, end) for s in sources]
            writer.write_table(_outer_join(parts, spec.time_column).cast(schema),
                               row_group_size=ROW_GROUP * 8)
            del parts
            release_memory()


@dataclass
class _Piece:
    """A part of an input read as a whole: a row group of a series version or of a file.
    ``low`` and ``high`` bound its times in the join's time unit (from the version's
    recorded range, else from its time column alone)."""

    open: Callable[[], BinaryIO]
    group: int
    rows: int
    low: int
    high: int


class _Source:
    """One matched input: its pieces in storage order, and the rows of a window of time
    prepared for the join (see :meth:`window`)."""

    def __init__(self, fs: FS, spec: JoinSpec, one: JoinInput, match: Input, scope: str,
                 time_type: pa.DataType | None):
        node_id = source(fs, match.node_id)
        self.path = match.path
        self.column = time_column(fs, node_id, spec.time_column)
        self.schema = schema_of(fs, node_id)
        if self.column not in self.schema.names:
            raise FsError(errno.EINVAL, f"{match.path}: no time column {self.column!r}")
        own = self.schema.field(self.column).type
        per_second = units_per_second(own)
        #: The join's time type: the first input's (the others' times are cast to it).
        self.time_type = own if time_type is None else time_type
        self.names = [spec.time_column if name == self.column else f"{scope}.{name}"
                      for name in self.schema.names]
        lows = [low * per_second for low in (spec.floor, one.begin) if low is not None]
        self.low = max(lows) if lows else None
        self.end = None if one.end is None else one.end * per_second
        self.pieces = list(self._clipped(self._pieces(fs, node_id, match.path)))
        # Pieces by their first time: those before ``unread`` have been read.
        self.by_time = sorted(range(len(self.pieces)), key=lambda i: self.pieces[i].low)
        self.unread = 0
        self.ahead: dict[int, pa.Table] = {}  # rows read for a later window, by piece

    def _clipped(self, pieces: Iterator[_Piece]) -> Iterator[_Piece]:
        """The pieces that have times the floor and the range keep, their bounds narrowed
        to those times (a clock glitch must not stretch a piece over decades)."""
        low = None if self.low is None else self._out(self.low, floor)
        high = None if self.end is None else self._out(self.end, ceil) - 1
        for p in pieces:
            if low is not None and p.low < low:
                p.low = low
            if high is not None and p.high > high:
                p.high = high
            if p.low <= p.high:
                yield p

    def _out(self, value: int, rounding: Callable[[Fraction], int]) -> int:
        """A time of this input in the join's unit (rounded outward by ``rounding``)."""
        mine = self.schema.field(self.column).type
        if pa.types.is_timestamp(mine) and pa.types.is_timestamp(self.time_type):
            return rounding(Fraction(value * units_per_second(self.time_type),
                                     units_per_second(mine)))
        return value

    def _pieces(self, fs: FS, node_id: str, path: str) -> Iterator[_Piece]:
        if fs.dynamic_node(node_id) is None and fs.get(node_id).format == SERIES:
            files = [(partial(fs.open_version, v), v) for v in fs.series_versions(node_id)]
        else:
            files = [(partial(fs.open_read, node_id), None)]
        for opener, version in files:
            with opener() as f:
                parquet = _parquet(f, path)
                metadata = parquet.metadata
                same_type = (self.column in parquet.schema_arrow.names and parquet.schema_arrow
                             .field(self.column).type == self.schema.field(self.column).type)
                for group in range(metadata.num_row_groups):
                    rows = metadata.row_group(group).num_rows
                    if not rows or self.column not in parquet.schema_arrow.names:
                        continue
                    if version is not None and metadata.num_row_groups == 1 and same_type:
                        low, high = version.min_time, version.max_time
                    else:
                        times = parquet.read_row_group(group, columns=[self.column],
                                                       use_threads=False).column(0)
                        bounds = pc.min_max(times.cast(self.schema.field(self.column).type)
                                            .cast(pa.int64()))
                        low, high = bounds["min"].as_py(), bounds["max"].as_py()
                    if low is not None:
                        yield _Piece(opener, group, rows, self._out(low, floor),
                                     self._out(high, ceil))

    def empty(self) -> pa.Table:
        return self.schema.empty_table().rename_columns(self.names)

    def window(self, start: int, end: int) -> pa.Table:
        """The rows with ``start <= time < end`` (in the join's unit) that the range and the
        floor keep, time-ordered, one per time (the newest), columns scoped.

        Windows must come in time order: a piece is read at the first window it reaches, and
        its rows for later windows are kept for them."""
        while self.unread < len(self.by_time) and \
                self.pieces[self.by_time[self.unread]].low < end:
            i = self.by_time[self.unread]
            self.ahead[i] = self._read(self.pieces[i])
            self.unread += 1
        chunks = []
        for i in sorted(self.ahead):  # storage order: the newest row of a time is last
            table = self.ahead.pop(i)
            times = self._times(table)
            now = pc.less(times, end)
            chunks.append(table.filter(now))
            if not pc.all(now).as_py():
                self.ahead[i] = table.filter(pc.invert(now))
        if not chunks:
            return self.empty()
        table = pa.concat_tables(chunks)
        del chunks
        table = table.take(pc.sort_indices(table, [(self.column, "ascending")]))  # stable
        if table.num_rows > 1:
            # A time given twice keeps its newest row (the later version).
            t = table.column(self.column).combine_chunks()
            last = pc.not_equal(t.slice(0, len(t) - 1), t.slice(1))
            if last.false_count:
                table = table.filter(pa.concat_arrays([last, pa.array([True])]))
        return table.rename_columns(self.names)

    def _read(self, piece: _Piece) -> pa.Table:
        """A piece's rows that the range and the floor keep, in this input's schema."""
        with piece.open() as f:
            table = _parquet(f, self.path).read_row_group(piece.group, use_threads=False)
        for field in self.schema:
            if field.name not in table.column_names:
                table = table.append_column(field.name, pa.nulls(len(table), field.type))
        table = table.select(self.schema.names).cast(self.schema)
        values = table.column(self.column)
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.int64())
        keep = pc.is_valid(values)
        if self.low is not None:
            keep = pc.and_(keep, pc.greater_equal(values, self.low))
        if self.end is not None:
            keep = pc.and_(keep, pc.less(values, self.end))
        return table.filter(keep)

    def _times(self, table: pa.Table) -> pa.ChunkedArray:
        """``table``'s times in the join's unit, as the join compares them."""
        times = table.column(self.column).cast(self.time_type)
        return times.cast(pa.int64()) if pa.types.is_timestamp(times.type) else times


def _parquet(f: BinaryIO, what: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(f)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FsError(errno.EINVAL, f"{what}: not a Parquet file ({exc})") from None


def _sources(fs: FS, spec: JoinSpec) -> list[_Source]:
    sources: list[_Source] = []
    for one in spec.inputs:
        for match in resolve_inputs(fs, one.pattern):
            try:
                scope = substitute(one.scope, match.captures)
            except GlobError as exc:
                raise FsError(errno.EINVAL, f"{match.path}: scope: {exc}") from None
            sources.append(_Source(fs, spec, one, match, scope,
                                   sources[0].time_type if sources else None))
    return sources


def _windows(sources: Sequence[_Source]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` windows of time covering every piece, in order, each holding about
    :data:`WINDOW_ROWS` rows: a piece's rows are taken as spread evenly over its range."""
    # Between two consecutive ends of pieces the same pieces are present: a sweep gives
    # each such span its estimated rows (the sum of the present pieces' densities x width).
    changes: dict[int, float] = {}
    for s in sources:
        for p in s.pieces:
            density = p.rows / (p.high - p.low + 1)
            changes[p.low] = changes.get(p.low, 0.0) + density
            changes[p.high + 1] = changes.get(p.high + 1, 0.0) - density
    points = sorted(changes)
    if not points:
        return
    start, rows, density = points[0], 0.0, 0.0
    for a, b in pairwise(points):
        density += changes[a]
        span = density * (b - a)
        if rows and rows + span > WINDOW_ROWS:
            yield start, a
            start, rows = a, 0.0
        if span > WINDOW_ROWS:  # a dense span: cut it evenly
            cuts = min(ceil(span / WINDOW_ROWS), b - a)
            edges = [start] + [a + (b - a) * k // cuts for k in range(1, cuts + 1)]
            yield from pairwise(edges)
            start = b
        else:
            rows += span
    if start < points[-1]:
        yield start, points[-1]


def _outer_join(parts: Sequence[pa.Table], column: str) -> pa.Table:
    """Full outer join on ``column`` of time-ordered tables with unique times; for a column
    several have, the value of the last one that is not null."""
    if not parts:
        return pa.table({column: pa.array([], pa.int64())})
    time_type = parts[0].schema.field(column).type
    every = pa.chunked_array([p.column(column).cast(time_type) for p in parts], time_type)
    times = pc.unique(every)
    times = times.take(pc.sort_indices(times))
    # Where each output time is in each input (null where the input lacks it).
    rows = [pc.index_in(times, value_set=p.column(column).cast(time_type)) for p in parts]
    out: dict[str, pa.Array] = {column: times}
    holders: dict[str, list[int]] = {}
    for i, part in enumerate(parts):
        for name in part.column_names:
            if name != column:
                holders.setdefault(name, []).append(i)
    for name, which in holders.items():
        aligned = [parts[i].column(name).take(rows[i]) for i in reversed(which)]
        try:
            out[name] = aligned[0] if len(aligned) == 1 else pc.coalesce(
                *[a.cast(aligned[-1].type) for a in aligned])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise FsError(errno.EINVAL, f"column {name!r} has types that do not mix "
                          f"({exc})") from None
    return pa.table(out)


KIND = Kind(FACTORY, validate=check, build=build,
            reads=lambda spec: [one.pattern for one in spec.inputs])
