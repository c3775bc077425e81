"""Filesystem errors: one exception type that carries a POSIX errno."""

from __future__ import annotations

import errno as _errno
import os


class FsError(OSError):
    """A filesystem operation failed; ``errno`` says why (ENOENT, EEXIST, ELOOP, ...).

    The message names the path or thing that is wrong, so a command can print it as is.
    """

    def __init__(self, err: int, message: str | None = None):
        super().__init__(err, message or os.strerror(err))

    def __str__(self) -> str:
        return self.strerror or os.strerror(self.errno or 0)


class PondLocked(FsError):
    """Another writer holds the pond; ``holder`` describes it (pid, command, mount point)."""

    def __init__(self, holder: str):
        super().__init__(_errno.EAGAIN, f"pond is locked by another writer: {holder}")
        self.holder = holder


class CorruptContent(FsError):
    """Stored content does not match its recorded hash (or is missing)."""

    def __init__(self, what: str):
        super().__init__(_errno.EIO, f"corrupt or missing content: {what}")


class SchemaConflict(FsError):
    """A series version whose column ``column`` has type ``new`` cannot join a series where
    it has type ``old`` (see :func:`~pondfs.tinyfs.formats.join_schema`)."""

    def __init__(self, err: int, what: str, column: str, old: object, new: object):
        super().__init__(err, f"{what}: column {column!r} is {new} but the series has {old} "
                         "(a version may add, drop or widen columns, nothing else)")
        self.column, self.old, self.new = column, old, new
