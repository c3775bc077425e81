"""Where a pond's files live: a local directory or an S3 prefix, with the same layout
(:mod:`.layout`).

:func:`storage_for` turns what the user wrote (``--pond``, ``$POND``) into a
:class:`PondStorage`, which answers the few questions that differ between the two: the Delta
table's URI and storage options, the pyarrow filesystem its data files are read with, the
content object store, the writer lock, and where local caches go.

A pond in S3 keeps nothing of its own on the local disk: its derived content and its
content objects are cached below ``$XDG_CACHE_HOME/pondfs/ponds/<table id>/`` (by default
``~/.cache/pondfs/...``), keyed by the Delta table's id, which names one pond wherever it
is read from. The cache is safe to delete.
"""

from __future__ import annotations

import errno
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pyarrow.fs as pafs

from pondfs.tinyfs import FsError

from ..locations import is_s3_url
from .layout import CACHE, DELTA_LOG, LOCK, OBJECTS, OPLOG
from .lock import WriterLock, lock_holder
from .objects import ObjectStore

log = logging.getLogger(__name__)


class PondLock(Protocol):
    """A writer lock: held while its context is open, and what it offers besides."""

    def __enter__(self) -> None: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def check(self) -> None:
        """FsError when the lock was lost (a writer must not commit then)."""

    def finishing(self) -> None:
        """Tell waiting writers that the holder releases the lock shortly."""


class PondStorage(ABC):
    """Where one pond's files are; see the module docstring."""

    #: The pond as the user named it (for messages).
    url: str
    #: The Delta table's URI and deltalake storage options.
    table_uri: str
    storage_options: dict[str, str]
    #: The pond's directory when it is on the local disk (fsync, statfs, backups), else None.
    local_dir: Path | None = None

    @abstractmethod
    def check_new(self) -> None:
        """FsError unless a new pond may be made here; writes nothing."""

    @abstractmethod
    def prepare(self) -> None:
        """Make what a new pond needs before its Delta table is created."""

    @abstractmethod
    def check_pond(self) -> None:
        """FsError naming the problem unless a pond is here."""

    @abstractmethod
    def table_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem whose root is the Delta table (data file paths are relative
        to it)."""

    @abstractmethod
    def object_store(self, table_id: str) -> Any:
        """The pond's content objects (an ObjectStore, or one with its methods)."""

    @abstractmethod
    def writer_lock(self, holder: str, wait: float = 0.0) -> PondLock:
        """The pond's single-writer lock for a writer described by ``holder``; a
        :class:`PondLock` (a second writer waits up to ``wait`` seconds, then gets
        PondLocked naming the holder)."""

    @abstractmethod
    def lock_holder(self) -> str | None:
        """Who holds the writer lock now, or None."""

    @abstractmethod
    def cache_dir(self, table_id: str) -> Path:
        """The local directory for derived caches of the pond whose table is ``table_id``."""


class LocalStorage(PondStorage):
    """A pond in a directory on the local disk."""

    def __init__(self, path: str | os.PathLike[str]):
        self.url = str(path)
        self.local_dir = Path(path)
        self.table_uri = str((self.local_dir / OPLOG).resolve())
        self.storage_options = {}

    def check_new(self) -> None:
        root = self.local_dir
        assert root is not None
        if (root / DELTA_LOG).exists():
            raise FsError(errno.EEXIST, f"{self.url}: a pond already exists")
        if root.exists() and not root.is_dir():
            raise FsError(errno.ENOTDIR, f"{self.url}: not a directory")

    def prepare(self) -> None:
        assert self.local_dir is not None
        for sub in (OPLOG, OBJECTS, CACHE):
            (self.local_dir / sub).mkdir(parents=True, exist_ok=True)

    def check_pond(self) -> None:
        root = self.local_dir
        assert root is not None
        if not root.exists():
            raise FsError(errno.ENOENT, f"{self.url}: no such pond")
        if not root.is_dir():
            raise FsError(errno.ENOTDIR, f"{self.url}: not a pond (no {DELTA_LOG})")
        if not (root / DELTA_LOG).is_dir():
            raise FsError(errno.EINVAL, f"{self.url}: not a pond (no {DELTA_LOG})")

    def table_filesystem(self) -> pafs.FileSystem:
        return pafs.SubTreeFileSystem(self.table_uri, pafs.LocalFileSystem())

    def object_store(self, table_id: str) -> ObjectStore:
        assert self.local_dir is not None
        return ObjectStore(self.local_dir / OBJECTS)

    def writer_lock(self, holder: str, wait: float = 0.0) -> WriterLock:
        assert self.local_dir is not None
        return WriterLock(self.local_dir / LOCK, holder, wait)

    def lock_holder(self) -> str | None:
        assert self.local_dir is not None
        return lock_holder(self.local_dir / LOCK)

    def cache_dir(self, table_id: str) -> Path:
        assert self.local_dir is not None
        return self.local_dir / CACHE


