"""``mount.pondfs``: mount a pond with FUSE, as a mount(8) helper.

    mount.pondfs POND MOUNTPOINT [-o OPTIONS] [-f] [-v] [-s] [-n]

POND is a directory or ``s3://bucket/prefix`` (a pond that lives in S3, read-only or
read-write: the AWS settings of the environment apply, see :mod:`pondfs.s3`).
Options (comma-separated after ``-o``): ``ro``; ``at=TXN|TAG|TIME`` (read-only, the pond as of
the transaction it names, see :func:`pondfs.tinyfs.resolve_at`); ``allow_other``; ``fg``
(stay in the foreground, like ``-f``); ``debug``
(log every request); ``commit_interval=SECONDS`` (group commit period, default 0.5);
``log=PATH`` (where the background daemon logs; default ``~/.cache/pondfs/mount.log``);
``spool=DIR`` (where open files are spooled; default the system temporary directory);
``nonempty`` (allow a non-empty mount point); ``readahead_kb=N`` (the kernel's read-ahead for
the mount, default 4096: FUSE's own 128 KiB makes sequential cold reads ~3x slower; set as
root through the mount's BDI in sysfs, skipped with a warning when that is not possible).
Generic options that mount(8) and fstab pass (``rw``, ``defaults``, ``noauto``, ``user``,
``_netdev``, ``x-*`` ...) are accepted and ignored.

Without ``-f`` the command returns once the mount answers, leaving a daemon that is a fresh
process (not a fork: forking after Delta Lake has started its runtime panics). Errors are one
line on stderr with exit status 1 (bad invocation) or 32 (the mount failed), as mount(8)
expects of helpers. Unmounting (``umount``, ``fusermount3 -u``, SIGINT/SIGTERM to the daemon)
commits everything written first.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial

from .locations import is_s3_url

log = logging.getLogger(__name__)

EXIT_USAGE = 1
EXIT_FAILURE = 32
#: Seconds to wait for the daemon to mount and answer.
READY_TIMEOUT = 60.0
#: The kernel read-ahead (KiB) a mount asks for (see ``readahead_kb=``).
READAHEAD_KB = 4096
USAGE = "usage: mount.pondfs POND MOUNTPOINT [-o OPTIONS] [-f] [-v] [-s] [-n]"

#: Options mount(8) and fstab pass to every helper: meaningless here, accepted.
GENERIC_OPTIONS = frozenset({
    "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
    "_netdev", "nofail", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "async",
    "sync", "atime", "noatime", "relatime", "strictatime", "nodiratime", "diratime",
    "loud", "silent", "lazytime", "nolazytime",
})


class MountError(Exception):
    """A mount that cannot be made: a one-line message for the user and an exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


@dataclass
class MountOptions:
    """What ``-o`` and the flags asked for."""

    read_only: bool = False
    at: str | None = None  # a transaction number, tag or ISO time (resolve_at)
    allow_other: bool = False
    foreground: bool = False
    debug: bool = False
    commit_interval: float = 0.5
    log: str | None = None
    spool: str | None = None
    nonempty: bool = False
    readahead_kb: int = READAHEAD_KB
    sloppy: bool = False

    def to_text(self) -> str:
        """The ``-o`` text that gives these options back (for the daemon's command line)."""
        parts = ["ro" if self.read_only else "rw", f"commit_interval={self.commit_interval}",
                 f"readahead_kb={self.readahead_kb}"]
        if self.at is not None:
            parts.append(f"at={self.at}")
        for flag in ("allow_other", "debug", "nonempty"):
            if getattr(self, flag):
                parts.append(flag)
        if self.spool:
            parts.append(f"spool={self.spool}")
        return ",".join(parts)


def parse_options(text: str, options: MountOptions) -> None:
    """Apply one ``-o`` argument to ``options``; MountError names a bad option."""
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key == "ro":
            options.read_only = True
        elif key == "rw":
            options.read_only = False
        elif key == "at":
            if not value:
                raise MountError("at= needs a transaction number, a tag or an ISO time",
                                 EXIT_USAGE)
            options.at = value
            options.read_only = True
        elif key in ("allow_other", "debug", "nonempty"):
            setattr(options, key, True)
        elif key in ("fg", "foreground"):
            options.foreground = True
        elif key == "commit_interval":
            try:
                options.commit_interval = float(value)
            except ValueError:
                options.commit_interval = -1
            if not options.commit_interval > 0:
                raise MountError(f"commit_interval= needs a positive number of seconds, "
                                 f"not {value!r}", EXIT_USAGE)
        elif key == "readahead_kb":
            if not value.isdigit():
                raise MountError(f"readahead_kb= needs a number of KiB, not {value!r}",
                                 EXIT_USAGE)
            options.readahead_kb = int(value)
        elif key in ("log", "spool"):
            if not value:
                raise MountError(f"{key}= needs a path", EXIT_USAGE)
            setattr(options, key, os.path.abspath(value))
        elif key in GENERIC_OPTIONS or key.startswith("x-") or key == "comment":
            continue
        elif not options.sloppy:
            raise MountError(f"unknown mount option {item!r}", EXIT_USAGE)


