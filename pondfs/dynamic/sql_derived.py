"""The ``sql-derived`` factory: table or series files defined by a DataFusion SQL query.

The query reads pond inputs bound to table names by pattern, in one of two ways::

    spec:                                   spec:
      source: /hydrovu/devices/*/*.series     inputs:
      name: $1-hourly.parquet                   water: /reduce/AT500_1/res=1h.parquet
      query: |                                  air: /reduce/Vulink_1/res=1h.parquet
        SELECT timestamp - timestamp % 3600     query: |
               AS timestamp,                      SELECT water.timestamp, ...
               avg("Temperature.C") AS t          FROM water JOIN air USING (timestamp)
        FROM source GROUP BY 1                  mode: series
      mode: series

- ``source`` binds the table ``source``. With a ``name`` template the node is a directory
  holding one output per match, named from the match's captures (``$0``, ``$1``; see
  :func:`pondfs.tinyfs.glob.substitute`), each querying that match alone (DuckPond's
  derive); a name that is not usable or already taken is left out with a warning
  (:func:`~pondfs.dynamic.computed.unique_names`). Without ``name`` the node is one file
  and ``source`` is the union of every match (columns unified, missing ones null).
- ``inputs`` binds each name to the union of its pattern's matches; the node is one file.

Whether the node is a directory or a file follows from the spec, never from how many
inputs match today, so a path does not change kind when a device appears.

``mode: table`` (the default) stores the result as it comes; ``mode: series`` requires
the time column (``time_column``, default ``timestamp``) in the result and orders the
rows by it. Either way the file reads as one Parquet file.

A query is one read-only statement (no DDL, DML or ``SET``). ``pond apply`` rejects a
query that does not parse or that reads a table it does not bind; it also plans it against
the inputs' schemas when they are at hand (:func:`verify`), so a misspelt column is
reported before anything is written.

Listing computes nothing; the first stat or read of an output runs its query, and the
result is cached by the query, the bindings and every input's fingerprint
(:mod:`pondfs.dynamic.computed`), so later ones, in any process, read the cache, and a
new input version recomputes exactly the outputs that read it. The result streams into
Parquet, but the inputs are held in memory while the query runs.
"""

from __future__ import annotations

import errno
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from ..kinds import Kind
from ..resources import Fields, SpecError
from ..tinyfs import FS, DynamicNode, FsError, substitute
from .computed import (
    ROW_GROUP,
    ComputedFile,
    Input,
    StaticDirectory,
    cache_key,
    check_template,
    fingerprint,
    input_id,
    input_mtime_ns,
    pattern_field,
    read_table,
    resolve_inputs,
    schema_of,
    source,
    unique_names,
)

FACTORY = "sql-derived"
MODES = ("table", "series")
SOURCE = "source"
#: The name a series' unordered result is known by while it is sorted.
_RESULT = "pondfs_unordered_result"
#: Table names: SQL folds unquoted identifiers to lower case, so only lower case is allowed.
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class SqlSpec:
    """A checked ``sql-derived`` spec. ``tables`` maps each table name to its pattern."""

    query: str
    mode: str
    time_column: str
    tables: dict[str, str]
    name: str | None  # with ``source``: one output per match, named from its captures

    @property
    def per_match(self) -> bool:
        return self.name is not None

    def settings(self) -> dict[str, Any]:
        """What shapes a result besides its inputs (the cache recipe)."""
        return {"query": self.query, "mode": self.mode, "time_column": self.time_column,
                "tables": self.tables}


