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
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from ..resources import Fields, SpecError, parse_spec
from ..tinyfs import FS, DynamicNode, FsError
from ..tinyfs.glob import GlobError, substitute
from .computed import (
    DEFAULT_FLOOR,
    ComputedFile,
    Input,
    check_template,
    pattern_field,
    read_table,
    resolve_inputs,
    time_column,
    time_field,
    units_per_second,
    write_parquet,
)

FACTORY = "timeseries-join"


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


def input_patterns(spec: dict) -> list[str]:
    return [i.pattern for i in check(spec).inputs]


def build(fs: FS, config: bytes, node_id: str) -> DynamicNode:
    spec = check(parse_spec(config))

    def inputs() -> list[Input]:
        return [match for one in spec.inputs for match in resolve_inputs(fs, one.pattern)]

    return ComputedFile(fs, FACTORY, spec.settings(), inputs,
                        lambda sink, _: write_join(fs, spec, sink),
                        default_mtime_ns=fs.get(node_id).mtime_ns)


def write_join(fs: FS, spec: JoinSpec, sink: BinaryIO) -> None:
    write_parquet(sink, join(fs, spec))


def join(fs: FS, spec: JoinSpec) -> pa.Table:
    """The joined table (see the module's description)."""
    parts: list[pa.Table] = []
    for one in spec.inputs:
        for match in resolve_inputs(fs, one.pattern):
            try:
                scope = substitute(one.scope, match.captures)
            except GlobError as exc:
                raise FsError(errno.EINVAL, f"{match.path}: scope: {exc}") from None
            parts.append(_prepared(fs, spec, one, match, scope))
    return _outer_join(parts, spec.time_column)


def _prepared(fs: FS, spec: JoinSpec, one: JoinInput, match: Input, scope: str) -> pa.Table:
    """One input's rows in range, time-ordered, one per time, columns scoped; its time column
    named ``spec.time_column``."""
    column = time_column(fs, match.node_id, spec.time_column)
    table = read_table(fs, match.node_id)
    if column not in table.column_names:
        raise FsError(errno.EINVAL, f"{match.path}: no time column {column!r}")
    times = table.column(column)
    per_second = units_per_second(times.type)
    values = times.cast(pa.int64()) if pa.types.is_timestamp(times.type) else times
    keep = pc.is_valid(values)
    for low in (spec.floor, one.begin):
        if low is not None:
            keep = pc.and_(keep, pc.greater_equal(values, low * per_second))
    if one.end is not None:
        keep = pc.and_(keep, pc.less(values, one.end * per_second))
    table = table.filter(keep)
    table = table.take(pc.sort_indices(table, [(column, "ascending")]))  # stable: versions
    if table.num_rows > 1:
        # A time given twice keeps its newest row (the later version).
        t = table.column(column).combine_chunks()
        last = pc.not_equal(t.slice(0, len(t) - 1), t.slice(1))
        if last.false_count:
            table = table.filter(pa.concat_arrays([last, pa.array([True])]))
    names = [spec.time_column if name == column else f"{scope}.{name}"
             for name in table.column_names]
    return table.rename_columns(names)


def _outer_join(parts: Sequence[pa.Table], column: str) -> pa.Table:
    """Full outer join on ``column`` of time-ordered tables with unique times; for a column
    several have, the value of the last one that is not null."""
    if not parts:
        return pa.table({column: pa.array([], pa.int64())})
    time_type = parts[0].schema.field(column).type
    every = pa.chunked_array([p.column(column).cast(time_type) for p in parts])
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
