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
from .oplog import create_pond, open_pond
from .oplog import maintain as maintain_oplog
from .oplog.lock import DEFAULT_WAIT
from .tinyfs import FS, DerivedCache, FsError, Persistence, resolve_at


def pond_location(explicit: str | None) -> str:
    """The pond named by ``--pond`` or, failing that, the POND environment variable."""
    location = explicit or os.environ.get("POND")
    if not location:
        raise FsError(errno.EINVAL, "no pond given: use --pond PATH (or s3://bucket/prefix) "
                      "or set POND")
    return location


def _cache(store: Persistence) -> DerivedCache:
    """The pond's derived cache: ``<pond>/cache``, or a local one for a pond in S3."""
    return DerivedCache(store.cache_dir())


def init(location: str) -> int:
    """Create a new pond with an empty root directory; the first transaction's number."""
    store = create_pond(location)
    try:
        fs = FS(store, cache=_cache(store), factories=KINDS, holder="pond init")
        fs.init_root(uid=os.getuid(), gid=os.getgid())
        txn = fs.commit("init")
        assert txn is not None
        return txn
    finally:
        store.close()


@contextmanager
def open_fs(location: str, *, write: bool = False, at: int | str | None = None,
            holder: str | None = None, durable: bool = False,
            lock_wait: float = DEFAULT_WAIT) -> Iterator[FS]:
    """A view of the pond at ``location``: as of ``at`` (a transaction number, a tag or an
    ISO time: :func:`~pondfs.tinyfs.resolve_at`), or the newest, writable if ``write``.

    A writable view takes the single-writer lock for each commit only (described by
    ``holder``, default the command line; waiting up to ``lock_wait`` seconds for another
    writer's commit); changes not committed when the context ends are dropped. ``durable``
    commits fsync what they wrote.
    """
    if write and at is not None:
        raise FsError(errno.EROFS, f"cannot write to the pond as of transaction {at}")
    store = open_pond(location, durable=durable)
    try:
        if not write:
            txn = None if at is None else resolve_at(store, at)
            yield FS(store, at=txn, cache=_cache(store), factories=KINDS)
            return
        fs = FS(store, cache=_cache(store), factories=KINDS,
                holder=holder or " ".join(sys.argv), lock_wait=lock_wait)
        try:
            yield fs
        finally:
            fs.abort()
    finally:
        store.close()


def maintain(location: str, *, retention_hours: float, holder: str,
             lock_wait: float = DEFAULT_WAIT) -> dict:
    """Checkpoint, compact and vacuum the pond's oplog; remove unreferenced old objects
    (holding the writer lock, waited for up to ``lock_wait`` seconds)."""
    store = open_pond(location)
    try:
        with store.writer_lock(holder, lock_wait):
            return maintain_oplog(store, retention_hours=retention_hours)
    finally:
        store.close()
