"""The commands of files and directories: init, ls, cat, stat, mkdir, rm, mv, ln."""

from __future__ import annotations

import argparse
import errno
import os
import stat as st
import sys
import time

from .. import pond
from ..tinyfs import (
    DEVICE_KINDS,
    DIRECTORY,
    FS,
    SERIES,
    SPECIAL_KINDS,
    SYMLINK,
    FsError,
    Stat,
    join_path,
)
from .common import Commands, add_at, entry, iso_time, reading, writing


def add_commands(commands: Commands) -> None:
    """Add init, ls, cat, stat, mkdir, rm, mv and ln."""
    command = commands.add

    command("init", cmd_init, "create a new, empty pond")

    p = command("ls", cmd_ls, "list directories, files or glob matches")
    p.add_argument("-l", dest="long", action="store_true",
                   help="long listing: mode, links, owner, size, time, version, format")
    p.add_argument("paths", nargs="*", metavar="PATH", help="paths or globs (default /)")
    add_at(p)

    p = command("cat", cmd_cat, "write files to stdout (a series as one Parquet file)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_at(p)

    p = command("stat", cmd_stat, "show a node's attributes")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_at(p)

    p = command("mkdir", cmd_mkdir, "create directories")
    p.add_argument("-p", "--parents", action="store_true",
                   help="create missing parents; no error if it exists")
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = command("rm", cmd_rm, "remove files (and directories with -r)")
    p.add_argument("-r", "--recursive", action="store_true", help="remove directories")
    p.add_argument("-f", "--force", action="store_true", help="ignore missing paths")
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = command("mv", cmd_mv, "move or rename a file or directory")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("dest", metavar="DEST")

    p = command("ln", cmd_ln, "make a hard link (ln TARGET LINK) or a symbolic one (-s)")
    p.add_argument("-s", "--symbolic", action="store_true", help="a symbolic link")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("link", metavar="LINK")


def cmd_init(args: argparse.Namespace) -> int:
    """pond init: a new, empty pond."""
    txn = pond.init(args.location)
    print(f"initialized pond at {args.location} (transaction {txn})")
    return 0


def cmd_mkdir(args: argparse.Namespace) -> int:
    """pond mkdir [-p] PATH...: new directories, in one transaction."""
    with writing(args) as fs:
        for path in args.paths:
            if args.parents:
                _makedirs(fs, path)
            else:
                dir_id, name = fs.resolve_parent(path)
                fs.mkdir(dir_id, name, mode=0o777 & ~_umask(), uid=os.getuid(), gid=os.getgid())
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _makedirs(fs: FS, path: str) -> str:
    dir_id = fs.resolve("/")
    walked = ""
    for part in path.split("/"):
        if not part or part == ".":
            continue
        walked = join_path(walked, part)
        child = fs.lookup(dir_id, part) if part != ".." else fs.resolve(walked)
        if child is None:
            child = fs.mkdir(dir_id, part, mode=0o777 & ~_umask(), uid=os.getuid(),
                             gid=os.getgid())
        elif fs.kind(fs.resolve(walked)) != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {walked}")
        else:
            child = fs.resolve(walked)
        dir_id = child
    return dir_id


def _mode_string(mode: int) -> str:
    return st.filemode(mode)


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _ls_line(fs: FS, node_id: str, name: str) -> str:
    s = fs.stat(node_id)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.mtime_ns / 1e9))
    target = f" -> {fs.readlink(node_id)}" if s.kind == SYMLINK else ""
    fmt = s.format or ("dynamic" if s.dynamic else s.kind if s.kind in SPECIAL_KINDS else "-")
    return (f"{_mode_string(s.mode)} {s.nlink:>3} {_user(s.uid):<8} {_group(s.gid):<8} "
            f"{_size_or_device(s):>10} {when} v{s.version:<4} {fmt:<7} {name}{target}")


def _size_or_device(s: Stat) -> str:
    """The size, or for a device node its numbers (major, minor), as ls -l shows them."""
    if s.kind in DEVICE_KINDS:
        return f"{os.major(s.rdev)}, {os.minor(s.rdev)}"
    return str(s.size)


