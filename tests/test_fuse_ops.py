"""The FUSE handlers without the kernel: :class:`PondOperations` driven in-process under
``trio.run``, on both stores (memory and a real Delta oplog), as the kernel would drive them
(S3QL tests its ``fs.py`` the same way before its mount tests).

:class:`Kernel` plays the kernel's part: it passes a request context, counts the references
each reply gives (and forgets them), collects readdir entries, and closes a file as the
kernel does (flush, then release). Every test ends with the pond checker.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pyfuse3
import pytest
import trio

from pondfs.fuse_ops import PondOperations
from pondfs.tinyfs import FS, Persistence, read_all
from pondfs.tinyfs.check import Checker


@dataclass
class Ctx:
    """The request context the kernel passes (who asks)."""

    uid: int = 1000
    gid: int = 1000
    pid: int = 1
    umask: int = 0o022


@dataclass
class Fields:
    """Which attributes a setattr changes (pyfuse3.SetattrFields is read-only)."""

    update_size: bool = False
    update_mode: bool = False
    update_uid: bool = False
    update_gid: bool = False
    update_atime: bool = False
    update_mtime: bool = False
    update_ctime: bool = False


class Kernel:
    """Drives ``ops`` as the kernel would, keeping the kernel's lookup counts."""

    def __init__(self, ops: PondOperations):
        self.ops = ops
        self.ctx = Ctx()
        self.references: dict[int, int] = {}
        ops.readdir_reply = self._reply  # type: ignore[method-assign]

    def _took(self, attr: pyfuse3.EntryAttributes) -> pyfuse3.EntryAttributes:
        if attr.st_ino:
            self.references[attr.st_ino] = self.references.get(attr.st_ino, 0) + 1
        return attr

    @staticmethod
    def _reply(token: list, name: bytes, attr: pyfuse3.EntryAttributes, next_id: int) -> bool:
        token.append((name, attr))
        return True

    async def lookup(self, parent: int, name: str) -> pyfuse3.EntryAttributes:
        return self._took(await self.ops.lookup(parent, name.encode(), self.ctx))

    async def create(self, parent: int, name: str, mode: int = 0o644,
                     flags: int = os.O_WRONLY) -> tuple[int, int]:
        info, attr = await self.ops.create(parent, name.encode(), stat.S_IFREG | mode, flags,
                                           self.ctx)
        self._took(attr)
        return info.fh, attr.st_ino

    async def mkdir(self, parent: int, name: str) -> int:
        attr = await self.ops.mkdir(parent, name.encode(), stat.S_IFDIR | 0o755, self.ctx)
        return self._took(attr).st_ino

    async def open(self, inode: int, flags: int) -> int:
        return (await self.ops.open(inode, flags, self.ctx)).fh

    async def close(self, fh: int) -> None:
        await self.ops.flush(fh)
        await self.ops.release(fh)

    async def write_file(self, parent: int, name: str, data: bytes) -> int:
        """``open(name, "wb").write(data)``: create or truncate, write, close; the inode."""
        attr = await self.lookup(parent, name)
        if attr.st_ino:
            inode = attr.st_ino
            fh = await self.open(inode, os.O_WRONLY | os.O_TRUNC)
        else:
            fh, inode = await self.create(parent, name)
        await self.ops.write(fh, 0, data)
        await self.close(fh)
        return inode

    async def read_file(self, inode: int) -> bytes:
        fh = await self.open(inode, os.O_RDONLY)
        size = (await self.ops.getattr(inode, self.ctx)).st_size
        data = await self.ops.read(fh, 0, size + 1)
        await self.ops.release(fh)
        return data

    async def truncate(self, inode: int, size: int, fh: int | None = None) -> None:
        attr = pyfuse3.EntryAttributes()
        attr.st_size = size
        await self.ops.setattr(inode, attr, Fields(update_size=True), fh, self.ctx)

    async def listdir(self, inode: int) -> list[str]:
        fh = await self.ops.opendir(inode, self.ctx)
        entries: list = []
        await self.ops.readdir(fh, 0, entries)
        await self.ops.releasedir(fh)
        for name, attr in entries:
            if name not in (b".", b".."):
                self._took(attr)
        return sorted(os.fsdecode(n) for n, _ in entries if n not in (b".", b".."))

    async def forget_all(self) -> None:
        await self.ops.forget(list(self.references.items()))
        self.references.clear()


ROOT = pyfuse3.ROOT_INODE


def serve(store: Persistence, test: Callable[[Kernel], Awaitable[None]], **options) -> None:
    """Run ``test`` against a read-write PondOperations on a new view of ``store``, then
    commit what it left staged and check the pond."""
    ops = PondOperations(FS(store), **options)

    async def main() -> None:
        await test(Kernel(ops))
        await ops.write_back_all()
        await ops.committer.commit("end of test")

    trio.run(main)
    report = Checker(FS(store)).run()
    assert report.ok, report.problems


