"""The inode numbers of one mount: allocated from node ids, counted as the kernel takes and
drops references (lookups), dropped when neither the kernel nor an open file needs them."""

from __future__ import annotations

import errno

import pyfuse3

from ..tinyfs import ROOT_ID


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