def parse_args(argv: Sequence[str]) -> tuple[str, str, MountOptions, int | None]:
    """(pond, mountpoint, options, ready fd) from the command line."""
    options = MountOptions()
    positional: list[str] = []
    option_texts: list[str] = []
    ready_fd = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            raise MountError(USAGE, 0)
        if arg == "-o" or (arg.startswith("-o") and len(arg) > 2):
            if arg == "-o":
                if not args:
                    raise MountError("-o needs options", EXIT_USAGE)
                arg = "-o" + args.pop(0)
            option_texts.append(arg[2:])
        elif arg == "--ready-fd" and args:
            ready_fd = int(args.pop(0))
        elif arg.startswith("-") and len(arg) > 1 and not arg.startswith("--"):
            for flag in arg[1:]:
                if flag == "f":
                    options.foreground = True
                elif flag == "s":
                    options.sloppy = True
                elif flag in "nv":
                    pass  # no mtab to skip; verbosity is the log's business
                else:
                    raise MountError(f"unknown flag -{flag}\n{USAGE}", EXIT_USAGE)
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise MountError(USAGE, EXIT_USAGE)
    for text in option_texts:
        parse_options(text, options)
    pond, mountpoint = positional
    if not is_s3_url(pond):
        pond = os.path.abspath(pond)
    return pond, os.path.abspath(mountpoint), options, ready_fd


def check_mountpoint(mountpoint: str, options: MountOptions) -> None:
    """MountError unless ``mountpoint`` is an existing, empty directory nothing is mounted on."""
    try:
        if os.path.ismount(mountpoint):
            raise MountError(f"{mountpoint} is already a mount point")
        entries = os.listdir(mountpoint)
    except FileNotFoundError:
        raise MountError(f"mount point {mountpoint} does not exist") from None
    except NotADirectoryError:
        raise MountError(f"mount point {mountpoint} is not a directory") from None
    except OSError as exc:
        hint = " (a dead mount? try fusermount3 -uz)" if exc.errno == errno.ENOTCONN else ""
        raise MountError(f"mount point {mountpoint}: {exc.strerror}{hint}") from None
    if entries and not options.nonempty:
        raise MountError(f"mount point {mountpoint} is not empty (use -o nonempty to mount "
                         "over it anyway)")


def check_pond(pond: str) -> None:
    """MountError unless ``pond`` is a directory (the daemon checks it holds a pond) or an
    S3 URL (the daemon checks the bucket)."""
    if is_s3_url(pond):
        return
    if not os.path.exists(pond):
        raise MountError(f"{pond}: no such pond")
    if not os.path.isdir(pond):
        raise MountError(f"{pond}: not a pond (not a directory)")


def set_readahead(mountpoint: str, kib: int) -> None:
    """Set the kernel's read-ahead for the FUSE mount at ``mountpoint`` through its BDI in
    sysfs. Call it once the mount serves: the stat here waits for FUSE's INIT, which resets
    the read-ahead to at most 128 KiB. A warning, not an error, when not possible (not root)."""
    try:
        info = os.stat(mountpoint)
        if os.major(info.st_dev) != 0:
            # Not a FUSE device (which is anonymous, major 0): the mount is gone and this is
            # the host directory under it, whose disk's read-ahead is not ours to change.
            log.debug("%s was unmounted before its read-ahead was set", mountpoint)
            return
        setting = f"/sys/class/bdi/{os.major(info.st_dev)}:{os.minor(info.st_dev)}/read_ahead_kb"
        with open(setting, "w") as out:
            out.write(f"{kib}\n")
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.ismount(mountpoint):
            # Unmounted between the stat and the write (a short-lived mount): nothing to set.
            log.debug("%s was unmounted before its read-ahead was set", mountpoint)
            return
        log.warning("could not set the read-ahead of %s to %d KiB: %s", mountpoint, kib, exc)


def default_log() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "pondfs", "mount.log")


