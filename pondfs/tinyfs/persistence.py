"""The small interface through which tinyfs, and every layer above it, keeps a pond.

Two implementations: :class:`pondfs.tinyfs.memory.MemoryPersistence` (for fast tests) and
:class:`pondfs.oplog.OplogPersistence` (a Delta Lake table on disk or S3). Callers never
learn which one they have, nor how it lays out its files: what they need of a store (durable
commits, the objects its rows name, where its caches go, the files of a snapshot to back up)
is a method here.

Rows are append-only: reading "as of" transaction T is filtering ``txn <= T``. A commit makes
all of a transaction's rows visible at once, or none of them.
"""

from __future__ import annotations

import errno
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import FsError
from .records import CHUNK_SIZE, Chunk, NodeVersion, StoredContent, TxnInfo


@dataclass(frozen=True)
class SnapshotFile:
    """One file of a pond snapshot: its path below the pond's directory ('/'-separated),
    its size, and its BLAKE3 hash when that is known without reading it (a content
    object's is its name)."""

    path: str
    size: int
    blake3: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The files one committed state of a pond consists of, to copy it file by file.

    None of these files changes once written, so a copy taken while the pond goes on
    committing is whole. ``data`` may be copied in any order; ``log`` makes them part of the
    pond and goes after them, in its order. ``hint`` is the content of the one file that is
    rewritten (a pointer that speeds up opening), carried as text.
    """

    root: Path      # the pond's directory: each file is at root / path
    pond_id: str    # the same for every copy of this pond
    version: int    # the store's own number for this state (it changes under maintenance)
    txn: int
    txn_time_ns: int
    data: list[SnapshotFile]
    log: list[SnapshotFile]
    hint: str | None


class Persistence(ABC):
    """Where node versions, content and transactions live."""

    @abstractmethod
    def last_txn(self) -> int:
        """The newest committed transaction number (0 for a store with nothing in it)."""

    @abstractmethod
    def partition(self, part_id: str, as_of: int) -> list[NodeVersion]:
        """Every version with ``txn <= as_of`` stored in partition ``part_id``, without
        inline content (``content`` is None), in (node_id, version) order."""

    @abstractmethod
    def node_versions(self, node_id: str, as_of: int) -> list[NodeVersion]:
        """Every version of one node with ``txn <= as_of``, in any partition, oldest first."""

    @abstractmethod
    def scan(self, as_of: int) -> Iterator[NodeVersion]:
        """Every version with ``txn <= as_of`` in every partition, without inline content
        (for ``check`` and whole-pond reports; not a hot path)."""

    def changes(self, after: int, as_of: int) -> list[NodeVersion]:
        """Every version with ``after < txn <= as_of``, without inline content: what the
        transactions after ``after`` changed (stores that can skip older rows override)."""
        return [v for v in self.scan(as_of) if v.txn > after]

    @abstractmethod
    def read_inline(self, version: NodeVersion) -> bytes:
        """The inline content of a version listed by :meth:`partition`."""

    @abstractmethod
    def open_object(self, digest: str) -> BinaryIO:
        """A seekable binary reader of a content object; raises CorruptContent if missing."""

    @abstractmethod
    def store(self, chunks: Iterable[Chunk], inline_limit: int) -> StoredContent:
        """Consume ``chunks`` and keep their bytes: inline when shorter than ``inline_limit``,
        else as a content object named by its hash (:mod:`.hashing`), written before any
        commit refers to it, so a crash leaves at most an unreferenced object. Never holds a
        large content whole in memory. Each chunk is used up before the next is asked for, so
        the chunks may be views of one reused buffer."""

    def store_file(self, source: int, inline_limit: int,
                   progress: Callable[[int], None] | None = None) -> StoredContent:
        """Keep the bytes of open file descriptor ``source``, from its offset to its end, as
        :meth:`store` keeps chunks; ``progress`` is called with each number of bytes kept.
        (Stores that can have the kernel copy a file override this.)"""

        def chunks() -> Iterator[memoryview]:
            buffer = memoryview(bytearray(CHUNK_SIZE))
            while n := os.readv(source, [buffer]):
                if progress is not None:
                    progress(n)
                yield buffer[:n]

        return self.store(chunks(), inline_limit)

    def copy_object(self, digest: str, out: int) -> None:
        """Write content object ``digest`` to open file descriptor ``out``, from its offset;
        raise CorruptContent naming the object if it is missing or its bytes do not match.
        This default writes the bytes as :meth:`open_object` reads them, so a mismatch found
        at the end comes after them; stores that can verify first, or take the bytes back,
        override it."""
        with self.open_object(digest) as reader, open(out, "wb", closefd=False) as writer:
            while chunk := reader.read(CHUNK_SIZE):
                writer.write(chunk)

    @abstractmethod
    def commit(self, versions: Sequence[NodeVersion], info: TxnInfo) -> None:
        """Append ``versions`` (all with ``txn == info.txn``) as one atomic transaction. It
        survives a power loss once :meth:`sync` has returned (a durable commit is the two:
        :meth:`pondfs.tinyfs.fs.Commit.store`), or at once in a store opened to make every
        commit durable."""

    @abstractmethod
    def transactions(self, as_of: int) -> list[TxnInfo]:
        """Committed transactions up to ``as_of``, newest first."""

    @abstractmethod
    def writer_lock(self, holder: str, wait: float = 0.0) -> AbstractContextManager[None]:
        """Hold the single-writer lock while the context is open, and move to the newest
        committed transaction on taking it (as :meth:`refresh`). Another holder is waited
        for up to ``wait`` seconds, then PondLocked names it. ``holder`` describes this
        writer. Writers hold it for one commit at a time (:meth:`pondfs.tinyfs.fs.FS.commit`)."""

    def finishing(self) -> None:
        """Say that this writer releases the writer lock shortly (a mount being unmounted):
        other writers then wait for it a few seconds instead of failing at once."""
        return None

    def refresh(self) -> None:
        """Move this store's view to the newest committed transaction (stores that pin a
        snapshot at open override this)."""
        return None

    def sync(self) -> None:
        """Make every commit so far durable, and the content objects they name, each before
        any later one (stores whose commits are durable, or that cannot be, need not
        override this)."""
        return None

    def object_ids(self) -> Iterator[str]:
        """Every content object present (for ``check``); empty when there is no object store."""
        return iter(())

    def referenced_objects(self) -> set[str]:
        """The content objects named by any version of any node, up to the newest
        transaction (stores that can read the names alone override this)."""
        return {v.blake3 for v in self.scan(self.last_txn()) if not v.inline}

    def snapshot(self) -> Snapshot:
        """The files that make up this store's state, up to its newest transaction, for
        copying it (``pond backup push``). FsError (ENOTSUP) for a store that keeps no files
        of its own on the local disk."""
        raise FsError(errno.ENOTSUP, "this pond keeps no files of its own on the local disk "
                      "to copy")

    def cache_dir(self) -> Path | None:
        """The local directory where content derived from this pond is cached, or None to
        keep it in memory."""
        return None

    def disk_dir(self) -> Path | None:
        """A local directory on the filesystem that takes this store's bytes (a local pond's
        own directory, or a remote pond's local cache), whose free space bounds what can be
        written; None for a store in memory."""
        return None

    def close(self) -> None:
        """Release whatever the store holds open."""
        return None
