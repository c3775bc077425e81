"""The data model shared by tinyfs and its persistence: node versions and transactions.

Every change to a node is a new :class:`NodeVersion` (one row of the operation log). A
directory version holds either a full listing (``snapshot``) or the names added and removed
since the previous version, so adding the 10,000th entry does not rewrite 10,000 entries.

A node other than a directory may have several names (hard links): several directory entries
name it, its ``nlink`` counts them, and its rows stay in one partition, which an entry in
another directory names (:attr:`DirOp.part_id`). FIFOs, sockets and device nodes are nodes
with a mode (and, for devices, an ``rdev``) and no content: the kernel implements them.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field, replace

#: The node id of every pond's root directory.
ROOT_ID = "00000000-0000-0000-0000-000000000000"

#: Content at least this large is kept as a content-addressed object instead of in the row.
INLINE_LIMIT = 64 * 1024

#: Bytes read, written or hashed at a time when content streams through this process, so
#: memory stays bounded whatever a file's size (1 MiB).
CHUNK_SIZE = 1024 * 1024

#: A piece of content as it streams: bytes, or a view of a buffer that is reused once the
#: next piece is asked for.
Chunk = bytes | bytearray | memoryview

DIRECTORY = "directory"
FILE = "file"
SYMLINK = "symlink"
DYNAMIC = "dynamic"
FIFO = "fifo"
SOCKET = "socket"
CHAR_DEVICE = "chardev"
BLOCK_DEVICE = "blockdev"
#: Kinds with no content, which the kernel implements: made by mknod, FIFOs and sockets.
SPECIAL_KINDS = (FIFO, SOCKET, CHAR_DEVICE, BLOCK_DEVICE)
#: Special kinds whose ``rdev`` (device number) means something.
DEVICE_KINDS = (CHAR_DEVICE, BLOCK_DEVICE)
KINDS = (DIRECTORY, FILE, SYMLINK, DYNAMIC, *SPECIAL_KINDS)

DATA = "data"
TABLE = "table"
SERIES = "series"
FILE_FORMATS = (DATA, TABLE, SERIES)


def new_node_id() -> str:
    """A fresh time-ordered UUID (version 7) as a string, so newer nodes sort later."""
    ms = time.time_ns() // 1_000_000
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= secrets.randbits(12) << 64
    value |= 0b10 << 62
    value |= secrets.randbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class DirOp:
    """One directory entry change: ``op`` is "add" or "remove"; ``kind`` is the child's kind.

    The kind tells where the child's own rows live: a directory in its own partition, any
    other node in its parent's, unless ``part_id`` names the partition (a hard link to a node
    whose rows are in another directory's partition).
    """

    name: str
    node_id: str
    kind: str
    op: str = "add"
    part_id: str = ""


@dataclass(frozen=True)
class StoredContent:
    """Where some bytes went: inline (``inline`` holds them) or a content object named by
    ``blake3``, the hash of the bytes (:mod:`.hashing`)."""

    blake3: str
    size: int
    inline: bytes | None


@dataclass(frozen=True)
class NodeVersion:
    """One version of one node: a row of the operation log.

    ``part_id`` is the partition: a directory's own id for directories, the parent's id for
    everything else (for a node with several names, the partition its rows stay in).
    ``nlink`` counts the directory entries naming a node other than a directory; ``rdev`` is
    a device node's device number. ``content`` holds inline bytes when the row carries them
    (written rows always do when ``inline`` is true; rows read back by listing a partition
    leave it None, and :meth:`Persistence.read_inline` fetches them). Content that is not
    inline is the content object named by ``blake3``, the content's hash (:mod:`.hashing`).
    """

    part_id: str
    node_id: str
    version: int
    txn: int
    kind: str
    format: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    blake3: str = ""
    inline: bool = True
    content: bytes | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)
    min_time: int | None = None
    max_time: int | None = None
    time_column: str = ""
    entries: tuple[DirOp, ...] = ()
    snapshot: bool = False
    deleted: bool = False
    timestamp_ns: int = 0
    nlink: int = 1
    rdev: int = 0

    def evolve(self, **changes) -> NodeVersion:
        """A copy with ``changes`` applied (versions are immutable)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class TxnInfo:
    """What a pond transaction was: its number, when, who and which command.

    ``tag`` is set on a transaction that only names another: ``{"name": NAME, "txn": N}``
    tags transaction N, ``"txn": None`` removes the tag (see :mod:`pondfs.tinyfs.history`).
    ``runs`` are the records of the runs it was (collectors', a pipeline's, a push's:
    :mod:`pondfs.runs`), if it was any.
    """

    txn: int
    timestamp_ns: int
    command: str
    user: str = field(default_factory=lambda: _user())
    rows: int = 0
    tag: dict | None = None
    runs: list[dict] | None = None


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())
