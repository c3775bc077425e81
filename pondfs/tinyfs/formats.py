"""File formats: raw bytes (``data``), one Parquet table (``table``) and time series
(``series``: each version a Parquet batch; read as the time-ordered union of versions).

A series' versions must *join*: one may add columns (earlier rows read them as null) or leave
some out (its rows read them as null), and a column may change type only by widening: a
narrower integer to a wider one (an unsigned one to a wider signed one), an integer to a
float, a float to a wider float, a string or binary to its large form. Any other change (a
float becoming a string, a timestamp changing unit or zone, ...) cannot join and is refused:
:func:`join_schema` is the rule, and reading unifies versions by the same promotions
(pyarrow's permissive ones, which are these on the types the rule lets through).
"""

from __future__ import annotations

import errno
import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import FsError, SchemaConflict
from .records import CHUNK_SIZE

DEFAULT_TIME_COLUMN = "timestamp"


def chunks_of(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Read ``stream`` to its end in chunks of ``size`` bytes."""
    while chunk := stream.read(size):
        yield chunk


def views_of(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[memoryview]:
    """Read ``stream`` to its end in chunks of up to ``size`` bytes, all into one buffer:
    each chunk is valid only until the next is asked for (a copy of gigabytes allocates
    nothing per chunk)."""
    buffer = memoryview(bytearray(size))
    # typing's BinaryIO lacks readinto, which every binary reader here has (files, BytesIO).
    while n := stream.readinto(buffer):  # type: ignore[attr-defined]
        yield buffer[:n]


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of one Parquet file (zstd)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_parquet(source: BinaryIO | bytes, what: str) -> pa.Table:
    """Parse Parquet content; a file that is not Parquet is an EINVAL naming ``what``."""
    buf = pa.BufferReader(source) if isinstance(source, bytes) else source
    try:
        return pq.read_table(buf)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FsError(errno.EINVAL, f"{what}: not a Parquet file ({exc})") from None


def parquet_schema(source: BinaryIO, what: str) -> pa.Schema:
    """The Arrow schema of Parquet content, from its footer alone; a file that is not
    Parquet is an EINVAL naming ``what``."""
    try:
        return pq.ParquetFile(source).schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise FsError(errno.EINVAL, f"{what}: not a Parquet file ({exc})") from None


def read_csv(stream: BinaryIO, what: str) -> pa.Table:
    """Parse CSV content into a table; malformed CSV is an EINVAL naming ``what``."""
    try:
        return pacsv.read_csv(stream)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FsError(errno.EINVAL, f"{what}: not a CSV file ({exc})") from None


def time_column_of(table: pa.Table, requested: str | None, what: str) -> str:
    """The series time column: ``requested``, else ``timestamp``, else the only timestamp-typed
    column; anything else is an EINVAL naming ``what``."""
    if requested:
        if requested not in table.column_names:
            raise FsError(errno.EINVAL, f"{what}: no time column {requested!r}")
        return requested
    if DEFAULT_TIME_COLUMN in table.column_names:
        return DEFAULT_TIME_COLUMN
    stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if len(stamps) == 1:
        return stamps[0]
    raise FsError(errno.EINVAL, f"{what}: cannot tell the time column (use --time-column)")


def time_range(table: pa.Table, column: str) -> tuple[int | None, int | None]:
    """The smallest and largest event time of ``column`` as integers (native unit)."""
    if table.num_rows == 0:
        return None, None
    values = table.column(column)
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        values = values.cast(pa.int64())
    bounds = pc.min_max(values)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return low, high


_LARGE_FORMS = {pa.string(): pa.large_string(), pa.binary(): pa.large_binary()}


def _widens(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether columns of types ``a`` and ``b`` join (one widens to a type holding both)."""
    if a == b or pa.types.is_null(a) or pa.types.is_null(b):
        return True
    numbers = (pa.types.is_integer(a) or pa.types.is_floating(a)) and \
        (pa.types.is_integer(b) or pa.types.is_floating(b))
    if numbers:
        # No signed integer holds every uint64 (pyarrow would make both int64 and wrap).
        return not any(pa.types.is_uint64(x) and pa.types.is_signed_integer(y)
                       for x, y in ((a, b), (b, a)))
    return _LARGE_FORMS.get(a, a) == _LARGE_FORMS.get(b, b)


def join_schema(series: pa.Schema, version: pa.Schema, what: str,
                err: int = errno.EINVAL) -> pa.Schema:
    """The schema of a series of schema ``series`` once a version of schema ``version``
    joins it: columns in order of first appearance, each of the type both widen to.

    A column whose types cannot join is a :class:`SchemaConflict` (``err``, naming ``what``).
    """
    for field in version:
        index = series.get_field_index(field.name)
        if index >= 0 and not _widens(series.field(index).type, field.type):
            raise SchemaConflict(err, what, field.name, series.field(index).type, field.type)
    return pa.unify_schemas([series, version], promote_options="permissive")


def merge_series(tables: Sequence[pa.Table], column: str, what: str) -> pa.Table:
    """The union of series batches, columns unified (missing ones null, types widened as
    :func:`join_schema` allows), ordered by time; batches that cannot join are an EIO
    :class:`SchemaConflict` naming ``what`` (a history written before the rule).

    The sort is stable, so rows with equal times keep version order.
    """
    if not tables:
        return pa.table({})
    schema = tables[0].schema
    for table in tables[1:]:
        schema = join_schema(schema, table.schema, what, errno.EIO)
    merged = pa.concat_tables(tables, promote_options="permissive")
    if merged.num_rows and column in merged.column_names:
        merged = merged.take(pc.sort_indices(merged, [(column, "ascending")]))
    return merged
