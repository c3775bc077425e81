"""Delta Lake persistence of a pond: :class:`OplogPersistence`.

A pond (a local directory or an S3 prefix: see :mod:`.storage`) holds the Delta table of
node versions, content objects, derived caches and the single-writer lock (:mod:`.layout`).

One pond transaction is one Delta commit. It holds the transaction's node versions and one
transaction row (number, command, user, time, rows: see :mod:`.schema`) that ``pond log``
reads; its app transaction ``("pond", txn)`` lets any snapshot answer "which transaction is
this?" without reading rows; its commit metadata repeats the transaction row for Delta tools.

The Delta log is cleaned up as Delta does by default: at each checkpoint (every 100 commits)
log entries older than the log retention and before the previous checkpoint are deleted. Pond
time travel filters rows by ``txn`` and never needs old log entries; a long log would only
make every commit and every open list more files (10,000 entries: 115 ms a commit instead of
38). See :data:`_TABLE_CONFIGURATION` for the retentions chosen.

Reads go through a per-version index of the table's data files (their partition and txn and
node_id ranges, from the Delta log's add actions) and read only the Parquet files that can
hold the rows asked for, with pyarrow datasets (which release the GIL). Rows with ``txn <= T``
never change once T is committed, so listings are cached by (partition, T) across versions.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from pondfs.tinyfs import (
    Chunk,
    CorruptContent,
    FsError,
    NodeVersion,
    Persistence,
    Snapshot,
    StoredContent,
    TxnInfo,
    content_hash,
)

from .layout import LAST_CHECKPOINT, LOG_DIR, checkpoint_name, log_entry_name
from .objects import fsync_dir
from .schema import (
    CONTENT_COLUMN,
    HASH_COLUMN,
    LISTING_COLUMNS,
    PARTITION_COLUMN,
    SCHEMA,
    TXN_PARTITION,
    from_table,
    missing_columns,
    to_table,
    txn_infos,
    txn_row,
)
from .snapshot import list_snapshot
from .storage import PondLock, PondStorage, storage_for

log = logging.getLogger(__name__)

#: The Delta app id under which pond transaction numbers are recorded.
APP_ID = "pond"

#: Compact a partition once it has gained this many data files since it was last compacted
#: (a read of a partition costs ~1 ms per file; compacting one ~20 ms, a call ~0.2 s): a
#: commit touching many directories adds a file to each, and compacting them all after
#: every such commit made it seconds long.
COMPACT_AFTER_FILES = 8

#: Replace the writer's DeltaTable object after this many commits (it slows down with age).
REOPEN_AFTER_COMMITS = 200

#: Bytes of inline content kept in memory for :meth:`OplogPersistence.read_inline`.
CONTENT_CACHE_BYTES = 256 * 1024 * 1024

#: Rows of partition listings kept in memory.
LISTING_CACHE_ROWS = 200_000

# Log entries: pond needs none older than the newest checkpoints (transaction rows and txn
# filters replace Delta history and time travel). What a short retention risks is a reader
# that lists the log and then reads entries a checkpointing commit deletes meanwhile: an
# hour covers any open by far. (A table object refreshed after the entries that follow its
# snapshot were deleted loads the newest checkpoint instead: deltalake 1.6 does.) An hour
# keeps the log small unless a pond commits thousands of times an hour; Delta's default of
# 30 days keeps 10,000 entries for a pond that commits 350 times a day. Checkpoints stay at
# Delta's default (every 100 commits).
#
# Remove tombstones stay at Delta's default of a week, the default retention of
# ``pond maintain``: vacuum keeps a removed file for the retention counted from its removal
# only while its tombstone exists; once the tombstone has expired, a full vacuum judges the
# file by its age alone, so a shorter tombstone retention would shorten the protection of
# readers on older snapshots. (They cost opening time: ~12,000 tombstones, a week of
# auto-compaction at 10,000 commits a week, make opening 144 ms instead of 46 ms.)
_TABLE_CONFIGURATION = {"delta.logRetentionDuration": "interval 1 hours"}


def create_pond(location: str | os.PathLike[str], **options: Any) -> OplogPersistence:
    """Create an empty pond at ``location`` (a new or existing directory, or an empty S3
    prefix) and open it. ``options`` are passed to :class:`OplogPersistence`."""
    storage = storage_for(location)
    storage.check_new()
    storage.prepare()
    try:
        DeltaTable.create(
            storage.table_uri,
            pa.schema(SCHEMA),
            partition_by=[PARTITION_COLUMN],
            configuration=_TABLE_CONFIGURATION,
            storage_options=storage.storage_options or None,
        )
    except Exception as exc:  # another init won the race, or the store failed
        raise FsError(errno.EIO, f"{storage.url}: creating the pond failed: "
                      f"{_first_line(exc)}") from exc
    log.info("created pond %s", storage.url)
    return OplogPersistence(storage, **options)


def open_pond(location: str | os.PathLike[str], **options: Any) -> OplogPersistence:
    """Open the pond at ``location`` (a directory or ``s3://bucket/prefix``); ``options``
    are passed to :class:`OplogPersistence`."""
    storage = storage_for(location)
    storage.check_pond()
    return OplogPersistence(storage, **options)


def _first_line(exc: BaseException) -> str:
    """The first line of a deltalake error (they carry multi-line causes)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class OplogPersistence(Persistence):
    """A pond's node versions in a Delta table, its large content in an :class:`ObjectStore`.

    Opening pins the newest snapshot: readers never see part of a transaction, nor any
    transaction committed after they opened until :meth:`refresh`. The writer's own commits
    advance its snapshot. ``durable=True`` makes each commit fsync the data files and log entry
    it wrote, and those of this instance's earlier commits that were not durable (and its
    compactions): a later log entry must never outlive an earlier one, so a returned commit
    survives a power loss together with everything before it. :meth:`sync` does the same
    without committing. Calls are serialized by a lock, so worker threads may share one
    instance.
    """

    def __init__(
        self,
        storage: PondStorage,
        *,
        durable: bool = False,
        compact_after_files: int = COMPACT_AFTER_FILES,
        reopen_after_commits: int = REOPEN_AFTER_COMMITS,
        content_cache_bytes: int = CONTENT_CACHE_BYTES,
    ):
        self.storage = storage
        #: The pond's local directory, or None for a pond in S3.
        self.root = storage.local_dir
        self.table_uri = storage.table_uri
        self.storage_options = storage.storage_options
        self.durable = durable
        self.compact_after_files = compact_after_files
        self.reopen_after_commits = reopen_after_commits
        self._mutex = threading.RLock()
        self._table = self._open_table()
        #: The Delta table's id: one pond's identity wherever it is read from.
        self.table_id: str = str(self._table.metadata().id)  # a UUID (typed int upstream)
        self.objects = storage.object_store(self.table_id)
        self._cache_dir = storage.cache_dir(self.table_id)
        self._commits_on_table = 0
        #: Data files per partition right after its last compaction (one, or more for a
        #: partition beyond Delta's target file size).
        self._files_after_compaction: dict[str, int] = {}
        self._index: _FileIndex | None = None
        schema = pa.schema(self._table.schema().to_arrow())
        if HASH_COLUMN not in schema.names:
            raise FsError(errno.EINVAL, f"{self.root}: a pond of an older pondfs (content named "
                          f"by SHA-256, not {HASH_COLUMN}): recreate it with this version")
        #: Columns this version writes that the table lacks (an older pond's): the next
        #: commit adds them (Delta schema evolution); reads fill them with nulls meanwhile.
        self._missing_columns = missing_columns(schema)
        self._reader = _ParquetReader(storage.table_filesystem(), SCHEMA)
        self._listings = _LRU(LISTING_CACHE_ROWS)
        self._content = _LRU(content_cache_bytes)
        self._writer_lock: PondLock | None = None
        self._txns: list[TxnInfo] = []  # every transaction up to _txns_upto, newest first
        self._txns_upto = 0
        #: Table versions this instance wrote (commits, compactions) not fsync'ed yet.
        self._unsynced: set[int] = set()
        #: Content objects this instance stored while not durable, not fsync'ed yet.
        self._unsynced_objects: set[str] = set()
        log.debug("opened %s at table version %d", storage.url, self._table.version())

    # -- transactions --------------------------------------------------------------------

    def last_txn(self) -> int:
        with self._mutex:
            return self._table.transaction_version(APP_ID) or 0

    def table_version(self) -> int:
        """The Delta version of the pinned snapshot."""
        with self._mutex:
            return self._table.version()

    def refresh(self) -> None:
        """Move to the newest committed snapshot (cheap when there is none newer: the file
        index is kept)."""
        with self._mutex:
            before = self._table.version()
            self._table.update_incremental()
            if self._table.version() != before:
                self._index = None

    def commit(self, versions: Sequence[NodeVersion], info: TxnInfo) -> None:
        """Append ``versions`` as pond transaction ``info.txn``: one Delta commit.

        ``info.txn`` must follow :meth:`last_txn`. Contents of rows that are not inline are
        dropped; large content belongs in objects (see :meth:`store`).

        The Delta commit is made without retries: it succeeds only as the version right
        after this instance's snapshot (a conditional PUT of the log entry, locally and in
        S3), so a writer that somehow lost the single-writer lock (an S3 lease that ran out
        while it stalled) fails instead of committing after another writer's transaction.
        """
        with self._mutex:
            if self._writer_lock is not None:
                self._writer_lock.check()
            last = self.last_txn()
            if info.txn != last + 1:
                raise FsError(
                    errno.EINVAL,
                    f"transaction {info.txn} does not follow the last committed "
                    f"transaction {last}",
                )
            wrong = [v for v in versions if v.txn != info.txn]
            if wrong:
                raise FsError(
                    errno.EINVAL,
                    f"transaction {info.txn} includes a version of node {wrong[0].node_id} "
                    f"with txn {wrong[0].txn}",
                )
            info = dataclasses.replace(info, rows=len(versions))
            metadata = {
                "pond.txn": str(info.txn),
                "pond.command": info.command,
                "pond.user": info.user,
                "pond.timestamp_ns": str(info.timestamp_ns),
                "pond.rows": str(info.rows),
            }
            try:
                write_deltalake(
                    self._table,
                    to_table([*versions, txn_row(info)]),
                    mode="append",
                    partition_by=[PARTITION_COLUMN],
                    schema_mode="merge" if self._missing_columns else None,
                    storage_options=self.storage_options or None,
                    commit_properties=CommitProperties(
                        custom_metadata=metadata,
                        app_transactions=[Transaction(APP_ID, info.txn)],
                        max_commit_retries=0,
                    ),
                )
            except Exception as exc:
                raise FsError(
                    errno.EIO, f"commit of transaction {info.txn} failed: {_first_line(exc)}"
                ) from exc
            finally:
                self._index = None
            if self._missing_columns:
                log.info("added columns %s to the oplog of an older pond",
                         ", ".join(self._missing_columns))
                self._missing_columns = []
            committed = self.last_txn()
            if committed != info.txn:
                raise FsError(
                    errno.EIO,
                    f"commit of transaction {info.txn} recorded transaction {committed}",
                )
            version = self._table.version()
            log.debug(
                "committed transaction %d (%d rows) as table version %d",
                info.txn, len(versions), version,
            )
            self._unsynced.add(version)
            if self.durable:
                self._sync_written()
            self._commits_on_table += 1
            self._after_commit()

    def _after_commit(self) -> None:
        """Keep reads and commits fast as history grows: compact, and renew the writer.

        The transaction is committed already, so a failed compaction only costs speed: it
        is logged, not raised (the next commit or ``pond maintain`` tries again).
        """
        counts = self._files().files_per_partition()
        crowded = sorted(part for part, count in counts.items()
                         if count - self._files_after_compaction.get(part, 1)
                         >= self.compact_after_files)
        if crowded:
            log.info("compacting %d partitions of %d or more new data files", len(crowded),
                     self.compact_after_files)
            try:
                self.compact(crowded)
            except Exception:
                log.warning("automatic compaction failed; the commit stands", exc_info=True)
            else:
                after = self._files().files_per_partition()
                self._files_after_compaction.update((part, after.get(part, 1))
                                                    for part in crowded)
        if self._commits_on_table >= self.reopen_after_commits:
            log.debug("reopening the writer's table after %d commits", self._commits_on_table)
            self._table = self._open_table()
            self._commits_on_table = 0
            self._index = None

    def sync(self) -> None:
        """fsync everything this instance's commits and compactions wrote so far."""
        with self._mutex:
            self._sync_written()

    def transactions(self, as_of: int) -> list[TxnInfo]:
        """From the transaction rows; transactions up to a number never change, so they are
        read once per instance and filtered after."""
        with self._mutex:
            limit = min(as_of, self.last_txn())
            if limit > self._txns_upto:
                files = self._files().in_partition(TXN_PARTITION, limit)
                table = self._reader.read(files, [CONTENT_COLUMN], pc.field("txn") <= limit)
                found = {t.txn: t for t in txn_infos(table)}
                if len(found) < limit:
                    found = self._history_txns(limit) | found
                self._txns = sorted(found.values(), key=lambda t: t.txn, reverse=True)
                self._txns_upto = limit
            return [t for t in self._txns if t.txn <= limit]

    def _history_txns(self, limit: int) -> dict[int, TxnInfo]:
        """Transactions from Delta commit metadata: ponds made before transaction rows
        existed kept their whole log for this (slow: it reads every log entry)."""
        found = {}
        for entry in self._table.history():
            if "pond.txn" in entry and int(entry["pond.txn"]) <= limit:
                info = TxnInfo(
                    txn=int(entry["pond.txn"]),
                    timestamp_ns=int(entry.get("pond.timestamp_ns", 0)),
                    command=entry.get("pond.command", ""),
                    user=entry.get("pond.user", ""),
                    rows=int(entry.get("pond.rows", 0)),
                )
                found[info.txn] = info
        return found

    @contextmanager
    def writer_lock(self, holder: str, wait: float = 0.0) -> Iterator[None]:
        """Hold the pond's single-writer lock (waiting up to ``wait`` seconds for it); on
        taking it, move to the newest snapshot so the next transaction number is right."""
        lock = self.storage.writer_lock(holder, wait)
        with lock:
            self._writer_lock = lock
            try:
                self.refresh()
                yield
            finally:
                self._writer_lock = None

    @property
    def holds_lock(self) -> bool:
        """Whether this instance holds the writer lock now."""
        return self._writer_lock is not None

    def finishing(self) -> None:
        """Tell writers waiting for the lock that this one releases it shortly."""
        if self._writer_lock is not None:
            self._writer_lock.finishing()

    def lock_holder(self) -> str | None:
        """Who holds the writer lock (see :func:`pondfs.oplog.lock.lock_holder`), or None."""
        return self.storage.lock_holder()

    # -- rows ----------------------------------------------------------------------------

    def partition(self, part_id: str, as_of: int) -> list[NodeVersion]:
        with self._mutex:
            as_of = min(as_of, self.last_txn())
            key = (part_id, as_of)
            cached = self._listings.get(key)
            if cached is None:
                files = self._files().in_partition(part_id, as_of)
                table = self._reader.read(
                    files, LISTING_COLUMNS, pc.field("txn") <= as_of
                ).sort_by([("node_id", "ascending"), ("version", "ascending")])
                cached = from_table(table)
                self._listings.put(key, cached, len(cached) + 1)
            return list(cached)

    def node_versions(self, node_id: str, as_of: int) -> list[NodeVersion]:
        with self._mutex:
            as_of = min(as_of, self.last_txn())
            files = self._files().everywhere(as_of, node_id)
            table = self._reader.read(
                files,
                LISTING_COLUMNS,
                (pc.field("node_id") == node_id) & (pc.field("txn") <= as_of),
            ).sort_by([("txn", "ascending"), ("version", "ascending")])
            return from_table(table)

    def changes(self, after: int, as_of: int) -> list[NodeVersion]:
        with self._mutex:
            as_of = min(as_of, self.last_txn())
            files = self._files().everywhere(as_of, after=after)
            table = self._reader.read(
                files, LISTING_COLUMNS, (pc.field("txn") > after) & (pc.field("txn") <= as_of)
            )
            return from_table(table)

    def scan(self, as_of: int) -> Iterator[NodeVersion]:
        """Every version with ``txn <= as_of``, one data file at a time (memory stays
        bounded by the largest file), in no particular order."""
        with self._mutex:
            as_of = min(as_of, self.last_txn())
            files = self._files().everywhere(as_of)
        for file in files:
            with self._mutex:
                table = self._reader.read([file], LISTING_COLUMNS, pc.field("txn") <= as_of)
            yield from from_table(table)

    def read_inline(self, version: NodeVersion) -> bytes:
        if version.content is not None:
            return version.content
        if not version.inline:
            raise FsError(
                errno.EINVAL,
                f"node {version.node_id} version {version.version} has no inline content",
            )
        key = (version.node_id, version.version)
        with self._mutex:
            for file in self._files().holding(version):
                contents = self._content.get(file.path)
                if contents is None:
                    contents = self._reader.inline_contents(file)
                    self._content.put(file.path, contents, contents.nbytes)
                found = contents.get(key)
                if found is not None:
                    return found
        raise CorruptContent(
            f"inline content of node {version.node_id} version {version.version} "
            f"(transaction {version.txn}) is not in the oplog"
        )

    def referenced_objects(self) -> set[str]:
        """The content objects named by any row, in any version of any node."""
        with self._mutex:
            files = self._files().everywhere(self.last_txn())
            table = self._reader.read(files, [HASH_COLUMN], pc.field("inline") == pa.scalar(False))
        return set(table.column(HASH_COLUMN).to_pylist())

    def snapshot(self) -> Snapshot:
        """The files of the pinned snapshot: its data files, log entries and the objects
        its rows name (:func:`.snapshot.list_snapshot`). A local pond only."""
        if self.root is None:
            raise FsError(errno.ENOTSUP, f"{self.storage.url}: a pond in S3 is not copied "
                          "file by file")
        with self._mutex:
            txn = self.last_txn()
            newest = self.transactions(txn)[:1]
            return list_snapshot(
                self.root, pond_id=self.table_id, version=self._table.version(), txn=txn,
                txn_time_ns=newest[0].timestamp_ns if newest else 0,
                data_files=self._files().sizes(), objects=self.referenced_objects(),
            )

    # -- content -------------------------------------------------------------------------

    def store(self, chunks: Iterable[Chunk], inline_limit: int) -> StoredContent:
        """Keep ``chunks``: inline when shorter than ``inline_limit``, else as an object.

        At most ``inline_limit`` bytes plus one chunk are held in memory.
        """
        head = bytearray()
        rest = iter(chunks)
        for chunk in rest:
            head += chunk
            if len(head) >= inline_limit:
                break
        else:
            if len(head) < inline_limit:
                data = bytes(head)
                return StoredContent(content_hash(data), len(data), data)
        digest, size = self.objects.put(chain([head], rest), durable=self.durable)
        return self._stored_object(digest, size)

    def store_file(self, source: int, inline_limit: int,
                   progress: Callable[[int], None] | None = None) -> StoredContent:
        """Keep the bytes of open file ``source`` from its offset: a regular file with at
        least ``inline_limit`` bytes left as an object the kernel copies into place, anything
        else as :meth:`store` keeps chunks."""
        info = os.fstat(source)
        if not stat.S_ISREG(info.st_mode) or \
                info.st_size - os.lseek(source, 0, os.SEEK_CUR) < inline_limit:
            return super().store_file(source, inline_limit, progress)
        digest, size = self.objects.put_file(source, durable=self.durable, progress=progress)
        return self._stored_object(digest, size)

    def _stored_object(self, digest: str, size: int) -> StoredContent:
        if not self.durable:
            with self._mutex:
                self._unsynced_objects.add(digest)
        return StoredContent(digest, size, None)

    def open_object(self, digest: str) -> BinaryIO:
        return self.objects.open(digest)

    def copy_object(self, digest: str, out: int) -> None:
        """Verified, and in the kernel (see :meth:`ObjectStore.copy_to`)."""
        self.objects.copy_to(digest, out)

    def object_ids(self) -> Iterator[str]:
        return self.objects.ids()

    # -- local places --------------------------------------------------------------------

    def cache_dir(self) -> Path:
        """``<pond>/cache``, or for a pond in S3 a local one (see :mod:`.storage`)."""
        return self._cache_dir

    def disk_dir(self) -> Path:
        """The pond's directory, or for a pond in S3 its local cache."""
        return self.root or self._cache_dir

    # -- maintenance ---------------------------------------------------------------------

    def compact(self, partitions: list[str] | None = None) -> dict[str, Any]:
        """Rewrite each partition's small data files into one (of ``partitions`` only, if
        given); return Delta's metrics."""
        with self._mutex:
            before = self._table.version()
            only = None if partitions is None else [(PARTITION_COLUMN, "in", partitions)]
            metrics = self._table.optimize.compact(partition_filters=only)
            self._index = None
            self._unsynced.update(range(before + 1, self._table.version() + 1))
            log.info(
                "compaction replaced %s data files with %s",
                metrics.get("numFilesRemoved"), metrics.get("numFilesAdded"),
            )
            return metrics

    def checkpoint(self) -> None:
        """Write a Delta checkpoint of the current version, so opening reads one file."""
        with self._mutex:
            self._table.create_checkpoint()
            self._unsynced.add(self._table.version())  # the next durable commit syncs it

    def vacuum(self, retention_hours: float) -> list[str]:
        """Delete data files no snapshot of the last ``retention_hours`` uses; return them.

        Readers pinned to an older snapshot may then fail to read: keep the retention longer
        than any reader lives.
        """
        with self._mutex:
            removed = self._table.vacuum(
                retention_hours=int(retention_hours),
                dry_run=False,
                enforce_retention_duration=False,
                full=True,
            )
            self._index = None
            return removed

    def data_file_count(self) -> int:
        """How many data files the pinned snapshot reads."""
        with self._mutex:
            return len(self._files())

    def table_summary(self) -> dict[str, int]:
        """From the Delta log alone: rows, data files and their bytes, files beyond one per
        partition (what compaction would merge), log entries since the last checkpoint."""
        with self._mutex:
            actions = self._files()._actions
            version = self._table.version()
            rows = pc.sum(actions.column("num_records")).as_py() if actions.num_rows else 0
            size = pc.sum(actions.column("size_bytes")).as_py() if actions.num_rows else 0
            try:
                with self._reader._fs.open_input_stream(
                        f"{LOG_DIR}/{LAST_CHECKPOINT}") as f:
                    checkpoint = int(json.loads(f.read())["version"])
            except (OSError, ValueError, KeyError):
                checkpoint = -1
            return {"rows": rows or 0, "data_files": actions.num_rows, "data_bytes": size or 0,
                    "extra_files": actions.num_rows - len(self._files().files_per_partition()),
                    "log_entries_since_checkpoint": version - checkpoint}

    def close(self) -> None:
        with self._mutex:
            self._index = None
            self._listings.clear()
            self._content.clear()

    # -- internals -----------------------------------------------------------------------

    def _open_table(self) -> DeltaTable:
        return DeltaTable(self.table_uri, storage_options=self.storage_options or None)

    def _files(self) -> _FileIndex:
        if self._index is None:
            self._index = _FileIndex(pa.table(self._table.get_add_actions(flatten=True)))
        return self._index

    def _sync_written(self) -> None:
        """fsync what the table versions in ``_unsynced`` wrote: their data files, log
        entries and checkpoints, oldest first, then the directories that name them (local
        Delta commits do not fsync). In S3 a PUT is durable once it returns: nothing to do."""
        if self.root is None:
            self._unsynced.clear()
            self._unsynced_objects.clear()
            return
        table_dir = Path(self.table_uri)
        log_dir = table_dir / LOG_DIR
        dirs = {table_dir, log_dir}
        self.objects.sync(self._unsynced_objects)  # before any log entry naming them
        self._unsynced_objects.clear()
        cleaned_up = False
        for version in sorted(self._unsynced):
            checkpoint = log_dir / checkpoint_name(version)
            if checkpoint.exists():
                _fsync_file(checkpoint)
                _fsync_file(log_dir / LAST_CHECKPOINT, missing_ok=True)
            entry = log_dir / log_entry_name(version)
            try:
                lines = entry.read_text().splitlines()
            except FileNotFoundError:
                # Older than the log retention and behind a newer checkpoint (which this
                # instance wrote, so it is synced below): its data files are found by the
                # snapshot instead.
                cleaned_up = True
                continue
            for line in lines:
                add = json.loads(line).get("add")
                if add:
                    path = table_dir / unquote(add["path"])
                    _fsync_file(path, missing_ok=True)  # vacuumed since: nothing to keep
                    dirs.add(path.parent)
            _fsync_file(entry)
        if cleaned_up:
            for file in _records(self._files()._actions):
                path = table_dir / unquote(file.path)
                _fsync_file(path, missing_ok=True)
                dirs.add(path.parent)
        for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
            fsync_dir(directory)
        log.debug("synced table versions %s", sorted(self._unsynced))
        self._unsynced.clear()


def _fsync_file(path: Path, missing_ok: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _DataFile:
    """One data file and the ranges of txn and node_id its statistics promise (None when
    unknown: such a file is a candidate for every lookup)."""

    path: str
    part_id: str
    min_txn: int | None
    max_txn: int | None
    min_node: str | None
    max_node: str | None

    def may_hold(self, txn_from: int | None, txn_to: int, node_id: str | None = None) -> bool:
        """Whether rows with ``txn_from <= txn <= txn_to`` (of ``node_id``) may be here."""
        if self.min_txn is not None and self.min_txn > txn_to:
            return False
        if txn_from is not None and self.max_txn is not None and self.max_txn < txn_from:
            return False
        if node_id is None:
            return True
        if self.min_node is not None and self.min_node > node_id:
            return False
        # Writers may truncate long string statistics; a truncated maximum is no bound.
        return (self.max_node is None or len(self.max_node) != len(node_id)
                or node_id <= self.max_node)


class _FileIndex:
    """The data files of one table version, with the txn and node_id ranges they hold.

    Built from the Delta log's add actions (a few ms for thousands of files), so lookups
    need not open any file; a partition's files become Python records on first use.
    """

    _STATS = ("min.txn", "max.txn", "min.node_id", "max.node_id")

    def __init__(self, actions: pa.Table):
        self._actions = actions
        self._by_part: dict[str, list[_DataFile]] = {}

    def files_per_partition(self) -> dict[str, int]:
        """How many data files each partition has."""
        if not self._actions.num_rows:
            return {}
        counts = pc.value_counts(self._actions.column(_PART_STAT))
        return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                        strict=True))

    def __len__(self) -> int:
        return self._actions.num_rows

    def sizes(self) -> list[tuple[str, int]]:
        """(path below the table, size in bytes) of every data file."""
        if not self._actions.num_rows:
            return []
        return [(unquote(path), size) for path, size in zip(
            self._actions.column("path").to_pylist(),
            self._actions.column("size_bytes").to_pylist(), strict=True)]

    def in_partition(self, part_id: str, as_of: int) -> list[_DataFile]:
        """The files of ``part_id`` that may hold rows with ``txn <= as_of``."""
        return [f for f in self._partition(part_id) if f.may_hold(None, as_of)]

    def holding(self, version: NodeVersion) -> list[_DataFile]:
        """The files of ``version``'s partition that may hold that very row."""
        return [
            f
            for f in self._partition(version.part_id)
            if f.may_hold(version.txn, version.txn, version.node_id)
        ]

    def everywhere(self, as_of: int, node_id: str | None = None, *, after: int | None = None
                   ) -> list[_DataFile]:
        """The files of any node partition (not transaction rows) that may hold rows with
        ``after < txn <= as_of`` (of ``node_id``)."""
        txn_from = None if after is None else after + 1
        return [f for f in _records(self._actions)
                if f.part_id != TXN_PARTITION and f.may_hold(txn_from, as_of, node_id)]

    def _partition(self, part_id: str) -> list[_DataFile]:
        files = self._by_part.get(part_id)
        if files is None:
            files = []
            if self._actions.num_rows:
                column = self._actions.column(_PART_STAT)
                files = _records(self._actions.filter(pc.equal(column, part_id)))
            self._by_part[part_id] = files
        return files


