"""A cache of derived content (merged series, computed files), keyed by what it derives from.

Entries are immutable: a key names its inputs' versions, so a new input version is a new
key and nothing is ever invalidated in place. Safe to delete at any time.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class DerivedCache:
    """Derived content on disk under ``directory`` (or in memory when it is None)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, bytes] = {}

    def size(self, key: str) -> int | None:
        """The size of a cached entry, or None when there is none."""
        if self.directory is None:
            data = self._memory.get(key)
            return None if data is None else len(data)
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, key: str) -> BinaryIO | None:
        """A reader of a cached entry, or None when there is none."""
        if self.directory is None:
            data = self._memory.get(key)
            return None if data is None else io.BytesIO(data)
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            return None

    def fill(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        """Create the entry ``key`` by calling ``write`` with a binary file; atomic."""
        if self.directory is None:
            sink = io.BytesIO()
            write(sink)
            self._memory[key] = sink.getvalue()
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                write(file)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / key