def stored(store: Persistence, path: str) -> bytes | None:
    """The committed content at ``path``, or None if the committed pond has no such file."""
    fs = FS(store)
    try:
        return read_all(fs, fs.resolve(path))
    except Exception:
        return None


def test_create_write_close_and_the_commit_keeps_it(store) -> None:
    async def test(k: Kernel) -> None:
        d = await k.mkdir(ROOT, "d")
        inode = await k.write_file(d, "f", b"hello")
        assert await k.read_file(inode) == b"hello"
        assert (await k.ops.getattr(inode, k.ctx)).st_size == 5
        assert await k.listdir(d) == ["f"]
        assert await k.ops.committer.commit("now") is not None
        assert stored(store, "/d/f") == b"hello"

    serve(store, test)


@pytest.mark.parametrize("path", ["open O_TRUNC", "setattr size=0"])
def test_the_two_truncate_paths_the_kernel_can_take_agree(store, path: str) -> None:
    """With atomic O_TRUNC the kernel passes O_TRUNC to open; without it, it opens and then
    truncates with setattr(size=0) on the handle. Both give the same file and times."""
    async def test(k: Kernel) -> None:
        inode = await k.write_file(ROOT, "f", b"hello world\n" * 10)
        await k.ops.committer.commit("first")
        before = await k.ops.getattr(inode, k.ctx)
        await trio.sleep(0.01)
        if path == "open O_TRUNC":
            fh = await k.open(inode, os.O_WRONLY | os.O_TRUNC)
        else:
            fh = await k.open(inode, os.O_WRONLY)
            await k.truncate(inode, 0, fh)
        assert (await k.ops.getattr(inode, k.ctx)).st_size == 0
        assert stored(store, "/f") == b"hello world\n" * 10  # staged at close, not before
        await k.ops.write(fh, 0, b"bye\n")
        await k.close(fh)
        after = await k.ops.getattr(inode, k.ctx)
        assert after.st_size == 4 and await k.read_file(inode) == b"bye\n"
        assert after.st_mtime_ns > before.st_mtime_ns
        assert after.st_ctime_ns > before.st_ctime_ns
        await k.ops.committer.commit("second")
        assert stored(store, "/f") == b"bye\n"

    serve(store, test)


def test_o_trunc_with_nothing_written_still_truncates(store) -> None:
    async def test(k: Kernel) -> None:
        inode = await k.write_file(ROOT, "f", b"old")
        await k.close(await k.open(inode, os.O_RDONLY | os.O_TRUNC))
        assert await k.read_file(inode) == b""
        await k.ops.committer.commit("c")
        assert stored(store, "/f") == b""

    serve(store, test)


def test_a_new_file_is_held_out_of_commits_until_closed(store) -> None:
    async def test(k: Kernel) -> None:
        await k.write_file(ROOT, "closed", b"closed")
        fh, inode = await k.create(ROOT, "open")
        await k.ops.write(fh, 0, b"half")
        await k.ops.committer.commit("meanwhile")
        assert stored(store, "/closed") == b"closed"
        assert stored(store, "/open") is None
        assert await k.listdir(ROOT) == ["closed", "open"]  # the mount itself shows it
        await k.ops.fsync(fh, False)  # an fsync counts as a close
        assert stored(store, "/open") == b"half"
        await k.ops.write(fh, 4, b" and more")
        await k.ops.committer.commit("after more writes")
        assert stored(store, "/open") == b"half"
        await k.close(fh)
        await k.ops.committer.commit("closed")
        assert stored(store, "/open") == b"half and more"

    serve(store, test)


def test_rename_over_unlink_and_forget_free_the_inodes(store) -> None:
    async def test(k: Kernel) -> None:
        a = await k.write_file(ROOT, "a", b"A")
        await k.write_file(ROOT, "b", b"B")
        await k.ops.rename(ROOT, b"a", ROOT, b"b", 0, k.ctx)
        assert (await k.lookup(ROOT, "b")).st_ino == a
        assert (await k.lookup(ROOT, "a")).st_ino == 0
        assert await k.read_file(a) == b"A"
        with pytest.raises(pyfuse3.FUSEError) as caught:
            await k.ops.rename(ROOT, b"b", ROOT, b"c", pyfuse3.RENAME_EXCHANGE, k.ctx)
        assert caught.value.errno == errno.EINVAL
        await k.ops.unlink(ROOT, b"b", k.ctx)
        assert await k.listdir(ROOT) == []
        await k.forget_all()
        assert len(k.ops.inodes) == 1  # only the root is left
        with pytest.raises(pyfuse3.FUSEError) as caught:
            await k.ops.getattr(a, k.ctx)
        assert caught.value.errno == errno.ESTALE

    serve(store, test)