_PART_STAT = f"partition.{PARTITION_COLUMN}"


def _records(actions: pa.Table) -> list[_DataFile]:
    """Add actions as :class:`_DataFile` records."""
    if not actions.num_rows:
        return []
    unknown = [None] * actions.num_rows
    stats = [
        actions.column(name).to_pylist() if name in actions.column_names else unknown
        for name in _FileIndex._STATS
    ]
    return [
        _DataFile(path, part_id, *values)
        for path, part_id, *values in zip(
            actions.column("path").to_pylist(),
            actions.column(_PART_STAT).to_pylist(),
            *stats,
            strict=True,
        )
    ]


class _ParquetReader:
    """Reads rows from chosen data files of the table with pyarrow datasets."""

    def __init__(self, filesystem: Any, schema: pa.Schema):
        self.schema = schema
        self._format = pds.ParquetFileFormat()
        self._fs = filesystem  # rooted at the table: data file paths are relative to it
        self._fragments = _LRU(20_000)

    def read(self, files: list[_DataFile], columns: list[str], where: pc.Expression) -> pa.Table:
        """The rows of ``files`` matching ``where``, with ``columns``."""
        fragments = [self._fragment(file) for file in files]
        dataset = pds.FileSystemDataset(fragments, self.schema, self._format, self._fs)
        return dataset.to_table(columns=columns, filter=where)

    def inline_contents(self, file: _DataFile) -> _InlineContents:
        """The inline content of every row of one data file, by (node_id, version)."""
        table = self.read(
            [file],
            ["node_id", "version", CONTENT_COLUMN],
            pc.field("inline") == pa.scalar(True),
        )
        return _InlineContents(table)

    def _fragment(self, file: _DataFile) -> pds.Fragment:
        fragment = self._fragments.get(file.path)
        if fragment is None:
            fragment = self._format.make_fragment(
                unquote(file.path),
                filesystem=self._fs,
                partition_expression=pc.field(PARTITION_COLUMN) == file.part_id,
            )
            self._fragments.put(file.path, fragment, 1)
        return fragment