def check(spec: dict) -> SqlSpec:
    """``spec`` checked (SpecError naming the field) and parsed."""
    fields = Fields(spec, "spec")
    query = fields.get("query", str)
    if not query.strip():
        raise SpecError("spec.query", "must not be empty")
    mode = fields.get("mode", str, "table")
    if mode not in MODES:
        raise SpecError("spec.mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    time_column = fields.get("time_column", str, "")
    if time_column and mode != "series":
        raise SpecError("spec.time_column", "only a series (mode: series) has a time column")
    has_source, has_inputs = "source" in spec, "inputs" in spec
    if has_source == has_inputs:
        raise SpecError("spec.source", "give either source (one pattern, the table "
                        "'source') or inputs (table names mapped to patterns), not "
                        + ("both" if has_source else "neither"))
    name = None
    if has_source:
        tables = {SOURCE: pattern_field(fields, "source")}
        name = fields.get("name", str, None)
        if name is not None:
            check_template(name, tables[SOURCE], "spec.name")
    else:
        inputs = Fields(fields.get("inputs", dict), "spec.inputs")
        tables = {}
        for table in inputs.mapping:
            where = inputs.field(str(table))
            if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
                raise SpecError(where, "a table name is lower-case letters, digits and '_', "
                                "not starting with a digit (SQL folds unquoted names to "
                                "lower case)")
            tables[table] = pattern_field(inputs, table)
        if not tables:
            raise SpecError("spec.inputs", "must name at least one table")
        inputs.done()
        if "name" in spec:
            raise SpecError("spec.name", "names outputs per match of source; with inputs "
                            "the node is one file")
    fields.done()
    parsed = SqlSpec(query, mode, time_column or "timestamp", tables, name)
    _plan(parsed, {table: pa.schema([]) for table in tables}, schema_known=False)
    return parsed


def build(fs: FS, spec: SqlSpec, node_id: str) -> DynamicNode:
    """The node: a directory of per-match outputs, or one file. Computes nothing."""
    if not spec.per_match:
        return SqlFile(fs, spec, lambda: _bind(fs, spec.tables))
    return StaticDirectory(lambda: _outputs(fs, spec), lambda: _newest(fs, spec))


def verify(fs: FS, parsed: SqlSpec) -> bool:
    """Plan the query against the schemas of what its patterns match now: a SpecError
    naming the field if it cannot run. Only schemas that cost a Parquet footer are read (a
    stored input, or a computed one already in the cache): when one is not, or a pattern
    matches nothing yet, nothing is planned and the answer is False."""
    schemas = {}
    for table, pattern in parsed.tables.items():
        matches = resolve_inputs(fs, pattern)
        if parsed.per_match:
            matches = matches[:1]  # every match is queried alone; the first stands for all
        found = [_cheap_schema(fs, m.node_id) for m in matches]
        if not found or any(schema is None for schema in found):
            return False
        schemas[table] = pa.unify_schemas(found, promote_options="permissive")
    _plan(parsed, schemas, schema_known=True)
    return True


def _cheap_schema(fs: FS, node_id: str) -> pa.Schema | None:
    """An input's schema if reading it computes nothing, else None."""
    node = fs.dynamic_node(source(fs, node_id))
    if node is not None:
        key = getattr(node, "fingerprint", None)
        if key is None or fs.cache.size(key()) is None:
            return None
    return schema_of(fs, node_id)


# ---------------------------------------------------------------------- outputs


class Bound(list):
    """Input node ids in table order, with how many belong to each table (``layout``)."""

    def __init__(self, layout: Sequence[tuple[str, list[str]]]):
        super().__init__(i for _, ids in layout for i in ids)
        self.layout = [(table, len(ids)) for table, ids in layout]

    def tables(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """``ids`` (this list or a copy) split back into tables."""
        split, at = {}, 0
        for table, count in self.layout:
            split[table] = list(ids[at:at + count])
            at += count
        return split


class SqlFile(ComputedFile):
    """One query result. Its cache key also holds which table each input is bound to, so a
    file moved from one pattern's directory to another's is not mistaken for no change."""

    def __init__(self, fs: FS, spec: SqlSpec, bind: Callable[[], Bound]):
        # The name is no part of the recipe: an output whose input was renamed is the same.
        super().__init__(fs, FACTORY, spec.settings(), bind,
                         lambda sink, ids: _write(fs, spec, ids, sink))

    def key(self, inputs: Sequence[str | Input]) -> str:
        layout = getattr(inputs, "layout", [])
        return cache_key(self.recipe + repr(layout),
                         ((input_id(i), fingerprint(self.fs, input_id(i))) for i in inputs))


def _bind(fs: FS, tables: dict[str, str], only: str | None = None) -> Bound:
    layout = []
    for table, pattern in tables.items():
        ids = [only] if only is not None else [m.node_id for m in resolve_inputs(fs, pattern)]
        layout.append((table, ids))
    return Bound(layout)


def _outputs(fs: FS, spec: SqlSpec) -> list[tuple[str, DynamicNode]]:
    assert spec.name is not None
    pattern = spec.tables[SOURCE]
    named = [(substitute(spec.name, m.captures), m.path, m) for m in resolve_inputs(fs, pattern)]
    return [(name, SqlFile(fs, spec, functools.partial(_bind, fs, spec.tables, match.node_id)))
            for name, match in unique_names(pattern, spec.name, named)]


def _newest(fs: FS, spec: SqlSpec) -> int:
    return max((input_mtime_ns(fs, m.node_id)
                for pattern in spec.tables.values() for m in resolve_inputs(fs, pattern)),
               default=0)


def _write(fs: FS, spec: SqlSpec, ids: Sequence[str], sink: BinaryIO) -> None:
    assert isinstance(ids, Bound)
    tables = {}
    for table, members in ids.tables(ids).items():
        if not members:
            field = "spec.source" if table == SOURCE else f"spec.inputs.{table}"
            raise FsError(errno.ENOENT, f"{field}: no file matches {spec.tables[table]}")
        parts = [read_table(fs, node_id) for node_id in members]
        tables[table] = pa.concat_tables(parts, promote_options="permissive")
    write_result(spec, tables, sink)


# ---------------------------------------------------------------------- SQL


def write_result(spec: SqlSpec, tables: dict[str, pa.Table], sink: BinaryIO) -> None:
    """Run the query over ``tables`` and write its result into ``sink`` as Parquet, as
    DataFusion streams it (a series' rows ordered by time, by DataFusion's sort)."""
    ctx = _context(tables)
    try:
        result = _sql(ctx, spec.query)
        if spec.mode == "series":
            names = result.schema().names
            if spec.time_column not in names:
                raise FsError(errno.EINVAL, f"spec.time_column: the query's result has no "
                              f"column {spec.time_column!r} (it has {', '.join(names)})")
            ctx.register_view(_RESULT, result)
            quoted = spec.time_column.replace('"', '""')
            result = ctx.sql(f'SELECT * FROM {_RESULT} ORDER BY "{quoted}"')
        schema = result.schema()
        # The options of computed.write_parquet (snappy, no dictionaries), a batch at a time.
        with pq.ParquetWriter(sink, schema, compression="snappy",
                              use_dictionary=False) as writer:
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in result.execute_stream():
                pending.append(batch.to_pyarrow())
                rows += pending[-1].num_rows
                if rows >= ROW_GROUP:
                    writer.write_table(pa.Table.from_batches(pending, schema))
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, schema))
    except FsError:
        raise
    except Exception as exc:  # DataFusion raises plain Exceptions
        raise FsError(errno.EINVAL, f"spec.query: {_message(exc)}") from None


