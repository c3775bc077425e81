"""The single-writer lock of a pond: an OS file lock on ``<pond>/lock``.

``flock`` ties the lock to an open file, so the kernel releases it when the holder exits,
however it exits. While holding it, the writer keeps a one-line description of itself in the
file (pid, host, what it is, since when), which a refused writer and the CLI show to users.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from pondfs.tinyfs.errors import PondLocked

log = logging.getLogger(__name__)


class WriterLock:
    """Holds ``path`` exclusively while the context is open, or raises PondLocked.

    ``holder`` says what this writer is, e.g. ``"pond copy"`` or ``"mount at /mnt/x"``.
    Not reentrant: a second WriterLock on the same file is refused even in the same process.
    """

    def __init__(self, path: str | os.PathLike[str], holder: str):
        self.path = Path(path)
        self.holder = holder
        self._fd: int | None = None

    def __enter__(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise
            text = _read(self.path) or "another process (it has not described itself yet)"
            log.debug("%s is locked by %s", self.path, text)
            raise PondLocked(text) from None
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"pid {os.getpid()} on {socket.gethostname()}: {self.holder} (since {since})\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, line.encode(), 0)
        self._fd = fd
        log.debug("took writer lock %s: %s", self.path, line.strip())

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


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return ""
