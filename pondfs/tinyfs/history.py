"""A pond's history as something to name, browse and compare: transactions, tags, views of
the past, and what changed between two transactions.

- :func:`resolve_at` is the one place that turns what a user wrote after ``--at`` or ``at=``
  (a transaction number, a tag, or an ISO time: the newest transaction at or before it)
  into a transaction number.
- :func:`view_at` is a read-only view of the pond as of a transaction, on the same store
  and cache as another view (a mount's history directory opens these).
- :func:`timeline` lists every transaction's number and time (cheap: ``pond log`` reads
  the same transaction rows).
- Tags are pond data: each :func:`set_tag` or :func:`delete_tag` is a transaction of its own
  with no node rows, whose :class:`~pondfs.tinyfs.records.TxnInfo` names the tag, so
  ``pond log`` shows it and backups and S3 ponds carry it. :func:`tags` replays them.
- :func:`diff` compares two transactions by the rows of the transactions between them
  only (:meth:`~pondfs.tinyfs.persistence.Persistence.changes`), naming each changed node
  by its path in each view (:class:`_Namer`).
"""

from __future__ import annotations

import errno
import io
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow.parquet as pq

from .errors import FsError
from .fs import FS
from .paths import join_path, split_path
from .persistence import Persistence
from .records import DIRECTORY, ROOT_ID, SERIES, NodeVersion, TxnInfo

log = logging.getLogger(__name__)

#: What a tag may be called: a letter first, so it is never a number or an ISO time.
TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,127}")

#: Fields whose change makes a node modified (times other than mtime do not).
_COMPARED = ("blake3", "size", "mode", "uid", "gid", "xattrs", "mtime_ns", "rdev")
_COMPARED_DIR = ("mode", "uid", "gid", "xattrs")


# ---------------------------------------------------------------------- naming transactions


def timeline(store: Persistence, as_of: int | None = None) -> list[tuple[int, int]]:
    """(txn, timestamp_ns) of every transaction up to ``as_of`` (default the newest),
    oldest first."""
    last = store.last_txn() if as_of is None else as_of
    return [(t.txn, t.timestamp_ns) for t in reversed(store.transactions(last))]


def tags(store: Persistence, as_of: int | None = None) -> dict[str, int]:
    """Every tag as of ``as_of`` (default the newest transaction) and the transaction it
    names, replayed from the transactions that set and removed them."""
    last = store.last_txn() if as_of is None else as_of
    found: dict[str, int] = {}
    for info in reversed(store.transactions(last)):
        if info.tag is None:
            continue
        if info.tag.get("txn") is None:
            found.pop(info.tag["name"], None)
        else:
            found[info.tag["name"]] = int(info.tag["txn"])
    return found


def resolve_at(store: Persistence, spec: str | int) -> int:
    """The transaction ``spec`` names: a number, a tag, or an ISO time (the newest
    transaction at or before it; a time without a zone is local). FsError (ENOENT) when it
    names none, with one line saying why."""
    last = store.last_txn()
    text = str(spec).strip()
    if text.isdigit():
        txn = int(text)
        if not 1 <= txn <= last:
            raise FsError(errno.ENOENT, f"no transaction {txn}: the pond has 1..{last}")
        return txn
    if TAG_NAME.fullmatch(text):
        found = tags(store).get(text)
        if found is None:
            raise FsError(errno.ENOENT, f"no tag {text!r} (pond tag lists them)")
        return found
    ns = iso_time_ns(text)
    if ns is None:
        raise FsError(errno.EINVAL, f"--at {text!r}: not a transaction number, a tag or an "
                      "ISO time (2025-06-01T12:00)")
    before = [txn for txn, stamp in timeline(store) if stamp <= ns]
    if not before:
        raise FsError(errno.ENOENT, f"no transaction at or before {text}")
    return before[-1]


