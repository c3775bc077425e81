"""The attributes a mount answers with: :func:`entry_attributes` from a node's and its open
file's state, :func:`changed_stat` for a setattr of a file removed while open, and
:func:`precise_time` for the kernel's coarse "now"."""

from __future__ import annotations

import stat as st
import time
from dataclasses import replace

from pyfuse3 import EntryAttributes

from ..tinyfs import Stat
from .files import OpenFile

#: Seconds the kernel may keep a name -> inode answer, and an inode's attributes.
ENTRY_TIMEOUT = 60.0
ATTR_TIMEOUT = 60.0
#: Computed (dynamic) nodes change when their inputs do, which the kernel is never told:
#: their entries and attributes are not cached, so a new size is seen at once.
DYNAMIC_TIMEOUT = 0.0
#: Reported as st_blksize: tools like cp size their reads and writes by it.
BLOCK_SIZE = 128 * 1024


def entry_attributes(inode: int, s: Stat, of: OpenFile | None, cached: bool) -> EntryAttributes:
    """``s`` as inode ``inode``'s attributes, with what its open file ``of`` changed and has
    not stored yet (size, and the times of the last change); ``cached``: whether the kernel
    may keep them (not for computed nodes of a view that moves)."""
    attr = EntryAttributes()
    attr.st_ino = inode
    attr.generation = 0
    attr.entry_timeout = ENTRY_TIMEOUT if cached else DYNAMIC_TIMEOUT
    attr.attr_timeout = ATTR_TIMEOUT if cached else DYNAMIC_TIMEOUT
    attr.st_mode = s.mode
    attr.st_nlink = s.nlink
    attr.st_uid = s.uid
    attr.st_gid = s.gid
    attr.st_rdev = s.rdev
    attr.st_size = s.size
    attr.st_blksize = BLOCK_SIZE
    attr.st_blocks = (s.size + 511) // 512
    attr.st_atime_ns = s.atime_ns
    attr.st_mtime_ns = s.mtime_ns
    attr.st_ctime_ns = s.ctime_ns
    if of is not None and of.spool is not None:
        attr.st_size = of.size
        attr.st_blocks = (of.size + 511) // 512
        if of.dirty:  # changed since it was stored: the time of the last change
            attr.st_mtime_ns = of.mtime_ns
            attr.st_ctime_ns = max(s.ctime_ns, of.changed_ns)
    return attr


def changed_stat(s: Stat, changes: dict[str, int]) -> Stat:
    """``s`` with a setattr's ``changes`` (permission bits of ``mode`` only) and ctime now."""
    mode = changes.get("mode")
    return replace(s, mode=s.mode if mode is None else st.S_IFMT(s.mode) | (mode & 0o7777),
                   uid=changes.get("uid", s.uid), gid=changes.get("gid", s.gid),
                   atime_ns=changes.get("atime_ns", s.atime_ns),
                   mtime_ns=changes.get("mtime_ns", s.mtime_ns), ctime_ns=time.time_ns())


def precise_time(time_ns: int) -> int:
    """``time_ns`` as the mount stamps it: the kernel sends "now" (``touch``, ``utime(None)``)
    as its coarse clock, up to a tick behind the fine clock the mount stamps changes with,
    so a time within the last tick of the coarse clock is taken for "now" and read again
    finely (else a file touched after a write would go back in time)."""
    coarse = time.clock_gettime_ns(_CLOCK_REALTIME_COARSE)
    if 0 <= coarse - time_ns <= _COARSE_TICK_NS:
        return max(time.time_ns(), time_ns)
    return time_ns


#: Linux's clock id of the kernel's coarse clock (the time module has no name for it).
_CLOCK_REALTIME_COARSE = 5
_COARSE_TICK_NS = int(time.clock_getres(_CLOCK_REALTIME_COARSE) * 1e9)
