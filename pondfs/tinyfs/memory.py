"""In-memory persistence: the whole pond in Python dicts, for fast unit tests."""

from __future__ import annotations

import errno
import io
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from .errors import CorruptContent, FsError, PondLocked
from .hashing import content_hash
from .persistence import Persistence
from .records import Chunk, NodeVersion, StoredContent, TxnInfo


class MemoryPersistence(Persistence):
    """Keeps rows, objects and transactions in memory; behaves like the oplog otherwise."""

    def __init__(self) -> None:
        self._rows: dict[str, list[NodeVersion]] = defaultdict(list)
        self._objects: dict[str, bytes] = {}
        self._txns: list[TxnInfo] = []
        self._lock_holder: str | None = None
        self._released = threading.Condition()

    def last_txn(self) -> int:
        return self._txns[-1].txn if self._txns else 0

    def partition(self, part_id: str, as_of: int) -> list[NodeVersion]:
        rows = [r.evolve(content=None) for r in self._rows.get(part_id, ()) if r.txn <= as_of]
        return sorted(rows, key=lambda r: (r.node_id, r.version))

    def node_versions(self, node_id: str, as_of: int) -> list[NodeVersion]:
        rows = [
            r.evolve(content=None)
            for part in self._rows.values()
            for r in part
            if r.node_id == node_id and r.txn <= as_of
        ]
        return sorted(rows, key=lambda r: r.version)

    def scan(self, as_of: int) -> Iterator[NodeVersion]:
        for part in self._rows.values():
            for r in part:
                if r.txn <= as_of:
                    yield r.evolve(content=None)

    def read_inline(self, version: NodeVersion) -> bytes:
        for r in self._rows.get(version.part_id, ()):
            if r.node_id == version.node_id and r.version == version.version:
                return r.content or b""
        raise FsError(errno.ENOENT, f"no row for node {version.node_id} v{version.version}")

    def open_object(self, digest: str) -> BinaryIO:
        try:
            return io.BytesIO(self._objects[digest])
        except KeyError:
            raise CorruptContent(f"object {digest}") from None

    def store(self, chunks: Iterable[Chunk], inline_limit: int) -> StoredContent:
        gathered = bytearray()
        for chunk in chunks:  # consumed one by one: chunks may share a buffer
            gathered += chunk
        data = bytes(gathered)
        digest = content_hash(data)
        if len(data) < inline_limit:
            return StoredContent(digest, len(data), data)
        self._objects[digest] = data
        return StoredContent(digest, len(data), None)

    def commit(self, versions: Sequence[NodeVersion], info: TxnInfo) -> None:
        if info.txn != self.last_txn() + 1:
            raise FsError(errno.EINVAL, f"transaction {info.txn} does not follow {self.last_txn()}")
        for v in versions:
            self._rows[v.part_id].append(v)
        self._txns.append(info)

    def transactions(self, as_of: int) -> list[TxnInfo]:
        return [t for t in reversed(self._txns) if t.txn <= as_of]

    @contextmanager
    def writer_lock(self, holder: str, wait: float = 0.0) -> Iterator[None]:
        with self._released:
            if not self._released.wait_for(lambda: self._lock_holder is None, wait):
                raise PondLocked(str(self._lock_holder))
            self._lock_holder = holder
        try:
            yield
        finally:
            with self._released:
                self._lock_holder = None
                self._released.notify_all()

    def object_ids(self) -> Iterator[str]:
        return iter(list(self._objects))
