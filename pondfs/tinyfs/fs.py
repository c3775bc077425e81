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

:class:`FS` is built in layers, one module each: :mod:`.staging` (:class:`StagedView`: the
three layers of rows, listings, computed nodes, staging new versions), :mod:`.content`
(:class:`FileContent`: file bytes and series), then this module (transactions, directories,
attributes, creating, removing and renaming); :mod:`.commit` holds :class:`Commit` and
:mod:`.paths` names and path resolution.
"""

from __future__ import annotations

import errno
import logging
import stat as st
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

from . import paths
from .commit import Commit, HeldChanges, held_op_indexes
from .content import FileContent
from .dynamic import DynamicDirectory, DynamicFile, DynamicNode
from .errors import FsError
from .hashing import EMPTY_HASH, content_hash
from .paths import require_utf8, validate_name
from .rebase import rebase
from .records import (
    BLOCK_DEVICE,
    CHAR_DEVICE,
    DATA,
    DEVICE_KINDS,
    DIRECTORY,
    DYNAMIC,
    FIFO,
    FILE,
    ROOT_ID,
    SERIES,
    SOCKET,
    SPECIAL_KINDS,
    SYMLINK,
    TABLE,
    DirOp,
    NodeVersion,
    TxnInfo,
    new_node_id,
)
from .staging import is_computed, locked

log = logging.getLogger(__name__)

#: A directory version is a full listing after this many delta versions.
SNAPSHOT_EVERY = 256
#: Names a node may have (as ext4's EXT4_LINK_MAX); one more link is EMLINK.
LINK_MAX = 65000

_TYPE_BITS = {DIRECTORY: st.S_IFDIR, FILE: st.S_IFREG, SYMLINK: st.S_IFLNK,
              FIFO: st.S_IFIFO, SOCKET: st.S_IFSOCK, CHAR_DEVICE: st.S_IFCHR,
              BLOCK_DEVICE: st.S_IFBLK}
_SPECIAL_OF_TYPE = {_TYPE_BITS[kind]: kind for kind in SPECIAL_KINDS}


def _named(dir_id: str, name: str, v: NodeVersion) -> DirOp:
    """The entry adding ``name`` for node version ``v`` to directory ``dir_id``: it names the
    partition of the node's rows when that is not the one its kind implies."""
    implied = v.node_id if v.kind == DIRECTORY else dir_id
    return DirOp(name, v.node_id, v.kind, part_id="" if v.part_id == implied else v.part_id)


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


