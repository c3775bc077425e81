"""File content and series: writing, truncating and reading the bytes of files, appending
to series and reading them merged.

:class:`FileContent` is the layer of :class:`~pondfs.tinyfs.fs.FS` that owns a file's bytes;
content is stored through the persistence (inline, or as content objects) and a series' merged
Parquet file is kept in the view's :class:`~pondfs.tinyfs.cache.DerivedCache`.
"""

from __future__ import annotations

import errno
import io
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from . import formats
from .dynamic import DynamicFile
from .errors import FsError
from .hashing import content_hash
from .records import (
    CHUNK_SIZE,
    DIRECTORY,
    DYNAMIC,
    FILE,
    INLINE_LIMIT,
    SERIES,
    SPECIAL_KINDS,
    SYMLINK,
    NodeVersion,
    StoredContent,
)
from .staging import StagedView, locked

T = TypeVar("T")


class FileContent(StagedView):
    """The file-content operations of a view (a layer of :class:`~pondfs.tinyfs.fs.FS`)."""

    # ------------------------------------------------------------------ file content

    def _require_file(self, node_id: str) -> NodeVersion:
        """The newest version of a regular file whose content is about to change."""
        v = self._require_stored(node_id)
        if v.kind != FILE:
            err = {DIRECTORY: errno.EISDIR, DYNAMIC: errno.EROFS}.get(v.kind, errno.EINVAL)
            raise FsError(err, f"not a regular file: {node_id}")
        return v

    def write_content(self, node_id: str, chunks: Iterable[bytes], *,
                      changed_ns: int | None = None, mtime_ns: int | None = None) -> None:
        """Replace a file's content with the bytes of ``chunks`` (streamed, never whole).
        ``changed_ns`` is when the bytes last changed (a mount's writes before the close
        that stores them; default now): the new ctime unless that is later, and the new
        mtime unless ``mtime_ns`` gives it (a utime since the last write)."""
        self._replace_content(node_id, lambda: self.store.store(chunks, INLINE_LIMIT),
                              changed_ns, mtime_ns)

    def write_file(self, node_id: str, source: int,
                   progress: Callable[[int], None] | None = None, *,
                   changed_ns: int | None = None, mtime_ns: int | None = None) -> None:
        """Replace a file's content with the bytes of open file descriptor ``source``, from
        its offset to its end, copied as fast as the store can (never whole in memory);
        ``progress`` is called with each number of bytes copied; ``changed_ns`` and
        ``mtime_ns`` as for :meth:`write_content`."""
        self._replace_content(
            node_id, lambda: self.store.store_file(source, INLINE_LIMIT, progress), changed_ns,
            mtime_ns)

    def _replace_content(self, node_id: str, keep: Callable[[], StoredContent],
                         changed_ns: int | None, mtime_ns: int | None) -> None:
        """Make what ``keep()`` stores the file's new content.

        The bytes are stored without holding the view's lock, so other threads (a FUSE event
        loop) are not stalled while a large content is hashed and written.
        """
        with self._mutex:
            self._require_file(node_id)
        stored = keep()
        with self._mutex:
            changed = time.time_ns() if changed_ns is None else changed_ns
            mtime = changed if mtime_ns is None else mtime_ns
            ctime = max(changed, self._latest(node_id).ctime_ns)
            self._next_version(node_id, blake3=stored.blake3, size=stored.size,
                               inline=stored.inline is not None, content=stored.inline,
                               mtime_ns=mtime, ctime_ns=ctime, min_time=None, max_time=None)

    @locked
    def write_table(self, node_id: str, table: pa.Table) -> None:
        """Replace a table file's content with ``table`` as Parquet."""
        self.write_content(node_id, [formats.parquet_bytes(table)])

    @locked
    def append_series(self, node_id: str, table: pa.Table, time_column: str | None = None, *,
                      what: str | None = None) -> None:
        """Append ``table`` as a new version of a series (merged with one pending in this
        transaction), recording its event-time range.

        Every way into a series comes here, so here a version that cannot join the series
        (:func:`~pondfs.tinyfs.formats.join_schema`) is refused, an EINVAL
        :class:`~pondfs.tinyfs.errors.SchemaConflict` naming ``what`` (what is appended, to
        where; default the node id), before anything is stored.
        """
        what = what or node_id
        v = self._require_stored(node_id)
        if v.format != SERIES:
            raise FsError(errno.EINVAL, f"not a series: {node_id}")
        column = formats.time_column_of(table, time_column or v.time_column or None, what)
        joined = formats.join_schema(self._series_schema(v), table.schema, what)
        pending = self._pending.get(node_id)
        if pending is not None and pending.min_time is not None:
            earlier = formats.read_parquet(self._content_bytes(pending), node_id)
            table = formats.merge_series([earlier, table], column, what)
        low, high = formats.time_range(table, column)
        data = formats.parquet_bytes(table)
        # What a scan of the footers will find once this version is stored: kept, so the
        # next append reads none.
        joined = formats.join_schema(joined, formats.parquet_schema(io.BytesIO(data), what),
                                     what)
        stored = self.store.store([data], INLINE_LIMIT)
        now = time.time_ns()
        appended = self._next_version(
            node_id, blake3=stored.blake3, size=stored.size, inline=stored.inline is not None,
            content=stored.inline, mtime_ns=now, ctime_ns=now, min_time=low, max_time=high,
            time_column=column)
        if low is not None:
            self._keep_schema(appended, joined)

    @locked
    def truncate(self, node_id: str, size: int) -> None:
        """Cut or zero-extend a data file to ``size`` bytes."""
        if size < 0:
            raise FsError(errno.EINVAL, f"negative size {size}")
        v = self._require_file(node_id)
        if v.size == size:
            return
        source = self.open_read(node_id)

        def resized() -> Iterator[bytes]:
            with source:
                left = size
                while left and (chunk := source.read(min(CHUNK_SIZE, left))):
                    left -= len(chunk)
                    yield chunk
                while left:
                    n = min(CHUNK_SIZE, left)
                    left -= n
                    yield bytes(n)

        self.write_content(node_id, resized())

    def _content_bytes(self, v: NodeVersion) -> bytes:
        with self._open_version(v) as f:
            return f.read()

    def _open_version(self, v: NodeVersion) -> BinaryIO:
        if v.inline:
            return io.BytesIO(v.content if v.content is not None else self.store.read_inline(v))
        return self.store.open_object(v.blake3)

    @locked
    def open_read(self, node_id: str) -> BinaryIO:
        """A seekable reader of a file's bytes (a series as one merged Parquet file)."""
        dynamic = self._dynamic_node(node_id)
        if dynamic is not None:
            if isinstance(dynamic, DynamicFile):
                return dynamic.open()
            raise FsError(errno.EISDIR, f"is a directory: {node_id}")
        v = self._latest(node_id)
        if v.kind == DIRECTORY:
            raise FsError(errno.EISDIR, f"is a directory: {node_id}")
        if v.kind in SPECIAL_KINDS:
            raise FsError(errno.EINVAL, f"a {v.kind} has no content to read: {node_id}")
        if v.format == SERIES:
            return self._merged_series(v, self.cache.open)
        return self._open_version(v)

    def copy_to(self, node_id: str, out: int) -> None:
        """Write a file's bytes (as :meth:`open_read` reads them) to open file descriptor
        ``out``, from its offset. Content objects go through the store, which verifies them
        and may copy in the kernel (:meth:`Persistence.copy_object`)."""
        with self._mutex:
            v = None if self._dynamic_node(node_id) is not None else self._latest(node_id)
        if v is not None and v.kind == FILE and v.format != SERIES and not v.inline:
            self.store.copy_object(v.blake3, out)
            return
        with self.open_read(node_id) as reader, open(out, "wb", closefd=False) as writer:
            for chunk in formats.views_of(reader):
                writer.write(chunk)

    @locked
    def readlink(self, node_id: str) -> str:
        """A symlink's target."""
        v = self._latest(node_id)
        if v.kind != SYMLINK:
            raise FsError(errno.EINVAL, f"not a symbolic link: {node_id}")
        return self._content_bytes(v).decode()

    # ------------------------------------------------------------------ series

    def _series_versions(self, v: NodeVersion) -> list[NodeVersion]:
        committed = self._committed(v.node_id)
        if [c.version for c in committed] != list(range(1, len(committed) + 1)):
            # The file moved between directories: some versions are in other partitions.
            committed = self.store.node_versions(v.node_id, self.as_of)
        versions = [c for c in committed if c.min_time is not None and not c.deleted]
        versions += [c for c in self._inflight.get(v.node_id, ()) if c.min_time is not None]
        pending = self._pending.get(v.node_id)
        if pending is not None and pending.min_time is not None:
            versions.append(pending)
        return versions

    @locked
    def series_versions(self, node_id: str) -> list[NodeVersion]:
        """The versions of a series that hold rows, oldest first (a pending one last); read
        each with :meth:`open_version` to stream a large series a batch at a time."""
        v = self._latest(node_id)
        if v.format != SERIES:
            raise FsError(errno.EINVAL, f"not a series: {node_id}")
        return self._series_versions(v)

    def open_version(self, v: NodeVersion) -> BinaryIO:
        """A reader of the bytes one version stored (for a series version, its Parquet batch)."""
        return self._open_version(v)

    def _series_key(self, v: NodeVersion) -> str:
        parts = [v.node_id] + [c.blake3 for c in self._series_versions(v)]
        return "series-" + content_hash("\n".join(parts).encode())

    @locked
    def series_schema(self, node_id: str) -> pa.Schema:
        """The schema a series reads with: every version's columns joined (see
        :func:`~pondfs.tinyfs.formats.join_schema`), from Parquet footers alone; a history
        whose versions cannot join is an EIO :class:`~pondfs.tinyfs.errors.SchemaConflict`."""
        v = self._latest(node_id)
        if v.format != SERIES:
            raise FsError(errno.EINVAL, f"not a series: {node_id}")
        return self._series_schema(v)

    def _series_schema(self, v: NodeVersion) -> pa.Schema:
        key = "schema-" + self._series_key(v)
        cached = self.cache.open(key)
        if cached is not None:
            with cached:
                return pa.ipc.read_schema(pa.py_buffer(cached.read()))
        schema = pa.schema([])
        for version in self._series_versions(v):
            with self._open_version(version) as f:
                found = formats.parquet_schema(f, v.node_id)
            schema = formats.join_schema(schema, found, _unjoined(v.node_id), errno.EIO)
        self._keep_schema(v, schema)
        return schema

    def _keep_schema(self, v: NodeVersion, schema: pa.Schema) -> None:
        """Cache ``schema`` as the joined schema of series version ``v``'s versions."""
        self.cache.fill("schema-" + self._series_key(v),
                        lambda sink: sink.write(schema.serialize().to_pybytes()))

    def _fill_series(self, v: NodeVersion, key: str) -> None:
        table = self.read_series(v.node_id)
        self.cache.fill(key, lambda sink: sink.write(formats.parquet_bytes(table)))

    def _merged_series(self, v: NodeVersion, use: Callable[[str], T | None]) -> T:
        """``use`` of the cached merged Parquet file of series version ``v`` (a reader, its
        size), merging it into the cache first when it is not there."""
        key = self._series_key(v)
        found = use(key)
        if found is None:
            self._fill_series(v, key)
            found = use(key)
        assert found is not None
        return found

    def _series_size(self, v: NodeVersion) -> int:
        return self._merged_series(v, self.cache.size)

    @locked
    def read_series(self, node_id: str, start: int | None = None, end: int | None = None
                    ) -> pa.Table:
        """A series' rows with ``start <= time <= end`` (bounds optional), time-ordered.

        Versions whose recorded time range misses the window are not read at all.
        """
        v = self._latest(node_id)
        if v.format != SERIES:
            raise FsError(errno.EINVAL, f"not a series: {node_id}")
        tables = []
        for version in self._series_versions(v):
            low, high = version.min_time, version.max_time
            assert low is not None and high is not None  # only versions with rows are listed
            if (start is not None and high < start) or (end is not None and low > end):
                continue
            tables.append(formats.read_parquet(self._content_bytes(version), node_id))
        merged = formats.merge_series(tables, v.time_column, _unjoined(node_id))
        if merged.num_rows and (start is not None or end is not None):
            column = merged.column(v.time_column)
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            mask = None
            if start is not None:
                mask = pc.greater_equal(column, start)
            if end is not None:
                upper = pc.less_equal(column, end)
                mask = upper if mask is None else pc.and_(mask, upper)
            merged = merged.filter(mask)
        return merged


def _unjoined(node_id: str) -> str:
    """What a read of a series whose versions do not join names (a view knows no paths)."""
    return f"series {node_id} (pond check names its path)"
