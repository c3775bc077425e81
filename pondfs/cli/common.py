"""What every group of ``pond`` commands shares: how a command opens the pond (one
transaction to write, or a view as of ``--at`` to read), how a command is added to the
parser, pond and host path prefixes, and times for people."""

from __future__ import annotations

import argparse
import errno
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .. import pond
from ..tinyfs import DIRECTORY, FS, FsError

POND_PREFIX = "pond:"
HOST_PREFIX = "host:"


class Commands:
    """The subcommands of ``pond``: each command group adds its own with :meth:`add`."""

    def __init__(self, parser: argparse.ArgumentParser):
        self._sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(self, name: str, func: Callable[[argparse.Namespace], int], help_text: str,
            **kw: Any) -> argparse.ArgumentParser:
        """A new subcommand ``name`` that runs ``func`` (its exit status) with the parsed
        arguments; the rest of its arguments are the caller's to add."""
        p = self._sub.add_parser(name, help=help_text,
                                 description=kw.pop("description", help_text), **kw)
        p.set_defaults(func=func)
        return p


def add_at(p: argparse.ArgumentParser) -> None:
    """The ``--at TXN|TAG|TIME`` option of a command that reads the pond."""
    p.add_argument("--at", metavar="TXN|TAG|TIME",
                   help="read the pond as of a transaction: its number, a tag, or an ISO "
                        "time (the newest transaction at or before it)")


@contextmanager
def writing(args: argparse.Namespace, runs: list[dict] | None = None) -> Iterator[FS]:
    """A writable view for one command; commits if the command finishes without error.
    ``runs`` (filled in by the command meanwhile) are the records of the runs it made
    (:mod:`pondfs.runs`): with any, it commits even if nothing changed."""
    command = "pond " + " ".join(args.argv)
    # Only cp takes --at (to copy out of the past); copying in as of it is refused.
    with pond.open_fs(args.location, write=True, at=getattr(args, "at", None),
                      holder=command, lock_wait=args.wait) as fs:
        yield fs
        with _ignoring_ctrl_c():
            args.txn = fs.commit(command, runs=runs or None)


@contextmanager
def _ignoring_ctrl_c() -> Iterator[None]:
    """Ctrl-C is ignored while a commit is under way: once its Delta log entry is written the
    transaction stands, so an interrupt then must not report that nothing was committed."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def reading(args: argparse.Namespace) -> AbstractContextManager[FS]:
    """A read-only view for one command, as of ``--at`` if the command takes it."""
    return pond.open_fs(args.location, at=getattr(args, "at", None))


def entry(fs: FS, path: str) -> tuple[str, str]:
    """The directory and name of the entry ``path`` names. As in POSIX, a trailing slash
    says the entry is a directory: ``mv f new/`` must not rename ``f`` to ``new``."""
    dir_id, name = fs.resolve_parent(path)
    if path.endswith("/"):
        node_id = fs.lookup(dir_id, name)
        if node_id is None or fs.kind(fs.resolve(path)) != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {path}")
    return dir_id, name


def split_side(path: str) -> tuple[str | None, str]:
    """Which side ``path`` names (``pond``, ``host`` or None: no prefix), and the path."""
    if path.startswith(POND_PREFIX):
        return "pond", path[len(POND_PREFIX):] or "/"
    if path.startswith(HOST_PREFIX):
        return "host", path[len(HOST_PREFIX):]
    return None, path


def iso_time(ns: int) -> str:
    """A time in nanoseconds since the epoch, local and to the nanosecond."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns // 1_000_000_000)) + \
        f".{ns % 1_000_000_000:09d}"
