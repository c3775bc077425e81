"""Opening a pond: the Delta Lake oplog wired to a tinyfs view, with the writer lock.

This is the one place that knows both sides; the CLI and the mount call it.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .kinds import KINDS
from .oplog import OplogPersistence, create_pond, open_pond
from .oplog import maintain as maintain_oplog
from .tinyfs import FS, DerivedCache, FsError


def pond_location(explicit: str | None) -> str:
    """The pond named by ``--pond`` or, failing that, the POND environment variable."""
    location = explicit or os.environ.get("POND")
    if not location:
        raise FsError(errno.EINVAL, "no pond given: use --pond PATH (or s3://bucket/prefix) "
                      "or set POND")
    return location


def _cache(store: OplogPersistence) -> DerivedCache:
    """The pond's derived cache: ``<pond>/cache``, or a local one for a pond in S3."""
    return DerivedCache(store.cache_dir)


def init(location: str) -> int:
    """Create a new pond with an empty root directory; the first transaction's number."""
    store = create_pond(location)
    try:
        with store.writer_lock("pond init"):
            fs = FS(store, cache=_cache(store), factories=KINDS)
            fs.init_root(uid=os.getuid(), gid=os.getgid())
            txn = fs.commit("init")
            assert txn is not None
            return txn
    finally:
        store.close()


@contextmanager
def open_fs(location: str, *, write: bool = False, at: int | None = None,
            holder: str | None = None, durable: bool = False) -> Iterator[FS]:
    """A view of the pond at ``location``: as of ``at``, or the newest, writable if ``write``.

    A writable view holds the single-writer lock until the context ends; changes not
    committed by then are dropped. ``durable`` commits fsync what they wrote.
    """
    if write and at is not None:
        raise FsError(errno.EROFS, f"cannot write to the pond as of transaction {at}")
    store = open_pond(location, durable=durable)
    try:
        if not write:
            yield FS(store, at=at, cache=_cache(store), factories=KINDS)
            return
        with store.writer_lock(holder or " ".join(sys.argv)):
            store.refresh()
            fs = FS(store, cache=_cache(store), factories=KINDS)
            try:
                yield fs
            finally:
                fs.abort()
    finally:
        store.close()


def maintain(location: str, *, retention_hours: float, holder: str) -> dict:
    """Checkpoint, compact and vacuum the pond's oplog; remove unreferenced old objects."""
    store = open_pond(location)
    try:
        with store.writer_lock(holder):
            return maintain_oplog(store, retention_hours=retention_hours)
    finally:
        store.close()
