"""Telling the kernel to forget what it cached of a mount (entries, attributes, pages)."""

from __future__ import annotations

import errno
import logging
import os

import pyfuse3
import trio

log = logging.getLogger(__name__)

#: Errors of an invalidation that mean there was nothing to forget (or no kernel).
_NOTHING_TO_FORGET = (errno.ENOENT, errno.ENOSYS, errno.EBADF)


class KernelCaches:
    """The kernel's caches of one mount; invalidations are no-ops until ``connected`` (the
    FUSE main loop runs)."""

    def __init__(self) -> None:
        self.connected = False

    def forget_attributes(self, inode: int) -> None:
        """The mount changed the node behind the kernel's cached attributes (its stored
        times): have the kernel ask again. Safe inside a handler: no writeback cache."""
        if self.connected:
            _invalidate_inode(inode, attr_only=True)

    async def forget(self, inodes: set[int], entries: list[tuple[int, str]]) -> None:
        """Have the kernel forget ``inodes``' attributes and pages and the names ``entries``
        (parent inode, name). In a worker thread: an entry's invalidation waits for requests
        on its directory, which the event loop must stay free to answer."""
        if self.connected:
            await trio.to_thread.run_sync(_forget, inodes, entries)


def _forget(inodes: set[int], entries: list[tuple[int, str]]) -> None:
    for inode in inodes:
        _invalidate_inode(inode, attr_only=False)
    for parent, name in entries:
        try:
            pyfuse3.invalidate_entry(parent, os.fsencode(name))
        except OSError as exc:
            if exc.errno not in _NOTHING_TO_FORGET:
                log.warning("could not invalidate %s in inode %d: %s", name, parent, exc)


def _invalidate_inode(inode: int, attr_only: bool) -> None:
    try:
        pyfuse3.invalidate_inode(inode, attr_only=attr_only)
    except OSError as exc:
        if exc.errno not in _NOTHING_TO_FORGET:
            log.warning("could not invalidate inode %d: %s", inode, exc)
