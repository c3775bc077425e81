"""The FUSE face of a pond: :class:`PondOperations`, pyfuse3 handlers over a tinyfs view.

What this module owns, and the promises it keeps:

- **Inode numbers** are allocated per mount from node ids (the root is ``ROOT_INODE``) and
  dropped when the kernel forgets them (lookup counts are honoured), so they are stable for
  as long as the kernel knows a node (:class:`pondfs.fuse.inodes.InodeTable`).
- **Writes** go to a spool per open inode, shared by all of its handles
  (:mod:`pondfs.fuse.files`, :class:`pondfs.fuse.spool.Spool`). The spool is filled from
  the current content only when a write or a truncate needs the old bytes; a new or
  truncated file starts empty. On ``close`` (flush/release) of a handle that changed it, a
  spool becomes a new version of the node, and the group committer
  (:class:`pondfs.fuse.committer.GroupCommitter`) commits staged changes as few pond
  transactions. ``fsync`` returns once its data is committed (durably); unmounting commits
  everything first (see :func:`serve`). A file created here is held out of commits until
  its first close or fsync, so a crash leaves every file absent or as of its last close or
  fsync. ``O_TRUNC`` arrives in ``open`` (atomic O_TRUNC); ``O_APPEND`` writes go to the
  end.
- **Reads** use a reader made once per open; the kernel keeps a file's pages across opens
  (``keep_cache``) while its content is unchanged; entries and attributes are cached by the
  kernel for ``ENTRY_TIMEOUT``/``ATTR_TIMEOUT`` seconds. A content object whose size is
  the recorded one is read with ``pread`` on its descriptor, *without* checking its hash:
  BLAKE3 runs at ~2.7 GB/s per core here, not much faster than a cold read through the
  mount (~1.5 GB/s), so hashing as the reads go would cost much of the read rate, or a
  core the 2-core machines this runs on do not have spare. An object of the wrong size is
  read through the verifying reader (EIO at its end); ``pond cat`` verifies every read and
  ``pond check`` every object.
- **Following the pond**: a read-only mount without ``at=`` shows other writers' new
  transactions (:class:`pondfs.fuse.follower.PondFollower`).
- **Concurrency**: one trio event loop serves FUSE. Calls into the view are serialized by
  :class:`pondfs.fuse.view.ServedView`: on the event loop when tinyfs can answer from
  memory, in a worker thread when a call may read persistence, commit, or hash content, so
  a slow call never stalls the mount. A commit holds the view only to number the staged
  versions and to fold them in after: the store commit itself runs while the mount serves.
- **Errors**: every handler answers ``FsError`` with its errno and any other exception with
  ``EIO`` after logging it (an escaping exception would end the FUSE main loop).
- **Hard links and special files**: ``link`` gives a node another name (one inode, its
  ``st_nlink`` counting the names); ``mknod`` makes FIFOs, sockets and device nodes (with
  ``st_rdev``), which the kernel implements on the inode the mount answers with (a FIFO's
  pipe, a bound socket): the pond keeps only their names, modes and device numbers.
  Unlinking one of several names leaves an open file of that node as it is; only its last
  name removes it (:meth:`PondOperations._removed`).

Deliberate limits (documented for users in the README): ``fallocate`` is not served
(pyfuse3 has no handler: the kernel answers ``EOPNOTSUPP``) and ``lseek`` is the kernel's
(no holes: files are stored densely); hard links to directories and computed nodes answer
``EPERM``; ``RENAME_EXCHANGE`` answers ``EINVAL``; files are stored densely, so sizes above
``MAX_FILE_SIZE`` answer ``EFBIG``; series files are read-only through the mount
(``EACCES`` on open for writing); the read-only attributes ``user.pond.node_id``,
``user.pond.version`` and ``user.pond.txn`` can be read by name but are not listed (so
copies do not carry them).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import stat as st
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from functools import partial, wraps
from typing import Any, BinaryIO, ParamSpec, TypeVar, cast

import pyfuse3
import trio
from pyfuse3 import (
    EntryAttributes,
    FileHandleT,
    FileInfo,
    FileNameT,
    FlagT,
    InodeT,
    ModeT,
    ReaddirToken,
    RequestContext,
    SetattrFields,
    StatvfsData,
    XAttrNameT,
)

from .fuse.attributes import (
    BLOCK_SIZE,
    ENTRY_TIMEOUT,
    changed_stat,
    entry_attributes,
    precise_time,
)
from .fuse.committer import COMMIT_INTERVAL, GroupCommitter
from .fuse.files import DirHandle, Handle, OpenFile, holding, local_fd
from .fuse.follower import PondFollower
from .fuse.inodes import InodeTable
from .fuse.kernel import KernelCaches
from .fuse.spool import Spool
from .fuse.stats import OperationCounts
from .fuse.view import ServedView
from .tinyfs import DIRECTORY, FS, NAME_MAX, SERIES, FsError, Stat

log = logging.getLogger(__name__)

#: Files are stored densely (a hole costs its size in the store): larger ones are EFBIG.
MAX_FILE_SIZE = 16 * 1024**3
#: Longest symlink target (PATH_MAX).
PATH_MAX = 4096
#: Entries whose attributes a readdir computes per trip to a worker thread.
READDIR_BATCH = 128

POND_XATTRS = ("user.pond.node_id", "user.pond.version", "user.pond.txn")

T = TypeVar("T")
P = ParamSpec("P")


def _handler(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every failure of a FUSE handler into a FUSEError (tinyfs errors keep their errno,
    anything unexpected is logged and answered EIO), so the main loop never dies; count the
    request in the mount's :class:`OperationCounts`."""
    name = method.__name__

    @wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        cast("PondOperations", args[0]).operations.add(name)
        try:
            return await method(*args, **kwargs)
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


class PondOperations(pyfuse3.Operations):
    """pyfuse3 handlers serving ``fs``; ``read_only`` refuses every change with EROFS.

    ``mountpoint`` names the mount in commit messages; ``spool_dir`` holds the spools;
    ``statfs_path`` is the host directory whose free space ``statfs`` reports. The tasks
    :func:`serve` runs beside the handlers are ``committer`` (read-write mounts) and
    ``follower`` (read-only mounts of the newest transaction).
    """

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False
    #: How a readdir entry goes to the kernel (a test without one collects them instead).
    readdir_reply = staticmethod(pyfuse3.readdir_reply)

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
        self.view = ServedView(fs)
        self.read_only = read_only or fs.read_only
        self.spool_dir = spool_dir
        self.statfs_path = statfs_path
        self.inodes = InodeTable()
        self.kernel = KernelCaches()
        #: Requests served, per handler (logged at unmount).
        self.operations = OperationCounts()
        self._files: dict[int, OpenFile] = {}
        self._handles: dict[int, Handle | DirHandle] = {}
        self._next_fh = 1
        self._page_cache: dict[int, tuple[str, int]] = {}
        self._symlinks: dict[str, bytes] = {}
        #: The parent of each directory the kernel has seen (for readdir's "..").
        self._parent_dirs: dict[str, str] = {}
        #: Removed directories the kernel still holds (open, or a process' cwd): what
        #: getattr answers for them (no names left), as a local filesystem does.
        self._gone_dirs: dict[int, Stat] = {}
        #: A mount of the newest transaction shows other writers' ones as they come (a
        #: read-write mount with its own uncommitted changes on top).
        self.follower = (PondFollower(self.view, self.inodes, self.kernel, self._parent_dirs)
                         if not fs.read_only else None)
        self.committer = GroupCommitter(self.view, mountpoint, commit_interval,
                                        follow=None if self.follower is None
                                        else self.follower.follow)

    @property
    def fs(self) -> FS:
        """The view served now (a follower moves it on)."""
        return self.view.fs

    def _check_writable(self) -> None:
        if self.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)

    # ------------------------------------------------------------------ attributes

    def _attributes(self, inode: int, s: Stat) -> EntryAttributes:
        # A pinned view (at=) never changes, so even computed nodes may be cached.
        return entry_attributes(inode, s, self._files.get(inode),
                                cached=not s.dynamic or self.fs.read_only)

    async def _entry(self, node_id: str) -> EntryAttributes:
        """Attributes of ``node_id`` for a reply that gives the kernel a reference."""
        s = await self.view.stat(node_id)
        inode = self.inodes.inode(node_id)
        self.inodes.looked_up(inode)
        return self._attributes(inode, s)

    @_handler
    async def lookup(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext
                     ) -> EntryAttributes:
        dir_id = self.inodes.node(parent_inode)
        if len(name) > NAME_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        if name == b".":
            return await self._entry(dir_id)
        if name == b"..":
            parent = self._parent_dirs.get(dir_id) or await self.view.call(self.fs.parent, dir_id)
            if parent is None:
                raise pyfuse3.FUSEError(errno.ENOENT)  # never listed: not reachable here
            return await self._entry(parent)
        fs = self.fs
        text = os.fsdecode(name)
        if not self.view.busy() and fs.loaded(dir_id):
            # The common case, with no await: a name in a directory already in memory.
            child = fs.lookup(dir_id, text)
            s = fs.stat(child) if child is not None and fs.loaded(child) else None
        else:
            child = await self.view.call(fs.lookup, dir_id, text, inline=fs.loaded(dir_id))
            s = None
        if child is None:
            negative = EntryAttributes()
            negative.st_ino = 0
            negative.entry_timeout = ENTRY_TIMEOUT
            return negative
        if s is None:
            s = await self.view.stat(child)
        inode = self.inodes.inode(child)
        self.inodes.looked_up(inode)
        attr = self._attributes(inode, s)
        if st.S_ISDIR(attr.st_mode):
            self._parent_dirs[child] = dir_id
        return attr

    @_handler
    async def forget(self, inode_list: Sequence[tuple[InodeT, int]]) -> None:
        for inode, count in inode_list:
            self.inodes.forget(inode, count, inode in self._files)
            if not self.inodes.knows(inode):
                self._page_cache.pop(inode, None)
                self._gone_dirs.pop(inode, None)

    @_handler
    async def getattr(self, inode: InodeT, ctx: RequestContext) -> EntryAttributes:
        node_id = self.inodes.node(inode)
        of = self._files.get(inode)
        try:
            if not self.view.busy() and self.fs.loaded(node_id):
                s = self.fs.stat(node_id)  # no await in the common case
            else:
                s = await self.view.stat(node_id)
        except FsError as exc:
            if exc.errno == errno.ENOENT and inode in self._gone_dirs:
                return self._attributes(inode, self._gone_dirs[inode])
            if exc.errno != errno.ENOENT or of is None or of.removed_stat is None:
                raise
            s = of.removed_stat  # removed while open
        return self._attributes(inode, s)

    @_handler
    async def setattr(self, inode: InodeT, attr: EntryAttributes, fields: SetattrFields,
                      fh: FileHandleT | None, ctx: RequestContext) -> EntryAttributes:
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
            changes["atime_ns"] = precise_time(attr.st_atime_ns)
        if fields.update_mtime:
            changes["mtime_ns"] = precise_time(attr.st_mtime_ns)
            of = self._files.get(inode)
            if of is not None and of.dirty:
                of.mtime_ns = changes["mtime_ns"]  # what its write-back at close will keep
        of = self._files.get(inode)
        if of is not None and of.removed_stat is not None:
            # Removed while open: nothing left to stage, but fstat must see the change.
            of.removed_stat = changed_stat(of.removed_stat, changes)
            return self._attributes(inode, of.removed_stat)
        if changes or not fields.update_size:  # chown(f, -1, -1) changes the ctime alone
            await self.view.call(partial(self.fs.setattr, node_id, **changes))
            self.committer.staged()
        return self._attributes(inode, await self.view.stat(node_id))

    # ------------------------------------------------------------------ directories

    @_handler
    async def opendir(self, inode: InodeT, ctx: RequestContext) -> FileHandleT:
        return self._new_handle(DirHandle(self.inodes.node(inode)))

    @_handler
    async def readdir(self, fh: FileHandleT, start_id: int, token: ReaddirToken) -> None:
        handle = self._handles[fh]
        assert isinstance(handle, DirHandle)
        dir_id = handle.node_id
        if self.inodes.inode_of(dir_id) in self._gone_dirs:
            return  # removed while open: no entries at all, not even "." and ".."
        if start_id == 0 or handle.entries is None:
            listing = await self.view.call(self.fs.listdir, dir_id, inline=self.view.loaded(dir_id))
            parent = self._parent_dirs.get(dir_id, dir_id)
            handle.entries = [(".", dir_id), ("..", parent), *sorted(listing.items())]
        entries = handle.entries
        index = start_id
        while index < len(entries):
            batch = entries[index:index + READDIR_BATCH]
            stats = await self.view.call(self._stat_many, [c for _, c in batch],
                                         inline=self.view.loaded(*(c for _, c in batch)))
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
                if not self.readdir_reply(token, os.fsencode(name),
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
    async def releasedir(self, fh: FileHandleT) -> None:
        self._handles.pop(fh, None)

    @_handler
    async def fsyncdir(self, fh: FileHandleT, datasync: bool) -> None:
        await self.committer.commit("fsync", durable=True)

    def _owner(self, parent: Stat, ctx) -> tuple[int, int]:
        """uid and gid of a new node: a set-group-ID directory passes its group on."""
        gid = parent.gid if parent.mode & st.S_ISGID else ctx.gid
        return ctx.uid, gid

    def _check_name(self, name: bytes) -> str:
        if len(name) > NAME_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        return os.fsdecode(name)

    @_handler
    async def mkdir(self, parent_inode: InodeT, name: FileNameT, mode: ModeT,
                    ctx: RequestContext) -> EntryAttributes:
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        parent = await self.view.stat(dir_id)
        uid, gid = self._owner(parent, ctx)
        if parent.mode & st.S_ISGID:
            mode |= st.S_ISGID
        node_id = await self.view.call(self.fs.mkdir, dir_id, self._check_name(name), mode, uid,
                                       gid, inline=self.view.loaded(dir_id))
        self._parent_dirs[node_id] = dir_id
        self.committer.staged()
        return await self._entry(node_id)

    @_handler
    async def symlink(self, parent_inode: InodeT, name: FileNameT, target: FileNameT,
                      ctx: RequestContext) -> EntryAttributes:
        self._check_writable()
        if len(target) > PATH_MAX:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        dir_id = self.inodes.node(parent_inode)
        uid, gid = self._owner(await self.view.stat(dir_id), ctx)
        node_id = await self.view.call(self.fs.symlink, dir_id, self._check_name(name),
                                       os.fsdecode(target), uid, gid,
                                       inline=self.view.loaded(dir_id))
        self._symlinks[node_id] = target
        self.committer.staged()
        return await self._entry(node_id)

    @_handler
    async def readlink(self, inode: InodeT, ctx: RequestContext) -> FileNameT:
        node_id = self.inodes.node(inode)
        target = self._symlinks.get(node_id)  # a symlink's target never changes
        if target is None:
            target = os.fsencode(await self.view.call(self.fs.readlink, node_id))
            self._symlinks[node_id] = target
        return target

    @_handler
    async def unlink(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext) -> None:
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        text = self._check_name(name)
        child = await self.view.call(self.fs.lookup, dir_id, text, inline=self.view.loaded(dir_id))
        before = await self._keep_if_open(child)
        # Dropping one of several names is a new version of the node, which may read its
        # inline content back from the store: not on the event loop.
        inline = self.view.loaded(dir_id) and (child is None or (
            self.view.loaded(child) and self.fs.names(child) < 2))
        if not await self.view.call(self.fs.unlink, dir_id, text, inline=inline):
            self._removed(child, before)  # its last name: the node is gone
        self.committer.staged()

    @_handler
    async def rmdir(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext) -> None:
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        text = self._check_name(name)
        child = await self.view.call(self.fs.lookup, dir_id, text, inline=self.view.loaded(dir_id))
        inline = self.view.loaded(dir_id) and (child is None or self.view.loaded(child))
        before = None if child is None else await self.view.stat(child)
        await self.view.call(self.fs.rmdir, dir_id, text, inline=inline)
        self._removed(child, before)
        self.committer.staged()

    async def _keep_if_open(self, node_id: str | None) -> Stat | None:
        """Before ``node_id`` may lose its last name: if a file has it open, its spool
        holds its content from now on (ftruncate and writes go on after the removal) and
        its attributes are returned (what fstat goes on seeing)."""
        inode = None if node_id is None else self.inodes.inode_of(node_id)
        of = None if inode is None else self._files.get(inode)
        if node_id is None or of is None:
            return None
        async with holding(of.lock):
            await self._fill(of)
        return await self.view.stat(node_id)

    def _removed(self, node_id: str | None, before: Stat | None) -> None:
        """A node left the tree (``before``: its attributes then, if it is open or a
        directory); an open inode of it keeps working on its spool with those attributes,
        a directory the kernel holds stays empty."""
        if node_id is None:
            return
        self._symlinks.pop(node_id, None)
        self._parent_dirs.pop(node_id, None)
        inode = self.inodes.inode_of(node_id)
        if inode is None:
            return
        of = self._files.get(inode)
        now = time.time_ns()  # its link count changed: so did its ctime
        if before is not None and before.kind == DIRECTORY:
            self._gone_dirs[inode] = replace(before, nlink=0, size=0, ctime_ns=now)
        if of is not None and before is not None:
            of.removed_stat = replace(before, nlink=0, ctime_ns=now)

    @_handler
    async def rename(self, parent_inode_old: InodeT, name_old: FileNameT,
                     parent_inode_new: InodeT, name_new: FileNameT, flags: FlagT,
                     ctx: RequestContext) -> None:
        self._check_writable()
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        src_dir = self.inodes.node(parent_inode_old)
        dst_dir = self.inodes.node(parent_inode_new)
        src_name = self._check_name(name_old)
        dst_name = self._check_name(name_new)

        if self._files:  # a replaced file still open keeps its content (no lookup else)
            await self._keep_if_open(await self.view.call(
                self.fs.lookup, dst_dir, dst_name, inline=self.view.loaded(dst_dir)))

        def move() -> tuple[str | None, str | None, Stat | None]:
            replaced = self.fs.lookup(dst_dir, dst_name)
            moved = self.fs.lookup(src_dir, src_name)
            before = None if replaced in (None, moved) else self.fs.stat(replaced)
            self.fs.rename(src_dir, src_name, dst_dir, dst_name,
                           noreplace=bool(flags & pyfuse3.RENAME_NOREPLACE))
            gone = replaced != moved and replaced is not None and not self.fs.names(replaced)
            return moved, replaced if gone else None, before

        moved, replaced, before = await self.view.call(move)
        if moved in self._parent_dirs:
            self._parent_dirs[moved] = dst_dir
        self._removed(replaced, before)
        self.committer.staged()

    @_handler
    async def link(self, inode: InodeT, new_parent_inode: InodeT, new_name: FileNameT,
                   ctx: RequestContext) -> EntryAttributes:
        self._check_writable()
        node_id = self.inodes.node(inode)
        dir_id = self.inodes.node(new_parent_inode)
        # In a thread: the node's new version may read its inline content back.
        await self.view.call(self.fs.link, node_id, dir_id, self._check_name(new_name))
        self.committer.staged()
        return await self._entry(node_id)

    @_handler
    async def mknod(self, parent_inode: InodeT, name: FileNameT, mode: ModeT, rdev: int,
                    ctx: RequestContext) -> EntryAttributes:
        if st.S_ISREG(mode):
            info, attr = await self.create(parent_inode, name, mode, os.O_WRONLY, ctx)
            await self.release(info.fh)
            return attr
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        uid, gid = self._owner(await self.view.stat(dir_id), ctx)
        # FIFOs, sockets and devices: the kernel implements them on the inode we answer.
        node_id = await self.view.call(self.fs.mknod, dir_id, self._check_name(name), mode,
                                       rdev, uid, gid, inline=self.view.loaded(dir_id))
        self.committer.staged()
        return await self._entry(node_id)

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
    async def create(self, parent_inode: InodeT, name: FileNameT, mode: ModeT, flags: FlagT,
                     ctx: RequestContext) -> tuple[FileInfo, EntryAttributes]:
        self._check_writable()
        dir_id = self.inodes.node(parent_inode)
        uid, gid = self._owner(await self.view.stat(dir_id), ctx)
        node_id = await self.view.call(self.fs.create, dir_id, self._check_name(name), "data",
                                       mode, uid, gid, inline=self.view.loaded(dir_id))
        self.committer.staged()
        s = await self.view.stat(node_id)
        inode = self.inodes.inode(node_id)
        self.inodes.looked_up(inode)
        attr = self._attributes(inode, s)
        self.committer.hold(node_id)
        of = self._open_file(inode, node_id)
        of.spool = self._new_spool()
        of.mtime_ns = attr.st_mtime_ns
        self._page_cache[attr.st_ino] = ("", 0)
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        handle = Handle(of, writable, changes=True, append=bool(flags & os.O_APPEND))
        return FileInfo(fh=self._new_handle(handle)), attr

    @_handler
    async def open(self, inode: InodeT, flags: FlagT, ctx: RequestContext) -> FileInfo:
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

        s, key, reader, as_of = await self.view.call(opened)
        of = self._open_file(inode, node_id)
        if truncate:
            # Staged at close like any write: until then the stored version stays whole.
            try:
                async with holding(of.lock):
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
        handle = Handle(of, writable, reader, local_fd(reader, s.size), as_of,
                        changes=writable or truncate, append=bool(flags & os.O_APPEND))
        return FileInfo(fh=self._new_handle(handle), keep_cache=keep)

    @_handler
    async def flush(self, fh: FileHandleT) -> None:
        handle = self._file_handle(fh)
        if handle.changes:
            await self._closed(handle.file)

    async def _closed(self, of: OpenFile) -> None:
        """A close or fsync: the file's content as of now is what the next commit keeps."""
        if of.dirty:
            await self._write_back(of)
        self.committer.release(of.node_id)

    @_handler
    async def release(self, fh: FileHandleT) -> None:
        handle = self._handles.pop(fh)
        assert isinstance(handle, Handle)
        of = handle.file
        try:
            if handle.changes or of.refs == 1:  # the last one keeps what others changed
                await self._closed(of)
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
    async def fsync(self, fh: FileHandleT, datasync: bool) -> None:
        await self._closed(self._file_handle(fh).file)
        await self.committer.commit("fsync", durable=True)

    # ------------------------------------------------------------------ files: content

    @_handler
    async def read(self, fh: FileHandleT, off: int, size: int) -> bytes:
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
            data = await self.view.thread(self._read_at, handle, off, size)
        if len(data) < size and self.follower and handle.as_of != self.fs.as_of:
            # The end of a version older than the mount's view (a following mount moved on
            # while this handle was open): the kernel would take it for the file's size.
            self.kernel.forget_attributes(of.inode)
        return data

    @staticmethod
    def _read_at(handle: Handle, off: int, size: int) -> bytes:
        assert handle.reader is not None
        with handle.read_lock:
            handle.reader.seek(off)
            return handle.reader.read(size)

    @_handler
    async def write(self, fh: FileHandleT, off: int, buf: bytes) -> int:
        handle = self._file_handle(fh)
        if not handle.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        of = handle.file
        async with holding(of.lock):
            await self._fill(of)
            assert of.spool is not None
            if handle.append:
                off = of.size  # the kernel's offset is its idea of the size: the same here
            if off + len(buf) > MAX_FILE_SIZE:
                raise pyfuse3.FUSEError(errno.EFBIG)
            written = of.spool.pwrite(buf, off)  # past the end leaves a hole of zeros
            of.size = max(of.size, off + written)
            self._changed(of)
        return written

    def _changed(self, of: OpenFile) -> None:
        of.dirty = True
        of.changed_ns = of.mtime_ns = time.time_ns()

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

        size, reader = await self.view.call(current)
        keep = size if upto is None else min(size, upto)
        spool = self._new_spool()
        if reader is not None:
            await self.view.thread(spool.fill, reader, keep)
        of.size = keep
        of.spool = spool

    async def _truncate(self, inode: int, node_id: str, size: int) -> None:
        if size > MAX_FILE_SIZE:
            raise pyfuse3.FUSEError(errno.EFBIG)
        of = self._open_file(inode, node_id)
        try:
            async with holding(of.lock):
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
        async with holding(of.lock):
            if not of.dirty:
                return
            assert of.spool is not None
            fd = of.spool.rewound_fd()
            try:
                if fd is None:
                    await self.view.call(partial(self.fs.write_content, changed_ns=of.changed_ns,
                                                 mtime_ns=of.mtime_ns),
                                         of.node_id, of.spool.chunks(of.size),
                                         inline=self.view.loaded(of.node_id))
                else:
                    await self.view.thread(partial(self.fs.write_file, changed_ns=of.changed_ns,
                                                   mtime_ns=of.mtime_ns),
                                           of.node_id, fd)
            except FsError as exc:
                if exc.errno == errno.ENOENT and of.removed_stat is not None:
                    # Written after its removal: nothing to keep but the time of the change.
                    of.removed_stat = replace(of.removed_stat, mtime_ns=of.mtime_ns,
                                              ctime_ns=max(of.removed_stat.ctime_ns,
                                                           of.changed_ns))
                    of.dirty = False
                    return
                raise
            of.dirty = False
        self.committer.staged()
        if self.fs.loaded(of.node_id):
            v = self.fs.get(of.node_id)
            self._page_cache[of.inode] = (v.blake3, v.size)
        self.kernel.forget_attributes(of.inode)

    # ------------------------------------------------------------------ extended attributes

    @_handler
    async def getxattr(self, inode: InodeT, name: XAttrNameT, ctx: RequestContext) -> bytes:
        node_id = self.inodes.node(inode)
        text = os.fsdecode(name)
        if text in POND_XATTRS:
            s = await self.view.stat(node_id)
            value = {"user.pond.node_id": node_id, "user.pond.version": str(s.version),
                     "user.pond.txn": str(s.txn)}[text]
            return value.encode()
        if not text.startswith("user."):
            # Not ENODATA: "unsupported" lets tools stop asking (ls -l caches it per
            # device instead of asking twice per file for ACLs and SELinux labels).
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        return await self.view.call(self.fs.getxattr, node_id, text,
                                    inline=self.view.loaded(node_id))

    @_handler
    async def listxattr(self, inode: InodeT, ctx: RequestContext) -> Sequence[XAttrNameT]:
        node_id = self.inodes.node(inode)
        names = await self.view.call(self.fs.listxattr, node_id, inline=self.view.loaded(node_id))
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
    async def setxattr(self, inode: InodeT, name: XAttrNameT, value: bytes,
                       ctx: RequestContext) -> None:
        text = self._settable(name)
        await self.view.call(self.fs.setxattr, self.inodes.node(inode), text, value)
        self.committer.staged()

    @_handler
    async def removexattr(self, inode: InodeT, name: XAttrNameT, ctx: RequestContext
                          ) -> None:
        text = self._settable(name)
        await self.view.call(self.fs.removexattr, self.inodes.node(inode), text)
        self.committer.staged()

    # ------------------------------------------------------------------ the filesystem

    @_handler
    async def statfs(self, ctx: RequestContext) -> StatvfsData:
        data = StatvfsData()
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
    async def access(self, inode: InodeT, mode: ModeT, ctx: RequestContext) -> bool:
        return True  # the kernel checks permissions (default_permissions)

    async def write_back_all(self) -> None:
        """Hand every changed spool to tinyfs (before the final commit of an unmount, which
        closes every file still open)."""
        for of in list(self._files.values()):
            try:
                await self._closed(of)
            except Exception:
                log.exception("could not save %s at unmount", of.node_id)
        self.committer.release_all()


async def serve(ops: PondOperations, serving: Callable[[], None] | None = None) -> bool:
    """Run the FUSE main loop with group commits until unmounted or until SIGINT/SIGTERM,
    then save and commit everything; whether a signal ended it (the caller must then unmount).
    ``pyfuse3.init`` must have been called. ``serving`` runs in a thread as the loop starts
    (it may make requests to the mount)."""
    signalled = False
    async with trio.open_nursery() as nursery:
        if not ops.read_only:
            nursery.start_soon(ops.committer.run)
        if serving is not None:
            nursery.start_soon(partial(trio.to_thread.run_sync, serving, abandon_on_cancel=True))
        if ops.follower is not None:
            nursery.start_soon(ops.follower.run)

        async def stop_on_signals() -> None:
            nonlocal signalled
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("signal %d: saving everything and unmounting", signum)
                    signalled = True
                    pyfuse3.terminate()
                    return

        nursery.start_soon(stop_on_signals)
        ops.kernel.connected = True
        try:
            await pyfuse3.main()
        finally:
            ops.kernel.connected = False
            nursery.cancel_scope.cancel()
    if not ops.read_only:
        ops.fs.store.finishing()  # writers started right after umount wait for the commit
        await ops.write_back_all()
        await ops.committer.commit("unmount", durable=True)
    return signalled
