"""Real FUSE mounts for tests: a daemon per mount, always unmounted and stopped afterwards.

:class:`Mount` starts ``mount.pondfs -f`` (so the test owns the daemon's process), waits
until the mount point is a mount, and on :meth:`Mount.stop` unmounts (lazily if it must),
waits for the daemon to finish its final commit and kills it if it hangs. The daemon logs
to a file; :meth:`Mount.problems` returns its warnings and errors, which tests expect empty.
:func:`pond_tree` and :func:`check` read a pond back without FUSE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pondfs import pond
from pondfs.tinyfs import DIRECTORY, FILE, SYMLINK, Checker, read_all

MOUNT_COMMAND = [sys.executable, "-m", "pondfs.mount"]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def have_fuse() -> bool:
    """Whether this machine can mount (tests marked ``fuse`` are skipped where not)."""
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def make_pond(path: Path) -> Path:
    """A new pond with just its root directory."""
    pond.init(str(path))
    return path


def pond_tree(pond_path: Path, under: str = "/") -> dict[str, object]:
    """Relative path -> bytes (files), ("link", target) or "dir", read from the pond
    without FUSE (the shape of test_fuse.host_tree)."""
    tree: dict[str, object] = {}
    with pond.open_fs(str(pond_path)) as fs:
        base = under.rstrip("/")
        for path, node_id in fs.walk(under):
            if path == under or path == base:
                continue
            rel = path[len(base) + 1:]
            kind = fs.kind(node_id)
            if kind == DIRECTORY:
                tree[rel] = "dir"
            elif kind == SYMLINK:
                tree[rel] = ("link", fs.readlink(node_id))
            else:
                assert kind == FILE
                tree[rel] = read_all(fs, node_id)
    return tree


def check(pond_path: Path) -> None:
    """The pond passes every consistency check (tinyfs.check, as ``pond check`` runs it)."""
    with pond.open_fs(str(pond_path)) as fs:
        report = Checker(fs).run()
    assert report.problems == []



class Mount:
    """A pond mounted at ``mountpoint`` by a foreground daemon this test owns."""

    def __init__(self, pond_path: Path, mountpoint: Path, options: str = "",
                 log_path: Path | None = None):
        self.pond = pond_path
        self.mountpoint = mountpoint
        self.options = options
        self.log_path = log_path or mountpoint.with_name(mountpoint.name + ".log")
        self.process: subprocess.Popen | None = None
        #: The daemon's exit status once stopped (None while running or if killed).
        self.status: int | None = None

    def start(self) -> Mount:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.status = None
        command = [*MOUNT_COMMAND, str(self.pond), str(self.mountpoint), "-f"]
        if self.options:
            command += ["-o", self.options]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.ismount(self.mountpoint):
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"mount.pondfs exited before mounting:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mount.pondfs did not mount in time:\n{self.log()}")
            time.sleep(0.02)
        return self

    def stop(self, lazy: bool = False) -> int | None:
        """Unmount and wait for the daemon to exit; its exit status (None if it had to be
        killed). Safe to call twice."""
        process, self.process = self.process, None
        timeout = STOP_TIMEOUT
        if os.path.ismount(self.mountpoint) or _dead_mount(self.mountpoint):
            flags = "-uz" if lazy else "-u"
            done = subprocess.run(["fusermount3", flags, str(self.mountpoint)],
                                  capture_output=True)
            if done.returncode != 0:  # busy (a failed test left files open): detach it
                subprocess.run(["fusermount3", "-uz", str(self.mountpoint)],
                               capture_output=True)
                timeout = 5
        if process is None:
            return self.status
        try:
            self.status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self.status = None
        return self.status

    def kill(self) -> None:
        """SIGKILL the daemon (a crash) and clean the dead mount up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None
        subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], capture_output=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def problems(self) -> list[str]:
        """Lines of the daemon's log that report warnings, errors or tracebacks."""
        return [line for line in self.log().splitlines()
                if " WARNING " in line or " ERROR " in line or "Traceback" in line]

    def path(self, *parts: str) -> Path:
        return self.mountpoint.joinpath(*parts)


def _dead_mount(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == 107  # ENOTCONN: the daemon is gone, the mount is not
    return False
