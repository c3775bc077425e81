"""The single-writer lock of a pond: an OS file lock on ``<pond>/lock``.

``flock`` ties the lock to an open file, so the kernel releases it when the holder exits,
however it exits. While holding it, the writer keeps a one-line description of itself in the
file (pid, host, what it is, since when), which a refused writer and the CLI show to users.

Writers hold the lock for one commit at a time (see :meth:`pondfs.tinyfs.fs.FS.commit`),
so a writer that finds it taken waits for it, up to the ``wait`` seconds it was given
(``pond --wait``, default :data:`DEFAULT_WAIT`), then fails naming the holder. It waits at
least ``FINISHING_WAIT`` seconds when the holder is *finishing*: it said so
(:meth:`WriterLock.finishing`; a mount does when it is unmounted, before its last commit),
or it is a mount whose mount point is no longer mounted (``umount`` returns before the
daemon notices), so ``umount /mnt/x && pond --wait 0 cp ...`` works too.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import time
from pathlib import Path
from types import TracebackType

from pondfs.tinyfs import PondLocked

log = logging.getLogger(__name__)

#: Seconds a writer waits for the lock by default (``pond --wait``) before giving up.
DEFAULT_WAIT = 30.0
#: Seconds a writer waits at least for a finishing holder before giving up.
FINISHING_WAIT = 5.0
#: Added to its description by a holder that will release the lock shortly.
FINISHING_MARK = " [finishing: releases the lock shortly]"
#: How a read-write mount describes itself, followed by its mount point.
MOUNT_HOLDER = "mount.pondfs: mounted read-write at "
_POLL = 0.05


class WriterLock:
    """Holds ``path`` exclusively while the context is open, or raises PondLocked.

    ``holder`` says what this writer is, e.g. ``"pond copy"`` or ``"mount at /mnt/x"``;
    ``wait`` is how many seconds it waits for another holder to release the lock. Not
    reentrant: a second WriterLock on the same file waits even in the same process.
    """

    def __init__(self, path: str | os.PathLike[str], holder: str, wait: float = 0.0):
        self.path = Path(path)
        self.holder = holder
        self.wait = wait
        self._fd: int | None = None
        self._line = ""

    def __enter__(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = Deadline(self.wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
            text = _read(self.path)
            if deadline.passed(text):
                os.close(fd)
                text = text or "another process (it has not described itself yet)"
                log.debug("%s is locked by %s", self.path, text)
                raise PondLocked(text) from None
            time.sleep(_POLL)
        self._line = holder_line(self.holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (self._line + "\n").encode(), 0)
        self._fd = fd
        log.debug("took writer lock %s: %s", self.path, self._line)

    def check(self) -> None:
        """Nothing to check: a flock is held until its file is closed, it cannot be lost."""

    def finishing(self) -> None:
        """Tell writers that want the lock that this holder releases it shortly (they wait
        for it then, up to ``FINISHING_WAIT`` seconds)."""
        if self._fd is None:
            return
        line = (self._line + FINISHING_MARK + "\n").encode()
        os.pwrite(self._fd, line, 0)  # never shorter than the line it replaces
        log.debug("writer lock %s: finishing", self.path)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the only descriptor releases the flock
        log.debug("released writer lock %s", self.path)


class Deadline:
    """How long a writer still waits for a lock another holds: ``wait`` seconds from now,
    at least ``FINISHING_WAIT`` once the holder is seen finishing."""

    def __init__(self, wait: float):
        self.start = time.monotonic()
        self.end = self.start + wait
        self._extended = False

    def passed(self, holder: str) -> bool:
        """Whether to give up on the lock held by ``holder`` (its description) now."""
        if not self._extended and holder_is_finishing(holder):
            self._extended = True
            if self.end < self.start + FINISHING_WAIT:
                log.info("waiting up to %.0f s for %s to finish", FINISHING_WAIT, holder)
                self.end = self.start + FINISHING_WAIT
        return time.monotonic() > self.end


def lock_holder(path: str | os.PathLike[str]) -> str | None:
    """The description of the process holding the lock at ``path``, or None when free.

    Reads without locking, so it never gets in a writer's way. A description left by a
    process on this host that no longer exists (killed holders cannot clean up) is stale
    and reported as None.
    """
    text = _read(Path(path))
    if not text:
        return None
    pid_text, _, rest = text.partition(" on ")
    host = rest.partition(":")[0]
    if pid_text.startswith("pid ") and host == socket.gethostname():
        try:
            os.kill(int(pid_text[4:]), 0)
        except ProcessLookupError:
            return None
        except (PermissionError, ValueError):
            pass
    return text


def holder_line(holder: str) -> str:
    """How a writer describes itself in a lock: pid, host, ``holder`` and since when."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"pid {os.getpid()} on {socket.gethostname()}: {holder} (since {since})"


def holder_is_finishing(text: str) -> bool:
    """Whether the holder described by ``text`` releases the lock shortly: it says so, or it
    is a mount on this host whose mount point is not mounted any more."""
    if FINISHING_MARK.strip() in text:
        return True
    pid_text, _, rest = text.partition(" on ")
    host, _, holder = rest.partition(": ")
    if host != socket.gethostname() or not holder.startswith(MOUNT_HOLDER):
        return False
    mountpoint = holder[len(MOUNT_HOLDER):].rpartition(" (since ")[0]
    return bool(mountpoint) and mountpoint not in _mount_points()


def _mount_points() -> set[str]:
    """Every mount point this process sees (from /proc, which asks no filesystem)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    points = set()
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:
            # Spaces, tabs, newlines and backslashes are octal escapes (\040 ...).
            points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return ""