class _InlineContents:
    """The inline contents of one data file's rows, by (node_id, version), left in their
    Arrow column: a read of one version makes a Python object of that one only (making
    bytes of a whole compacted file's contents cost as much as decoding it)."""

    def __init__(self, table: pa.Table):
        self._contents = table.column(CONTENT_COLUMN)
        self._rows = {
            key: row for row, key in enumerate(zip(table.column("node_id").to_pylist(),
                                                   table.column("version").to_pylist(),
                                                   strict=True))
        }
        #: Bytes held: the weight in the content cache.
        self.nbytes = self._contents.nbytes

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: tuple[str, int]) -> bytes | None:
        """The content of version ``key`` = (node_id, version), or None if not here."""
        row = self._rows.get(key)
        if row is None:
            return None
        return self._contents[row].as_py() or b""


class _LRU:
    """A least-recently-used cache bounded by the total weight of its values."""

    def __init__(self, max_weight: int):
        self.max_weight = max_weight
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._weight = 0

    def get(self, key: Hashable) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Hashable, value: Any, weight: int) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._weight -= old[1]
        if weight > self.max_weight:
            return
        self._items[key] = (value, weight)
        self._weight += weight
        while self._weight > self.max_weight:
            _, (_, dropped) = self._items.popitem(last=False)
            self._weight -= dropped

    def clear(self) -> None:
        self._items.clear()
        self._weight = 0
