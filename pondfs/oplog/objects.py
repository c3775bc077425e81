"""Content objects: immutable files named by the hash of their bytes.

Content too large for an oplog row lives in ``<pond>/objects/<hash[:2]>/<hash>``, named by
its BLAKE3 hash (:mod:`pondfs.tinyfs.hashing`). An object is written to a temporary file
while it is hashed, then renamed to its name, so a name always holds complete content and a
crash of the process leaves at most a temporary file. A durable store also fsyncs the object
and its directory before naming it in a commit; a store that is not durable leaves that to
whoever makes a later commit durable (:meth:`ObjectStore.sync`).
Readers verify the hash as they read, so corruption is reported instead of returned.

Hashing runs in a worker thread, overlapping the I/O of the thread that writes or reads:
BLAKE3 (~2.7 GB/s on one core here) is about as fast as a copy through the page cache, and
it releases the GIL, so the two use both cores.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import mmap
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

from pondfs.tinyfs import CHUNK_SIZE, HASH_RE, Chunk, CorruptContent, FsError, hasher

log = logging.getLogger(__name__)

# Random reads (FUSE asks for up to 128 KiB at a time) should not each fetch a whole chunk;
# larger reads bypass the buffer.
_READ_BUFFER = 128 * 1024

# Large copies go by pieces of this size, each hashed while the next is copied; a piece is
# mapped while it is hashed, so it adds to the resident memory, briefly.
_PIECE = 16 * 1024 * 1024

# Smaller buffers are hashed in the calling thread: a hand-off costs ~30 us.
_OVERLAP_MIN = 64 * 1024

_TEMP_PREFIX = ".tmp-"


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

    def path(self, digest: str) -> Path:
        """Where object ``digest`` lives (whether or not it exists)."""
        if not HASH_RE.fullmatch(digest):
            raise FsError(errno.EINVAL, f"not a content object name: {digest!r}")
        return self.root / digest[:2] / digest

    def put(self, chunks: Iterable[Chunk], *, durable: bool = True) -> tuple[str, int]:
        """Store the concatenation of ``chunks``; return its (digest, size).

        Chunks are written as they come, so only one chunk is in memory at a time; each is
        written and hashed before the next is asked for, so the chunks may be views of one
        reused buffer. Storing content that is already present keeps the existing object.
        ``durable`` fsyncs the object and its directory before returning.
        """

        def write(out: int, hash_: _OverlappedHash) -> int:
            size = 0
            with open(out, "wb", closefd=False) as f:
                for chunk in chunks:
                    hash_.update(chunk)
                    f.write(chunk)
                    hash_.wait()
                    size += len(chunk)
            return size

        return self._put(write, durable)

    def put_file(self, source: int, *, durable: bool = True,
                 progress: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Store the bytes of open file descriptor ``source`` from its offset to its end, as
        :meth:`put` does; ``progress`` is called with each number of bytes copied.

        The kernel copies (copy_file_range: no pass through this process's memory) while a
        worker thread hashes what has been written so far: the stored copy, not the source,
        so a source that changes meanwhile cannot leave an object under a wrong name.
        """

        def write(out: int, hash_: _OverlappedHash) -> int:
            copier = _KernelCopy(source, out)
            size = 0
            while n := copier.copy(_PIECE):
                hash_.update_from(out, size, n)
                size += n
                if progress is not None:
                    progress(n)
            return size

        return self._put(write, durable)

    def _put(self, write: Callable[[int, _OverlappedHash], int], durable: bool
             ) -> tuple[str, int]:
        """Store what ``write(fd, hash)`` writes to a new temporary file (feeding ``hash``
        every byte in order; it returns the size) under its digest."""
        hash_ = _OverlappedHash()
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.root)
        temp = Path(temp_name)
        try:
            try:
                size = write(fd, hash_)
                digest = hash_.hexdigest()
                if durable:
                    os.fsync(fd)
            finally:
                hash_.settle()
                os.close(fd)
            target = self.path(digest)
            if target.exists():
                temp.unlink()
                if durable:  # it may have been stored by a store that was not
                    self.sync([digest])
                log.debug("object %s (%d bytes) already present", digest, size)
                return digest, size
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
        log.debug("stored object %s (%d bytes)", digest, size)
        return digest, size

    def sync(self, digests: Iterable[str]) -> None:
        """fsync objects ``digests`` (stored without ``durable``), the directories that name
        them and the objects directory; objects since removed are skipped."""
        dirs = set()
        for digest in digests:
            path = self.path(digest)
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

    def open(self, digest: str) -> BinaryIO:
        """A seekable reader of object ``digest``.

        Reading the object through to its end checks its hash; a mismatch raises
        CorruptContent naming the object. A missing object raises CorruptContent at once.
        """
        raw = open(self._open_fd(digest), "rb", buffering=0)
        return io.BufferedReader(_VerifyingReader(raw, digest), buffer_size=_READ_BUFFER)

    def copy_to(self, digest: str, out: int) -> int:
        """Write object ``digest`` to descriptor ``out``, from its offset; the bytes written.

        The bytes are verified and no corrupt byte is left behind: a mismatch (or a missing
        object) raises CorruptContent naming the object. Into a regular file the kernel
        copies (no pass through this process's memory) while a worker thread hashes the
        object, and a mismatch cuts the file back to where the copy began. Anything else (a
        pipe, a terminal, a file opened for appending) gets nothing until the whole object
        has been hashed, on every core.
        """
        source = self._open_fd(digest)
        try:
            size = os.fstat(source).st_size
            copier = _KernelCopy(source, out)
            if not _rewindable(out):
                whole = hasher(threads=blake3.AUTO)
                for offset in range(0, size, _PIECE):
                    _hash_mapped(whole, source, offset, min(_PIECE, size - offset))
                _check(digest, whole.hexdigest())
                copier.copy_exactly(size)
                return size
            start = os.lseek(out, 0, os.SEEK_CUR)
            hash_ = _OverlappedHash()
            try:
                for offset in range(0, size, _PIECE):
                    n = min(_PIECE, size - offset)
                    hash_.update_from(source, offset, n)
                    copier.copy_exactly(n)
                _check(digest, hash_.hexdigest())
            except CorruptContent:
                os.ftruncate(out, start)
                os.lseek(out, start, os.SEEK_SET)
                raise
            finally:
                hash_.settle()
            return size
        finally:
            os.close(source)

    def _open_fd(self, digest: str) -> int:
        path = self.path(digest)
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptContent(f"object {digest} is missing ({path})") from None

    def verify(self, digest: str) -> bool:
        """Whether object ``digest`` exists and its bytes hash to its name."""
        try:
            with self.open(digest) as reader:
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
                    if HASH_RE.fullmatch(entry.name) and entry.name[:2] == sub.name:
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
        for digest in list(self.ids()):
            path = self.path(digest)
            if digest in referenced or _mtime(path) > cutoff:
                continue
            path.unlink(missing_ok=True)
            removed.append(digest)
            log.info("removed unreferenced object %s", digest)
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
    """A content hash whose large updates run in a worker thread while the caller does its I/O.

    One update is in flight at a time, in order. The buffer given to :meth:`update` must
    not change until :meth:`wait` (or the next update, or :meth:`hexdigest`) returns.
    """

    def __init__(self) -> None:
        self._digest = hasher()
        self._pending: Future[object] | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.wait()
        if len(data) < _OVERLAP_MIN:
            self._digest.update(data)
        else:
            self._pending = _hash_pool().submit(self._digest.update, data)

    def update_from(self, fd: int, offset: int, length: int) -> None:
        """Hash bytes ``offset`` to ``offset + length`` of open file ``fd`` next, in the
        worker (mapped, not read). ``fd`` must stay open until the update is hashed."""
        self.wait()
        self._pending = _hash_pool().submit(_hash_mapped, self._digest, fd, offset, length)

    def wait(self) -> None:
        """Return once the last update is hashed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def settle(self) -> None:
        """Wait for an update in flight without raising its error: on the way out of another
        error, before the buffer or file it reads goes away."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()

    def hexdigest(self) -> str:
        """The hash of every update so far, as hex."""
        self.wait()
        return self._digest.hexdigest()


def _hash_mapped(digest: blake3, fd: int, offset: int, length: int) -> None:
    """Feed bytes ``offset`` to ``offset + length`` of file ``fd`` to ``digest`` through a
    memory map (page-cache pages are hashed in place)."""
    skip = offset % mmap.ALLOCATIONGRANULARITY
    with mmap.mmap(fd, length + skip, prot=mmap.PROT_READ, offset=offset - skip) as mapped, \
            memoryview(mapped) as view:
        digest.update(view[skip:])


def _check(digest: str, actual: str) -> None:
    if actual != digest:
        raise CorruptContent(f"object {digest} (its bytes hash to {actual})")


def _rewindable(fd: int) -> bool:
    """Whether bytes written to ``fd`` can be taken back: a regular file, not appending."""
    return stat.S_ISREG(os.fstat(fd).st_mode) and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND


# What copy_file_range or sendfile answer when they cannot copy between these two files.
_CANNOT_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}


class _KernelCopy:
    """Copies bytes from one descriptor to another, each from its own offset, inside the
    kernel when it can: copy_file_range (file to file), else sendfile (file to anything, a
    pipe or another filesystem), else read and write through a buffer."""

    def __init__(self, source: int, target: int):
        self._source = source
        self._target = target
        self._ways = [self._copy_file_range, self._sendfile, self._read_write]
        self._buffer: memoryview | None = None

    def copy(self, count: int) -> int:
        """Copy up to ``count`` bytes; how many (0 at the end of the source)."""
        while True:
            try:
                return self._ways[0](count)
            except OSError as exc:
                if exc.errno not in _CANNOT_COPY or len(self._ways) == 1:
                    raise
                log.debug("%s cannot copy here (%s): falling back", self._ways[0].__name__, exc)
                self._ways.pop(0)

    def copy_exactly(self, count: int) -> None:
        """Copy ``count`` bytes (fewer only if the source ends first)."""
        while count and (n := self.copy(count)):
            count -= n

    def _copy_file_range(self, count: int) -> int:
        return os.copy_file_range(self._source, self._target, count)

    def _sendfile(self, count: int) -> int:
        return os.sendfile(self._target, self._source, None, count)

    def _read_write(self, count: int) -> int:
        if self._buffer is None:
            self._buffer = memoryview(bytearray(CHUNK_SIZE))
        n = os.readv(self._source, [self._buffer[:count]])
        view = self._buffer[:n]
        while view:
            view = view[os.write(self._target, view):]
        return n


class _VerifyingReader(io.RawIOBase):
    """A raw reader that hashes the bytes it reads in order and checks the hash at the end.

    Seeks are allowed; bytes are hashed only as far as they were read contiguously from the
    start, so a sequential read through to EOF verifies the whole object. Bytes are copied
    out of the caller's buffer and hashed while the caller uses them: the caller may reuse
    or free its buffer at once (BufferedReader hands out buffers it does not own).
    """

    def __init__(self, raw: io.FileIO, digest: str):
        self._raw = raw
        self._expected = digest
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
        _check(self._expected, self._hasher.hexdigest())
        self._verified = True

    def close(self) -> None:
        self._raw.close()
        super().close()
