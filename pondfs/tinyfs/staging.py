"""What a view knows of its nodes: their versions in three layers, the directory listings
they make, the computed nodes made from them, and the staging of new versions.

:class:`StagedView` is the base of :class:`~pondfs.tinyfs.fs.FS`: committed rows (loaded
lazily, one partition at a time, kept for the life of the view), the rows of a commit in
flight, and the pending versions staged on top of both; reads take the newest of the three.
"""

from __future__ import annotations

import errno
import threading
import time
from functools import wraps
from typing import TYPE_CHECKING, cast

from .cache import DerivedCache
from .commit import Commit
from .dynamic import DynamicDirectory, DynamicNode, Factories, FactoryRegistry
from .errors import FsError
from .hashing import EMPTY_HASH
from .persistence import Persistence
from .records import (
    DIRECTORY,
    DYNAMIC,
    FILE,
    ROOT_ID,
    SERIES,
    DirOp,
    NodeVersion,
)

if TYPE_CHECKING:
    from .fs import FS

#: The content of a series version that adds no rows.
_NO_ROWS = {"content": b"", "inline": True, "size": 0, "blake3": EMPTY_HASH,
            "min_time": None, "max_time": None}


def is_computed(node_id: str) -> bool:
    """Whether ``node_id`` names an entry of a computed directory (made on demand, never
    stored): such ids are ``<directory id>/<name>``, and stored ids never hold a '/'."""
    return "/" in node_id


def locked(method):
    """``method`` run holding the view's lock (re-entrant: locked methods call each other)."""
    @wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper


class StagedView:
    """The node versions and listings of a view as of transaction ``at`` (read-only) or the
    newest one, the :class:`Commit` in flight, and the pending versions staged on top (see
    :class:`~pondfs.tinyfs.fs.FS`, whose constructor this is)."""

    def __init__(
        self,
        store: Persistence,
        *,
        at: int | None = None,
        cache: DerivedCache | None = None,
        factories: Factories | None = None,
        holder: str = "",
        lock_wait: float = 0.0,
    ):
        last = store.last_txn()
        if at is not None and not 1 <= at <= last:
            raise FsError(errno.ENOENT, f"no transaction {at}: the pond has 1..{last}")
        self.store = store
        self.as_of = last if at is None else at
        self.read_only = at is not None
        #: How this writer describes itself in the writer lock (default: the command it
        #: commits), and how many seconds it waits for the lock (see FS.commit).
        self.holder = holder
        self.lock_wait = lock_wait
        self.cache = cache or DerivedCache()
        self.factories = factories if factories is not None else FactoryRegistry()
        self._mutex = threading.RLock()
        self._rows: dict[str, dict[str, list[NodeVersion]]] = {}
        self._part_of: dict[str, str] = {ROOT_ID: ROOT_ID}
        self._parent_of: dict[str, str] = {ROOT_ID: ROOT_ID}
        # _part_of and _parent_of describe committed nodes only, so abort has nothing to undo
        # there; the parents of directories made or moved by the pending transaction are here.
        self._pending_parents: dict[str, str] = {}
        self._listings: dict[str, dict[str, DirOp]] = {}
        self._chain: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, NodeVersion] = {}
        self._pending_ops: dict[str, list[DirOp]] = {}
        self._pending_listings: dict[str, dict[str, DirOp]] = {}
        # The in-flight overlay, between the pending changes and the committed state: rows
        # being committed (or whose commit failed, kept for the next one) per node, oldest
        # first, and the listings and directory parents they make.
        self._inflight: dict[str, list[NodeVersion]] = {}
        self._inflight_listings: dict[str, dict[str, DirOp]] = {}
        self._inflight_ops: dict[str, list[DirOp]] = {}  # the entry changes they made
        self._inflight_parents: dict[str, str] = {}
        self._commit: Commit | None = None
        self._commit_lock = threading.Lock()
        #: Subdirectories per directory listing (for nlink), dropped when one changes.
        self._subdir_counts: dict[str, int] = {}
        self._dynamic: dict[str, DynamicNode] = {}

    def _check_writable(self) -> None:
        if self.read_only:
            raise FsError(errno.EROFS, f"read-only view of the pond as of transaction {self.as_of}")

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._pending_ops.clear()
        self._pending_listings.clear()
        self._pending_parents.clear()

    def _clear_inflight(self) -> None:
        self._inflight.clear()
        self._inflight_listings.clear()
        self._inflight_ops.clear()
        self._inflight_parents.clear()

    # ------------------------------------------------------------------ rows

    def _partition(self, part_id: str) -> dict[str, list[NodeVersion]]:
        rows = self._rows.get(part_id)
        if rows is None:
            rows = {}
            for v in self.store.partition(part_id, self.as_of):
                rows.setdefault(v.node_id, []).append(v)
            self._rows[part_id] = rows
        return rows

    def _committed(self, node_id: str) -> list[NodeVersion]:
        part = self._part_of.get(node_id)
        if part is None:
            versions = self.store.node_versions(node_id, self.as_of)
            if not versions:
                return []
            part = versions[-1].part_id
            self._part_of[node_id] = part
        return self._partition(part).get(node_id, [])

    def _staged(self, node_id: str) -> NodeVersion | None:
        """The newest uncommitted version of a node: pending, else in flight."""
        v = self._pending.get(node_id)
        if v is None:
            inflight = self._inflight.get(node_id)
            if inflight:
                v = inflight[-1]
        return v

    def _newest(self, node_id: str) -> NodeVersion | None:
        """The newest version of a node, staged or committed (a removal too), or None."""
        v = self._staged(node_id)
        if v is None:
            rows = self._committed(node_id)
            v = rows[-1] if rows else None
        return v

    def _latest(self, node_id: str) -> NodeVersion:
        v = self._newest(node_id)
        if v is None or v.deleted:
            raise FsError(errno.ENOENT, f"no such node {node_id}")
        return v

    @locked
    def get(self, node_id: str) -> NodeVersion:
        """The newest version of a stored node (pending changes included)."""
        return self._latest(node_id)

    def _carry(self, v: NodeVersion) -> NodeVersion:
        """``v`` with its inline content loaded, so a new version can carry it."""
        if v.inline and v.content is None and v.kind != DIRECTORY:
            return v.evolve(content=self.store.read_inline(v))
        return v

    def _stage(self, v: NodeVersion) -> None:
        self._pending[v.node_id] = v

    def _next_version(self, node_id: str, **changes) -> NodeVersion:
        """Stage a new version of ``node_id`` (or amend the one pending) with ``changes``."""
        self._check_writable()
        pending = self._pending.get(node_id)
        if pending is not None:
            v = pending.evolve(**changes)
        else:
            latest = self._latest(node_id)
            if latest.format == SERIES and latest.kind == FILE and "blake3" not in changes:
                # A series version holds the rows it adds: a new version that changes only
                # attributes, name or place adds none (carrying the last batch would repeat it).
                changes = {**_NO_ROWS, **changes}
            if "content" not in changes:
                # Only a version that keeps the old bytes needs them read back (an overwrite
                # or a removal must not cost a persistence read).
                latest = self._carry(latest)
            v = latest.evolve(version=latest.version + 1, **changes)
        self._stage(v)
        return v

    # ------------------------------------------------------------------ listings

    def _listing(self, dir_id: str) -> dict[str, DirOp]:
        pending = self._pending_listings.get(dir_id)
        if pending is None:
            pending = self._inflight_listings.get(dir_id)
        if pending is not None:
            return pending
        listing = self._listings.get(dir_id)
        if listing is None:
            listing = self._replay(dir_id)
            self._listings[dir_id] = listing
        return listing

    def _replay(self, dir_id: str) -> dict[str, DirOp]:
        versions = self._committed(dir_id)
        start = max((i for i, v in enumerate(versions) if v.snapshot), default=0)
        listing: dict[str, DirOp] = {}
        delta_ops = 0
        for v in versions[start:]:
            if v.snapshot:
                listing = {}
            else:
                delta_ops += len(v.entries)
            for op in v.entries:
                if op.op == "add":
                    listing[op.name] = op
                else:
                    listing.pop(op.name, None)
        self._chain[dir_id] = (max(len(versions) - start - 1, 0), delta_ops)
        for op in listing.values():
            self._part_of[op.node_id] = op.part_id or (
                op.node_id if op.kind == DIRECTORY else dir_id)
            if op.kind == DIRECTORY:
                self._parent_of[op.node_id] = dir_id
        return listing

    def _dir_change(self, dir_id: str, op: DirOp) -> None:
        """Record an entry change in ``dir_id`` and stage its new version (mtime, ctime)."""
        self._check_writable()
        listing = self._pending_listings.get(dir_id)
        if listing is None:
            listing = dict(self._listing(dir_id))
            self._pending_listings[dir_id] = listing
        if op.op == "add":
            listing[op.name] = op
        else:
            listing.pop(op.name, None)
        self._pending_ops.setdefault(dir_id, []).append(op)
        if op.kind == DIRECTORY:
            self._subdir_counts.pop(dir_id, None)
        now = time.time_ns()
        self._next_version(dir_id, mtime_ns=now, ctime_ns=now, entries=(), snapshot=False)

    def _parent_id(self, dir_id: str) -> str | None:
        """The directory holding directory ``dir_id``: staged, in flight or committed."""
        return (self._pending_parents.get(dir_id) or self._inflight_parents.get(dir_id)
                or self._parent_of.get(dir_id))

    def _require_dir(self, dir_id: str) -> NodeVersion:
        if dir_id in self._dynamic:
            raise FsError(errno.EROFS, "computed directories cannot be changed")
        v = self._latest(dir_id)
        if v.kind == DYNAMIC:
            raise FsError(errno.EROFS, "computed directories cannot be changed")
        if v.kind != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {dir_id}")
        return v

    def _subdirs(self, dir_id: str) -> int:
        # Counted once per listing change, not per stat: a FUSE mount stats a directory
        # after every create in it.
        count = self._subdir_counts.get(dir_id)
        if count is None:
            count = sum(1 for op in self._listing(dir_id).values() if op.kind == DIRECTORY)
            self._subdir_counts[dir_id] = count
        return count

    # ------------------------------------------------------------------ computed nodes

    def _adopt(self, parent_id: str, name: str, child: DynamicNode) -> str:
        node_id = f"{parent_id}/{name}"
        self._dynamic[node_id] = child  # the newest computation wins
        return node_id

    def _dynamic_node(self, node_id: str) -> DynamicNode | None:
        """The computed node behind ``node_id``, made from its factory on first use."""
        node = self._dynamic.get(node_id)
        if node is not None:
            return node
        if is_computed(node_id):
            # Not made in this view yet, or its directory was reconfigured: ask it again.
            parent_id, name = node_id.rsplit("/", 1)
            parent = self._dynamic_node(parent_id)
            child = parent.lookup(name) if isinstance(parent, DynamicDirectory) else None
            if child is not None:
                self._adopt(parent_id, name, child)
            return child
        v = self._newest(node_id)
        if v is None or v.kind != DYNAMIC or v.deleted:
            return None
        # A factory gets the whole view: a StagedView is only ever the base of an FS.
        view = cast("FS", self)
        node = self.factories.build(v.format, view, self._carry(v).content or b"", node_id)
        self._dynamic[node_id] = node
        return node

    @locked
    def dynamic_node(self, node_id: str) -> DynamicNode | None:
        """The computed node behind ``node_id`` (a dynamic node or an entry of a computed
        directory), or None for a stored node. Factories use it to ask a computed input for
        its fingerprint without computing its content."""
        return self._dynamic_node(node_id)

    # ------------------------------------------------------------------ changing

    def _require_stored(self, node_id: str) -> NodeVersion:
        """The newest version of a node about to change (EROFS on a read-only view)."""
        self._check_writable()
        if is_computed(node_id):
            raise FsError(errno.EROFS, "computed nodes cannot be changed")
        return self._latest(node_id)
