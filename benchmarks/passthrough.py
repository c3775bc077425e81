"""A minimal pyfuse3 passthrough filesystem: the baseline that bench_fuse.py measures pondfs
against (the "tuned" form: the kernel caches entries and attributes for a minute, and a
directory is listed once per opendir, not on every readdir call).

    python benchmarks/passthrough.py SOURCE_DIR MOUNTPOINT      # foreground; Ctrl-C unmounts

Enough operations for the benchmark's workloads (dd, cp -r, ls -l, stat); not a general tool.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections import defaultdict

import pyfuse3
import trio

TIMEOUT = 60.0


class Passthrough(pyfuse3.Operations):
    """Serves the host directory ``source``; inode numbers are the host's."""

    def __init__(self, source: str):
        super().__init__()
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: source}
        self.lookups: dict[int, int] = defaultdict(int)
        self.listings: dict[int, list[tuple[bytes, os.stat_result]]] = {}
        self.next_fh = 1

    def _path(self, inode: int) -> str:
        try:
            return self.paths[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ESTALE) from None

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

    def _stat_path(self, path: str) -> os.stat_result:
        try:
            return os.lstat(path)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None

    def _remember(self, path: str, s: os.stat_result) -> pyfuse3.EntryAttributes:
        inode = pyfuse3.ROOT_INODE if path == self.paths[pyfuse3.ROOT_INODE] else s.st_ino
        self.paths[inode] = path
        self.lookups[inode] += 1
        return self._attr(s, inode)

    async def lookup(self, parent_inode, name, ctx=None):
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        return self._remember(path, self._stat_path(path))

    async def forget(self, inode_list):
        for inode, count in inode_list:
            self.lookups[inode] -= count
            if self.lookups[inode] <= 0 and inode != pyfuse3.ROOT_INODE:
                del self.lookups[inode]
                self.paths.pop(inode, None)

    async def getattr(self, inode, ctx=None):
        return self._attr(self._stat_path(self._path(inode)), inode)

    async def setattr(self, inode, attr, fields, fh, ctx):
        path = self._path(inode)
        try:
            if fields.update_size:
                os.truncate(path, attr.st_size)
            if fields.update_mode:
                os.chmod(path, attr.st_mode & 0o7777)
            if fields.update_atime or fields.update_mtime:
                s = os.lstat(path)
                os.utime(path, ns=(attr.st_atime_ns if fields.update_atime else s.st_atime_ns,
                                   attr.st_mtime_ns if fields.update_mtime else s.st_mtime_ns))
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        return await self.getattr(inode)

    async def opendir(self, inode, ctx):
        path = self._path(inode)
        entries = []
        with os.scandir(path) as it:
            for entry in it:
                entries.append((os.fsencode(entry.name), entry.stat(follow_symlinks=False)))
        entries.sort()
        self.listings[inode] = entries
        return inode

    async def readdir(self, fh, start_id, token):
        entries = self.listings[fh]
        base = self._path(fh)
        for index in range(start_id, len(entries)):
            name, s = entries[index]
            path = os.path.join(base, os.fsdecode(name))
            if not pyfuse3.readdir_reply(token, name, self._attr(s), index + 1):
                return
            self.paths[s.st_ino] = path
            self.lookups[s.st_ino] += 1

    async def releasedir(self, fh):
        self.listings.pop(fh, None)

    async def mkdir(self, parent_inode, name, mode, ctx):
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        try:
            os.mkdir(path, mode)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        return self._remember(path, os.lstat(path))

    async def unlink(self, parent_inode, name, ctx):
        try:
            os.unlink(os.path.join(self._path(parent_inode), os.fsdecode(name)))
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None

    async def rmdir(self, parent_inode, name, ctx):
        try:
            os.rmdir(os.path.join(self._path(parent_inode), os.fsdecode(name)))
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None

    async def open(self, inode, flags, ctx):
        try:
            fd = os.open(self._path(inode), flags & ~os.O_CREAT)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def create(self, parent_inode, name, mode, flags, ctx):
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_TRUNC, mode)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        return pyfuse3.FileInfo(fh=fd), self._remember(path, os.fstat(fd))

    async def read(self, fh, off, size):
        return os.pread(fh, size, off)

    async def write(self, fh, off, buf):
        return os.pwrite(fh, buf, off)

    async def release(self, fh):
        os.close(fh)

    async def fsync(self, fh, datasync):
        os.fsync(fh)

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
    ops = Passthrough(os.path.abspath(source))
    options = set(pyfuse3.default_options) | {"fsname=passthrough"}
    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(_serve)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
