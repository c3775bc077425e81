"""The inode numbers of one mount: derived from node ids, so a node keeps its number while it
exists (across the kernel forgetting it, and across mounts), counted as the kernel takes and
drops references (lookups), dropped when neither the kernel nor an open file needs them."""

from __future__ import annotations

import errno
from hashlib import blake2b

import pyfuse3

from ..tinyfs import ROOT_ID

#: Inode numbers are 63-bit (positive in a signed 64-bit st_ino); 0 and the root's are not.
_NUMBERS = 1 << 63


def stable_number(node_id: str, salt: int = 0) -> int:
    """The inode number of ``node_id`` (another one for each ``salt``, on a collision)."""
    digest = blake2b(f"{salt}:{node_id}".encode(), digest_size=8).digest()
    number = int.from_bytes(digest, "big") % _NUMBERS
    return number if number > pyfuse3.ROOT_INODE else number + pyfuse3.ROOT_INODE + 1


class InodeTable:
    """The inode numbers of one mount: a node's number is :func:`stable_number` of its id,
    so tools that remember ``st_ino`` (git's index, ``rsync -H``, ``find -inum``) see the
    same number for as long as the node exists. Two live nodes whose numbers collide (odds
    of about n²/2⁶⁴) are told apart by a salt.

    A number is kept in the table while the kernel holds lookups on it (or the mount has the
    node open) and dropped when both are gone.
    """

    def __init__(self) -> None:
        self._inode_of: dict[str, int] = {ROOT_ID: pyfuse3.ROOT_INODE}
        self._node_of: dict[int, str] = {pyfuse3.ROOT_INODE: ROOT_ID}
        self._lookups: dict[int, int] = {}

    def inode(self, node_id: str) -> int:
        """The inode number of ``node_id``, entered in the table if it is not."""
        inode = self._inode_of.get(node_id)
        if inode is None:
            salt = 0
            inode = stable_number(node_id)
            while inode in self._node_of:
                salt += 1
                inode = stable_number(node_id, salt)
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
