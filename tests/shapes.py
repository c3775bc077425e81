"""Host trees to compare (the host filesystem is the reference): what a tree is (types,
modes, link counts, device numbers, sizes, bytes, shared inodes), and a tree that holds hard
links and special files."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import stat
from contextlib import chdir
from pathlib import Path


def shape(root: Path) -> tuple[dict[str, tuple], set[frozenset[str]]]:
    """Per path below ``root``: (st_mode, st_nlink, st_rdev, size, the SHA-256 of a file's
    bytes or a symlink's target; no size for a directory, which filesystems count
    differently); and the sets of paths that name one inode."""
    entries: dict[str, tuple] = {}
    inodes: dict[int, set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            s = os.lstat(full)
            body: object = None
            if stat.S_ISREG(s.st_mode):
                body = hashlib.sha256(Path(full).read_bytes()).hexdigest()
            elif stat.S_ISLNK(s.st_mode):
                body = os.readlink(full)
            size = None if stat.S_ISDIR(s.st_mode) else s.st_size
            entries[rel] = (s.st_mode, s.st_nlink, s.st_rdev, size, body)
            if not stat.S_ISDIR(s.st_mode):
                inodes.setdefault(s.st_ino, set()).add(rel)
    return entries, {frozenset(names) for names in inodes.values()}


def make_linked_source(root: Path) -> Path:
    """A tree holding hard links (in one directory and across two), a FIFO, a socket, a
    character device (as root), a symlink and plain files."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "one").write_bytes(b"one\n" * 1000)
    os.link(root / "a" / "one", root / "a" / "one-again")
    os.link(root / "a" / "one", root / "b" / "one-elsewhere")
    (root / "b" / "big").write_bytes(random.Random(5).randbytes(300_000))
    os.link(root / "b" / "big", root / "big")
    (root / "plain").write_text("just one name\n")
    (root / "link").symlink_to("a/one")
    os.mkfifo(root / "b" / "fifo")
    with chdir(root), socket.socket(socket.AF_UNIX) as bound:
        bound.bind("sock")  # the socket file stays after the socket is closed
    if os.geteuid() == 0:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return root
