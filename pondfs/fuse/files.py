"""What a mount keeps per open inode and per open: :class:`OpenFile`, :class:`Handle`,
:class:`DirHandle`."""

from __future__ import annotations

import io
import os
import stat as st
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import trio

from ..tinyfs import Stat
from .spool import Spool


@dataclass(eq=False)
class OpenFile:
    """What the mount keeps for an inode while any handle has it open.

    ``spool`` (when present) holds the file's whole current content, including writes not
    yet handed to tinyfs; ``dirty`` says it differs from tinyfs' version. ``lock`` is held
    while the spool is made, changed or written back: a write-back stores one consistent
    state, and write-backs (a release runs after ``close`` returns) land in order.
    """

    inode: int
    node_id: str
    refs: int = 0
    spool: Spool | None = None
    size: int = 0
    dirty: bool = False
    #: While dirty: when the content last changed (the ctime to keep, unless later), and
    #: the mtime to keep (that time, or what a utime since set).
    changed_ns: int = 0
    mtime_ns: int = 0
    #: Once the node has left the tree (its last name removed while open): its attributes,
    #: which fstat and fchmod of the open file go on seeing and changing.
    removed_stat: Stat | None = None
    lock: trio.Lock = field(default_factory=trio.Lock)

    @property
    def removed(self) -> bool:
        """Whether the node left the tree while this file was open."""
        return self.removed_stat is not None


@dataclass(eq=False)
class Handle:
    """One open of a file: its inode's state and the reader made when it was opened."""

    file: OpenFile
    writable: bool
    reader: BinaryIO | None = None
    #: The descriptor of the local file behind ``reader`` when its bytes are the content
    #: (a content object, a cached series): reads are then one pread on the event loop.
    fd: int | None = None
    #: The transaction of the view ``reader`` was opened in.
    as_of: int = 0
    #: Whether this open changes the file (it writes, truncated it or created it): its
    #: close is what a commit may then keep.
    changes: bool = False
    #: O_APPEND: every write lands at the end of the file, whatever offset it names.
    append: bool = False
    read_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class DirHandle:
    """One open of a directory: the names it lists, read once per listing."""

    node_id: str
    entries: list[tuple[str, str]] | None = None


@asynccontextmanager
async def holding(lock: trio.Lock) -> AsyncIterator[None]:
    """``lock`` held for the block, taken without a pass through the scheduler when it is
    free (``async with lock`` costs two; a 1 GiB write is 8,192 requests)."""
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()
    try:
        yield
    finally:
        lock.release()


def local_fd(reader: BinaryIO, size: int) -> int | None:
    """The descriptor of the plain local file under ``reader`` when it holds exactly the
    ``size`` content bytes (not for in-memory or transforming readers)."""
    if not isinstance(reader, io.BufferedReader):
        return None
    try:
        fd = reader.fileno()
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return fd if st.S_ISREG(info.st_mode) and info.st_size == size else None