def cmd_ls(args: argparse.Namespace) -> int:
    """As ``ls``: files and glob matches first, then each directory's entries (under a
    ``PATH:`` header when several paths are listed), so no file reads as a directory's."""
    paths = args.paths or ["/"]
    with reading(args) as fs:
        files: list[tuple[str, str]] = []
        dirs: list[tuple[str, str]] = []
        for path in paths:
            if any(c in path for c in "*?[{"):
                matches = [(p, node_id) for p, node_id, _ in fs.glob(path)]
                if not matches:
                    raise FsError(errno.ENOENT, f"no match for {path}")
                files.extend(matches)
            else:
                node_id = fs.resolve(path, follow=False)
                (dirs if fs.kind(node_id) == DIRECTORY else files).append((path, node_id))

        def lines(entries: list[tuple[str, str]]) -> list[str]:
            return [_ls_line(fs, node_id, name) if args.long else name
                    for name, node_id in entries]

        blocks = [lines(files)] if files else []
        for path, node_id in dirs:
            header = [f"{path}:"] if len(paths) > 1 else []
            blocks.append(header + lines(sorted(fs.listdir(node_id).items())))
        text = "\n\n".join("\n".join(block) for block in blocks)
        if text:
            print(text)
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    """pond cat PATH...: the files' bytes on stdout."""
    sys.stdout.flush()
    with reading(args) as fs:
        for path in args.paths:
            node_id = fs.resolve(path)
            kind = fs.kind(node_id)
            if kind == DIRECTORY:
                raise FsError(errno.EISDIR, f"is a directory: {path}")
            if kind in SPECIAL_KINDS:
                raise FsError(errno.EINVAL, f"{path}: a {kind} has no content to read")
            fs.copy_to(node_id, sys.stdout.fileno())
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    """pond stat PATH...: each node's attributes, content hash and storage."""
    with reading(args) as fs:
        for path in args.paths:
            node_id = fs.resolve(path, follow=False)
            s = fs.stat(node_id)
            print(f"  path: {path}")
            print(f"  node: {s.node_id}  version: {s.version}  transaction: {s.txn}")
            print(f"  kind: {s.kind}  format: {s.format or '-'}"
                  f"{'  (computed)' if s.dynamic else ''}")
            print(f"  size: {s.size}  mode: {s.mode & 0o7777:04o} ({_mode_string(s.mode)})"
                  f"  links: {s.nlink}  uid: {s.uid}  gid: {s.gid}")
            if s.kind in DEVICE_KINDS:
                print(f"device: {_size_or_device(s)}")
            for label, ns in (("access", s.atime_ns), ("modify", s.mtime_ns),
                              ("change", s.ctime_ns)):
                print(f"{label:>6}: {iso_time(ns)}")
            if not s.dynamic and s.kind != DIRECTORY:
                v = fs.get(node_id)
                print(f"blake3: {v.blake3}  stored: {'inline' if v.inline else 'object'}")
                if v.format == SERIES:
                    print(f"  time column: {v.time_column}  versions: {v.version}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """pond rm [-r] [-f] PATH...: remove files (and trees with -r)."""
    with writing(args) as fs:
        for path in args.paths:
            try:
                dir_id, name = entry(fs, path)
                node_id = fs.lookup(dir_id, name)
                if node_id is None:
                    raise FsError(errno.ENOENT, f"{path}: no such file or directory")
            except FsError as exc:
                if args.force and exc.errno == errno.ENOENT:
                    continue
                raise
            if fs.kind(node_id) == DIRECTORY and fs.stat(node_id).dynamic is False and \
                    fs.get(node_id).kind == DIRECTORY:
                if not args.recursive:
                    raise FsError(errno.EISDIR, f"{path}: is a directory (use -r)")
                _remove_tree(fs, node_id)
                fs.rmdir(dir_id, name)
            else:
                fs.unlink(dir_id, name)
    return 0


def _remove_tree(fs: FS, dir_id: str) -> None:
    for name, op in sorted(fs.entries(dir_id).items()):
        if op.kind == DIRECTORY:
            _remove_tree(fs, op.node_id)
            fs.rmdir(dir_id, name)
        else:
            fs.unlink(dir_id, name)


def cmd_mv(args: argparse.Namespace) -> int:
    """pond mv SOURCE DEST: rename, or move into the directory DEST."""
    with writing(args) as fs:
        src_dir, src_name = entry(fs, args.source)
        if fs.lookup(src_dir, src_name) is None:
            raise FsError(errno.ENOENT, f"{args.source}: no such file or directory")
        try:
            target = fs.resolve(args.dest)
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            target = None
        if target is not None and fs.kind(target) == DIRECTORY:
            dst_dir, dst_name = target, src_name
        else:
            dst_dir, dst_name = entry(fs, args.dest)
        fs.rename(src_dir, src_name, dst_dir, dst_name)
    return 0


def cmd_ln(args: argparse.Namespace) -> int:
    """pond ln [-s] TARGET LINK: a hard link (not to a directory), or a symbolic one."""
    with writing(args) as fs:
        dir_id, name = entry(fs, args.link)
        if args.symbolic:
            fs.symlink(dir_id, name, args.target, os.getuid(), os.getgid())
            return 0
        node_id = fs.resolve(args.target, follow=False)  # as GNU ln: a symlink itself
        if fs.kind(node_id) == DIRECTORY:
            raise FsError(errno.EPERM, f"{args.target}: hard link not allowed for directory")
        fs.link(node_id, dir_id, name)
    return 0
