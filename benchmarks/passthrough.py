"""A minimal pyfuse3 passthrough filesystem: the baseline that bench_fuse.py and
bench_tools.py measure pondfs against (the "tuned" form: the kernel caches entries and
attributes for a minute, a directory is listed once per opendir, not on every readdir call,
and fsync runs in a worker thread so concurrent fsyncs overlap).

    python benchmarks/passthrough.py SOURCE_DIR MOUNTPOINT      # foreground; Ctrl-C unmounts

Serves what real tools need (tar, git, rsync, cp, find, du, grep, rm): names (lookup, mkdir,
mknod, symlink, readlink, link, rename with its flags, unlink, rmdir), attributes (chmod,
chown, utimens, truncate), files (create, open, read, write, fsync), directories, extended
attributes and statfs. Like bindfs it works on host paths: an inode is served through the
last name it was looked up, created, linked or renamed by, so unlinking that name while
another hard link remains leaves the inode to be found again by a lookup of the other.
On exit it prints how many requests of each kind it served, in the line the pondfs daemon
logs (:mod:`pondfs.fuse.stats`). Not a general tool.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import stat
import sys
from collections import defaultdict
from collections.abc import Callable
from functools import wraps

import pyfuse3
import trio

from pondfs.fuse.stats import OperationCounts

TIMEOUT = 60.0
RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100


def _host(method: Callable) -> Callable:
    """Count the request, and answer a failed host call with its errno."""
    name = method.__name__

    @wraps(method)
    async def wrapper(self, *args):
        self.operations.add(name)
        try:
            return await method(self, *args)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None

    return wrapper


def _renameat2(old: str, new: str, flags: int) -> None:
    """rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE, which os.rename cannot pass."""
    if _libc.renameat2(_AT_FDCWD, os.fsencode(old), _AT_FDCWD, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class Passthrough(pyfuse3.Operations):
    """Serves the host directory ``source``; inode numbers are the host's."""

    supports_dot_lookup = False

    def __init__(self, source: str):
        super().__init__()
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: source}
        self.lookups: dict[int, int] = defaultdict(int)
        #: Open directory handle -> (its inode, its entries as listed by opendir).
        self.listings: dict[int, tuple[int, list[tuple[bytes, os.stat_result]]]] = {}
        #: Open descriptors per inode: attributes of a file removed while open come from one.
        self.open_fds: dict[int, set[int]] = defaultdict(set)
        self.fd_inodes: dict[int, int] = {}
        self.next_dir_fh = 1
        self.operations = OperationCounts()

    def _path(self, inode: int) -> str:
        try:
            return self.paths[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ESTALE) from None

    def _child(self, parent_inode: int, name: bytes) -> str:
        return os.path.join(self._path(parent_inode), os.fsdecode(name))

    def _attr(self, s: os.stat_result, inode: int | None = None) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
                     "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(attr, name, getattr(s, name))
        attr.st_ino = inode or s.st_ino
        attr.st_blksize = 128 * 1024
        attr.st_blocks = s.st_blocks
        attr.entry_timeout = attr.attr_timeout = TIMEOUT
        return attr

    def _remember(self, path: str) -> pyfuse3.EntryAttributes:
        """Attributes of ``path`` for a reply that gives the kernel a reference to it."""
        s = os.lstat(path)
        inode = pyfuse3.ROOT_INODE if path == self.paths[pyfuse3.ROOT_INODE] else s.st_ino
        self.paths[inode] = path
        self.lookups[inode] += 1
        return self._attr(s, inode)

    def _stat(self, inode: int) -> os.stat_result:
        fds = self.open_fds.get(inode)
        if fds:
            return os.fstat(next(iter(fds)))
        return os.lstat(self._path(inode))

    @_host
    async def lookup(self, parent_inode, name, ctx=None):
        return self._remember(self._child(parent_inode, name))

    async def forget(self, inode_list):
        for inode, count in inode_list:
            self.lookups[inode] -= count
            if self.lookups[inode] <= 0 and inode != pyfuse3.ROOT_INODE:
                del self.lookups[inode]
                self.paths.pop(inode, None)

    @_host
    async def getattr(self, inode, ctx=None):
        return self._attr(self._stat(inode), inode)

    @_host
    async def setattr(self, inode, attr, fields, fh, ctx):
        path = self._path(inode)
        if fields.update_size:
            if fh is not None:
                os.ftruncate(fh, attr.st_size)
            else:
                os.truncate(path, attr.st_size)
        if fields.update_mode:
            os.chmod(path, stat.S_IMODE(attr.st_mode))
        if fields.update_uid or fields.update_gid:
            os.chown(path, attr.st_uid if fields.update_uid else -1,
                     attr.st_gid if fields.update_gid else -1, follow_symlinks=False)
        if fields.update_atime or fields.update_mtime:
            s = self._stat(inode)
            os.utime(path, ns=(attr.st_atime_ns if fields.update_atime else s.st_atime_ns,
                               attr.st_mtime_ns if fields.update_mtime else s.st_mtime_ns),
                     follow_symlinks=False)
        return self._attr(self._stat(inode), inode)

    @_host
    async def opendir(self, inode, ctx):
        entries = []
        with os.scandir(self._path(inode)) as it:
            for entry in it:
                entries.append((os.fsencode(entry.name), entry.stat(follow_symlinks=False)))
        entries.sort()
        fh = self.next_dir_fh
        self.next_dir_fh += 1
        self.listings[fh] = (inode, entries)
        return fh

    @_host
    async def readdir(self, fh, start_id, token):
        inode, entries = self.listings[fh]
        base = self._path(inode)
        for index in range(start_id, len(entries)):
            name, s = entries[index]
            if not pyfuse3.readdir_reply(token, name, self._attr(s), index + 1):
                return
            self.paths[s.st_ino] = os.path.join(base, os.fsdecode(name))
            self.lookups[s.st_ino] += 1

    @_host
    async def releasedir(self, fh):
        self.listings.pop(fh, None)

    @_host
    async def mkdir(self, parent_inode, name, mode, ctx):
        path = self._child(parent_inode, name)
        os.mkdir(path, mode)
        return self._remember(path)

    @_host
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        path = self._child(parent_inode, name)
        os.mknod(path, mode, rdev)
        return self._remember(path)

    @_host
    async def symlink(self, parent_inode, name, target, ctx):
        path = self._child(parent_inode, name)
        os.symlink(os.fsdecode(target), path)
        return self._remember(path)

    @_host
    async def readlink(self, inode, ctx):
        return os.fsencode(os.readlink(self._path(inode)))

    @_host
    async def link(self, inode, new_parent_inode, new_name, ctx):
        path = self._child(new_parent_inode, new_name)
        os.link(self._path(inode), path, follow_symlinks=False)
        return self._remember(path)

    @_host
    async def unlink(self, parent_inode, name, ctx):
        os.unlink(self._child(parent_inode, name))

    @_host
    async def rmdir(self, parent_inode, name, ctx):
        os.rmdir(self._child(parent_inode, name))

    @_host
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old = self._child(parent_inode_old, name_old)
        new = self._child(parent_inode_new, name_new)
        moved = os.lstat(old)
        if flags:
            _renameat2(old, new, flags)
        else:
            os.rename(old, new)
        if flags & ~RENAME_NOREPLACE:  # RENAME_EXCHANGE: both names moved
            self._moved({old: new, new: old})
        elif stat.S_ISDIR(moved.st_mode):
            self._moved({old: new})
        elif self.paths.get(moved.st_ino) == old:
            self.paths[moved.st_ino] = new

    def _moved(self, renames: dict[str, str]) -> None:
        """Serve every known inode at or under a renamed path by its new path (directories:
        a scan of every known path, which the tools measured here rarely ask for)."""
        for inode, path in list(self.paths.items()):
            for old, new in renames.items():
                if path == old or path.startswith(old + "/"):
                    self.paths[inode] = new + path[len(old):]
                    break

    def _opened(self, fd: int, inode: int) -> None:
        self.open_fds[inode].add(fd)
        self.fd_inodes[fd] = inode

    @_host
    async def open(self, inode, flags, ctx):
        fd = os.open(self._path(inode), flags & ~os.O_CREAT)
        self._opened(fd, inode)
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    @_host
    async def create(self, parent_inode, name, mode, flags, ctx):
        path = self._child(parent_inode, name)
        fd = os.open(path, flags | os.O_CREAT | os.O_TRUNC, mode)
        attr = self._remember(path)
        self._opened(fd, attr.st_ino)
        return pyfuse3.FileInfo(fh=fd), attr

    @_host
    async def read(self, fh, off, size):
        return os.pread(fh, size, off)

    @_host
    async def write(self, fh, off, buf):
        return os.pwrite(fh, buf, off)

    @_host
    async def release(self, fh):
        inode = self.fd_inodes.pop(fh)
        fds = self.open_fds[inode]
        fds.discard(fh)
        if not fds:
            del self.open_fds[inode]
        os.close(fh)

    @_host
    async def fsync(self, fh, datasync):
        await trio.to_thread.run_sync(os.fdatasync if datasync else os.fsync, fh)

    @_host
    async def setxattr(self, inode, name, value, ctx):
        os.setxattr(self._path(inode), name, value, follow_symlinks=False)

    @_host
    async def getxattr(self, inode, name, ctx):
        return os.getxattr(self._path(inode), name, follow_symlinks=False)

    @_host
    async def listxattr(self, inode, ctx):
        return [os.fsencode(n) for n in os.listxattr(self._path(inode), follow_symlinks=False)]

    @_host
    async def removexattr(self, inode, name, ctx):
        os.removexattr(self._path(inode), name, follow_symlinks=False)

    @_host
    async def statfs(self, ctx):
        host = os.statvfs(self.paths[pyfuse3.ROOT_INODE])
        data = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                     "f_ffree", "f_favail", "f_namemax"):
            setattr(data, name, getattr(host, name))
        return data


async def _serve() -> None:
    async with trio.open_nursery() as nursery:
        async def stop() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    pyfuse3.terminate()
                    return

        nursery.start_soon(stop)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main() -> None:
    source, mountpoint = sys.argv[1:3]
    os.umask(0)  # the kernel already applied the caller's umask to every mode it sends
    ops = Passthrough(os.path.abspath(source))
    options = set(pyfuse3.default_options) | {"fsname=passthrough"}
    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(_serve)
    finally:
        pyfuse3.close(unmount=True)
        print(ops.operations.log_line(), flush=True)


if __name__ == "__main__":
    main()
