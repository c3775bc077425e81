"""The filesystem model: nodes, directories, paths, transactions, over a Persistence.

An :class:`FS` is a view of a pond as of one transaction. A writable view (``at`` not given)
collects changes in a pending transaction that :meth:`FS.commit` turns into one atomic
persistence commit; :meth:`FS.abort` drops them. Nodes are named by ``node_id``; paths are
resolved by :meth:`FS.resolve`; a node other than a directory may have several names (hard
links, :meth:`FS.link`). Errors are :class:`FsError` with a POSIX errno.

Committing has two phases so that a slow persistence commit (tens of ms, more when fsync'ed)
does not stop the view (see :class:`Commit`): under the view's lock the pending versions are
numbered and moved to an *in-flight* set; the persistence commit runs without the lock; then
the lock is taken again to fold the in-flight rows into the committed state. Meanwhile the
view keeps working: reads see pending changes, then in-flight ones, then committed rows, and
new changes are staged on top of the in-flight state (version numbers continue from it) for
the next commit. A failed persistence commit keeps the in-flight set in the view, uncommitted:
the view stays as it was (nothing staged is lost) and the next commit writes the in-flight
rows and whatever was staged since, as one transaction (a node may then have two versions in
it); :meth:`FS.abort` drops both.

Rows are loaded lazily, one partition (a directory and its non-directory children) at a
time, and kept for the life of the view.
"""

from __future__ import annotations

import errno
import io
import logging
import stat as st
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from . import formats
from .cache import DerivedCache
from .dynamic import DynamicDirectory, DynamicFile, DynamicNode, Factories, FactoryRegistry
from .errors import FsError
from .glob import GlobPattern
from .hashing import EMPTY_HASH, content_hash
from .persistence import Persistence
from .records import (
    BLOCK_DEVICE,
    CHAR_DEVICE,
    CHUNK_SIZE,
    DATA,
    DEVICE_KINDS,
    DIRECTORY,
    DYNAMIC,
    FIFO,
    FILE,
    INLINE_LIMIT,
    ROOT_ID,
    SERIES,
    SOCKET,
    SPECIAL_KINDS,
    SYMLINK,
    TABLE,
    DirOp,
    NodeVersion,
    StoredContent,
    TxnInfo,
    new_node_id,
)

log = logging.getLogger(__name__)

#: Symlinks followed in one resolution before ELOOP (as Linux).
MAX_SYMLINKS = 40
NAME_MAX = 255
#: A directory version is a full listing after this many delta versions.
SNAPSHOT_EVERY = 256
#: Names a node may have (as ext4's EXT4_LINK_MAX); one more link is EMLINK.
LINK_MAX = 65000

#: The content of a series version that adds no rows.
_NO_ROWS = {"content": b"", "inline": True, "size": 0, "blake3": EMPTY_HASH,
            "min_time": None, "max_time": None}

_TYPE_BITS = {DIRECTORY: st.S_IFDIR, FILE: st.S_IFREG, SYMLINK: st.S_IFLNK,
              FIFO: st.S_IFIFO, SOCKET: st.S_IFSOCK, CHAR_DEVICE: st.S_IFCHR,
              BLOCK_DEVICE: st.S_IFBLK}
_SPECIAL_OF_TYPE = {_TYPE_BITS[kind]: kind for kind in SPECIAL_KINDS}


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a directory entry, else raise EINVAL/ENAMETOOLONG."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise FsError(errno.EINVAL, f"invalid name {name!r}: names cannot be empty, '.', '..' "
                      "or hold '/' or NUL")
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG,
                      f"name too long ({size} bytes > {NAME_MAX}): {name[:40]}...")
    return name


def split_path(path: str) -> list[str]:
    """The non-empty components of ``path`` (``.`` kept; resolution handles it)."""
    return [c for c in path.split("/") if c]


def join_path(parent: str, name: str) -> str:
    """``parent``/``name`` for absolute pond paths."""
    return parent.rstrip("/") + "/" + name


def _named(dir_id: str, name: str, v: NodeVersion) -> DirOp:
    """The entry adding ``name`` for node version ``v`` to directory ``dir_id``: it names the
    partition of the node's rows when that is not the one its kind implies."""
    implied = v.node_id if v.kind == DIRECTORY else dir_id
    return DirOp(name, v.node_id, v.kind, part_id="" if v.part_id == implied else v.part_id)


def _is_computed(node_id: str) -> bool:
    """Whether ``node_id`` names an entry of a computed directory (made on demand, never
    stored): such ids are ``<directory id>/<name>``, and stored ids never hold a '/'."""
    return "/" in node_id


@dataclass(frozen=True)
class Stat:
    """POSIX attributes of a node as the CLI and the mount report them (``rdev``: a device
    node's device number, else 0)."""

    node_id: str
    kind: str
    format: str
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    version: int
    txn: int
    dynamic: bool = False
    rdev: int = 0


def _locked(method):
    @wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper


class FS:
    """A pond's filesystem as of transaction ``at`` (read-only) or the newest one (writable).

    ``cache`` keeps derived content (merged series, dynamic files); ``factories`` validates
    and builds dynamic nodes by the factory name they store (none without it).
    """

    def __init__(
        self,
        store: Persistence,
        *,
        at: int | None = None,
        cache: DerivedCache | None = None,
        factories: Factories | None = None,
    ):
        last = store.last_txn()
        if at is not None and not 1 <= at <= last:
            raise FsError(errno.ENOENT, f"no transaction {at}: the pond has 1..{last}")
        self.store = store
        self.as_of = last if at is None else at
        self.read_only = at is not None
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
        self._inflight_parents: dict[str, str] = {}
        self._commit: Commit | None = None
        self._commit_lock = threading.Lock()
        #: Subdirectories per directory listing (for nlink), dropped when one changes.
        self._subdir_counts: dict[str, int] = {}
        self._dynamic: dict[str, DynamicNode] = {}

    # ------------------------------------------------------------------ transactions

    @property
    def dirty(self) -> bool:
        """Whether a commit would write anything: changes are pending, or the rows of a
        failed commit wait to be committed again."""
        return bool(self._pending) or (bool(self._inflight) and self._commit is None)

    def commit(self, command: str) -> int | None:
        """Commit the pending changes (and any rows a failed commit left) as one transaction;
        its number, or None if there was nothing. Other threads may use the view meanwhile
        (see :class:`Commit`); commits from several threads run one after the other."""
        with self._commit_lock:
            commit = self.begin_commit(command)
            return None if commit is None else commit.complete()

    @_locked
    def begin_commit(self, command: str, hold: Collection[str] = ()) -> Commit | None:
        """Phase one of a commit: number and stamp the pending versions and move them to the
        in-flight set; the :class:`Commit` that finishes the job, or None if nothing is to be
        committed. EBUSY while another commit is in flight.

        ``hold`` names new nodes whose changes stay pending, out of this commit: their own
        versions, the directory entries naming them and the removal of an entry one of them
        replaced (a file created and not yet closed is not committed half-written)."""
        if self._commit is not None:
            raise FsError(errno.EBUSY, f"transaction {self._commit.txn} is being committed")
        held = self._set_aside(set(hold))
        if not self.dirty:
            self._stage_again(held)
            return None
        txn = self.as_of + 1
        now = time.time_ns()
        for v in [self._finish(v, txn, now) for v in self._pending.values()]:
            self._inflight.setdefault(v.node_id, []).append(v)
        self._inflight_listings.update(self._pending_listings)
        self._inflight_parents.update(self._pending_parents)
        self._clear_pending()
        self._stage_again(held)
        rows = [v if v.timestamp_ns == now else v.evolve(timestamp_ns=now)
                for versions in self._inflight.values() for v in versions]
        self._commit = Commit(self, TxnInfo(txn, now, command, rows=len(rows)), rows)
        return self._commit

    def _set_aside(self, hold: set[str]) -> _HeldChanges | None:
        """Take the pending changes of the nodes in ``hold`` out of the pending set (see
        :meth:`begin_commit`); what :meth:`_stage_again` puts back after numbering."""
        hold &= self._pending.keys()
        if not hold:
            return None
        held = _HeldChanges()
        for dir_id, ops in list(self._pending_ops.items()):
            held_ops = _held_ops(ops, hold)
            if not held_ops:
                continue
            hold.update(ops[i].node_id for i in held_ops)  # the entries they replaced
            kept = [op for i, op in enumerate(ops) if i not in held_ops]
            held.ops[dir_id] = [ops[i] for i in sorted(held_ops)]
            held.listings[dir_id] = self._pending_listings[dir_id]
            listing = dict(self._inflight_listings.get(dir_id, self._listings.get(dir_id, {})))
            for op in kept:
                if op.op == "add":
                    listing[op.name] = op
                else:
                    listing.pop(op.name, None)
            if kept or self._changed_besides_entries(dir_id):
                self._pending_ops[dir_id] = kept
                self._pending_listings[dir_id] = listing
                held.amended[dir_id] = self._pending[dir_id]
            else:
                del self._pending_ops[dir_id], self._pending_listings[dir_id]
                held.versions[dir_id] = self._pending.pop(dir_id)
        for node_id in hold:
            if node_id in self._pending:
                held.versions[node_id] = self._pending.pop(node_id)
        return held

    def _changed_besides_entries(self, dir_id: str) -> bool:
        """Whether the pending version of ``dir_id`` changes more than its entries (and the
        times they moved): a new directory, or new attributes."""
        versions = self._inflight.get(dir_id) or self._committed(dir_id)
        if not versions:
            return True
        before = versions[-1]
        v = self._pending[dir_id]
        return (v.mode, v.uid, v.gid, v.xattrs, v.deleted) != (
            before.mode, before.uid, before.gid, before.xattrs, before.deleted)

    def _stage_again(self, held: _HeldChanges | None) -> None:
        """Put changes :meth:`_set_aside` took out back into the pending set; a directory
        that is being committed without them gets a new pending version on top."""
        if held is None:
            return
        self._pending.update(held.versions)
        for dir_id, v in held.amended.items():
            self._pending[dir_id] = v.evolve(version=v.version + 1, entries=(), snapshot=False)
        for dir_id, ops in held.ops.items():
            self._pending_ops[dir_id] = ops
            self._pending_listings[dir_id] = held.listings[dir_id]

    def _committed_in_flight(self, commit: Commit) -> None:
        """Phase three: the in-flight rows are committed; fold them into the committed state
        (the pending changes staged on top of them stay pending)."""
        with self._mutex:
            for v in commit.rows:
                self._part_of[v.node_id] = v.part_id
                rows = self._rows.get(v.part_id)
                if rows is not None:
                    # Loaded during the commit (as of the transaction before), or earlier.
                    rows.setdefault(v.node_id, []).append(v.evolve(content=None))
            self._listings.update(self._inflight_listings)
            self._parent_of.update(self._inflight_parents)
            self._clear_inflight()
            self.as_of = commit.info.txn
            self._commit = None

    def _failed_in_flight(self, commit: Commit) -> None:
        """The persistence commit raised: fold the rows in if it committed nonetheless (its
        fsync failed, say), else keep them in flight for the next commit."""
        with self._mutex:
            self._commit = None
            try:
                committed = self.store.last_txn() == commit.info.txn
            except Exception:
                log.warning("could not ask the store whether transaction %d committed",
                            commit.info.txn, exc_info=True)
                committed = False
        if committed:
            self._committed_in_flight(commit)

    @_locked
    def abort(self) -> None:
        """Drop the pending changes and the rows of a failed commit (EBUSY while a commit is
        in flight)."""
        if self._commit is not None:
            raise FsError(errno.EBUSY, f"transaction {self._commit.txn} is being committed")
        self._clear_pending()
        self._clear_inflight()
        self._subdir_counts.clear()

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._pending_ops.clear()
        self._pending_listings.clear()
        self._pending_parents.clear()

    def _clear_inflight(self) -> None:
        self._inflight.clear()
        self._inflight_listings.clear()
        self._inflight_parents.clear()

    def _finish(self, v: NodeVersion, txn: int, now: int) -> NodeVersion:
        """The row to commit for a pending version: numbered, stamped, entries finalised."""
        v = v.evolve(txn=txn, timestamp_ns=now)
        if v.kind != DIRECTORY:
            return v
        ops = self._pending_ops.get(v.node_id, [])
        listing = self._listing(v.node_id)  # first: loading it sets the chain
        versions, count = self._chain.get(v.node_id, (0, 0))
        if v.version == 1 or versions + 1 >= SNAPSHOT_EVERY or count + len(ops) > max(
            len(listing), 64
        ):
            self._chain[v.node_id] = (0, 0)
            return v.evolve(entries=tuple(listing[n] for n in sorted(listing)), snapshot=True)
        self._chain[v.node_id] = (versions + 1, count + len(ops))
        return v.evolve(entries=tuple(ops), snapshot=False)

    def _check_writable(self) -> None:
        if self.read_only:
            raise FsError(errno.EROFS, f"read-only view of the pond as of transaction {self.as_of}")

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

    @_locked
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

    # ------------------------------------------------------------------ directories

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

    def _require_dir(self, dir_id: str) -> NodeVersion:
        if dir_id in self._dynamic:
            raise FsError(errno.EROFS, "computed directories cannot be changed")
        v = self._latest(dir_id)
        if v.kind == DYNAMIC:
            raise FsError(errno.EROFS, "computed directories cannot be changed")
        if v.kind != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {dir_id}")
        return v

    @_locked
    def listdir(self, dir_id: str) -> dict[str, str]:
        """Names in a directory mapped to node ids (stored or computed)."""
        dynamic = self._dynamic_node(dir_id)
        if dynamic is not None:
            if not isinstance(dynamic, DynamicDirectory):
                raise FsError(errno.ENOTDIR, f"not a directory: {dir_id}")
            return {name: self._adopt(dir_id, name, child) for name, child in dynamic.entries()}
        self._require_dir(dir_id)
        return {name: op.node_id for name, op in self._listing(dir_id).items()}

    @_locked
    def lookup(self, dir_id: str, name: str) -> str | None:
        """The node id named ``name`` in directory ``dir_id``, or None."""
        dynamic = self._dynamic_node(dir_id)
        if dynamic is not None:
            if not isinstance(dynamic, DynamicDirectory):
                raise FsError(errno.ENOTDIR, f"not a directory: {dir_id}")
            child = dynamic.lookup(name)
            return None if child is None else self._adopt(dir_id, name, child)
        self._require_dir(dir_id)
        op = self._listing(dir_id).get(name)
        return None if op is None else op.node_id

    @_locked
    def parent(self, dir_id: str) -> str | None:
        """The directory holding directory ``dir_id`` (the root's is the root), or None when
        this view has not listed it (a view learns parents from listings)."""
        return (self._pending_parents.get(dir_id) or self._inflight_parents.get(dir_id)
                or self._parent_of.get(dir_id))

    @_locked
    def entries(self, dir_id: str) -> dict[str, DirOp]:
        """A stored directory's entries with each child's kind (no computed directories)."""
        self._require_dir(dir_id)
        return dict(self._listing(dir_id))

    @_locked
    def loaded(self, node_id: str) -> bool:
        """Whether :meth:`stat`, :meth:`lookup` and :meth:`listdir` of ``node_id`` can be
        answered from rows already in memory, without reading persistence (an event loop
        calls those directly when this is true and from a worker thread otherwise)."""
        v = self._staged(node_id)
        if v is None:
            rows = self._rows.get(self._part_of.get(node_id, ""), {}).get(node_id)
            if not rows:
                return False
            v = rows[-1]
        if v.kind == DYNAMIC or v.format == SERIES or node_id in self._dynamic:
            return False
        if v.kind == DIRECTORY:
            return (node_id in self._pending_listings or node_id in self._inflight_listings
                    or node_id in self._listings)
        return True

    def _subdirs(self, dir_id: str) -> int:
        # Counted once per listing change, not per stat: a FUSE mount stats a directory
        # after every create in it.
        count = self._subdir_counts.get(dir_id)
        if count is None:
            count = sum(1 for op in self._listing(dir_id).values() if op.kind == DIRECTORY)
            self._subdir_counts[dir_id] = count
        return count

    # ------------------------------------------------------------------ dynamic nodes

    def _adopt(self, parent_id: str, name: str, child: DynamicNode) -> str:
        node_id = f"{parent_id}/{name}"
        self._dynamic[node_id] = child  # the newest computation wins
        return node_id

    def _dynamic_node(self, node_id: str) -> DynamicNode | None:
        """The computed node behind ``node_id``, made from its factory on first use."""
        node = self._dynamic.get(node_id)
        if node is not None:
            return node
        if _is_computed(node_id):
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
        node = self.factories.build(v.format, self, self._carry(v).content or b"", node_id)
        self._dynamic[node_id] = node
        return node

    @_locked
    def dynamic_node(self, node_id: str) -> DynamicNode | None:
        """The computed node behind ``node_id`` (a dynamic node or an entry of a computed
        directory), or None for a stored node. Factories use it to ask a computed input for
        its fingerprint without computing its content."""
        return self._dynamic_node(node_id)

    # ------------------------------------------------------------------ attributes

    @_locked
    def stat(self, node_id: str) -> Stat:
        """POSIX attributes of a node."""
        dynamic = self._dynamic_node(node_id) if _is_computed(node_id) else None
        if dynamic is not None:
            return self._dynamic_stat(node_id, dynamic)
        v = self._latest(node_id)
        if v.kind == DYNAMIC:
            node = self._dynamic_node(node_id)
            assert node is not None
            return replace(self._dynamic_stat(node_id, node), format=v.format, uid=v.uid,
                           gid=v.gid,
                           mtime_ns=v.mtime_ns, ctime_ns=v.ctime_ns, atime_ns=v.atime_ns,
                           version=v.version, txn=v.txn)
        mode = _TYPE_BITS[v.kind] | (v.mode & 0o7777)
        nlink = 2 + self._subdirs(node_id) if v.kind == DIRECTORY else v.nlink
        size = self._series_size(v) if v.format == SERIES else v.size
        return Stat(node_id, v.kind, v.format, mode, nlink, v.uid, v.gid, size, v.atime_ns,
                    v.mtime_ns, v.ctime_ns, v.version, v.txn, rdev=v.rdev)

    def _dynamic_stat(self, node_id: str, node: DynamicNode) -> Stat:
        is_dir = isinstance(node, DynamicDirectory)
        mode = (st.S_IFDIR | 0o555) if is_dir else (st.S_IFREG | 0o444)
        size = node.size() if isinstance(node, DynamicFile) else 0
        mtime = node.mtime_ns()
        return Stat(node_id, DIRECTORY if is_dir else FILE, "" if is_dir else DATA, mode,
                    2 if is_dir else 1, 0, 0, size, mtime, mtime, mtime, 0, self.as_of, True)

    @_locked
    def setattr(
        self,
        node_id: str,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        atime_ns: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """Change permission bits, owner or times; ctime becomes now."""
        self._require_stored(node_id)
        changes: dict = {"ctime_ns": time.time_ns()}
        for key, value in (("uid", uid), ("gid", gid), ("atime_ns", atime_ns),
                           ("mtime_ns", mtime_ns)):
            if value is not None:
                changes[key] = value
        if mode is not None:
            changes["mode"] = mode & 0o7777
        self._next_version(node_id, **changes)

    def _require_stored(self, node_id: str) -> NodeVersion:
        """The newest version of a node about to change (EROFS on a read-only view)."""
        self._check_writable()
        if _is_computed(node_id):
            raise FsError(errno.EROFS, "computed nodes cannot be changed")
        return self._latest(node_id)

    @_locked
    def getxattr(self, node_id: str, name: str) -> bytes:
        """An extended attribute's value; ENODATA if it is not set."""
        if _is_computed(node_id):
            raise FsError(errno.ENODATA, f"no attribute {name}")
        try:
            return self._latest(node_id).xattrs[name]
        except KeyError:
            raise FsError(errno.ENODATA, f"no attribute {name}") from None

    @_locked
    def listxattr(self, node_id: str) -> list[str]:
        """Names of a node's extended attributes."""
        return [] if _is_computed(node_id) else sorted(self._latest(node_id).xattrs)

    @_locked
    def setxattr(self, node_id: str, name: str, value: bytes) -> None:
        """Set an extended attribute (a new version of the node, unless it has that value
        already: as ext4, nothing changes then, not even the ctime)."""
        v = self._require_stored(node_id)
        if v.xattrs.get(name) == value:
            return
        self._next_version(node_id, xattrs={**v.xattrs, name: bytes(value)},
                           ctime_ns=time.time_ns())

    @_locked
    def removexattr(self, node_id: str, name: str) -> None:
        """Remove an extended attribute; ENODATA if it is not set."""
        v = self._require_stored(node_id)
        if name not in v.xattrs:
            raise FsError(errno.ENODATA, f"no attribute {name}")
        xattrs = {k: val for k, val in v.xattrs.items() if k != name}
        self._next_version(node_id, xattrs=xattrs, ctime_ns=time.time_ns())

    # ------------------------------------------------------------------ creating

    def _create(self, dir_id: str, name: str, kind: str, fmt: str, mode: int, uid: int,
                gid: int, stored: tuple[str, int, bytes] | None = None, rdev: int = 0) -> str:
        self._check_writable()  # before anything is staged
        self._require_dir(dir_id)
        validate_name(name)
        if name in self._listing(dir_id):
            raise FsError(errno.EEXIST, f"already exists: {name}")
        node_id = new_node_id()
        now = time.time_ns()
        digest, size, content = stored or (EMPTY_HASH, 0, b"")
        v = NodeVersion(
            part_id=node_id if kind == DIRECTORY else dir_id, node_id=node_id, version=1, txn=0,
            kind=kind, format=fmt, mode=mode & 0o7777, uid=uid, gid=gid, atime_ns=now,
            mtime_ns=now, ctime_ns=now, size=size, blake3=digest, inline=True, content=content,
            rdev=rdev,
        )
        self._stage(v)
        if kind == DIRECTORY:
            self._pending_parents[node_id] = dir_id
            self._pending_listings[node_id] = {}
        self._dir_change(dir_id, DirOp(name, node_id, kind))
        return node_id

    @_locked
    def init_root(self, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """Create the root directory of an empty pond (the first transaction)."""
        self._check_writable()
        if self.as_of != 0 or self._pending or self._inflight:
            raise FsError(errno.EEXIST, "the pond already has a root directory")
        now = time.time_ns()
        self._stage(NodeVersion(ROOT_ID, ROOT_ID, 1, 0, DIRECTORY, mode=mode, uid=uid, gid=gid,
                                atime_ns=now, mtime_ns=now, ctime_ns=now, snapshot=True))
        self._pending_listings[ROOT_ID] = {}

    @_locked
    def mkdir(self, dir_id: str, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> str:
        """Create a directory; its node id."""
        return self._create(dir_id, name, DIRECTORY, "", mode, uid, gid)

    @_locked
    def create(self, dir_id: str, name: str, fmt: str = DATA, mode: int = 0o644, uid: int = 0,
               gid: int = 0) -> str:
        """Create an empty file of format ``fmt``; its node id."""
        if fmt not in (DATA, TABLE, SERIES):
            raise FsError(errno.EINVAL, f"unknown file format {fmt!r} (data, table or series)")
        return self._create(dir_id, name, FILE, fmt, mode, uid, gid)

    @_locked
    def symlink(self, dir_id: str, name: str, target: str, uid: int = 0, gid: int = 0) -> str:
        """Create a symbolic link to ``target``; its node id."""
        if not target or "\0" in target:
            raise FsError(errno.EINVAL, f"invalid symlink target {target!r}")
        data = target.encode()
        return self._create(dir_id, name, SYMLINK, "", 0o777, uid, gid,
                            (content_hash(data), len(data), data))

    @_locked
    def mknod(self, dir_id: str, name: str, mode: int, rdev: int = 0, uid: int = 0,
              gid: int = 0) -> str:
        """Create a FIFO, socket or device node, the type given by ``mode``'s file type bits
        (``stat.S_IFIFO``, ``S_IFSOCK``, ``S_IFCHR``, ``S_IFBLK``): a node with a mode and no
        content, which the kernel implements; ``rdev`` is a device's number (kept for
        devices only, as ext4 does). Its node id."""
        kind = _SPECIAL_OF_TYPE.get(st.S_IFMT(mode))
        if kind is None:
            raise FsError(errno.EINVAL, f"mknod makes FIFOs, sockets and devices, not "
                          f"file type {st.S_IFMT(mode):o}")
        return self._create(dir_id, name, kind, "", mode, uid, gid,
                            rdev=rdev if kind in DEVICE_KINDS else 0)

    @_locked
    def link(self, node_id: str, dir_id: str, name: str) -> None:
        """Give a node one more name, ``name`` in ``dir_id`` (a hard link): its ``nlink``
        grows and its ctime moves; its rows stay in their partition. EPERM for directories
        (as on ext4) and computed nodes (they cannot change, like an immutable file),
        EMLINK beyond :data:`LINK_MAX` names."""
        self._check_writable()
        v = None if _is_computed(node_id) else self._latest(node_id)
        if v is None or v.kind == DYNAMIC:
            raise FsError(errno.EPERM, f"computed node {node_id} cannot get another name")
        if v.kind == DIRECTORY:
            raise FsError(errno.EPERM, f"hard link to directory {node_id} not allowed")
        if v.nlink >= LINK_MAX:
            raise FsError(errno.EMLINK, f"node {node_id} has {v.nlink} names, the most allowed")
        self._require_dir(dir_id)
        validate_name(name)
        if name in self._listing(dir_id):
            raise FsError(errno.EEXIST, f"already exists: {name}")
        self._next_version(node_id, nlink=v.nlink + 1, ctime_ns=time.time_ns())
        self._dir_change(dir_id, _named(dir_id, name, v))

    @_locked
    def names(self, node_id: str) -> int:
        """How many directory entries name a stored node: 0 once it is removed."""
        v = self._newest(node_id)
        if v is None or v.deleted:
            return 0
        return 1 if v.kind == DIRECTORY else v.nlink

    @_locked
    def create_dynamic(self, dir_id: str, name: str, factory: str, config: bytes,
                       uid: int = 0, gid: int = 0) -> str:
        """Create a computed node made by ``factory`` from ``config``; its node id."""
        self.factories.validate(factory, config)
        return self._create(dir_id, name, DYNAMIC, factory, 0o555, uid, gid,
                            (content_hash(config), len(config), config))

    @_locked
    def set_dynamic_config(self, node_id: str, config: bytes) -> None:
        """Replace a computed node's configuration (a new version)."""
        v = self._require_stored(node_id)
        if v.kind != DYNAMIC:
            raise FsError(errno.EINVAL, f"not a computed node: {node_id}")
        self.factories.validate(v.format, config)
        for made in [k for k in self._dynamic if k == node_id or k.startswith(node_id + "/")]:
            del self._dynamic[made]  # remade from the new configuration when next used
        now = time.time_ns()
        self._next_version(node_id, content=config, size=len(config), inline=True,
                           blake3=content_hash(config), mtime_ns=now, ctime_ns=now)

    @_locked
    def dynamic_config(self, node_id: str) -> tuple[str, bytes]:
        """A stored computed node's factory name and configuration."""
        v = self._latest(node_id)
        if v.kind != DYNAMIC:
            raise FsError(errno.EINVAL, f"not a computed node: {node_id}")
        return v.format, self._carry(v).content or b""

    # ------------------------------------------------------------------ file content

    def _require_file(self, node_id: str) -> NodeVersion:
        """The newest version of a regular file whose content is about to change."""
        v = self._require_stored(node_id)
        if v.kind != FILE:
            err = {DIRECTORY: errno.EISDIR, DYNAMIC: errno.EROFS}.get(v.kind, errno.EINVAL)
            raise FsError(err, f"not a regular file: {node_id}")
        return v

    def write_content(self, node_id: str, chunks: Iterable[bytes], *,
                      changed_ns: int | None = None) -> None:
        """Replace a file's content with the bytes of ``chunks`` (streamed, never whole).
        ``changed_ns`` is when the bytes last changed (a mount's writes before the close
        that stores them; default now): the new mtime, and the ctime unless that is later."""
        self._replace_content(node_id, lambda: self.store.store(chunks, INLINE_LIMIT),
                              changed_ns)

    def write_file(self, node_id: str, source: int,
                   progress: Callable[[int], None] | None = None, *,
                   changed_ns: int | None = None) -> None:
        """Replace a file's content with the bytes of open file descriptor ``source``, from
        its offset to its end, copied as fast as the store can (never whole in memory);
        ``progress`` is called with each number of bytes copied; ``changed_ns`` as for
        :meth:`write_content`."""
        self._replace_content(
            node_id, lambda: self.store.store_file(source, INLINE_LIMIT, progress), changed_ns)

    def _replace_content(self, node_id: str, keep: Callable[[], StoredContent],
                         changed_ns: int | None) -> None:
        """Make what ``keep()`` stores the file's new content.

        The bytes are stored without holding the view's lock, so other threads (a FUSE event
        loop) are not stalled while a large content is hashed and written.
        """
        with self._mutex:
            self._require_file(node_id)
        stored = keep()
        with self._mutex:
            mtime = time.time_ns() if changed_ns is None else changed_ns
            ctime = max(mtime, self._latest(node_id).ctime_ns)
            self._next_version(node_id, blake3=stored.blake3, size=stored.size,
                               inline=stored.inline is not None, content=stored.inline,
                               mtime_ns=mtime, ctime_ns=ctime, min_time=None, max_time=None)

    @_locked
    def write_table(self, node_id: str, table: pa.Table) -> None:
        """Replace a table file's content with ``table`` as Parquet."""
        self.write_content(node_id, [formats.parquet_bytes(table)])

    @_locked
    def append_series(self, node_id: str, table: pa.Table, time_column: str | None = None) -> None:
        """Append ``table`` as a new version of a series (merged with one pending in this
        transaction), recording its event-time range."""
        v = self._require_stored(node_id)
        if v.format != SERIES:
            raise FsError(errno.EINVAL, f"not a series: {node_id}")
        column = formats.time_column_of(table, time_column or v.time_column or None, node_id)
        pending = self._pending.get(node_id)
        if pending is not None and pending.min_time is not None:
            earlier = formats.read_parquet(self._content_bytes(pending), node_id)
            table = formats.merge_series([earlier, table], column)
        low, high = formats.time_range(table, column)
        stored = self.store.store([formats.parquet_bytes(table)], INLINE_LIMIT)
        now = time.time_ns()
        self._next_version(node_id, blake3=stored.blake3, size=stored.size,
                           inline=stored.inline is not None, content=stored.inline,
                           mtime_ns=now, ctime_ns=now, min_time=low, max_time=high,
                           time_column=column)

    @_locked
    def truncate(self, node_id: str, size: int) -> None:
        """Cut or zero-extend a data file to ``size`` bytes."""
        if size < 0:
            raise FsError(errno.EINVAL, f"negative size {size}")
        v = self._require_file(node_id)
        if v.size == size:
            return
        source = self.open_read(node_id)

        def resized() -> Iterator[bytes]:
            with source:
                left = size
                while left and (chunk := source.read(min(CHUNK_SIZE, left))):
                    left -= len(chunk)
                    yield chunk
                while left:
                    n = min(CHUNK_SIZE, left)
                    left -= n
                    yield bytes(n)

        self.write_content(node_id, resized())

    def _content_bytes(self, v: NodeVersion) -> bytes:
        with self._open_version(v) as f:
            return f.read()

    def _open_version(self, v: NodeVersion) -> BinaryIO:
        if v.inline:
            return io.BytesIO(v.content if v.content is not None else self.store.read_inline(v))
        return self.store.open_object(v.blake3)

    @_locked
    def open_read(self, node_id: str) -> BinaryIO:
        """A seekable reader of a file's bytes (a series as one merged Parquet file)."""
        dynamic = self._dynamic_node(node_id)
        if dynamic is not None:
            if isinstance(dynamic, DynamicFile):
                return dynamic.open()
            raise FsError(errno.EISDIR, f"is a directory: {node_id}")
        v = self._latest(node_id)
        if v.kind == DIRECTORY:
            raise FsError(errno.EISDIR, f"is a directory: {node_id}")
        if v.kind in SPECIAL_KINDS:
            raise FsError(errno.EINVAL, f"a {v.kind} has no content to read: {node_id}")
        if v.format == SERIES:
            key = self._series_key(v)
            reader = self.cache.open(key)
            if reader is None:
                self._fill_series(v, key)
                reader = self.cache.open(key)
            assert reader is not None
            return reader
        return self._open_version(v)

    def copy_to(self, node_id: str, out: int) -> None:
        """Write a file's bytes (as :meth:`open_read` reads them) to open file descriptor
        ``out``, from its offset. Content objects go through the store, which verifies them
        and may copy in the kernel (:meth:`Persistence.copy_object`)."""
        with self._mutex:
            v = None if self._dynamic_node(node_id) is not None else self._latest(node_id)
        if v is not None and v.kind == FILE and v.format != SERIES and not v.inline:
            self.store.copy_object(v.blake3, out)
            return
        with self.open_read(node_id) as reader, open(out, "wb", closefd=False) as writer:
            for chunk in formats.views_of(reader):
                writer.write(chunk)

    @_locked
    def readlink(self, node_id: str) -> str:
        """A symlink's target."""
        v = self._latest(node_id)
        if v.kind != SYMLINK:
            raise FsError(errno.EINVAL, f"not a symbolic link: {node_id}")
        return self._content_bytes(v).decode()

    # ------------------------------------------------------------------ series

    def _series_versions(self, v: NodeVersion) -> list[NodeVersion]:
        committed = self._committed(v.node_id)
        if [c.version for c in committed] != list(range(1, len(committed) + 1)):
            # The file moved between directories: some versions are in other partitions.
            committed = self.store.node_versions(v.node_id, self.as_of)
        versions = [c for c in committed if c.min_time is not None and not c.deleted]
        versions += [c for c in self._inflight.get(v.node_id, ()) if c.min_time is not None]
        pending = self._pending.get(v.node_id)
        if pending is not None and pending.min_time is not None:
            versions.append(pending)
        return versions

    @_locked
    def series_versions(self, node_id: str) -> list[NodeVersion]:
        """The versions of a series that hold rows, oldest first (a pending one last); read
        each with :meth:`open_version` to stream a large series a batch at a time."""
        v = self._latest(node_id)
        if v.format != SERIES:
            raise FsError(errno.EINVAL, f"not a series: {node_id}")
        return self._series_versions(v)

    def open_version(self, v: NodeVersion) -> BinaryIO:
        """A reader of the bytes one version stored (for a series version, its Parquet batch)."""
        return self._open_version(v)

    def _series_key(self, v: NodeVersion) -> str:
        parts = [v.node_id] + [c.blake3 for c in self._series_versions(v)]
        return "series-" + content_hash("\n".join(parts).encode())

    def _fill_series(self, v: NodeVersion, key: str) -> None:
        table = self.read_series(v.node_id)
        self.cache.fill(key, lambda sink: sink.write(formats.parquet_bytes(table)))

    def _series_size(self, v: NodeVersion) -> int:
        key = self._series_key(v)
        size = self.cache.size(key)
        if size is None:
            self._fill_series(v, key)
            size = self.cache.size(key)
        assert size is not None
        return size

    @_locked
    def read_series(self, node_id: str, start: int | None = None, end: int | None = None
                    ) -> pa.Table:
        """A series' rows with ``start <= time <= end`` (bounds optional), time-ordered.

        Versions whose recorded time range misses the window are not read at all.
        """
        v = self._latest(node_id)
        if v.format != SERIES:
            raise FsError(errno.EINVAL, f"not a series: {node_id}")
        tables = []
        for version in self._series_versions(v):
            low, high = version.min_time, version.max_time
            assert low is not None and high is not None  # only versions with rows are listed
            if (start is not None and high < start) or (end is not None and low > end):
                continue
            tables.append(formats.read_parquet(self._content_bytes(version), node_id))
        merged = formats.merge_series(tables, v.time_column)
        if merged.num_rows and (start is not None or end is not None):
            column = merged.column(v.time_column)
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            mask = None
            if start is not None:
                mask = pc.greater_equal(column, start)
            if end is not None:
                upper = pc.less_equal(column, end)
                mask = upper if mask is None else pc.and_(mask, upper)
            merged = merged.filter(mask)
        return merged

    # ------------------------------------------------------------------ removing, renaming

    def _tombstone(self, node_id: str) -> None:
        now = time.time_ns()
        self._next_version(node_id, deleted=True, content=b"", inline=True, size=0, blake3="",
                           ctime_ns=now, entries=(), snapshot=False)

    def _drop_name(self, node_id: str) -> int:
        """One name of a non-directory node is going: the node loses a link, or is removed
        with its last; the names it has left."""
        v = self._latest(node_id)
        if v.nlink > 1:
            self._next_version(node_id, nlink=v.nlink - 1, ctime_ns=time.time_ns())
            return v.nlink - 1
        self._tombstone(node_id)
        return 0

    @_locked
    def unlink(self, dir_id: str, name: str) -> int:
        """Remove a non-directory entry; the names its node has left (0: the node is gone)."""
        self._require_dir(dir_id)
        op = self._listing(dir_id).get(name)
        if op is None:
            raise FsError(errno.ENOENT, f"no such file: {name}")
        if op.kind == DIRECTORY:
            raise FsError(errno.EISDIR, f"is a directory: {name}")
        left = self._drop_name(op.node_id)
        self._dir_change(dir_id, DirOp(name, op.node_id, op.kind, "remove"))
        return left

    @_locked
    def rmdir(self, dir_id: str, name: str) -> None:
        """Remove an empty directory."""
        self._require_dir(dir_id)
        op = self._listing(dir_id).get(name)
        if op is None:
            raise FsError(errno.ENOENT, f"no such directory: {name}")
        if op.kind != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {name}")
        if self._listing(op.node_id):
            raise FsError(errno.ENOTEMPTY, f"directory not empty: {name}")
        self._tombstone(op.node_id)
        self._dir_change(dir_id, DirOp(name, op.node_id, DIRECTORY, "remove"))

    def _is_ancestor(self, ancestor: str, node_id: str) -> bool:
        while True:
            if node_id == ancestor:
                return True
            parent = (self._pending_parents.get(node_id) or self._inflight_parents.get(node_id)
                      or self._parent_of.get(node_id))
            if parent is None or parent == node_id:
                return False
            node_id = parent

    @_locked
    def rename(self, src_dir: str, src_name: str, dst_dir: str, dst_name: str, *,
               noreplace: bool = False) -> None:
        """Move an entry, replacing a compatible destination unless ``noreplace``."""
        self._require_dir(src_dir)
        self._require_dir(dst_dir)
        validate_name(dst_name)
        src = self._listing(src_dir).get(src_name)
        if src is None:
            raise FsError(errno.ENOENT, f"no such file or directory: {src_name}")
        dst = self._listing(dst_dir).get(dst_name)
        if src.kind == DIRECTORY and self._is_ancestor(src.node_id, dst_dir):
            raise FsError(errno.EINVAL, f"cannot move {src_name} into itself")
        if dst is not None:
            if dst.node_id == src.node_id:
                return
            if noreplace:
                raise FsError(errno.EEXIST, f"already exists: {dst_name}")
            if src.kind == DIRECTORY and dst.kind != DIRECTORY:
                raise FsError(errno.ENOTDIR, f"not a directory: {dst_name}")
            if src.kind != DIRECTORY and dst.kind == DIRECTORY:
                raise FsError(errno.EISDIR, f"is a directory: {dst_name}")
            if dst.kind == DIRECTORY and self._listing(dst.node_id):
                raise FsError(errno.ENOTEMPTY, f"directory not empty: {dst_name}")
            if dst.kind == DIRECTORY:
                self._tombstone(dst.node_id)
            else:
                self._drop_name(dst.node_id)
            self._dir_change(dst_dir, DirOp(dst_name, dst.node_id, dst.kind, "remove"))
        v = self._latest(src.node_id)
        changes: dict = {"ctime_ns": time.time_ns()}
        if src.kind == DIRECTORY:
            self._pending_parents[src.node_id] = dst_dir
        elif v.nlink == 1 and v.part_id != dst_dir:
            # A node's only name takes its rows along; one of several names leaves them.
            changes["part_id"] = dst_dir
        v = self._next_version(src.node_id, **changes)
        self._dir_change(src_dir, DirOp(src_name, src.node_id, src.kind, "remove"))
        self._dir_change(dst_dir, _named(dst_dir, dst_name, v))

    # ------------------------------------------------------------------ paths

    @_locked
    def resolve(self, path: str, cwd: str = "/", *, follow: bool = True) -> str:
        """The node id at ``path`` (relative to ``cwd``); symlinks followed (the last one only
        when ``follow``), at most MAX_SYMLINKS of them (else ELOOP)."""
        return self._walk(path, cwd, follow)[0]

    @_locked
    def resolve_parent(self, path: str, cwd: str = "/") -> tuple[str, str]:
        """The directory that would hold ``path`` and the last name, validated."""
        parts = split_path(path)
        if not parts:
            raise FsError(errno.EINVAL, f"invalid path {path!r}: it names no entry")
        parent = "/".join(parts[:-1])
        parent = ("/" + parent if path.startswith("/") else parent) or (
            "/" if path.startswith("/") else ".")
        dir_id = self._walk(parent, cwd, True)[0]
        if self.kind(dir_id) != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {parent}")
        return dir_id, validate_name(parts[-1])

    def _walk(self, path: str, cwd: str, follow: bool) -> tuple[str, str]:
        stack: list[str] = [ROOT_ID]
        names: list[str] = []
        pending = split_path(path)
        # A trailing slash asks for a directory: a final symlink is followed, a file is ENOTDIR.
        want_dir = path.endswith("/") and bool(pending)
        follow = follow or want_dir
        if not path.startswith("/"):
            for part in split_path(cwd):
                dir_id = stack[-1]
                child = self.lookup(dir_id, part)
                if child is None:
                    raise FsError(errno.ENOENT, f"no such directory: {cwd}")
                stack.append(child)
                names.append(part)
        links = 0
        while pending:
            part = pending.pop(0)
            here = "/" + "/".join(names)
            # Checked before '.' and '..' too: "file/.." is ENOTDIR, not file's directory.
            if self.kind(stack[-1]) != DIRECTORY:
                raise FsError(errno.ENOTDIR, f"not a directory: {here}")
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                    names.pop()
                continue
            child = self.lookup(stack[-1], part)
            if child is None:
                raise FsError(errno.ENOENT, f"no such file or directory: {join_path(here, part)}")
            if self.kind(child) == SYMLINK and (pending or follow):
                links += 1
                if links > MAX_SYMLINKS:
                    raise FsError(errno.ELOOP, f"too many levels of symbolic links: {path}")
                target = self.readlink(child)
                if target.startswith("/"):
                    stack, names = [ROOT_ID], []
                pending = split_path(target) + pending
                continue
            stack.append(child)
            names.append(part)
        if want_dir and self.kind(stack[-1]) != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {path}")
        return stack[-1], "/" + "/".join(names)

    @_locked
    def kind(self, node_id: str) -> str:
        """``directory``, ``file``, ``symlink`` or a special kind (``fifo``, ``socket``,
        ``chardev``, ``blockdev``); computed nodes report what they act as."""
        node = self._dynamic_node(node_id)
        if node is not None:
            return DIRECTORY if isinstance(node, DynamicDirectory) else FILE
        return self._latest(node_id).kind

    @_locked
    def canonical(self, path: str, cwd: str = "/") -> str:
        """The absolute path of ``path`` with every symlink resolved."""
        return self._walk(path, cwd, True)[1]

    # ------------------------------------------------------------------ visiting

    def glob(self, pattern: str, cwd: str = "/") -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(path, node id, captures) of every node matching ``pattern``, in path order."""
        compiled = GlobPattern(pattern)
        root = ROOT_ID if compiled.absolute else self.resolve(cwd)

        def children(dir_id: str) -> Iterable[tuple[str, str]]:
            return sorted(self.listdir(dir_id).items())

        def child(dir_id: str, name: str) -> str | None:
            return self.lookup(dir_id, name) if self.kind(dir_id) == DIRECTORY else None

        yield from compiled.walk(root, children, lambda n: self.kind(n) == DIRECTORY, child)

    def walk(self, path: str = "/", cwd: str = "/") -> Iterator[tuple[str, str]]:
        """(path, node id) of ``path`` and everything below it, depth first, names sorted;
        symlinks are listed, not followed."""
        node_id, absolute = self._walk(path, cwd, True)
        stack = [(absolute, node_id)]
        while stack:
            here, node_id = stack.pop()
            yield here, node_id
            if self.kind(node_id) == DIRECTORY:
                entries = sorted(self.listdir(node_id).items(), reverse=True)
                stack.extend((join_path(here, name), child) for name, child in entries)

    # ------------------------------------------------------------------ history

    def versions(self, node_id: str) -> list[NodeVersion]:
        """Every committed version of a node, oldest first."""
        return self.store.node_versions(node_id, self.as_of)

    def transactions(self) -> list[TxnInfo]:
        """Committed transactions up to this view, newest first."""
        return self.store.transactions(self.as_of)


@dataclass
class _HeldChanges:
    """Pending changes kept out of one commit (:meth:`FS.begin_commit`'s ``hold``): versions
    set aside whole, directories committed without some entry changes (``amended``: their
    pending version as it was), and per directory the held entry changes and the listing
    with them."""

    versions: dict[str, NodeVersion] = field(default_factory=dict)
    amended: dict[str, NodeVersion] = field(default_factory=dict)
    ops: dict[str, list[DirOp]] = field(default_factory=dict)
    listings: dict[str, dict[str, DirOp]] = field(default_factory=dict)


def _held_ops(ops: list[DirOp], hold: set[str]) -> set[int]:
    """Indexes of the entry changes in ``ops`` that name a held node, with the removal of
    the entry a held node's entry replaced (a rename over an existing name)."""
    held: set[int] = set()
    last_of_name: dict[str, int] = {}
    for i, op in enumerate(ops):
        if op.node_id in hold:
            held.add(i)
            before = last_of_name.get(op.name)
            if op.op == "add" and before is not None and ops[before].op == "remove":
                held.add(before)
        last_of_name[op.name] = i
    return held


class Commit:
    """A commit in flight: the rows of transaction ``info.txn``, numbered and moved out of
    the pending changes by :meth:`FS.begin_commit`, not yet in persistence.

    :meth:`store` writes them (without the view's lock: other threads keep reading and
    staging meanwhile) and :meth:`finish` folds them into the view's committed state;
    :meth:`complete` does both. If :meth:`store` fails, the view keeps the rows in flight and
    the next commit writes them again (see the module docstring).
    """

    def __init__(self, fs: FS, info: TxnInfo, rows: list[NodeVersion]):
        self.fs = fs
        self.info = info
        self.rows = rows
        self._stored = False

    @property
    def txn(self) -> int:
        return self.info.txn

    def store(self) -> None:
        """Phase two: the persistence commit."""
        try:
            self.fs.store.commit(self.rows, self.info)
        except BaseException:
            self.fs._failed_in_flight(self)
            raise
        self._stored = True

    def finish(self) -> int:
        """Phase three: fold the committed rows into the view; the transaction number."""
        assert self._stored, "finish() before store()"
        self.fs._committed_in_flight(self)
        return self.info.txn

    def complete(self) -> int:
        """:meth:`store`, then :meth:`finish`."""
        self.store()
        return self.finish()


def read_all(fs: FS, node_id: str) -> bytes:
    """A whole file's bytes (for small files and tests)."""
    with fs.open_read(node_id) as f:
        return f.read()

