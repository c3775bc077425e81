"""The FUSE face of a pond: :class:`PondOperations`, pyfuse3 handlers over a tinyfs view.

What this module owns, and the promises it keeps:

- **Inode numbers** are allocated per mount from node ids (the root is ``ROOT_INODE``) and
  dropped when the kernel forgets them (lookup counts are honoured), so they are stable for
  as long as the kernel knows a node.
- **Writes** go to a spool per open inode, shared by all of its handles: memory while the
  file is small, an anonymous temporary file beyond ``INLINE_LIMIT``. The spool is filled
  from the current content only when a write or a truncate needs the old bytes; a new or
  truncated file starts empty. On ``close`` (flush/release) a changed spool becomes a new
  version of the node, and a background task commits all staged changes as one pond
  transaction once no change has come for ``commit_interval`` seconds, but at least every
  ``MAX_DELAY_INTERVALS`` intervals while changes keep coming, and as soon as
  ``COMMIT_AFTER_CHANGES`` are pending (group commit: ``cp -r`` of 10,000 files is a handful
  of commits). ``fsync`` returns once its data is committed (durably); unmounting commits
  everything first (see :func:`serve`).
- **Reads** use a reader made once per open; the kernel keeps a file's pages across opens
  (``keep_cache``) while its content is unchanged; entries and attributes are cached by the
  kernel for ``ENTRY_TIMEOUT``/``ATTR_TIMEOUT`` seconds. A content object whose size is
  the recorded one is read with ``pread`` on its descriptor, *without* checking its hash:
  BLAKE3 runs at ~2.7 GB/s per core here, not much faster than a cold read through the
  mount (~1.5 GB/s), so hashing as the reads go would cost much of the read rate, or a
  core the 2-core machines this runs on do not have spare. An object of the wrong size is
  read through the verifying reader (EIO at its end); ``pond cat`` verifies every read and
  ``pond check`` every object.
- **Following the pond**: a read-only mount without ``at=`` checks the pond for newer
  transactions (other writers: ``pond`` commands, collectors) every ``FOLLOW_INTERVAL``
  seconds, switches to a view of the newest one, and has the kernel forget the entries,
  attributes and pages of the nodes that changed (see :meth:`PondOperations.follow_pond`).
  A poll, not a check on lookup or getattr: the kernel answers those from its caches for
  minutes without asking, and a check that finds nothing costs a few ms.
- **Concurrency**: one trio event loop serves FUSE. Calls into the FS that touch shared
  state are serialized by ``_busy`` (a trio lock); a call runs directly on the event loop
  when tinyfs can answer it from memory (:meth:`FS.loaded`) and in a worker thread when it
  may read persistence, commit, or hash content, so a slow call never stalls the mount.
  A commit holds ``_busy`` only to number the staged versions and to fold them in after:
  the store commit itself (tens of ms, more when fsync'ed) runs while the mount serves.
- **Errors**: every handler answers ``FsError`` with its errno and any other exception with
  ``EIO`` after logging it (an escaping exception would end the FUSE main loop).

Deliberate limits (documented for users in the README): hard links answer ``EPERM``;
``mknod`` of devices, FIFOs and sockets answers ``EPERM``; ``RENAME_EXCHANGE`` answers
``EINVAL``; files are stored densely, so sizes above ``MAX_FILE_SIZE`` answer ``EFBIG``;
series files are read-only through the mount (``EACCES`` on open for writing); the
read-only attributes ``user.pond.node_id``, ``user.pond.version`` and ``user.pond.txn`` can
be read by name but are not listed (so copies do not carry them).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import stat as st
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial, wraps
from typing import Any, BinaryIO, TypeVar

import pyfuse3
import trio

from .tinyfs import DIRECTORY, FS, ROOT_ID, SERIES, FsError, Stat
from .tinyfs.records import INLINE_LIMIT

log = logging.getLogger(__name__)

#: Seconds the kernel may keep a name -> inode answer, and an inode's attributes.
ENTRY_TIMEOUT = 60.0
ATTR_TIMEOUT = 60.0
#: Computed (dynamic) nodes change when their inputs do, which the kernel is never told:
#: their entries and attributes are not cached, so a new size is seen at once.
DYNAMIC_TIMEOUT = 0.0
#: Files are stored densely (a hole costs its size in the store): larger ones are EFBIG.
MAX_FILE_SIZE = 16 * 1024**3
#: Reported as st_blksize: tools like cp size their reads and writes by it.
BLOCK_SIZE = 128 * 1024
#: Longest symlink target (PATH_MAX).
PATH_MAX = 4096
NAME_MAX = 255
#: Group commit: after this many quiet seconds, or this many intervals after the first
#: staged change, or once this many changes are staged, whichever comes first.
COMMIT_INTERVAL = 0.5
MAX_DELAY_INTERVALS = 10
COMMIT_AFTER_CHANGES = 5000
#: Entries whose attributes a readdir computes per trip to a worker thread.
READDIR_BATCH = 128
#: Worker threads doing blocking work (commits, content, persistence reads).
WORKER_THREADS = 4
#: Bytes copied at a time between spools and the store.
COPY_CHUNK = 1024 * 1024
#: Seconds between checks for new transactions by a read-only mount that follows the pond.
FOLLOW_INTERVAL = 1.0

POND_XATTRS = ("user.pond.node_id", "user.pond.version", "user.pond.txn")

T = TypeVar("T")


def _handler(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn every failure of a FUSE handler into a FUSEError (tinyfs errors keep their errno,
    anything unexpected is logged and answered EIO), so the main loop never dies."""

    @wraps(method)
    async def wrapper(*args: Any) -> T:
        try:
            return await method(*args)
        except pyfuse3.FUSEError:
            raise
        except FsError as exc:
            log.debug("%s%r: %s", method.__name__, args[1:], exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except OSError as exc:
            log.warning("%s%r failed: %s", method.__name__, args[1:], exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("%s%r failed", method.__name__, args[1:])
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


class InodeTable:
    """The inode numbers of one mount, allocated from node ids on first sight.

    A number is kept while the kernel holds lookups on it (or the mount has the node open)
    and dropped when both are gone; numbers are never reused within a mount.
    """

    def __init__(self) -> None:
        self._inode_of: dict[str, int] = {ROOT_ID: pyfuse3.ROOT_INODE}
        self._node_of: dict[int, str] = {pyfuse3.ROOT_INODE: ROOT_ID}
        self._lookups: dict[int, int] = {}
        self._next = pyfuse3.ROOT_INODE + 1

    def inode(self, node_id: str) -> int:
        """The inode number of ``node_id``, allocated if it has none."""
        inode = self._inode_of.get(node_id)
        if inode is None:
            inode = self._next
            self._next += 1
            self._inode_of[node_id] = inode
            self._node_of[inode] = node_id
        return inode

    def node(self, inode: int) -> str:
        """The node id behind ``inode``; ESTALE if the mount no longer knows it."""
        try:
            return self._node_of[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ESTALE) from None

    def looked_up(self, inode: int) -> None:
        """The kernel took one more reference on ``inode``."""
        self._lookups[inode] = self._lookups.get(inode, 0) + 1

    def forget(self, inode: int, count: int, in_use: bool) -> None:
        """The kernel dropped ``count`` references; drop the number when none are left and
        the mount is not using the inode (``in_use``)."""
        left = self._lookups.get(inode, 0) - count
        if left > 0:
            self._lookups[inode] = left
            return
        self._lookups.pop(inode, None)
        if inode != pyfuse3.ROOT_INODE and not in_use:
            self.drop(inode)

    def drop(self, inode: int) -> None:
        """Forget ``inode`` unless the kernel still holds it."""
        if inode in self._lookups or inode == pyfuse3.ROOT_INODE:
            return
        node_id = self._node_of.pop(inode, None)
        if node_id is not None:
            self._inode_of.pop(node_id, None)

    def inode_of(self, node_id: str) -> int | None:
        """The inode number of ``node_id`` if it has one."""
        return self._inode_of.get(node_id)

    def knows(self, inode: int) -> bool:
        """Whether ``inode`` names a node in this mount."""
        return inode in self._node_of

    def __len__(self) -> int:
        return len(self._node_of)


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
    mtime_ns: int = 0
    removed: bool = False
    last_stat: Stat | None = None
    lock: trio.Lock = field(default_factory=trio.Lock)


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
    read_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class DirHandle:
    """One open of a directory: the names it lists, read once per listing."""

    node_id: str
    entries: list[tuple[str, str]] | None = None


class PondOperations(pyfuse3.Operations):
    """pyfuse3 handlers serving ``fs``; ``read_only`` refuses every change with EROFS.

    ``mountpoint`` names the mount in commit messages; ``spool_dir`` holds the spools;
    ``statfs_path`` is the host directory whose free space ``statfs`` reports.
    """

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(
        self,
        fs: FS,
        *,
        mountpoint: str = "",
        read_only: bool = False,
        commit_interval: float = COMMIT_INTERVAL,
        spool_dir: str | None = None,
        statfs_path: str | None = None,
    ):
        super().__init__()
        self.fs = fs
        self.mountpoint = mountpoint
        self.read_only = read_only or fs.read_only
        self.commit_interval = commit_interval
        self.spool_dir = spool_dir
        self.statfs_path = statfs_path
        self.inodes = InodeTable()
        self.commits = 0
        self.commit_error: FsError | None = None
        self._busy = trio.Lock()
        self._committing = trio.Lock()
        self._limiter = trio.CapacityLimiter(WORKER_THREADS)
        self._files: dict[int, OpenFile] = {}
        self._handles: dict[int, Handle | DirHandle] = {}
        self._next_fh = 1
        self._page_cache: dict[int, tuple[str, int]] = {}
        self._symlinks: dict[str, bytes] = {}
        #: The parent of each directory the kernel has seen (for readdir's "..").
        self._parent_dirs: dict[str, str] = {}
        self._staged = 0
        self._first_change = self._last_change = 0.0
        self._commit_soon = trio.Event()
        #: Whether the kernel is connected (invalidations make sense).
        self.serving = False
        #: A read-only mount of the newest transaction shows newer ones as they come.
        self.following = self.read_only and not fs.read_only

    # ------------------------------------------------------------------ calling the FS

    async def _call(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """``fn(*args)`` serialized with every other FS call: on the event loop when
        ``inline`` (it needs no persistence read), else in a worker thread."""
        if inline and not self._busy.locked():
            return fn(*args)  # atomic: no await between the check and the call
        async with self._busy:
            if inline:
                return fn(*args)
            return await trio.to_thread.run_sync(partial(fn, *args), limiter=self._limiter)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, not serialized (it must not touch FS state)."""
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=self._limiter)

    def _loaded(self, *node_ids: str) -> bool:
        return all(self.fs.loaded(n) for n in node_ids)

    async def _stat(self, node_id: str) -> Stat:
        return await self._call(self.fs.stat, node_id, inline=self._loaded(node_id))

    def _check_writable(self) -> None:
        if self.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)

    def _staged_change(self, count: int = 1) -> None:
        """Count changes staged for the next group commit; ask for it early when many."""
        now = trio.current_time()
        if self._staged == 0:
            self._first_change = now
        self._last_change = now
        self._staged += count
        if self._staged >= COMMIT_AFTER_CHANGES:
            self._commit_soon.set()

    # ------------------------------------------------------------------ attributes

    def _attributes(self, inode: int, s: Stat) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.generation = 0
        # A pinned view (at=) never changes, so even computed nodes may be cached.
        timeout = DYNAMIC_TIMEOUT if s.dynamic and not self.fs.read_only else None
        attr.entry_timeout = ENTRY_TIMEOUT if timeout is None else timeout
        attr.attr_timeout = ATTR_TIMEOUT if timeout is None else timeout
        attr.st_mode = s.mode
        attr.st_nlink = s.nlink
        attr.st_uid = s.uid
        attr.st_gid = s.gid
        attr.st_rdev = 0
        attr.st_size = s.size
        attr.st_blksize = BLOCK_SIZE
        attr.st_blocks = (s.size + 511) // 512
        attr.st_atime_ns = s.atime_ns
        attr.st_mtime_ns = s.mtime_ns
        attr.st_ctime_ns = s.ctime_ns
        of = self._files.get(inode)
        if of is not None and of.spool is not None:
            attr.st_size = of.size
            attr.st_blocks = (of.size + 511) // 512
            if of.dirty:
                attr.st_mtime_ns = attr.st_ctime_ns = of.mtime_ns
        return attr

    async def _entry(self, node_id: str) -> pyfuse3.EntryAttributes:
        """Attributes of ``node_id`` for a reply that gives the kernel a reference."""
        s = await self._stat(node_id)
        inode = self.inodes.inode(node_id)
        self.inodes.looked_up(inode)
        return self._attributes(inode, s)

    @_handler
    async def lookup(self, parent_inode: int, name: bytes, ctx=None) -> pyfuse3.EntryAttributes:
        dir_id = self.inodes.node(parent_inode)
        if len(name) > NAME_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        if name == b".":
            return await self._entry(dir_id)
        if name == b"..":
            parent = self._parent_dirs.get(dir_id) or await self._call(self.fs.parent, dir_id)
            if parent is None:
                raise pyfuse3.FUSEError(errno.ENOENT)  # never listed: not reachable here
            return await self._entry(parent)
        fs = self.fs
        text = os.fsdecode(name)
        if not self._busy.locked() and fs.loaded(dir_id):
            # The common case, with no await: a name in a directory already in memory.
            child = fs.lookup(dir_id, text)
            s = fs.stat(child) if child is not None and fs.loaded(child) else None
        else:
            child = await self._call(fs.lookup, dir_id, text, inline=fs.loaded(dir_id))
            s = None
        if child is None:
            negative = pyfuse3.EntryAttributes()
            negative.st_ino = 0
            negative.entry_timeout = ENTRY_TIMEOUT
            return negative
        if s is None:
            s = await self._stat(child)
        inode = self.inodes.inode(child)
        self.inodes.looked_up(inode)
        attr = self._attributes(inode, s)
        if st.S_ISDIR(attr.st_mode):
            self._parent_dirs[child] = dir_id
        return attr

    @_handler
    async def forget(self, inode_list) -> None:
        for inode, count in inode_list:
            self.inodes.forget(inode, count, inode in self._files)
            if not self.inodes.knows(inode):
                self._page_cache.pop(inode, None)

    @_handler
    async def getattr(self, inode: int, ctx=None) -> pyfuse3.EntryAttributes:
        node_id = self.inodes.node(inode)
        of = self._files.get(inode)
        try:
            if not self._busy.locked() and self.fs.loaded(node_id):
                s = self.fs.stat(node_id)  # no await in the common case
            else:
                s = await self._stat(node_id)
        except FsError as exc:
            if exc.errno != errno.ENOENT or of is None or of.last_stat is None:
                raise
            s = replace(of.last_stat, nlink=0)  # removed while open
        if of is not None:
            of.last_stat = s
        return self._attributes(inode, s)

    @_handler
    async def setattr(self, inode: int, attr, fields, fh, ctx) -> pyfuse3.EntryAttributes:
        self._check_writable()
        node_id = self.inodes.node(inode)
        if fields.update_size:
            await self._truncate(inode, node_id, attr.st_size)
        changes: dict[str, int] = {}
        if fields.update_mode:
            changes["mode"] = attr.st_mode
        if fields.update_uid:
            changes["uid"] = attr.st_uid
        if fields.update_gid:
            changes["gid"] = attr.st_gid
        if fields.update_atime:
            changes["atime_ns"] = attr.st_atime_ns
        if fields.update_mtime:
            changes["mtime_ns"] = attr.st_mtime_ns
            of = self._files.get(inode)
            if of is not None and of.dirty:
                # The explicit time must win over the one a later write-back would stamp.
                await self._write_back(of)
        if changes:
            await self._call(partial(self.fs.setattr, node_id, **changes))
            self._staged_change()
        return self._attributes(inode, await self._stat(node_id))

    # ------------------------------------------------------------------ directories

    @_handler
    async def opendir(self, inode: int, ctx) -> int:
        return self._new_handle(DirHandle(self.inodes.node(inode)))

    @_handler
    async def readdir(self, fh: int, start_id: int, token) -> None:
        handle = self._handles[fh]
        assert isinstance(handle, DirHandle)
        dir_id = handle.node_id
        if start_id == 0 or handle.entries is None:
            listing = await self._call(self.fs.listdir, dir_id, inline=self._loaded(dir_id))
            parent = self._parent_dirs.get(dir_id, dir_id)
            handle.entries = [(".", dir_id), ("..", parent), *sorted(listing.items())]
        entries = handle.entries
        index = start_id
        while index < len(entries):
            batch = entries[index:index + READDIR_BATCH]
            stats = await self._call(self._stat_many, [c for _, c in batch],
                                     inline=self._loaded(*(c for _, c in batch)))
            for name, child in batch:
                index += 1
                s = stats.get(child)
                if s is None:
                    continue  # removed since the listing was read
                if name in (".", ".."):
                    # No reference for these: the kernel does not take one.
                    inode = self.inodes.inode_of(child) or self.inodes.inode(dir_id)
                else:
                    inode = self.inodes.inode(child)
                    if s.kind == DIRECTORY:
                        self._parent_dirs[child] = dir_id
                if not pyfuse3.readdir_reply(token, os.fsencode(name),
                                             self._attributes(inode, s), index):
                    return
                if name not in (".", ".."):
                    self.inodes.looked_up(inode)

    def _stat_many(self, node_ids: list[str]) -> dict[str, Stat]:
        stats = {}
        for node_id in node_ids:
            try:
                stats[node_id] = self.fs.stat(node_id)
            except FsError as exc:
                if exc.errno != errno.ENOENT:
                    raise
        return stats

    @_handler
    async def releasedir(self, fh: int) -> None:
        self._handles.pop(fh, None)

    @_handler
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self.commit("fsync", durable=True)

    def _owner(self, parent: Stat, ctx) -> tuple[int, int]:
        """uid and gid of a new node: a set-group-ID directory passes its group on."""
        gid = parent.gid if parent.mode & st.S_ISGID else ctx.gid
        return ctx.uid, gid

    def _check_name(self, name: bytes) -> str:
        if len(name) > NAME_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        return os.fsdecode(name)

    @_handler
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx
                    ) -> pyfuse3.EntryAttributes:
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        parent = await self._stat(dir_id)
        uid, gid = self._owner(parent, ctx)
        if parent.mode & st.S_ISGID:
            mode |= st.S_ISGID
        node_id = await self._call(self.fs.mkdir, dir_id, self._check_name(name), mode, uid,
                                   gid, inline=self._loaded(dir_id))
        self._parent_dirs[node_id] = dir_id
        self._staged_change()
        return await self._entry(node_id)

    @_handler
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx
                      ) -> pyfuse3.EntryAttributes:
        self._check_writable()
        if len(target) > PATH_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        dir_id = self.inodes.node(parent_inode)
        uid, gid = self._owner(await self._stat(dir_id), ctx)
        node_id = await self._call(self.fs.symlink, dir_id, self._check_name(name),
                                   os.fsdecode(target), uid, gid, inline=self._loaded(dir_id))
        self._symlinks[node_id] = target
        self._staged_change()
        return await self._entry(node_id)

    @_handler
    async def readlink(self, inode: int, ctx) -> bytes:
        node_id = self.inodes.node(inode)
        target = self._symlinks.get(node_id)  # a symlink's target never changes
        if target is None:
            target = os.fsencode(await self._call(self.fs.readlink, node_id))
            self._symlinks[node_id] = target
        return target

    @_handler
    async def unlink(self, parent_inode: int, name: bytes, ctx) -> None:
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        text = self._check_name(name)
        child = await self._call(self.fs.lookup, dir_id, text, inline=self._loaded(dir_id))
        await self._call(self.fs.unlink, dir_id, text, inline=self._loaded(dir_id))
        self._removed(child)
        self._staged_change()

    @_handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx) -> None:
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        text = self._check_name(name)
        child = await self._call(self.fs.lookup, dir_id, text, inline=self._loaded(dir_id))
        inline = self._loaded(dir_id) and (child is None or self._loaded(child))
        await self._call(self.fs.rmdir, dir_id, text, inline=inline)
        self._removed(child)
        self._staged_change()

    def _removed(self, node_id: str | None) -> None:
        """A node left the tree; an open inode of it keeps working on its spool."""
        if node_id is None:
            return
        self._symlinks.pop(node_id, None)
        self._parent_dirs.pop(node_id, None)
        inode = self.inodes.inode_of(node_id)
        of = self._files.get(inode) if inode is not None else None
        if of is not None:
            of.removed = True

    @_handler
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx) -> None:
        self._check_writable()
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        src_dir = self.inodes.node(parent_inode_old)
        dst_dir = self.inodes.node(parent_inode_new)
        src_name = self._check_name(name_old)
        dst_name = self._check_name(name_new)

        def move() -> tuple[str | None, str | None]:
            replaced = self.fs.lookup(dst_dir, dst_name)
            moved = self.fs.lookup(src_dir, src_name)
            self.fs.rename(src_dir, src_name, dst_dir, dst_name,
                           noreplace=bool(flags & pyfuse3.RENAME_NOREPLACE))
            return moved, replaced if replaced != moved else None

        moved, replaced = await self._call(move)
        if moved in self._parent_dirs:
            self._parent_dirs[moved] = dst_dir
        self._removed(replaced)
        self._staged_change()

    @_handler
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)  # the data model has one name per node

    @_handler
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx
                    ) -> pyfuse3.EntryAttributes:
        if not st.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # no devices, FIFOs or sockets in a pond
        info, attr = await self.create(parent_inode, name, mode, os.O_WRONLY, ctx)
        await self.release(info.fh)
        return attr

    # ------------------------------------------------------------------ files: open, close

    def _new_handle(self, handle: Handle | DirHandle) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = handle
        return fh

    def _file_handle(self, fh: int) -> Handle:
        handle = self._handles.get(fh)
        if not isinstance(handle, Handle):
            raise pyfuse3.FUSEError(errno.EBADF)
        return handle

    def _open_file(self, inode: int, node_id: str) -> OpenFile:
        of = self._files.get(inode)
        if of is None:
            of = self._files[inode] = OpenFile(inode, node_id)
        of.refs += 1
        return of

    def _new_spool(self) -> Spool:
        return Spool(self.spool_dir)

    @_handler
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx):
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        uid, gid = self._owner(await self._stat(dir_id), ctx)
        node_id = await self._call(self.fs.create, dir_id, self._check_name(name), "data",
                                   mode, uid, gid, inline=self._loaded(dir_id))
        self._staged_change()
        s = await self._stat(node_id)
        inode = self.inodes.inode(node_id)
        self.inodes.looked_up(inode)
        attr = self._attributes(inode, s)
        of = self._open_file(inode, node_id)
        of.last_stat = s
        of.spool = self._new_spool()
        of.mtime_ns = attr.st_mtime_ns
        self._page_cache[attr.st_ino] = ("", 0)
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        return pyfuse3.FileInfo(fh=self._new_handle(Handle(of, writable))), attr

    @_handler
    async def open(self, inode: int, flags: int, ctx) -> pyfuse3.FileInfo:
        node_id = self.inodes.node(inode)
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        # The kernel passes O_TRUNC here (atomic O_TRUNC) and sends no truncate of its own;
        # Linux truncates even with O_RDONLY (the caller needed write permission for it).
        truncate = bool(flags & os.O_TRUNC)
        if writable or truncate:
            self._check_writable()

        def opened() -> tuple[Stat, tuple[str, int], BinaryIO, int]:
            fs = self.fs
            s = fs.stat(node_id)
            if (writable or truncate) and (s.dynamic or s.format == SERIES):
                raise FsError(errno.EROFS if s.dynamic else errno.EACCES,
                              f"{node_id} cannot be written through the mount")
            v = fs.get(node_id) if not s.dynamic else None
            key = (v.blake3, v.size) if v is not None else (f"{s.node_id}@{s.mtime_ns}", s.size)
            # A reader even when a spool serves reads now: the spool goes when its last
            # handle is released, possibly while this open waits for the thread.
            return s, key, fs.open_read(node_id), fs.as_of

        s, key, reader, as_of = await self._call(opened)
        of = self._open_file(inode, node_id)
        of.last_stat = s
        if truncate:
            # Staged at close like any write: until then the stored version stays whole.
            try:
                async with _holding(of.lock):
                    await self._fill(of, upto=0)
                    assert of.spool is not None
                    of.spool.truncate(0)
                    of.size = 0
                    self._changed(of)
            except BaseException:
                reader.close()
                self._unref(of)
                raise
            key = ("", 0)
        keep = self._page_cache.get(inode) == key
        self._page_cache[inode] = key
        handle = Handle(of, writable, reader, _local_fd(reader, s.size), as_of)
        return pyfuse3.FileInfo(fh=self._new_handle(handle), keep_cache=keep)

    @_handler
    async def flush(self, fh: int) -> None:
        handle = self._file_handle(fh)
        if handle.writable and handle.file.dirty:
            await self._write_back(handle.file)

    @_handler
    async def release(self, fh: int) -> None:
        handle = self._handles.pop(fh)
        assert isinstance(handle, Handle)
        of = handle.file
        try:
            if of.dirty:
                await self._write_back(of)
        finally:
            if handle.reader is not None:
                handle.reader.close()
            self._unref(of)

    def _unref(self, of: OpenFile) -> None:
        """One user of ``of`` is done with it; the last one closes it."""
        of.refs -= 1
        if of.refs == 0:
            self._close_file(of)

    def _close_file(self, of: OpenFile) -> None:
        del self._files[of.inode]
        if of.spool is not None:
            of.spool.close()
        if of.removed or of.dirty:
            self._page_cache.pop(of.inode, None)
        self.inodes.drop(of.inode)

    @_handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self._file_handle(fh)
        if handle.file.dirty:
            await self._write_back(handle.file)
        await self.commit("fsync", durable=True)

    # ------------------------------------------------------------------ files: content

    @_handler
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._file_handle(fh)
        of = handle.file
        if of.spool is not None:
            return of.spool.pread(size, off)  # memory or a local temporary file
        reader = handle.reader
        if reader is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if handle.fd is not None:
            data = os.pread(handle.fd, size, off)
        elif isinstance(reader, io.BytesIO):
            data = reader.getbuffer()[off:off + size].tobytes()
        else:
            data = await self._thread(self._read_at, handle, off, size)
        if len(data) < size and self.following and handle.as_of != self.fs.as_of:
            # The end of a version older than the mount's view (a following mount moved on
            # while this handle was open): the kernel would take it for the file's size.
            self._invalidate_attributes(of.inode)
        return data

    @staticmethod
    def _read_at(handle: Handle, off: int, size: int) -> bytes:
        assert handle.reader is not None
        with handle.read_lock:
            handle.reader.seek(off)
            return handle.reader.read(size)

    @_handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._file_handle(fh)
        if not handle.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        end = off + len(buf)
        if end > MAX_FILE_SIZE:
            raise pyfuse3.FUSEError(errno.EFBIG)
        of = handle.file
        async with _holding(of.lock):
            await self._fill(of)
            assert of.spool is not None
            written = of.spool.pwrite(buf, off)  # past the end leaves a hole of zeros
            of.size = max(of.size, off + written)
            self._changed(of)
        return written

    def _changed(self, of: OpenFile) -> None:
        of.dirty = True
        of.mtime_ns = time.time_ns()

    async def _fill(self, of: OpenFile, upto: int | None = None) -> None:
        """Give ``of`` a spool holding its current content (only the first ``upto`` bytes
        when the rest is about to be cut off). The caller holds ``of.lock``."""
        if of.spool is not None:
            return

        def current() -> tuple[int, BinaryIO | None]:
            s = self.fs.stat(of.node_id)
            if s.size == 0 or upto == 0:
                return s.size, None
            return s.size, self.fs.open_read(of.node_id)

        size, reader = await self._call(current)
        keep = size if upto is None else min(size, upto)
        spool = self._new_spool()
        if reader is not None:
            await self._thread(spool.fill, reader, keep)
        of.size = keep
        of.spool = spool

    async def _truncate(self, inode: int, node_id: str, size: int) -> None:
        if size > MAX_FILE_SIZE:
            raise pyfuse3.FUSEError(errno.EFBIG)
        of = self._open_file(inode, node_id)
        try:
            async with _holding(of.lock):
                await self._fill(of, upto=size)
                assert of.spool is not None
                of.spool.truncate(size)
                of.size = size
                self._changed(of)
            if of.refs == 1:  # nobody has it open: the change is staged now
                await self._write_back(of)
        finally:
            self._unref(of)

    async def _write_back(self, of: OpenFile) -> None:
        """Hand the spool's content to tinyfs as the node's new version (staged for the
        next group commit), unless an earlier write-back already did. Content in memory is
        stored on the event loop; a spool file is copied by the kernel in a thread. The
        spool does not change meanwhile."""
        async with _holding(of.lock):
            if not of.dirty:
                return
            assert of.spool is not None
            fd = of.spool.rewound_fd()
            try:
                if fd is None:
                    await self._call(self.fs.write_content, of.node_id, of.spool.chunks(of.size),
                                     inline=self._loaded(of.node_id))
                else:
                    await self._thread(self.fs.write_file, of.node_id, fd)
            except FsError as exc:
                if exc.errno == errno.ENOENT and of.removed:
                    of.dirty = False  # written after its removal: nothing to keep
                    return
                raise
            of.dirty = False
        self._staged_change()
        if self.fs.loaded(of.node_id):
            v = self.fs.get(of.node_id)
            self._page_cache[of.inode] = (v.blake3, v.size)
        self._invalidate_attributes(of.inode)

    def _invalidate_attributes(self, inode: int) -> None:
        """The mount changed the node behind the kernel's cached attributes (its stored
        times): have the kernel ask again. Safe inside a handler: no writeback cache."""
        if not self.serving:
            return
        try:
            pyfuse3.invalidate_inode(inode, attr_only=True)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOSYS, errno.EBADF):
                log.warning("could not invalidate inode %d: %s", inode, exc)

    # ------------------------------------------------------------------ extended attributes

    @_handler
    async def getxattr(self, inode: int, name: bytes, ctx) -> bytes:
        node_id = self.inodes.node(inode)
        text = os.fsdecode(name)
        if text in POND_XATTRS:
            s = await self._stat(node_id)
            value = {"user.pond.node_id": node_id, "user.pond.version": str(s.version),
                     "user.pond.txn": str(s.txn)}[text]
            return value.encode()
        if not text.startswith("user."):
            # Not ENODATA: "unsupported" lets tools stop asking (ls -l caches it per
            # device instead of asking twice per file for ACLs and SELinux labels).
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        return await self._call(self.fs.getxattr, node_id, text, inline=self._loaded(node_id))

    @_handler
    async def listxattr(self, inode: int, ctx) -> list[bytes]:
        node_id = self.inodes.node(inode)
        names = await self._call(self.fs.listxattr, node_id, inline=self._loaded(node_id))
        return [os.fsencode(n) for n in names]

    def _settable(self, name: bytes) -> str:
        self._check_writable()
        text = os.fsdecode(name)
        if text in POND_XATTRS or text.startswith("user.pond."):
            raise pyfuse3.FUSEError(errno.EPERM)
        if not text.startswith("user."):
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        return text

    @_handler
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx) -> None:
        text = self._settable(name)
        await self._call(self.fs.setxattr, self.inodes.node(inode), text, value)
        self._staged_change()

    @_handler
    async def removexattr(self, inode: int, name: bytes, ctx) -> None:
        text = self._settable(name)
        await self._call(self.fs.removexattr, self.inodes.node(inode), text)
        self._staged_change()

    # ------------------------------------------------------------------ the filesystem

    @_handler
    async def statfs(self, ctx) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        host = os.statvfs(self.statfs_path) if self.statfs_path else None
        data.f_bsize = BLOCK_SIZE
        data.f_frsize = host.f_frsize if host else 4096
        data.f_blocks = host.f_blocks if host else 0
        data.f_bfree = host.f_bfree if host else 0
        data.f_bavail = host.f_bavail if host else 0
        data.f_files = host.f_files if host else 0
        data.f_ffree = host.f_ffree if host else 0
        data.f_favail = host.f_favail if host else 0
        data.f_namemax = NAME_MAX
        return data

    @_handler
    async def access(self, inode: int, mode: int, ctx) -> bool:
        return True  # the kernel checks permissions (default_permissions)

    # ------------------------------------------------------------------ group commit

    async def commit(self, why: str, *, durable: bool = False) -> int | None:
        """Commit everything staged as one pond transaction; its number, or None when there
        was nothing. ``durable`` makes the store fsync what the commit wrote, and what
        earlier commits wrote (fsync and unmount ask for it; group commits do not: an
        fsync'ed commit costs ~100 ms more), even when there is nothing new to commit.
        A failure is raised (and kept, so the next commit retries it).

        Only numbering the staged versions holds ``_busy``: the store commit runs while the
        mount goes on serving and staging changes for the next commit (the two-phase commit
        of :class:`pondfs.tinyfs.fs.Commit`). Commits run one at a time, and once begun a
        commit is seen through even if its caller is cancelled.
        """
        async with self._committing:
            with trio.CancelScope(shield=True):
                return await self._commit(f"mount {self.mountpoint}: {why}".strip(), durable)

    async def _commit(self, command: str, durable: bool) -> int | None:
        store = self.fs.store
        commit = None
        async with self._busy:
            if self.fs.dirty:
                staged, self._staged = self._staged, 0
                commit = await trio.to_thread.run_sync(self.fs.begin_commit, command,
                                                       limiter=self._limiter)
        if commit is None:
            if durable:
                await self._thread(store.sync)
            return None
        try:
            await self._thread(commit.store, durable)
        except BaseException as exc:
            self._staged += staged
            if isinstance(exc, FsError):
                self.commit_error = exc
            raise
        async with self._busy:
            txn = commit.finish()  # folds rows into memory: no persistence, no await
        self.commit_error = None
        self.commits += 1
        log.debug("committed transaction %s (%d changes, %s)", txn, staged, command)
        return txn

    async def group_commits(self) -> None:
        """Commit staged changes when they have been quiet for ``commit_interval`` seconds,
        are ``MAX_DELAY_INTERVALS`` intervals old, or are many; runs until cancelled."""
        while True:
            with trio.move_on_after(self.commit_interval / 2):
                await self._commit_soon.wait()
            self._commit_soon = trio.Event()
            now = trio.current_time()
            quiet = now - self._last_change >= self.commit_interval
            old = now - self._first_change >= self.commit_interval * MAX_DELAY_INTERVALS
            if not (quiet or old or self._staged >= COMMIT_AFTER_CHANGES):
                continue
            try:
                await self.commit("group commit")
            except Exception:
                log.exception("group commit failed; retrying in %s s", self.commit_interval)

    # ------------------------------------------------------------------ following the pond

    async def follow_pond(self) -> None:
        """Show new transactions of other writers, checking every ``FOLLOW_INTERVAL``
        seconds; runs until cancelled. A failed check is logged and tried again."""
        while True:
            await trio.sleep(FOLLOW_INTERVAL)
            try:
                await self.follow()
            except Exception:
                log.exception("could not follow the pond past transaction %d", self.fs.as_of)

    async def follow(self) -> int | None:
        """Switch to a view of the newest transaction if there is a newer one, and have the
        kernel forget what changed; the new transaction number, or None.

        Handles already open keep reading the version they opened; inode numbers stay (they
        belong to node ids, not views).
        """
        old = self.fs
        store = old.store
        newest = await self._thread(_newest_txn, store)
        if newest <= old.as_of:
            return None
        new = await self._thread(partial(FS, store, cache=old.cache, factories=old.factories))
        changed = await self._thread(store.changes, old.as_of, new.as_of)
        # Directories the kernel knows whose entries changed: which names it must forget.
        gone: list[tuple[int, str]] = []
        for dir_id in {v.node_id for v in changed if v.kind == DIRECTORY}:
            inode = self.inodes.inode_of(dir_id)
            if inode is None:
                continue
            before = await self._thread(_listing_or_empty, old, dir_id)
            after = await self._thread(_listing_or_empty, new, dir_id)
            gone += [(inode, name) for name in before.keys() | after.keys()
                     if before.get(name) != after.get(name)]
        # Calls from here on use the new view; the kernel is told after, so an answer
        # from the old view given meanwhile is forgotten too.
        self.fs = new
        inodes = {inode for v in changed if (inode := self.inodes.inode_of(v.node_id))}
        for node_id in {v.node_id for v in changed}:
            self._parent_dirs.pop(node_id, None)
        log.info("following the pond: transaction %d -> %d (%d nodes changed, %d known here)",
                 old.as_of, new.as_of, len({v.node_id for v in changed}), len(inodes))
        if self.serving:
            await trio.to_thread.run_sync(_invalidate, inodes, gone)
        return new.as_of

    async def write_back_all(self) -> None:
        """Hand every changed spool to tinyfs (before the final commit of an unmount)."""
        for of in list(self._files.values()):
            if of.dirty:
                try:
                    await self._write_back(of)
                except Exception:
                    log.exception("could not save %s at unmount", of.node_id)


@asynccontextmanager
async def _holding(lock: trio.Lock) -> AsyncIterator[None]:
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


def _newest_txn(store) -> int:
    store.refresh()
    return store.last_txn()


def _listing_or_empty(fs: FS, dir_id: str) -> dict[str, str]:
    try:
        return fs.listdir(dir_id)
    except FsError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return {}  # created or removed between the two views
        raise


def _invalidate(inodes: set[int], entries: list[tuple[int, str]]) -> None:
    """Have the kernel forget ``inodes``' attributes and pages and the names ``entries``
    (parent inode, name). In a worker thread: an entry's invalidation waits for requests
    on its directory, which the event loop must stay free to answer."""
    for inode in inodes:
        try:
            pyfuse3.invalidate_inode(inode)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOSYS, errno.EBADF):
                log.warning("could not invalidate inode %d: %s", inode, exc)
    for parent, name in entries:
        try:
            pyfuse3.invalidate_entry(parent, os.fsencode(name))
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOSYS, errno.EBADF):
                log.warning("could not invalidate %s in inode %d: %s", name, parent, exc)


def _local_fd(reader: BinaryIO, size: int) -> int | None:
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
        if self._memory is not None:
            return bytes(self._memory[offset:offset + size])
        assert self._file is not None
        return os.pread(self._file.fileno(), size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
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
        if self._file is not None:
            self._file.close()
        self._memory = None


async def serve(ops: PondOperations, serving: Callable[[], None] | None = None) -> bool:
    """Run the FUSE main loop with group commits until unmounted or until SIGINT/SIGTERM,
    then save and commit everything; whether a signal ended it (the caller must then unmount).
    ``pyfuse3.init`` must have been called. ``serving`` runs in a thread as the loop starts
    (it may make requests to the mount)."""
    signalled = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ops.group_commits)
        if serving is not None:
            nursery.start_soon(partial(trio.to_thread.run_sync, serving, abandon_on_cancel=True))
        if ops.following:
            nursery.start_soon(ops.follow_pond)

        async def stop_on_signals() -> None:
            nonlocal signalled
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("signal %d: saving everything and unmounting", signum)
                    signalled = True
                    pyfuse3.terminate()
                    return

        nursery.start_soon(stop_on_signals)
        ops.serving = True
        try:
            await pyfuse3.main()
        finally:
            ops.serving = False
            nursery.cancel_scope.cancel()
    if not ops.read_only:
        ops.fs.store.finishing()  # writers started right after umount wait for the commit
    await ops.write_back_all()
    await ops.commit("unmount", durable=True)
    return signalled
