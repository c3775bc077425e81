"""SQL over a pond with DataFusion: pond files named by path or glob, and the oplog itself.

In a query, ``FROM '/path/or/*.glob'`` (single or double quotes) reads the matching table and
series files as one table (columns unified, missing ones null); the table ``oplog`` holds every
row of the operation log (without content) as of the view's transaction.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from .tinyfs import FILE, FS, SERIES, TABLE, FsError, NodeVersion, read_parquet

if TYPE_CHECKING:
    import datafusion

_PATH_REF = re.compile(r"""(?i)\b(FROM|JOIN)\s+(['"])(/[^'"]*)\2""")

_OPLOG_SCHEMA = pa.schema([
    ("part_id", pa.string()), ("node_id", pa.string()), ("version", pa.int64()),
    ("txn", pa.int64()), ("kind", pa.string()), ("format", pa.string()),
    ("mode", pa.int64()), ("uid", pa.int64()), ("gid", pa.int64()), ("nlink", pa.int64()),
    ("rdev", pa.int64()),
    ("mtime_ns", pa.int64()), ("size", pa.int64()), ("blake3", pa.string()),
    ("inline", pa.bool_()), ("min_time", pa.int64()), ("max_time", pa.int64()),
    ("entries", pa.int64()), ("snapshot", pa.bool_()), ("deleted", pa.bool_()),
    ("timestamp_ns", pa.int64()),
])


def oplog_table(fs: FS) -> pa.Table:
    """Every oplog row as of the view (``entries`` is the number of entry changes)."""
    columns: dict[str, list] = {name: [] for name in _OPLOG_SCHEMA.names}
    for v in fs.store.scan(fs.as_of):
        row = dataclasses.asdict(v)
        row["entries"] = len(v.entries)
        for name in columns:
            columns[name].append(row[name])
    return pa.table(columns, schema=_OPLOG_SCHEMA)


def file_table(fs: FS, node_id: str, path: str) -> pa.Table:
    """The rows of one table or series file, or of a computed Parquet file (a derived
    table, a reduced series)."""
    if fs.dynamic_node(node_id) is not None and fs.kind(node_id) == FILE:
        with fs.open_read(node_id) as f:
            return read_parquet(f.read(), path)
    v: NodeVersion = fs.get(node_id)
    if v.format == SERIES:
        return fs.read_series(node_id)
    if v.format == TABLE:
        with fs.open_read(node_id) as f:
            return read_parquet(f.read(), path)
    raise FsError(errno.EINVAL, f"{path}: a {v.format or v.kind} file cannot be queried "
                  "(only table and series files)")


def _matches(fs: FS, pattern: str) -> Iterator[tuple[str, str]]:
    if any(c in pattern for c in "*?[{"):
        for path, node_id, _ in fs.glob(pattern):
            yield path, node_id
    else:
        yield pattern, fs.resolve(pattern)


def _register(ctx: datafusion.SessionContext, name: str, table: pa.Table) -> None:
    """Make ``table`` queryable as ``name``; an empty one too (DataFusion takes its schema
    from the first batch, and an empty table has none)."""
    batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    ctx.register_record_batches(name, [batches])


def run_query(fs: FS, sql: str) -> pa.Table:
    """Run ``sql`` against the pond and return the result as an Arrow table."""
    import datafusion  # here: importing it costs a quarter second of every pond command

    ctx = datafusion.SessionContext()
    registered: set[str] = set()

    def register(match: re.Match) -> str:
        pattern = match.group(3)
        if pattern not in registered:
            tables = [file_table(fs, node_id, path) for path, node_id in _matches(fs, pattern)]
            if not tables:
                raise FsError(errno.ENOENT, f"no table or series matches {pattern}")
            merged = pa.concat_tables(tables, promote_options="permissive")
            _register(ctx, pattern, merged)
            registered.add(pattern)
        return f'{match.group(1)} "{pattern}"'

    rewritten = _PATH_REF.sub(register, sql)
    if re.search(r"(?i)\boplog\b", rewritten):
        _register(ctx, "oplog", oplog_table(fs))
    try:
        return ctx.sql(rewritten).to_arrow_table()
    except Exception as exc:  # DataFusion raises plain Exceptions for SQL errors
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FsError(errno.EINVAL, f"query failed: {message}") from None


def format_table(table: pa.Table, max_width: int = 40) -> str:
    """``table`` as aligned text columns with a header line."""
    header = table.column_names
    rows = [["" if v is None else _cell(v, max_width) for v in row.values()]
            for row in table.to_pylist()]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                        for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _cell(value, max_width: int) -> str:
    text = str(value)
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_json(table: pa.Table) -> str:
    """``table`` as a JSON array of row objects."""
    return json.dumps(table.to_pylist(), default=str, ensure_ascii=False)
