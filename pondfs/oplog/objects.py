"""Content objects: immutable files named by the SHA-256 of their bytes.

Content too large for an oplog row lives in ``<pond>/objects/<sha[:2]>/<sha>``. An object is
written to a temporary file while it is hashed, then renamed to its name, so a name always
holds complete content and a crash of the process leaves at most a temporary file. A durable
store also fsyncs the object and its directory before naming it in a commit; a store that is
not durable leaves that to whoever makes a later commit durable (:meth:`ObjectStore.sync`).
Readers verify the hash as they read, so corruption is reported instead of returned.

Hashing runs in a worker thread, overlapping the I/O of the thread that writes or reads:
SHA-256 (~0.7-2 GB/s here) is as slow as the disk, and hashlib releases the GIL for large
buffers, so the two use both cores.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Container, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from pondfs.tinyfs.errors import CorruptContent, FsError

log = logging.getLogger(__name__)

#: Bytes read or hashed at a time: memory stays bounded whatever the object's size.
CHUNK_SIZE = 1024 * 1024

# Random reads (FUSE asks for up to 128 KiB at a time) should not each fetch a whole chunk;
# larger reads bypass the buffer.
_READ_BUFFER = 128 * 1024

# Smaller buffers are hashed in the calling thread: a hand-off costs ~30 us.
_OVERLAP_MIN = 64 * 1024

_TEMP_PREFIX = ".tmp-"
_SHA_RE = re.compile(r"[0-9a-f]{64}")


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ObjectStore:
    """The content-addressed objects of one pond, under directory ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where object ``sha256`` lives (whether or not it exists)."""
        if not _SHA_RE.fullmatch(sha256):
            raise FsError(errno.EINVAL, f"not a content object name: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, chunks: Iterable[bytes], *, durable: bool = True) -> tuple[str, int]:
        """Store the concatenation of ``chunks``; return its (sha256, size).

        Chunks are written as they come, so only one chunk is in memory at a time; each is
        written and hashed before the next is asked for, so the chunks may be views of one
        reused buffer. Storing content that is already present keeps the existing object.
        ``durable`` fsyncs the object and its directory before returning.
        """
        hasher = _OverlappedHash()
        size = 0
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.root)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    hasher.update(chunk)
                    out.write(chunk)
                    hasher.wait()
                    size += len(chunk)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            sha = hasher.hexdigest()
            target = self.path(sha)
            if target.exists():
                temp.unlink()
                if durable:  # it may have been stored by a store that was not
                    self.sync([sha])
                log.debug("object %s (%d bytes) already present", sha, size)
                return sha, size
            new_dir = not target.parent.exists()
            target.parent.mkdir(exist_ok=True)
            os.chmod(temp, 0o444)
            os.rename(temp, target)
            if durable:
                fsync_dir(target.parent)
                if new_dir:
                    fsync_dir(self.root)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        log.debug("stored object %s (%d bytes)", sha, size)
        return sha, size

    def sync(self, shas: Iterable[str]) -> None:
        """fsync objects ``shas`` (stored without ``durable``), the directories that name
        them and the objects directory; objects since removed are skipped."""
        dirs = set()
        for sha in shas:
            path = self.path(sha)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            dirs.add(path.parent)
        for directory in sorted(dirs):
            fsync_dir(directory)
        if dirs:
            fsync_dir(self.root)

    def open(self, sha256: str) -> BinaryIO:
        """A seekable reader of object ``sha256``.

        Reading the object through to its end checks its hash; a mismatch raises
        CorruptContent naming the object. A missing object raises CorruptContent at once.
        """
        path = self.path(sha256)
        try:
            raw = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise CorruptContent(f"object {sha256} is missing ({path})") from None
        return io.BufferedReader(_VerifyingReader(raw, sha256), buffer_size=_READ_BUFFER)

    def verify(self, sha256: str) -> bool:
        """Whether object ``sha256`` exists and its bytes hash to its name."""
        try:
            with self.open(sha256) as reader:
                while reader.read(CHUNK_SIZE):
                    pass
        except CorruptContent:
            return False
        return True

    def ids(self) -> Iterator[str]:
        """The names of every object present."""
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for entry in sorted(sub.iterdir()):
                    if _SHA_RE.fullmatch(entry.name) and entry.name[:2] == sub.name:
                        yield entry.name

    def remove_unreferenced(
        self, referenced: Container[str], older_than_seconds: float
    ) -> list[str]:
        """Delete objects not in ``referenced`` and not modified for ``older_than_seconds``,
        and temporary files as old (left by crashed writers); return the removed objects.

        The age limit protects objects stored by a writer that has not committed yet.
        """
        cutoff = time.time() - older_than_seconds
        removed = []
        for sha in list(self.ids()):
            path = self.path(sha)
            if sha in referenced or _mtime(path) > cutoff:
                continue
            path.unlink(missing_ok=True)
            removed.append(sha)
            log.info("removed unreferenced object %s", sha)
        for temp in self.root.glob(_TEMP_PREFIX + "*"):
            if _mtime(temp) <= cutoff:
                temp.unlink(missing_ok=True)
                log.info("removed abandoned temporary object %s", temp.name)
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _hash_pool() -> ThreadPoolExecutor:
    """The threads that hash for every :class:`_OverlappedHash` (made on first use, so a
    process that forks before hashing, as the mount daemon does, forks no threads)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pond-hash")
        return _pool


class _OverlappedHash:
    """A SHA-256 whose large updates run in a worker thread while the caller does its I/O.

    One update is in flight at a time, in order. The buffer given to :meth:`update` must
    not change until :meth:`wait` (or the next update, or :meth:`hexdigest`) returns.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._pending: Future[None] | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.wait()
        if len(data) < _OVERLAP_MIN:
            self._digest.update(data)
        else:
            self._pending = _hash_pool().submit(self._digest.update, data)

    def wait(self) -> None:
        """Return once the last update is hashed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def hexdigest(self) -> str:
        self.wait()
        return self._digest.hexdigest()


class _VerifyingReader(io.RawIOBase):
    """A raw reader that hashes the bytes it reads in order and checks the hash at the end.

    Seeks are allowed; bytes are hashed only as far as they were read contiguously from the
    start, so a sequential read through to EOF verifies the whole object. Bytes are copied
    out of the caller's buffer and hashed while the caller uses them: the caller may reuse
    or free its buffer at once (BufferedReader hands out buffers it does not own).
    """

    def __init__(self, raw: io.FileIO, sha256: str):
        self._raw = raw
        self._sha = sha256
        self._size = os.fstat(raw.fileno()).st_size
        self._hasher = _OverlappedHash()
        self._copy = bytearray()
        self._hashed = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer) -> int:
        start = self._raw.tell()
        n = self._raw.readinto(buffer)
        if n and start <= self._hashed < start + n:
            with memoryview(buffer) as view:
                new = view[self._hashed - start : n]
                if len(new) < _OVERLAP_MIN:
                    self._hasher.update(new)
                else:
                    self._hasher.wait()  # before its copy is overwritten
                    if len(self._copy) < len(new):
                        self._copy = bytearray(len(new))
                    copy = memoryview(self._copy)[: len(new)]
                    copy[:] = new
                    self._hasher.update(copy)
            self._hashed = start + n
        if not self._verified and self._hashed >= self._size:
            self._check()
        return n

    def _check(self) -> None:
        actual = self._hasher.hexdigest()
        if actual != self._sha:
            raise CorruptContent(f"object {self._sha} (its bytes hash to {actual})")
        self._verified = True

    def close(self) -> None:
        self._raw.close()
        super().close()
