"""The pond follower of a mount: it shows other writers' new transactions."""

from __future__ import annotations

import errno
import logging

import trio

from ..tinyfs import DIRECTORY, FS, FsError
from .inodes import InodeTable
from .kernel import KernelCaches
from .view import ServedView

log = logging.getLogger(__name__)

#: Seconds between checks for new transactions.
FOLLOW_INTERVAL = 1.0


class PondFollower:
    """Moves ``view`` to the newest transaction when other writers (``pond``
    commands, collectors) commit, and has the kernel forget the entries, attributes and
    pages of the nodes that changed; :meth:`run` is the task doing it.

    A poll, not a check on lookup or getattr: the kernel answers those from its caches for
    minutes without asking, and a check that finds nothing costs a few ms. ``parent_dirs``
    is the mount's record of directory parents; changed nodes are dropped from it.
    """

    def __init__(self, view: ServedView, inodes: InodeTable, kernel: KernelCaches,
                 parent_dirs: dict[str, str]):
        self.view = view
        self.inodes = inodes
        self.kernel = kernel
        self.parent_dirs = parent_dirs

    async def run(self) -> None:
        """Follow every ``FOLLOW_INTERVAL`` seconds until cancelled; a failed check is
        logged and tried again."""
        while True:
            await trio.sleep(FOLLOW_INTERVAL)
            try:
                await self.follow()
            except Exception:
                log.exception("could not follow the pond past transaction %d",
                              self.view.fs.as_of)

    async def follow(self) -> int | None:
        """Move the view to the newest transaction if there is a newer one, its own
        uncommitted changes on top (:meth:`FS.follow`), and have the kernel forget what
        changed; the new transaction number, or None.

        Handles already open keep reading the version they opened; inode numbers stay (they
        belong to node ids, not views).
        """
        view = self.view
        fs = view.fs
        newest = await view.thread(_newest_txn, fs.store)
        if newest <= fs.as_of:
            return None
        old = fs.as_of
        changed = await view.thread(fs.store.changes, old, newest)
        # Directories the kernel knows whose entries changed: which names it must forget.
        known = {inode: v.node_id for v in changed if v.kind == DIRECTORY
                 and (inode := self.inodes.inode_of(v.node_id)) is not None}
        async with view.lock:
            # One call: no other call sees the view between the listings and the move.
            gone = await view.thread(_follow, fs, newest, known)
        inodes = {inode for v in changed if (inode := self.inodes.inode_of(v.node_id))}
        for node_id in {v.node_id for v in changed}:
            self.parent_dirs.pop(node_id, None)
        log.info("following the pond: transaction %d -> %d (%d nodes changed, %d known here)",
                 old, fs.as_of, len({v.node_id for v in changed}), len(inodes))
        # The kernel is told after the move, so an answer from the old view given
        # meanwhile is forgotten too.
        await self.kernel.forget(inodes, gone)
        return fs.as_of


def _follow(fs: FS, newest: int, known: dict[int, str]) -> list[tuple[int, str]]:
    """Move ``fs`` to ``newest``; the (directory inode, name) pairs of ``known``
    directories whose entries differ between before and after."""
    before = {inode: _listing_or_empty(fs, dir_id) for inode, dir_id in known.items()}
    fs.follow(newest)
    gone = []
    for inode, dir_id in known.items():
        after = _listing_or_empty(fs, dir_id)
        gone += [(inode, name) for name in before[inode].keys() | after.keys()
                 if before[inode].get(name) != after.get(name)]
    return gone


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