def iso_time_ns(text: str) -> int | None:
    """The time ``text`` names as an ISO time (local without a zone) in nanoseconds since
    the epoch, or None when it is not one."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return int(when.timestamp() * 1_000_000) * 1000


def view_at(fs: FS, txn: int) -> FS:
    """A read-only view of ``fs``'s pond as of transaction ``txn``, sharing its store, cache
    and factories (computed nodes compute from that view's inputs)."""
    return FS(fs.store, at=txn, cache=fs.cache, factories=fs.factories)


def check_tag_name(name: str) -> str:
    """``name`` if it can name a tag, else EINVAL saying what a tag name is."""
    if not TAG_NAME.fullmatch(name):
        raise FsError(errno.EINVAL, f"bad tag name {name!r}: a letter, then up to 127 "
                      "letters, digits, '.', '_' or '-'")
    return name


def set_tag(fs: FS, name: str, txn: int | str, command: str) -> int:
    """Tag transaction ``txn`` (a number, tag or time: :func:`resolve_at`) as ``name``
    (moving the tag if it names another): a new transaction, whose number is returned."""
    check_tag_name(name)
    return _record(fs, command, {"name": name, "txn": resolve_at(fs.store, txn)})


def delete_tag(fs: FS, name: str, command: str) -> int:
    """Remove tag ``name``: a new transaction, whose number is returned; ENOENT if there
    is no such tag."""
    if name not in tags(fs.store):
        raise FsError(errno.ENOENT, f"no tag {name!r} (pond tag lists them)")
    return _record(fs, command, {"name": name, "txn": None})


def _record(fs: FS, command: str, tag: dict) -> int:
    """Commit a transaction of no node rows that records ``tag``, under the writer lock."""
    with fs.writer_lock(command):
        txn = fs.store.last_txn() + 1
        fs.store.commit([], TxnInfo(txn, time.time_ns(), command, tag=tag))
    return txn


# ---------------------------------------------------------------------- diff


@dataclass(frozen=True)
class Change:
    """One line of a diff: ``op`` is ``+`` (added), ``-`` (removed), ``M`` (modified), ``R``
    (renamed: ``old_path`` -> ``path``) or ``T`` (kind or format changed), of node
    ``node_id`` (the new one, for a node in an old one's place). A series that
    gained rows says how many and their time range."""

    op: str
    path: str
    kind: str
    node_id: str = ""
    old_path: str = ""
    rows: int | None = None
    min_time: int | None = None
    max_time: int | None = None

    def line(self) -> str:
        """The line ``pond diff`` prints."""
        where = f"{self.old_path} -> {self.path}" if self.op == "R" else self.path
        extra = ""
        if self.rows is not None:
            extra = f"  (+{self.rows} rows, {self.min_time}..{self.max_time})"
        return f"{self.op} {where}{extra}"


def diff(fs: FS, a: int, b: int, paths: Iterable[str] = ()) -> list[Change]:
    """What changed from transaction ``a`` to ``b`` (either order; ``a`` == ``b`` is
    nothing), below ``paths`` only if given, sorted by path.

    Reads the rows of the transactions between them, and of the directories that name the
    changed nodes, never the whole pond."""
    if a == b:
        return []
    older, newer = view_at(fs, a), view_at(fs, b)
    rows = fs.store.changes(min(a, b), max(a, b))
    hints = _directory_hints(rows)
    name_a, name_b = _Namer(older, hints), _Namer(newer, hints)
    wanted = [normal_path(p) for p in paths]
    removed: dict[str, Change] = {}
    added: dict[str, Change] = {}
    out: list[Change] = []
    for node_id in sorted({v.node_id for v in rows}):
        before, after = _version(older, node_id), _version(newer, node_id)
        path_a = name_a.path(node_id) if before else None
        path_b = name_b.path(node_id) if after else None
        if path_a is None and path_b is None:
            continue
        if not any(_below(p, w) for w in wanted for p in (path_a, path_b) if p) and wanted:
            continue
        if path_a is None:
            assert after is not None and path_b is not None
            added[path_b] = Change("+", path_b, after.kind, node_id)
        elif path_b is None:
            assert before is not None
            removed[path_a] = Change("-", path_a, before.kind, node_id)
        else:
            assert before is not None and after is not None
            out.extend(_compared(newer, before, after, path_a, path_b))
    for path in sorted(added.keys() & removed.keys()):  # a new node in an old one's place
        old, new = removed.pop(path), added.pop(path)
        out.append(Change("T" if old.kind != new.kind else "M", path, new.kind, new.node_id))
    out.extend([*added.values(), *removed.values()])
    return sorted(out, key=lambda c: (c.path, c.op))


def _compared(newer: FS, before: NodeVersion, after: NodeVersion, path_a: str,
              path_b: str) -> list[Change]:
    """The changes of one node present in both views."""
    out = []
    node_id = after.node_id
    if path_a != path_b:
        out.append(Change("R", path_b, after.kind, node_id, old_path=path_a))
    if (before.kind, before.format) != (after.kind, after.format):
        return [*out, Change("T", path_b, after.kind, node_id)]
    fields: tuple[str, ...]
    if after.kind == DIRECTORY:
        fields = _COMPARED_DIR
    elif after.format == SERIES:
        appended = [v for v in newer.versions(after.node_id)
                    if v.txn > before.txn and v.min_time is not None and not v.deleted]
        if appended:
            rows = sum(_batch_rows(newer, v) for v in appended)
            low = min(v.min_time for v in appended if v.min_time is not None)
            high = max(v.max_time for v in appended if v.max_time is not None)
            return [*out, Change("M", path_b, after.kind, node_id, rows=rows, min_time=low,
                                 max_time=high)]
        fields = tuple(f for f in _COMPARED if f not in ("blake3", "size"))
    else:
        fields = _COMPARED
    if any(getattr(before, f) != getattr(after, f) for f in fields):
        out.append(Change("M", path_b, after.kind, node_id))
    return out


def _batch_rows(view: FS, v: NodeVersion) -> int:
    """The rows of one series version (from its Parquet footer)."""
    with view.open_version(v) as f:
        return pq.ParquetFile(io.BytesIO(f.read())).metadata.num_rows


def _version(view: FS, node_id: str) -> NodeVersion | None:
    """The newest version of a stored node in ``view``, or None if it is not there."""
    try:
        return view.get(node_id)
    except FsError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def normal_path(path: str) -> str:
    """``path`` as an absolute pond path without empty or ``.`` components (a diff names
    paths as written, symlinks not followed)."""
    return "/" + "/".join(c for c in split_path(path) if c != ".")


def _below(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top + "/")


def _directory_hints(rows: list[NodeVersion]) -> dict[str, set[str]]:
    """child id -> the directories whose rows in ``rows`` add an entry for it."""
    hints: dict[str, set[str]] = {}
    for v in rows:
        for op in v.entries if v.kind == DIRECTORY else ():
            if op.op == "add":
                hints.setdefault(op.node_id, set()).add(v.node_id)
    return hints


class _Namer:
    """The paths of nodes in one view, found upwards from each node.

    A file's directory is its partition (or a directory that added it, for a name given in
    the transactions compared); a directory's parent is one whose rows added an entry for it,
    in the transactions compared or else in the newest transaction of its own versions that
    did (a directory's row changes in every transaction that creates or moves it). Each
    candidate is checked against the candidate's listing in this view."""

    def __init__(self, view: FS, hints: dict[str, set[str]]):
        self.view = view
        self.hints = hints
        self._paths: dict[str, str | None] = {ROOT_ID: "/"}
        self._names: dict[str, dict[str, str]] = {}  # directory -> node id -> a name
        self._txn_rows: dict[int, list[NodeVersion]] = {}

    def path(self, node_id: str) -> str | None:
        """``node_id``'s path in the view, or None if no directory there names it."""
        if node_id not in self._paths:
            self._paths[node_id] = None  # a cycle never resolves
            self._paths[node_id] = self._find(node_id)
        return self._paths[node_id]

    def _find(self, node_id: str) -> str | None:
        for parent in self._candidates(node_id):
            name = self._name_in(parent, node_id)
            if name is not None:
                above = self.path(parent)
                if above is not None:
                    return join_path(above, name)
        return None

    def _candidates(self, node_id: str) -> Iterator[str]:
        seen: set[str] = set()
        v = _version(self.view, node_id)
        if v is None:
            return
        first = [] if v.kind == DIRECTORY else [v.part_id]
        for parent in [*first, *sorted(self.hints.get(node_id, ()))]:
            if parent not in seen:
                seen.add(parent)
                yield parent
        if v.kind != DIRECTORY:
            return
        for txn in sorted({r.txn for r in self.view.versions(node_id)}, reverse=True):
            for row in self._rows_of(txn):
                if row.kind == DIRECTORY and row.node_id not in seen and any(
                        op.op == "add" and op.node_id == node_id for op in row.entries):
                    seen.add(row.node_id)
                    yield row.node_id

    def _rows_of(self, txn: int) -> list[NodeVersion]:
        rows = self._txn_rows.get(txn)
        if rows is None:
            rows = self._txn_rows[txn] = self.view.store.changes(txn - 1, txn)
        return rows

    def _name_in(self, dir_id: str, node_id: str) -> str | None:
        names = self._names.get(dir_id)
        if names is None:
            try:
                entries = self.view.entries(dir_id)
            except FsError:
                entries = {}
            names = self._names[dir_id] = {}
            for name, op in sorted(entries.items(), reverse=True):
                names[op.node_id] = name  # the first name, of hard links
        return names.get(node_id)
