"""Spools: the bytes of a file open for writing, until a close hands them to tinyfs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from ..tinyfs.records import INLINE_LIMIT

#: Bytes copied at a time from a reader into a spool.
COPY_CHUNK = 1024 * 1024


class Spool:
    """The bytes of a file open for writing: in memory up to ``INLINE_LIMIT`` (no file to
    create and delete for the many small files of a ``cp -r``), then in an anonymous
    temporary file under ``directory``, where holes stay sparse."""

    def __init__(self, directory: str | None):
        self._directory = directory
        self._memory: bytearray | None = bytearray()
        self._file: BinaryIO | None = None

    def _fd(self, size_needed: int) -> int | None:
        """The file descriptor once the bytes live in a file (moving them there when
        ``size_needed`` outgrows memory), else None."""
        if self._file is None and size_needed >= INLINE_LIMIT:
            self._file = tempfile.TemporaryFile(dir=self._directory, prefix="pondfs-spool-",
                                                buffering=0)
            assert self._memory is not None
            os.pwrite(self._file.fileno(), self._memory, 0)
            self._memory = None
        return None if self._file is None else self._file.fileno()

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes from ``offset``."""
        if self._memory is not None:
            return bytes(self._memory[offset:offset + size])
        assert self._file is not None
        return os.pread(self._file.fileno(), size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        """Write ``data`` at ``offset`` (past the end leaves a hole of zeros); its length."""
        fd = self._fd(offset + len(data))
        if fd is not None:
            return os.pwrite(fd, data, offset)
        memory = self._memory
        assert memory is not None
        if offset > len(memory):
            memory.extend(bytes(offset - len(memory)))
        memory[offset:offset + len(data)] = data
        return len(data)

    def truncate(self, size: int) -> None:
        """Cut or extend (with zeros) to ``size`` bytes."""
        fd = self._fd(size)
        if fd is not None:
            os.ftruncate(fd, size)
            return
        memory = self._memory
        assert memory is not None
        del memory[size:]
        memory.extend(bytes(size - len(memory)))

    def fill(self, reader: BinaryIO, size: int) -> None:
        """Copy the first ``size`` bytes of ``reader`` in (closing it); holes past its end."""
        offset = 0
        with reader:
            reader.seek(0)
            while offset < size:
                chunk = reader.read(min(COPY_CHUNK, size - offset))
                if not chunk:
                    break
                offset += self.pwrite(chunk, offset)
        self.truncate(size)

    def chunks(self, size: int) -> Iterator[bytes]:
        """The first ``size`` bytes of a spool in memory, as one chunk."""
        assert self._memory is not None
        yield bytes(self._memory[:size])

    def rewound_fd(self) -> int | None:
        """The descriptor of the spool file, at offset 0 (a copy reads all of it), or None
        while the bytes are in memory. The file holds exactly the content (truncated, or
        extended with holes, to its size)."""
        if self._file is None:
            return None
        fd = self._file.fileno()
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def close(self) -> None:
        """Free the memory or the temporary file."""
        if self._file is not None:
            self._file.close()
        self._memory = None
