"""Undoing history in a writable view: putting paths back as they were in a past view.

:func:`revert` stages what undoes one transaction (all of it, or below some paths), after
checking that no later transaction changed the same paths again; :func:`revert_to` stages
what puts paths back as they were at a transaction. Either is one commit of the caller's.
Nodes that come back are made again from the past view's bytes (content objects are named
by their hash, so the store keeps no second copy of a large one); a renamed node is moved
back. A series comes back as a new series of the past view's batches: exactly the versions
the reverted transaction appended are gone.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable, Iterator

from .errors import FsError
from .formats import read_parquet
from .fs import FS
from .history import Change, diff, normal_path, view_at
from .paths import split_path
from .records import (
    CHUNK_SIZE,
    DEVICE_KINDS,
    DIRECTORY,
    DYNAMIC,
    FILE,
    SERIES,
    SPECIAL_KINDS,
    SYMLINK,
)

log = logging.getLogger(__name__)


def revert(fs: FS, txn: int, paths: Iterable[str] = (), *, force: bool = False) -> list[Change]:
    """Stage in writable ``fs`` what undoes transaction ``txn`` (below ``paths`` only, if
    given); the changes undone. EBUSY naming the paths a later transaction changed again,
    unless ``force``."""
    if txn < 2:
        raise FsError(errno.EINVAL, f"transaction {txn} cannot be reverted (the first made "
                      "the pond)")
    paths = list(paths)
    undone = diff(fs, txn - 1, txn, paths)
    if not undone:
        return []
    if not force:
        again = _changed_again(fs, txn, {c.node_id for c in undone})
        if again:
            shown = ", ".join(sorted({c.path for c in undone if c.node_id in again})[:10])
            raise FsError(errno.EBUSY, f"a later transaction changed {shown} again "
                          f"(pond diff {txn} {fs.as_of}; --force reverts anyway)")
    before = view_at(fs, txn - 1)
    # Renames first: a name a moved node took from another comes back to the other after.
    for change in sorted(undone, key=lambda c: c.op != "R"):
        if change.op == "R" and _moved_back(fs, change):
            continue
        for path in (change.old_path, change.path) if change.op == "R" else (change.path,):
            _put_back(fs, before, path, recursive=change.op in ("+", "-", "T"))
    return undone


def _changed_again(fs: FS, txn: int, nodes: set[str]) -> set[str]:
    """Which of ``nodes`` (changed by ``txn``) a later transaction changed again: any row
    of a node other than a directory; a directory's row that does more than change its
    entries (the entries' own nodes speak for them)."""
    if fs.as_of <= txn:
        return set()
    again = set()
    for v in fs.store.changes(txn, fs.as_of):
        if v.node_id in nodes and (v.kind != DIRECTORY or v.deleted or v.version == 1):
            again.add(v.node_id)
    return again


def revert_to(fs: FS, txn: int, paths: Iterable[str]) -> None:
    """Stage in writable ``fs`` what makes each of ``paths`` (and everything below it) as it
    was at transaction ``txn``."""
    before = view_at(fs, txn)
    for path in paths:
        _put_back(fs, before, normal_path(path), recursive=True)


def _moved_back(fs: FS, change: Change) -> bool:
    """Undo a rename by moving the node back, if both places allow it."""
    if _find(fs, change.path) is None or _find(fs, change.old_path) is not None:
        return False
    src_dir, src_name = fs.resolve_parent(change.path)
    try:
        dst_dir, dst_name = fs.resolve_parent(change.old_path)
    except FsError:
        return False
    fs.rename(src_dir, src_name, dst_dir, dst_name)
    return True


def _find(fs: FS, path: str) -> str | None:
    """The node id at ``path`` (not following a last symlink), or None."""
    try:
        return fs.resolve(path, follow=False)
    except FsError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _put_back(fs: FS, before: FS, path: str, *, recursive: bool) -> None:
    """Make ``path`` in ``fs`` as it is in ``before``: its content and attributes, and
    when ``recursive`` everything below it too."""
    old_id, cur_id = _find(before, path), _find(fs, path)
    if old_id is None:
        if cur_id is not None:
            _remove(fs, path)
        return
    old = before.get(old_id)
    if cur_id is None:
        _make_dirs(fs, before, path)
        dir_id, name = fs.resolve_parent(path)
        _copy(fs, before, old_id, dir_id, name)
        return
    cur = fs.get(cur_id)
    if old.kind == cur.kind == DIRECTORY:
        _set_attributes(fs, cur_id, before, old_id)
        if recursive:
            names = set(before.listdir(old_id)) | set(fs.listdir(cur_id))
            for name in sorted(names):
                _put_back(fs, before, f"{path.rstrip('/')}/{name}", recursive=True)
        return
    same_bytes = (old.kind, old.format, old.blake3, old.size) == (
        cur.kind, cur.format, cur.blake3, cur.size)
    if same_bytes and old.format != SERIES:
        _set_attributes(fs, cur_id, before, old_id)
        return
    if old.kind == cur.kind == FILE and old.format == cur.format != SERIES:
        fs.write_content(cur_id, _chunks(before, old_id))
        _set_attributes(fs, cur_id, before, old_id)
        return
    _remove(fs, path)
    dir_id, name = fs.resolve_parent(path)
    _copy(fs, before, old_id, dir_id, name)


def _make_dirs(fs: FS, before: FS, path: str) -> None:
    """Make the directories above ``path`` that ``fs`` lacks, as ``before`` has them."""
    here = ""
    for name in split_path(path)[:-1]:
        here = f"{here}/{name}"
        if _find(fs, here) is None:
            dir_id, last = fs.resolve_parent(here)
            old_id = _find(before, here)
            if old_id is None:
                raise FsError(errno.ENOENT, f"no such directory: {here}")
            fs.mkdir(dir_id, last)
            _set_attributes(fs, fs.resolve(here), before, old_id)


def _remove(fs: FS, path: str) -> None:
    """Remove ``path`` and everything below it."""
    dir_id, name = fs.resolve_parent(path)
    node_id = fs.resolve(path, follow=False)
    if fs.get(node_id).kind == DIRECTORY:
        for child in sorted(fs.listdir(node_id)):
            _remove(fs, f"{path.rstrip('/')}/{child}")
        fs.rmdir(dir_id, name)
    else:
        fs.unlink(dir_id, name)


def _copy(fs: FS, before: FS, old_id: str, dir_id: str, name: str) -> None:
    """Make ``name`` in ``dir_id`` a copy of node ``old_id`` of ``before`` (a directory with
    everything below it)."""
    old = before.get(old_id)
    if old.kind == DIRECTORY:
        new_id = fs.mkdir(dir_id, name, old.mode, old.uid, old.gid)
        for child, child_id in sorted(before.listdir(old_id).items()):
            _copy(fs, before, child_id, new_id, child)
    elif old.kind == SYMLINK:
        new_id = fs.symlink(dir_id, name, before.readlink(old_id), old.uid, old.gid)
    elif old.kind == DYNAMIC:
        factory, config = before.dynamic_config(old_id)
        new_id = fs.create_dynamic(dir_id, name, factory, config, old.uid, old.gid)
    elif old.kind in SPECIAL_KINDS:
        stat = before.stat(old_id)
        new_id = fs.mknod(dir_id, name, stat.mode, old.rdev if old.kind in DEVICE_KINDS else 0,
                          old.uid, old.gid)
    else:
        new_id = fs.create(dir_id, name, old.format, old.mode, old.uid, old.gid)
        if old.format == SERIES:
            for version in before.series_versions(old_id):
                with before.open_version(version) as f:
                    fs.append_series(new_id, read_parquet(f.read(), name), old.time_column)
        else:
            fs.write_content(new_id, _chunks(before, old_id))
    if old.kind != DYNAMIC:
        _set_attributes(fs, new_id, before, old_id)


def _set_attributes(fs: FS, node_id: str, before: FS, old_id: str) -> None:
    """Give ``node_id`` the mode, owner, mtime and extended attributes ``old_id`` has in
    ``before``, changing only what differs."""
    old, cur = before.get(old_id), fs.get(node_id)
    if old.kind == SYMLINK:
        return
    if (old.mode, old.uid, old.gid, old.mtime_ns) != (cur.mode, cur.uid, cur.gid, cur.mtime_ns):
        fs.setattr(node_id, mode=old.mode, uid=old.uid, gid=old.gid, mtime_ns=old.mtime_ns)
    for name in set(cur.xattrs) - set(old.xattrs):
        fs.removexattr(node_id, name)
    for name, value in old.xattrs.items():
        fs.setxattr(node_id, name, value)


def _chunks(view: FS, node_id: str) -> Iterator[bytes]:
    with view.open_read(node_id) as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk
