"""File formats: raw bytes (``data``), one Parquet table (``table``) and time series
(``series``: each version a Parquet batch; read as the time-ordered union of versions)."""

from __future__ import annotations

import errno
import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import FsError
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


def merge_series(tables: Sequence[pa.Table], column: str) -> pa.Table:
    """The union of series batches, columns unified (missing ones null), ordered by time.

    The sort is stable, so rows with equal times keep version order.
    """
    if not tables:
        return pa.table({})
    merged = pa.concat_tables(tables, promote_options="permissive")
    if merged.num_rows and column in merged.column_names:
        merged = merged.take(pc.sort_indices(merged, [(column, "ascending")]))
    return merged