def _plan(spec: SqlSpec, schemas: dict[str, pa.Schema], *, schema_known: bool) -> None:
    """Plan the query over empty tables of ``schemas``. When the schemas are not known yet
    (checking a spec alone), only errors that no schema can cure are reported."""
    ctx = _context({table: schema.empty_table() for table, schema in schemas.items()})
    try:
        dataframe = _sql(ctx, spec.query)
    except Exception as exc:
        message = _message(exc)
        if not schema_known and message.startswith("Schema error"):
            return  # a column of an input: known once the inputs are
        raise SpecError("spec.query", message) from None
    if schema_known and spec.mode == "series":
        names = dataframe.schema().names
        if spec.time_column not in names:
            raise SpecError("spec.time_column", f"the query's result has no column "
                            f"{spec.time_column!r} (it has {', '.join(names)})")


def _context(tables: dict[str, pa.Table]):
    import datafusion

    ctx = datafusion.SessionContext()
    for table, data in tables.items():
        ctx.from_arrow(data, table)
    return ctx


def _sql(ctx, query: str):
    from datafusion import SQLOptions

    read_only = (SQLOptions().with_allow_ddl(False).with_allow_dml(False)
                 .with_allow_statements(False))
    return ctx.sql_with_options(query, read_only)


def _message(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text.replace("datafusion.public.", "")
    if text.startswith("DataFusion error: "):
        text = text[len("DataFusion error: "):]
    return " ".join(line.strip() for line in text.splitlines()[:2])



KIND = Kind(FACTORY, validate=check, build=build, verify=verify,
            reads=lambda spec: list(spec.tables.values()))