class FS(FileContent):
    """A pond's filesystem as of transaction ``at`` (read-only) or the newest one (writable).

    ``cache`` keeps derived content (merged series, dynamic files); ``factories`` validates
    and builds dynamic nodes by the factory name they store (none without it). A writable
    view takes the store's writer lock for each commit only, describing itself as
    ``holder`` and waiting up to ``lock_wait`` seconds for another writer's commit.
    """

    # ------------------------------------------------------------------ transactions

    @property
    def dirty(self) -> bool:
        """Whether a commit would write anything: changes are pending, or the rows of a
        failed commit wait to be committed again."""
        return bool(self._pending) or (bool(self._inflight) and self._commit is None)

    def commit(self, command: str, runs: list[dict] | None = None) -> int | None:
        """Commit the pending changes (and any rows a failed commit left) as one transaction;
        its number, or None if there was nothing. ``runs`` are the records of the runs the
        transaction is (:attr:`TxnInfo.runs`); with them, a transaction is committed even if
        nothing changed (a failed run is recorded too). The writer lock is held for the commit
        alone (:meth:`writer_lock`). Other threads may use the view meanwhile (see
        :class:`Commit`); commits from several threads run one after the other."""
        with self._commit_lock:
            if not self.dirty and runs is None:
                return None
            with self.writer_lock(command):
                commit = self.begin_commit(command, runs=runs)
                return None if commit is None else commit.complete()

    def writer_lock(self, command: str) -> AbstractContextManager[None]:
        """The store's writer lock for one commit of this view (described by its holder, or
        else ``command``), which :meth:`begin_commit` and the commit's store need held:
        PondLocked naming the holder once another writer has held it ``lock_wait`` seconds."""
        return self.store.writer_lock(self.holder or command, self.lock_wait)

    @locked
    def begin_commit(self, command: str, hold: Collection[str] = (),
                     runs: list[dict] | None = None) -> Commit | None:
        """Phase one of a commit: number and stamp the pending versions and move them to the
        in-flight set; the :class:`Commit` that finishes the job, or None if nothing is to be
        committed. EBUSY while another commit is in flight. The caller holds the writer lock
        (:meth:`writer_lock`) until the commit is stored; changes made against an older
        transaction than the newest are first rebased onto it (:meth:`follow`).

        ``hold`` names new nodes whose changes stay pending, out of this commit: their own
        versions, the directory entries naming them and the removal of an entry one of them
        replaced (a file created and not yet closed is not committed half-written)."""
        if self._commit is not None:
            raise FsError(errno.EBUSY, f"transaction {self._commit.txn} is being committed")
        if not self.dirty and runs is None:
            return None
        followed = self.follow()
        held = self._set_aside(set(hold))
        if not self.dirty and runs is None:
            self._stage_again(held)
            return None
        txn = self.as_of + 1
        now = time.time_ns()
        for v in [self._finish(v, txn, now) for v in self._pending.values()]:
            self._inflight.setdefault(v.node_id, []).append(v)
        self._inflight_listings.update(self._pending_listings)
        self._inflight_parents.update(self._pending_parents)
        for dir_id, ops in self._pending_ops.items():
            self._inflight_ops.setdefault(dir_id, []).extend(ops)
        self._clear_pending()
        self._stage_again(held)
        rows = [v if v.timestamp_ns == now else v.evolve(timestamp_ns=now)
                for versions in self._inflight.values() for v in versions]
        self._commit = Commit(self, TxnInfo(txn, now, command, rows=len(rows), runs=runs),
                              rows, followed)
        return self._commit

    @locked
    def follow(self, newest: int | None = None) -> list[NodeVersion]:
        """Move a writable view to transaction ``newest`` (default: the store's newest;
        refresh the store first to see other writers' commits), its staged changes
        replayed on top of theirs (:func:`~pondfs.tinyfs.rebase.rebase`: the README's rules
        for several writers); the versions the other writers committed since. Nothing
        while a commit is in flight, or for a read-only view."""
        if self.read_only or self._commit is not None:
            return []
        newest = self.store.last_txn() if newest is None else newest
        if newest <= self.as_of:
            return []
        return rebase(self, newest)

    def _set_aside(self, hold: set[str]) -> HeldChanges | None:
        """Take the pending changes of the nodes in ``hold`` out of the pending set (see
        :meth:`begin_commit`); what :meth:`_stage_again` puts back after numbering."""
        hold &= self._pending.keys()
        if not hold:
            return None
        held = HeldChanges()
        for dir_id, ops in list(self._pending_ops.items()):
            held_ops, dropped = held_op_indexes(ops, hold)
            if not held_ops:
                if dropped:  # they came and went: the listing is the same without them
                    self._pending_ops[dir_id] = [op for i, op in enumerate(ops)
                                                 if i not in dropped]
                continue
            hold.update(ops[i].node_id for i in held_ops)  # the entries they replaced
            kept = [op for i, op in enumerate(ops) if i not in held_ops and i not in dropped]
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

    def _stage_again(self, held: HeldChanges | None) -> None:
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
            self._listings.update(self._inflight_listings)
            for v in commit.rows:
                self._part_of[v.node_id] = v.part_id
                rows = self._rows.get(v.part_id)
                if rows is None:
                    continue
                # Loaded during the commit (as of the transaction before), or earlier.
                versions = rows.setdefault(v.node_id, [])
                if versions and versions[-1].version + 1 == v.version and (
                        v.format != SERIES if v.kind != DIRECTORY
                        else v.node_id in self._listings):
                    # Only the newest is read again (memory is bounded by the nodes, not
                    # their versions): a directory's listing is cached, older versions
                    # come from the store; a series keeps its batches.
                    versions.clear()
                versions.append(v.evolve(content=None))
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

    @locked
    def abort(self) -> None:
        """Drop the pending changes and the rows of a failed commit (EBUSY while a commit is
        in flight)."""
        if self._commit is not None:
            raise FsError(errno.EBUSY, f"transaction {self._commit.txn} is being committed")
        self._clear_pending()
        self._clear_inflight()
        self._subdir_counts.clear()

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

    # ------------------------------------------------------------------ directories

    @locked
    def listdir(self, dir_id: str) -> dict[str, str]:
        """Names in a directory mapped to node ids (stored or computed)."""
        dynamic = self._dynamic_node(dir_id)
        if dynamic is not None:
            if not isinstance(dynamic, DynamicDirectory):
                raise FsError(errno.ENOTDIR, f"not a directory: {dir_id}")
            return {name: self._adopt(dir_id, name, child) for name, child in dynamic.entries()}
        self._require_dir(dir_id)
        return {name: op.node_id for name, op in self._listing(dir_id).items()}

    @locked
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

    @locked
    def parent(self, dir_id: str) -> str | None:
        """The directory holding directory ``dir_id`` (the root's is the root), or None when
        this view has not listed it (a view learns parents from listings)."""
        return self._parent_id(dir_id)

    @locked
    def entries(self, dir_id: str) -> dict[str, DirOp]:
        """A stored directory's entries with each child's kind (no computed directories)."""
        self._require_dir(dir_id)
        return dict(self._listing(dir_id))

    @locked
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

    # ------------------------------------------------------------------ attributes

    @locked
    def stat(self, node_id: str) -> Stat:
        """POSIX attributes of a node."""
        dynamic = self._dynamic_node(node_id) if is_computed(node_id) else None
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

    @locked
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

    @locked
    def getxattr(self, node_id: str, name: str) -> bytes:
        """An extended attribute's value; ENODATA if it is not set."""
        if is_computed(node_id):
            raise FsError(errno.ENODATA, f"no attribute {name}")
        try:
            return self._latest(node_id).xattrs[name]
        except KeyError:
            raise FsError(errno.ENODATA, f"no attribute {name}") from None

    @locked
    def listxattr(self, node_id: str) -> list[str]:
        """Names of a node's extended attributes."""
        return [] if is_computed(node_id) else sorted(self._latest(node_id).xattrs)

    @locked
    def setxattr(self, node_id: str, name: str, value: bytes) -> None:
        """Set an extended attribute (a new version of the node, unless it has that value
        already: as ext4, nothing changes then, not even the ctime)."""
        require_utf8(name, "attribute name")
        v = self._require_stored(node_id)
        if v.xattrs.get(name) == value:
            return
        self._next_version(node_id, xattrs={**v.xattrs, name: bytes(value)},
                           ctime_ns=time.time_ns())

    @locked
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

    @locked
    def init_root(self, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """Create the root directory of an empty pond (the first transaction)."""
        self._check_writable()
        if self.as_of != 0 or self._pending or self._inflight:
            raise FsError(errno.EEXIST, "the pond already has a root directory")
        now = time.time_ns()
        self._stage(NodeVersion(ROOT_ID, ROOT_ID, 1, 0, DIRECTORY, mode=mode, uid=uid, gid=gid,
                                atime_ns=now, mtime_ns=now, ctime_ns=now, snapshot=True))
        self._pending_listings[ROOT_ID] = {}

    @locked
    def mkdir(self, dir_id: str, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> str:
        """Create a directory; its node id."""
        return self._create(dir_id, name, DIRECTORY, "", mode, uid, gid)

    @locked
    def create(self, dir_id: str, name: str, fmt: str = DATA, mode: int = 0o644, uid: int = 0,
               gid: int = 0) -> str:
        """Create an empty file of format ``fmt``; its node id."""
        if fmt not in (DATA, TABLE, SERIES):
            raise FsError(errno.EINVAL, f"unknown file format {fmt!r} (data, table or series)")
        return self._create(dir_id, name, FILE, fmt, mode, uid, gid)

    @locked
    def symlink(self, dir_id: str, name: str, target: str, uid: int = 0, gid: int = 0) -> str:
        """Create a symbolic link to ``target``; its node id."""
        if not target or "\0" in target:
            raise FsError(errno.EINVAL, f"invalid symlink target {target!r}")
        data = require_utf8(target, "symlink target").encode()
        return self._create(dir_id, name, SYMLINK, "", 0o777, uid, gid,
                            (content_hash(data), len(data), data))

    @locked
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

    @locked
    def link(self, node_id: str, dir_id: str, name: str) -> None:
        """Give a node one more name, ``name`` in ``dir_id`` (a hard link): its ``nlink``
        grows and its ctime moves; its rows stay in their partition. EPERM for directories
        (as on ext4) and computed nodes (they cannot change, like an immutable file),
        EMLINK beyond :data:`LINK_MAX` names."""
        self._check_writable()
        v = None if is_computed(node_id) else self._latest(node_id)
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

    @locked
    def names(self, node_id: str) -> int:
        """How many directory entries name a stored node: 0 once it is removed."""
        v = self._newest(node_id)
        if v is None or v.deleted:
            return 0
        return 1 if v.kind == DIRECTORY else v.nlink

    @locked
    def create_dynamic(self, dir_id: str, name: str, factory: str, config: bytes,
                       uid: int = 0, gid: int = 0) -> str:
        """Create a computed node made by ``factory`` from ``config``; its node id."""
        self.factories.validate(factory, config)
        return self._create(dir_id, name, DYNAMIC, factory, 0o555, uid, gid,
                            (content_hash(config), len(config), config))

    @locked
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

    @locked
    def dynamic_config(self, node_id: str) -> tuple[str, bytes]:
        """A stored computed node's factory name and configuration."""
        v = self._latest(node_id)
        if v.kind != DYNAMIC:
            raise FsError(errno.EINVAL, f"not a computed node: {node_id}")
        return v.format, self._carry(v).content or b""

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

    @locked
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

    @locked
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
            parent = self._parent_id(node_id)
            if parent is None or parent == node_id:
                return False
            node_id = parent

    @locked
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

    @locked
    def resolve(self, path: str, cwd: str = "/", *, follow: bool = True) -> str:
        """The node id at ``path`` (relative to ``cwd``); symlinks followed (the last one only
        when ``follow``), at most :data:`~pondfs.tinyfs.paths.MAX_SYMLINKS` (else ELOOP)."""
        return paths.locate(self, path, cwd, follow)[0]

    @locked
    def resolve_parent(self, path: str, cwd: str = "/") -> tuple[str, str]:
        """The directory that would hold ``path`` and the last name, validated."""
        return paths.locate_parent(self, path, cwd)

    @locked
    def kind(self, node_id: str) -> str:
        """``directory``, ``file``, ``symlink`` or a special kind (``fifo``, ``socket``,
        ``chardev``, ``blockdev``); computed nodes report what they act as."""
        node = self._dynamic_node(node_id)
        if node is not None:
            return DIRECTORY if isinstance(node, DynamicDirectory) else FILE
        return self._latest(node_id).kind

    @locked
    def canonical(self, path: str, cwd: str = "/") -> str:
        """The absolute path of ``path`` with every symlink resolved."""
        return paths.locate(self, path, cwd, True)[1]

    # ------------------------------------------------------------------ visiting

    def glob(self, pattern: str, cwd: str = "/") -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(path, node id, captures) of every node matching ``pattern``, in path order."""
        return paths.glob(self, pattern, cwd)

    def walk(self, path: str = "/", cwd: str = "/") -> Iterator[tuple[str, str]]:
        """(path, node id) of ``path`` and everything below it, depth first, names sorted;
        symlinks are listed, not followed."""
        return paths.walk(self, path, cwd)

    # ------------------------------------------------------------------ history

    def versions(self, node_id: str) -> list[NodeVersion]:
        """Every committed version of a node, oldest first."""
        return self.store.node_versions(node_id, self.as_of)

    def transactions(self) -> list[TxnInfo]:
        """Committed transactions up to this view, newest first."""
        return self.store.transactions(self.as_of)

def read_all(fs: FS, node_id: str) -> bytes:
    """A whole file's bytes (for small files and tests)."""
    with fs.open_read(node_id) as f:
        return f.read()

