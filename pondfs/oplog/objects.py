"""Content objects: immutable files named by the SHA-256 of their bytes.

Content too large for an oplog row lives in ``<pond>/objects/<sha[:2]>/<sha>``. An object is
written to a temporary file while it is hashed, fsynced, then renamed to its name, so a name
always holds complete content and a crash leaves at most a temporary file. Readers verify the
hash as they read, so corruption is reported instead of returned.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Container, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from pondfs.tinyfs.errors import CorruptContent, FsError

log = logging.getLogger(__name__)

#: Bytes read or hashed at a time: memory stays bounded whatever the object's size.
CHUNK_SIZE = 1024 * 1024

# Random reads (FUSE asks for up to 128 KiB at a time) should not each fetch a whole chunk;
# larger reads bypass the buffer.
_READ_BUFFER = 128 * 1024

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

    def put(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store the concatenation of ``chunks``; return its (sha256, size).

        Chunks are written as they come, so only one chunk is in memory at a time. Storing
        content that is already present keeps the existing object.
        """
        digest = hashlib.sha256()
        size = 0
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.root)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self.path(sha)
            if target.exists():
                temp.unlink()
                log.debug("object %s (%d bytes) already present", sha, size)
                return sha, size
            new_dir = not target.parent.exists()
            target.parent.mkdir(exist_ok=True)
            os.chmod(temp, 0o444)
            os.rename(temp, target)
            fsync_dir(target.parent)
            if new_dir:
                fsync_dir(self.root)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        log.debug("stored object %s (%d bytes)", sha, size)
        return sha, size

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


class _VerifyingReader(io.RawIOBase):
    """A raw reader that hashes the bytes it reads in order and checks the hash at the end.

    Seeks are allowed; bytes are hashed only as far as they were read contiguously from the
    start, so a sequential read through to EOF verifies the whole object.
    """

    def __init__(self, raw: io.FileIO, sha256: str):
        self._raw = raw
        self._sha = sha256
        self._size = os.fstat(raw.fileno()).st_size
        self._digest = hashlib.sha256()
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
                self._digest.update(view[self._hashed - start : n])
            self._hashed = start + n
        if not self._verified and self._hashed >= self._size:
            self._check()
        return n

    def _check(self) -> None:
        actual = self._digest.hexdigest()
        if actual != self._sha:
            raise CorruptContent(f"object {self._sha} (its bytes hash to {actual})")
        self._verified = True

    def close(self) -> None:
        self._raw.close()
        super().close()
