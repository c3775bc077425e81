"""``pond cp``: copy files and trees between the host and the pond, either way."""

from __future__ import annotations

import argparse
import errno
import os
import stat as st
from collections.abc import Iterator

import pyarrow as pa

from ..progress import progress_bar
from ..tinyfs import (
    DATA,
    DIRECTORY,
    FS,
    SERIES,
    SPECIAL_KINDS,
    SYMLINK,
    TABLE,
    FsError,
    read_csv,
    read_parquet,
)
from .common import Commands, add_at, entry, reading, split_side, writing
from .errors import CommandError


def add_commands(commands: Commands) -> None:
    """Add cp."""
    command = commands.add

    p = command("cp", cmd_cp, "copy files between the host and the pond", description=CP_HELP,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-r", "--recursive", action="store_true", help="copy directories")
    p.add_argument("--format", choices=[DATA, TABLE, SERIES], help="format of new pond files")
    p.add_argument("--time-column", help="a series' time column (default: timestamp)")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("dest", metavar="DEST")
    add_at(p)


CP_HELP = """\
Copy files between the host and the pond, as one transaction.

Which side a path is on: a path written pond:/x is in the pond and host:x on the host.
Without a prefix, the sources are host paths and the destination is a pond path (copying
in); once any source says pond:, the copy goes out and an unprefixed destination is a host
path. Copying within the pond is not supported (use pond mv).

Formats (--format): data (raw bytes), table (one Parquet table) or series (each copy
appends a version; CSV input is converted to Parquet). Without --format a copy into an
existing file keeps its format; a new file is data. A series read out is one Parquet file.

Hard links within one copy stay hard links, and FIFOs, sockets and device nodes are made
again (not read), both ways, as cp -a, rsync -aH and tar do (device nodes need root).

When a copy in returns, its transaction is committed: every later reader sees all of it,
and a crash of any process after that cannot undo it. Like cp, it does not wait for the
disk: run sync(1) after it if it must survive a power loss or an operating-system crash
(until then the pond may come back without that transaction, or fail pond check on it).
"""


def cmd_cp(args: argparse.Namespace) -> int:
    """pond cp SOURCE... DEST, in or out of the pond (see CP_HELP)."""
    sources = [split_side(p) for p in args.sources]
    dest_side, dest = split_side(args.dest)
    outward = any(side == "pond" for side, _ in sources)
    if outward:
        if any(side != "pond" for side, _ in sources) or dest_side == "pond":
            raise CommandError("copy within the pond, or from both sides at once, is not "
                               "supported (see pond cp --help)")
        with reading(args) as fs:
            _copy_out(fs, [p for _, p in sources], dest, args.recursive)
        return 0
    if dest_side == "host" or any(side == "pond" for side, _ in sources):
        raise CommandError("one side must be the pond (see pond cp --help)")
    host_sources = [p for _, p in sources]
    for src in host_sources:
        # As in cp, a symlink named as a source is followed unless copying recursively.
        if not (os.path.lexists(src) if args.recursive else os.path.exists(src)):
            raise FsError(errno.ENOENT, f"{src}: no such file or directory")
        if os.path.isdir(src) and not args.recursive:
            raise FsError(errno.EISDIR, f"{src}: is a directory (use -r)")
    with writing(args) as fs:
        copier = _CopyIn(fs, args.format, args.time_column)
        copier.run(host_sources, dest, follow=not args.recursive)
    return 0


class _CopyIn:
    """Copies host files and trees into one pond transaction, with a progress bar; host
    names of one inode become names of one node."""

    def __init__(self, fs: FS, fmt: str | None, time_column: str | None):
        self.fs = fs
        self.fmt = fmt
        self.time_column = time_column
        self.uid, self.gid = os.getuid(), os.getgid()
        #: (st_dev, st_ino) of each host file with several names copied so far -> its node.
        self.copied: dict[tuple[int, int], str] = {}

    def run(self, sources: list[str], dest: str, *, follow: bool) -> None:
        """Copy every source to ``dest`` (into it when it is a directory); ``follow``
        copies what a source that is a symlink points to, not the link."""
        total = sum(_tree_size(os.path.realpath(s) if follow else s) for s in sources)
        dest_id = self._existing(dest)
        into_dir = dest_id is not None and self.fs.kind(dest_id) == DIRECTORY
        if len(sources) > 1 and not into_dir:
            raise FsError(errno.ENOTDIR, f"target {dest} is not a directory")
        with progress_bar("copy", total) as bar:
            self.bar = bar
            for src in sources:
                if into_dir:
                    assert dest_id is not None
                    self._copy(src, dest_id, os.path.basename(os.path.normpath(src)),
                               follow=follow)
                else:
                    dir_id, name = entry(self.fs, dest)
                    self._copy(src, dir_id, name, follow=follow)

    def _existing(self, path: str) -> str | None:
        try:
            return self.fs.resolve(path)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def _copy(self, src: str, dir_id: str, name: str, *, follow: bool = False) -> None:
        info = os.lstat(src)
        if not st.S_ISLNK(info.st_mode) or follow:
            info = os.stat(src)
        linked = not st.S_ISDIR(info.st_mode) and info.st_nlink > 1
        first = self.copied.get((info.st_dev, info.st_ino)) if linked else None
        if first is not None:
            if self.fs.lookup(dir_id, name) != first:
                self._make_room(dir_id, name, src)
                self.fs.link(first, dir_id, name)
            return
        if st.S_ISLNK(info.st_mode):
            self._make_room(dir_id, name, src)
            self.fs.symlink(dir_id, name, os.readlink(src), self.uid, self.gid)
        elif st.S_ISDIR(info.st_mode):
            child = self.fs.lookup(dir_id, name)
            if child is None:
                child = self.fs.mkdir(dir_id, name, st.S_IMODE(os.stat(src).st_mode),
                                      self.uid, self.gid)
            elif self.fs.kind(child) != DIRECTORY:
                raise FsError(errno.ENOTDIR, f"cannot overwrite non-directory {name} "
                              f"with directory {src}")
            for entry in sorted(os.listdir(src)):
                self._copy(os.path.join(src, entry), child, entry)
        elif st.S_ISREG(info.st_mode):
            self._copy_file(src, dir_id, name)
        else:  # a FIFO, socket or device is made again: reading one could wait forever
            self._make_room(dir_id, name, src)
            self.fs.mknod(dir_id, name, info.st_mode, info.st_rdev, self.uid, self.gid)
        if linked:
            node_id = self.fs.lookup(dir_id, name)
            assert node_id is not None
            self.copied[(info.st_dev, info.st_ino)] = node_id

    def _make_room(self, dir_id: str, name: str, src: str) -> None:
        """Remove the pond entry ``name`` that a copy of ``src`` replaces (never a
        directory)."""
        existing = self.fs.lookup(dir_id, name)
        if existing is None:
            return
        if self.fs.kind(existing) == DIRECTORY:
            raise FsError(errno.EISDIR, f"cannot overwrite directory {name} with {src}")
        self.fs.unlink(dir_id, name)

    def _copy_file(self, src: str, dir_id: str, name: str) -> None:
        node_id = self.fs.lookup(dir_id, name)
        fmt = self.fmt
        if node_id is not None:
            existing = self.fs.get(node_id)
            if existing.kind == DIRECTORY:
                raise FsError(errno.EISDIR, f"cannot overwrite directory {name} with a file")
            fmt = fmt or existing.format
            if existing.format != fmt:
                raise FsError(errno.EINVAL, f"{name} is a {existing.format} file; "
                              f"cannot write {fmt} into it")
        fmt = fmt or DATA
        table = _read_input_table(src) if fmt in (TABLE, SERIES) else None
        if node_id is None:
            mode = st.S_IMODE(os.stat(src).st_mode)
            node_id = self.fs.create(dir_id, name, fmt, mode, self.uid, self.gid)
        if table is None:
            with open(src, "rb", buffering=0) as f:
                self.fs.write_file(node_id, f.fileno(), self.bar.update)
            return
        if fmt == TABLE:
            self.fs.write_table(node_id, table)
        else:
            self.fs.append_series(node_id, table, self.time_column,
                                  what=f"{src}: cannot append to {name}")
        self.bar.update(os.path.getsize(src))


def _tree_size(path: str) -> int:
    """Bytes a copy of ``path`` reads: of each inode once (hard links are linked, not
    copied), symlinks not followed."""
    if os.path.islink(path):
        return 0
    if not os.path.isdir(path):
        return os.path.getsize(path)
    sizes = {}
    for d, _, files in os.walk(path):
        for f in files:
            info = os.lstat(os.path.join(d, f))
            if not st.S_ISLNK(info.st_mode):
                sizes[info.st_dev, info.st_ino] = info.st_size
    return sum(sizes.values())


def _read_input_table(src: str) -> pa.Table:
    if src.lower().endswith(".csv"):
        with open(src, "rb") as f:
            return read_csv(f, src)
    with open(src, "rb") as f:
        return read_parquet(f, src)


def _copy_out(fs: FS, sources: list[str], dest: str, recursive: bool) -> None:
    into_dir = os.path.isdir(dest)
    if len(sources) > 1 and not into_dir:
        raise FsError(errno.ENOTDIR, f"target {dest} is not a directory")
    plan: list[tuple[str, str, str]] = []
    for src in sources:
        node_id = fs.resolve(src)
        target = os.path.join(dest, os.path.basename(src.rstrip("/")) or "pond") \
            if into_dir else dest
        if fs.kind(node_id) == DIRECTORY:
            if not recursive:
                raise FsError(errno.EISDIR, f"{src}: is a directory (use -r)")
            plan.extend(_pond_tree(fs, node_id, target))
        else:
            plan.append((node_id, target, "special" if fs.kind(node_id) in SPECIAL_KINDS
                         else "file"))
    copied: dict[str, str] = {}  # node id -> its first host path: more names are links
    with progress_bar("copy", len(plan), "file") as bar:
        for node_id, target, kind in plan:
            if kind == "dir":
                os.makedirs(target, exist_ok=True)
            elif node_id in copied:
                _host_replace(target)
                os.link(copied[node_id], target)
            elif kind == "link":
                _host_replace(target)
                os.symlink(fs.readlink(node_id), target)
            elif kind == "special":
                _host_replace(target)
                s = fs.stat(node_id)
                os.mknod(target, s.mode, s.rdev)
            else:
                _host_replace(target, unless_file=True)
                with open(target, "wb") as out:
                    fs.copy_to(node_id, out.fileno())
            if kind != "dir":
                copied[node_id] = target
            bar.update(1)


def _host_replace(path: str, *, unless_file: bool = False) -> None:
    """Remove what is at host ``path`` for a new entry there (as copying in replaces pond
    entries), never a directory; ``unless_file`` keeps a regular file or a symlink, which a
    copy writes through (as cp does), and removes only a FIFO, socket or device."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if st.S_ISDIR(mode) or (unless_file and (st.S_ISREG(mode) or st.S_ISLNK(mode))):
        return
    os.unlink(path)


def _pond_tree(fs: FS, dir_id: str, target: str) -> Iterator[tuple[str, str, str]]:
    yield dir_id, target, "dir"
    for name, child in sorted(fs.listdir(dir_id).items()):
        kind = fs.kind(child)
        path = os.path.join(target, name)
        if kind == DIRECTORY:
            yield from _pond_tree(fs, child, path)
        else:
            yield child, path, ("link" if kind == SYMLINK else
                                "special" if kind in SPECIAL_KINDS else "file")