def test_the_group_committer_task_commits_quiet_changes(store) -> None:
    async def test(k: Kernel) -> None:
        before = store.last_txn()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(k.ops.committer.run)
            for i in range(50):
                await k.write_file(ROOT, f"f{i:02}", b"x" * i)
            with trio.fail_after(10):
                while stored(store, "/f49") is None:
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        assert 1 <= store.last_txn() - before <= 5
        assert all(stored(store, f"/f{i:02}") == b"x" * i for i in range(50))

    serve(store, test, commit_interval=0.05)


def test_a_following_view_shows_other_writers_and_open_handles_keep_their_version(store
                                                                                  ) -> None:
    writer = FS(store)
    node = writer.create(writer.resolve("/"), "f")
    writer.write_content(node, [b"first"])
    writer.commit("first")
    ops = PondOperations(FS(store), read_only=True)
    assert ops.follower is not None

    async def main() -> None:
        k = Kernel(ops)
        inode = (await k.lookup(ROOT, "f")).st_ino
        fh = await k.open(inode, os.O_RDONLY)
        other = FS(store)
        other.write_content(node, [b"second"])
        other.create(other.resolve("/"), "g")
        txn = other.commit("second")
        assert await ops.follower.follow() == txn
        assert await ops.follower.follow() is None  # nothing newer
        assert await k.ops.read(fh, 0, 100) == b"first"
        await k.ops.release(fh)
        assert await k.read_file(inode) == b"second"
        assert await k.listdir(ROOT) == ["f", "g"]
        with pytest.raises(pyfuse3.FUSEError) as caught:
            await k.ops.open(inode, os.O_WRONLY, k.ctx)
        assert caught.value.errno == errno.EROFS

    trio.run(main)
    assert Checker(FS(store)).run().ok


def test_lookup_of_dot_dot_answers_the_parent(store) -> None:
    """The kernel resolves '..' itself, except for an exported (NFS) mount."""
    async def test(k: Kernel) -> None:
        d = await k.mkdir(ROOT, "d")
        e = await k.mkdir(d, "e")
        for known in (True, False):  # from the mount's own record, or from the view
            if not known:
                k.ops._parent_dirs.clear()
            assert (await k.lookup(e, "..")).st_ino == d
            assert (await k.lookup(d, "..")).st_ino == ROOT
            assert (await k.lookup(ROOT, "..")).st_ino == ROOT

    serve(store, test)


def test_a_node_keeps_its_inode_number_after_the_kernel_forgets_it(store) -> None:
    """git's index, rsync -H and find -inum remember st_ino: a node's number must not
    change when the kernel forgets the node (memory pressure) and looks it up again."""
    async def test(k: Kernel) -> None:
        d = await k.mkdir(ROOT, "d")
        f = await k.write_file(d, "f", b"x")
        await k.forget_all()
        assert len(k.ops.inodes) == 1
        d_again = (await k.lookup(ROOT, "d")).st_ino
        assert (d_again, (await k.lookup(d_again, "f")).st_ino) == (d, f)

    serve(store, test)


def test_a_name_that_is_not_utf8_is_refused_before_anything_is_staged(store) -> None:
    """A pond keeps names as text: a name of other bytes is EILSEQ (it was accepted, and
    then every commit failed), as are such link targets and attribute names."""
    bad = b"caf\xe9"  # Latin-1, not UTF-8

    async def test(k: Kernel) -> None:
        for attempt in (lambda: k.ops.create(ROOT, bad, stat.S_IFREG | 0o644, os.O_WRONLY,
                                             k.ctx),
                        lambda: k.ops.mkdir(ROOT, bad, stat.S_IFDIR | 0o755, k.ctx),
                        lambda: k.ops.symlink(ROOT, b"link", bad, k.ctx)):
            with pytest.raises(pyfuse3.FUSEError) as caught:
                await attempt()
            assert caught.value.errno == errno.EILSEQ
        inode = await k.write_file(ROOT, "f", b"x")
        with pytest.raises(pyfuse3.FUSEError) as caught:
            await k.ops.setxattr(inode, b"user." + bad, b"1", k.ctx)
        assert caught.value.errno == errno.EILSEQ
        assert (await k.ops.lookup(ROOT, bad, k.ctx)).st_ino == 0
        assert await k.ops.committer.commit("after the refusals") is not None
        assert stored(store, "/f") == b"x"

    serve(store, test)
