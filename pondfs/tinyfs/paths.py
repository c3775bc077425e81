"""Names and paths: what may name an entry, and path resolution, globbing and walking over a
tree of nodes.

The functions here ask a tree (:class:`Tree`, an :class:`~pondfs.tinyfs.fs.FS`) only for
lookups, kinds, symlink targets and listings; :class:`~pondfs.tinyfs.fs.FS` exposes them as
its ``resolve``, ``resolve_parent``, ``canonical``, ``glob`` and ``walk``.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator
from typing import Protocol

from .errors import FsError
from .glob import GlobPattern
from .records import DIRECTORY, ROOT_ID, SYMLINK

#: Symlinks followed in one resolution before ELOOP (as Linux).
MAX_SYMLINKS = 40
NAME_MAX = 255


class Tree(Protocol):
    """What resolving a path needs of a tree of nodes named by node ids."""

    def lookup(self, dir_id: str, name: str) -> str | None: ...

    def kind(self, node_id: str) -> str: ...

    def readlink(self, node_id: str) -> str: ...

    def listdir(self, dir_id: str) -> dict[str, str]: ...

    def resolve(self, path: str, cwd: str = "/", *, follow: bool = True) -> str: ...


def require_utf8(text: str, what: str) -> str:
    """``text`` if it is UTF-8 (a pond stores names, link targets and attribute names as
    text), else EILSEQ naming ``what``: a name made of other bytes (decoded with
    surrogateescape) is refused before anything is staged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FsError(errno.EILSEQ, f"{what} is not UTF-8: {text!r}") from None
    return text


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a directory entry, else raise EINVAL/ENAMETOOLONG
    (EILSEQ when it is not UTF-8)."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise FsError(errno.EINVAL, f"invalid name {name!r}: names cannot be empty, '.', '..' "
                      "or hold '/' or NUL")
    require_utf8(name, "name")
    size = len(name.encode("utf-8"))
    if size > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG,
                      f"name too long ({size} bytes > {NAME_MAX}): {name[:40]}...")
    return name


def split_path(path: str) -> list[str]:
    """The non-empty components of ``path`` (``.`` kept; resolution handles it)."""
    return [c for c in path.split("/") if c]


def join_path(parent: str, name: str) -> str:
    """``parent``/``name`` for absolute pond paths."""
    return parent.rstrip("/") + "/" + name


def locate(tree: Tree, path: str, cwd: str, follow: bool) -> tuple[str, str]:
    """The node id at ``path`` (relative to ``cwd``) and its absolute path with every symlink
    resolved; symlinks followed (the last one only when ``follow``), at most
    :data:`MAX_SYMLINKS` of them (else ELOOP)."""
    stack: list[str] = [ROOT_ID]
    names: list[str] = []
    pending = split_path(path)
    # A trailing slash asks for a directory: a final symlink is followed, a file is ENOTDIR.
    want_dir = path.endswith("/") and bool(pending)
    follow = follow or want_dir
    if not path.startswith("/"):
        for part in split_path(cwd):
            dir_id = stack[-1]
            child = tree.lookup(dir_id, part)
            if child is None:
                raise FsError(errno.ENOENT, f"no such directory: {cwd}")
            stack.append(child)
            names.append(part)
    links = 0
    while pending:
        part = pending.pop(0)
        here = "/" + "/".join(names)
        # Checked before '.' and '..' too: "file/.." is ENOTDIR, not file's directory.
        if tree.kind(stack[-1]) != DIRECTORY:
            raise FsError(errno.ENOTDIR, f"not a directory: {here}")
        if part == ".":
            continue
        if part == "..":
            if len(stack) > 1:
                stack.pop()
                names.pop()
            continue
        child = tree.lookup(stack[-1], part)
        if child is None:
            raise FsError(errno.ENOENT, f"no such file or directory: {join_path(here, part)}")
        if tree.kind(child) == SYMLINK and (pending or follow):
            links += 1
            if links > MAX_SYMLINKS:
                raise FsError(errno.ELOOP, f"too many levels of symbolic links: {path}")
            target = tree.readlink(child)
            if target.startswith("/"):
                stack, names = [ROOT_ID], []
            pending = split_path(target) + pending
            continue
        stack.append(child)
        names.append(part)
    if want_dir and tree.kind(stack[-1]) != DIRECTORY:
        raise FsError(errno.ENOTDIR, f"not a directory: {path}")
    return stack[-1], "/" + "/".join(names)


def locate_parent(tree: Tree, path: str, cwd: str) -> tuple[str, str]:
    """The directory that would hold ``path`` and the last name, validated."""
    parts = split_path(path)
    if not parts:
        raise FsError(errno.EINVAL, f"invalid path {path!r}: it names no entry")
    parent = "/".join(parts[:-1])
    parent = ("/" + parent if path.startswith("/") else parent) or (
        "/" if path.startswith("/") else ".")
    dir_id = locate(tree, parent, cwd, True)[0]
    if tree.kind(dir_id) != DIRECTORY:
        raise FsError(errno.ENOTDIR, f"not a directory: {parent}")
    return dir_id, validate_name(parts[-1])


def glob(tree: Tree, pattern: str, cwd: str) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(path, node id, captures) of every node matching ``pattern``, in path order."""
    compiled = GlobPattern(pattern)
    root = ROOT_ID if compiled.absolute else tree.resolve(cwd)

    def children(dir_id: str) -> Iterable[tuple[str, str]]:
        return sorted(tree.listdir(dir_id).items())

    def child(dir_id: str, name: str) -> str | None:
        return tree.lookup(dir_id, name) if tree.kind(dir_id) == DIRECTORY else None

    yield from compiled.walk(root, children, lambda n: tree.kind(n) == DIRECTORY, child)


def walk(tree: Tree, path: str, cwd: str) -> Iterator[tuple[str, str]]:
    """(path, node id) of ``path`` and everything below it, depth first, names sorted;
    symlinks are listed, not followed."""
    node_id, absolute = locate(tree, path, cwd, True)
    stack = [(absolute, node_id)]
    while stack:
        here, node_id = stack.pop()
        yield here, node_id
        if tree.kind(node_id) == DIRECTORY:
            entries = sorted(tree.listdir(node_id).items(), reverse=True)
            stack.extend((join_path(here, name), child) for name, child in entries)