class S3Storage(PondStorage):
    """A pond below an S3 prefix (``s3://bucket/prefix``), read and written directly.

    Endpoint, region and credentials are the user's AWS settings (:mod:`pondfs.s3`); the
    first request checks that the bucket exists and the credentials work, so those errors
    are one clear line before deltalake is involved.
    """

    def __init__(self, url: str):
        from pondfs.s3 import AwsSettings, Bucket, S3Location

        self.url = url
        self.location = S3Location.parse(url)
        self.settings = AwsSettings.resolve()
        self.bucket = Bucket(self.location, jobs=8)
        self.table_uri = f"s3://{self.location.bucket}/{self.location.key(OPLOG)}"
        self.storage_options = self.settings.delta_options()

    def check_new(self) -> None:
        if self.bucket.holds_any(DELTA_LOG):
            raise FsError(errno.EEXIST, f"{self.url}: a pond already exists")
        if self.bucket.holds_any():
            raise FsError(errno.ENOTEMPTY, f"{self.url}: not empty and not a pond: choose "
                          "another prefix")

    def prepare(self) -> None:
        """Nothing: S3 has no directories."""

    def check_pond(self) -> None:
        if not self.bucket.holds_any(DELTA_LOG):
            what = f"not a pond (no {DELTA_LOG})" if self.bucket.holds_any() else \
                "no such pond"
            raise FsError(errno.ENOENT, f"{self.url}: {what}")

    def table_filesystem(self) -> pafs.FileSystem:
        root = f"{self.location.bucket}/{self.location.key(OPLOG)}"
        return pafs.SubTreeFileSystem(root, self.settings.arrow_filesystem())

    def object_store(self, table_id: str) -> Any:
        from .s3objects import S3ObjectStore

        cache = self._local(table_id) / OBJECTS
        cache.mkdir(parents=True, exist_ok=True)
        return S3ObjectStore(self.bucket, ObjectStore(cache))

    def writer_lock(self, holder: str, wait: float = 0.0) -> PondLock:
        from .lease import S3Lease

        return S3Lease(self.bucket, LOCK, holder, wait)

    def lock_holder(self) -> str | None:
        from .lease import lease_holder

        return lease_holder(self.bucket, LOCK)

    def cache_dir(self, table_id: str) -> Path:
        cache = self._local(table_id) / CACHE
        cache.mkdir(parents=True, exist_ok=True)
        return cache

    @staticmethod
    def _local(table_id: str) -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        return Path(base, "pondfs", "ponds", table_id)


def storage_for(location: str | os.PathLike[str]) -> PondStorage:
    """The storage of the pond at ``location``: ``s3://bucket/prefix`` or a local path.
    Other URLs (``gs://``, ``http://`` ...) are refused by name."""
    text = os.fspath(location)
    if is_s3_url(text):
        return S3Storage(text)
    scheme = text.partition("://")[0]
    if "://" in text and scheme.isalnum():
        raise FsError(errno.EINVAL, f"{text}: unsupported pond URL (a local path or "
                      "s3://bucket/prefix)")
    return LocalStorage(text)