def start_daemon(pond: str, mountpoint: str, options: MountOptions) -> None:
    """Start the daemon as a fresh process and return once the mount answers."""
    log_path = options.log or default_log()
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "pondfs.mount", pond, mountpoint, "-f",
               "-o", options.to_text() + f",log={log_path}", "--ready-fd", str(write_end)]
    with open(log_path, "ab") as log_file:
        daemon = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                  stderr=log_file, pass_fds=(write_end,), cwd="/",
                                  start_new_session=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        message = _read_until_eof(ready, READY_TIMEOUT).decode(errors="replace").strip()
    if message != "ok":
        try:
            code = daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = daemon.wait()
        raise MountError(message or f"the daemon exited with status {code} before mounting; "
                         f"see {log_path}")
    if not _answers(mountpoint, READY_TIMEOUT):
        raise MountError(f"{mountpoint} was mounted but does not answer; see {log_path}")


def _read_until_eof(stream, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            return data
        data += chunk
    raise MountError(f"the daemon did not report within {timeout:.0f} s")


def _answers(mountpoint: str, timeout: float) -> bool:
    """Whether the mount answers a stat within ``timeout`` (a hung daemon would block it)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            os.stat(mountpoint)
            result.append(os.path.ismount(mountpoint))
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def run_daemon(pond: str, mountpoint: str, options: MountOptions, ready_fd: int | None) -> int:
    """Open the pond, mount it and serve until unmounted; the exit status.

    ``ready_fd`` (the background case) gets "ok" once mounted, or the error message.
    """
    _setup_logging(options)

    def report(message: str) -> None:
        if ready_fd is not None:
            os.write(ready_fd, message.encode())
            os.close(ready_fd)
        elif message != "ok":
            print(f"mount.pondfs: {message}", file=sys.stderr)

    # Imported here so that the parent of a background mount never loads the oplog.
    import pyfuse3
    import trio

    from . import mounts
    from . import pond as pond_module
    from .fuse_ops import PondOperations, serve
    from .oplog.lock import MOUNT_HOLDER
    from .tinyfs import FsError

    with ExitStack() as stack:
        try:
            check_pond(pond)
            fs = stack.enter_context(pond_module.open_fs(
                pond, write=not options.read_only, at=options.at,
                holder=MOUNT_HOLDER + mountpoint))
        except (MountError, FsError) as exc:
            report(str(exc))
            return EXIT_FAILURE
        disk = fs.store.disk_dir()
        ops = PondOperations(fs, mountpoint=mountpoint, read_only=options.read_only,
                             commit_interval=options.commit_interval, spool_dir=options.spool,
                             statfs_path=None if disk is None else str(disk))
        fuse_options = set(pyfuse3.default_options)
        fuse_options |= {f"fsname={pond}", "subtype=pondfs"}
        if options.read_only:
            fuse_options.add("ro")
        if options.allow_other:
            fuse_options.add("allow_other")
        if options.debug:
            fuse_options.add("debug")
        try:
            pyfuse3.init(ops, mountpoint, fuse_options)
        except RuntimeError as exc:
            report(f"could not mount {mountpoint}: {exc}")
            return EXIT_FAILURE
        log.info("mounted %s at %s (%s)", pond, mountpoint, options.to_text())
        if disk is not None:
            stack.callback(mounts.unregister, mounts.register(
                disk, mountpoint, "ro" if options.read_only else "rw"))
        report("ok")
        os.chdir("/")
        unmount = True
        try:
            unmount = trio.run(serve, ops, partial(set_readahead, mountpoint,
                                                   options.readahead_kb))
        finally:
            pyfuse3.close(unmount=unmount)
        log.info("unmounted %s: %d commits", mountpoint, ops.committer.commits)
        log.info("%s", ops.operations.log_line())
    return 0


def _setup_logging(options: MountOptions) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s: %(message)s",
        "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if options.debug else logging.INFO)
    if not options.debug:
        from .oplog import LIBRARY_LOGGERS

        for noisy in ("pyfuse3", *LIBRARY_LOGGERS):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``mount.pondfs`` command."""
    try:
        pond, mountpoint, options, ready_fd = parse_args(sys.argv[1:] if argv is None else argv)
        if ready_fd is None:
            check_pond(pond)
            check_mountpoint(mountpoint, options)
        if options.foreground or ready_fd is not None:
            code = run_daemon(pond, mountpoint, options, ready_fd)
            # Skip interpreter teardown: after heavy Delta Lake use it has aborted, which
            # would turn a clean unmount into a failure status.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        start_daemon(pond, mountpoint, options)
        return 0
    except MountError as exc:
        print(exc if exc.code == 0 else f"mount.pondfs: {exc}",
              file=sys.stdout if exc.code == 0 else sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
