"""Moving a writable view to a newer transaction with its uncommitted changes on top.

Writers hold the writer lock for one commit only, so the pond may move on between the
transaction a view's changes were made against and the commit that stores them.
:func:`rebase` moves a view to the newest transaction: it forgets what it had read of the
nodes other writers changed, then replays its own staged changes onto theirs as if they
ran after them (the later commit goes after the earlier one). The README's "Several
writers" section states the rules; in short:

- Directory entries merge name by name (directory versions are deltas of entry changes).
- A node both changed: per field, the later commit's value wins where it changed the field
  (content and its size and hash go together); versions continue from the newest, so the
  earlier commit's version stays in history. Names are counted, not copied: ``nlink`` is
  the newest count plus the names this writer added less those it removed.
- A node the earlier commit removed stays removed: the later writer's changes of it, and
  names it gave it, are dropped (they went to a file nobody can reach).
- Removing a name that no longer names the same node removes nothing; so is a rename of a
  name the earlier commit removed or moved dropped whole (the earlier move stands), and a
  removal of a directory the earlier commit put entries in (it is not empty).
- A name both created: the later entry replaces the earlier one when that is not a
  directory or an empty directory (the replaced node loses the name, and goes with its last
  one); a new directory of the later writer merges into an earlier non-empty one; anything
  else is dropped (a rename so dropped is undone).
- Entries in a directory that is gone are dropped, with new nodes only they named.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from .records import DIRECTORY, ROOT_ID, DirOp, NodeVersion

if TYPE_CHECKING:
    from .staging import StagedView

log = logging.getLogger(__name__)

#: Fields the rebase computes itself rather than taking from either side.
_STRUCTURE = {"part_id", "node_id", "version", "txn", "nlink", "entries", "snapshot",
              "timestamp_ns", "deleted"}
#: Fields that change together: a file's content.
_CONTENT = ("blake3", "size", "inline", "content", "min_time", "max_time", "time_column")
_ATTRIBUTES = [f.name for f in fields(NodeVersion)
               if f.name not in _STRUCTURE and f.name not in _CONTENT]


@dataclass
class _Outcome:
    """What replaying one writer's entry changes did, per node."""

    added: Counter = field(default_factory=Counter)      # surviving adds per node
    removed: Counter = field(default_factory=Counter)    # surviving removes per node
    lost: Counter = field(default_factory=Counter)       # names taken by the later writer
    skipped_removes: Counter = field(default_factory=Counter)
    refused_adds: Counter = field(default_factory=Counter)
    parent: dict[str, str] = field(default_factory=dict)  # directory -> where it was added


def rebase(view: StagedView, newest: int) -> list[NodeVersion]:
    """Move ``view`` (no commit in flight) from its transaction to ``newest``, replaying its
    staged changes, and those of a failed commit, on top (see the module docstring); the
    versions other writers committed meanwhile."""
    old = view.as_of
    changed = view.store.changes(old, newest)
    ours = {n: v for n in {*view._pending, *view._inflight} if (v := view._staged(n))}
    bases = {n: None if v.version == 1 else view._committed(n)[-1] for n, v in ours.items()}
    ops: dict[str, list[DirOp]] = {d: list(o) for d, o in view._inflight_ops.items()}
    for d, o in view._pending_ops.items():
        ops.setdefault(d, []).extend(o)
    parents = {**view._inflight_parents, **view._pending_parents}
    _forget(view, changed)
    view.as_of = newest
    view._clear_pending()
    view._clear_inflight()
    view._subdir_counts.clear()
    view._dynamic.clear()
    theirs = {v.node_id for v in changed}
    merged, gone = {}, set()
    for node_id, v in ours.items():
        base = bases[node_id]
        if base is None or node_id not in theirs:
            merged[node_id] = v
            continue
        newer = view._newest(node_id)
        if newer is None or newer.deleted:
            gone.add(node_id)  # removed by the earlier commit: stays removed
            continue
        merged[node_id] = _merge(base, v, view._carry(newer))
    new_dirs = sorted((d for d in ops if bases.get(d) is None and d in ours),
                      key=lambda d: _depth(d, parents, bases))  # parents first
    order = [d for d in ops if d not in new_dirs] + new_dirs
    dry = _Replay(view, ours, bases, gone, _Outcome())
    for dir_id in order:
        dry.replay(dir_id, ops[dir_id])
    replay = _Replay(view, ours, bases, gone, _Outcome(), dry.outcome.skipped_removes)
    for dir_id in order:
        replay.replay(dir_id, ops[dir_id])
    replay.undo_refused_moves()
    replay.stage(merged)
    if changed:
        log.info("rebased %d staged nodes from transaction %d onto %d", len(ours), old, newest)
    return changed


def _depth(dir_id: str, parents: dict[str, str], bases: dict) -> int:
    """How many new directories up from ``dir_id`` a directory that was committed is."""
    depth = 0
    while dir_id in bases and bases[dir_id] is None and dir_id in parents:
        dir_id, depth = parents[dir_id], depth + 1
    return depth


def _merge(base: NodeVersion, ours: NodeVersion, newer: NodeVersion) -> NodeVersion:
    """A node both writers changed: ``newer`` (the earlier commit) with what ``ours``
    changed since ``base`` on top, as the next version."""
    changes: dict = {a: getattr(ours, a) for a in _ATTRIBUTES
                     if getattr(ours, a) != getattr(base, a)}
    if (ours.blake3, ours.size) != (base.blake3, base.size) or ours.format != base.format:
        changes.update({a: getattr(ours, a) for a in _CONTENT})
    changes.update(deleted=ours.deleted, entries=(), snapshot=False,
                   nlink=newer.nlink + ours.nlink - base.nlink)
    if ours.part_id != base.part_id:
        changes["part_id"] = ours.part_id
    return newer.evolve(version=newer.version + 1, **changes)


def _forget(view: StagedView, changed: list[NodeVersion]) -> None:
    """Drop what ``view`` read of the nodes in ``changed`` (they are read again, newer)."""
    for v in sorted(changed, key=lambda v: v.txn):
        view._rows.pop(v.part_id, None)
        part = view._part_of.pop(v.node_id, None)
        if part is not None:
            view._rows.pop(part, None)
        if v.kind == DIRECTORY:
            view._listings.pop(v.node_id, None)
            view._chain.pop(v.node_id, None)
            for op in v.entries:
                if op.op == "add" and op.kind == DIRECTORY:
                    view._parent_of[op.node_id] = v.node_id
    view._part_of.setdefault(ROOT_ID, ROOT_ID)


class _Replay:
    """Replays one writer's entry changes on the newest listings (see :func:`rebase`).
    ``pairs`` (from a first, dry replay) counts per node the removals that found their
    name gone: that many of its adds are a rename's second half, dropped with the first."""

    def __init__(self, view: StagedView, ours: dict[str, NodeVersion],
                 bases: dict[str, NodeVersion | None], gone: set[str], outcome: _Outcome,
                 pairs: Counter | None = None):
        self.view = view
        self.ours = ours
        self.bases = bases
        self.gone = set(gone)
        self.outcome = outcome
        self.pairs = Counter(pairs or {})
        self.listings: dict[str, dict[str, DirOp]] = {}
        self.ops: dict[str, list[DirOp]] = {}
        self.redirect: dict[str, str] = {}
        self.alive_new: set[str] = set()

    def _is_new(self, node_id: str) -> bool:
        return node_id in self.ours and self.bases.get(node_id) is None

    def listing(self, dir_id: str) -> dict[str, DirOp] | None:
        """The working listing of ``dir_id``, or None when it is gone."""
        if dir_id in self.listings:
            return self.listings[dir_id]
        if self._is_new(dir_id):
            listing: dict[str, DirOp] | None = {} if dir_id in self.alive_new else None
        elif dir_id in self.gone:
            listing = None
        else:
            newer = self.view._newest(dir_id)
            listing = None if newer is None or newer.deleted else dict(
                self.view._listing(dir_id))
        if listing is not None:
            self.listings[dir_id] = listing
        return listing

    def replay(self, dir_id: str, ops: list[DirOp]) -> None:
        """Replay ``ops`` of ``dir_id`` (into the directory it merged with, if it did)."""
        target = self.redirect.get(dir_id, dir_id)
        listing = self.listing(target)
        for op in ops:
            if listing is None:
                if op.op == "add":
                    self.outcome.refused_adds[op.node_id] += 1
                continue
            if op.op == "remove":
                self._remove(target, listing, op)
            else:
                self._add(target, listing, op)

    def _emit(self, dir_id: str, listing: dict[str, DirOp], op: DirOp) -> None:
        if op.op == "add":
            listing[op.name] = op
        else:
            listing.pop(op.name, None)
        self.ops.setdefault(dir_id, []).append(op)

    def _remove(self, dir_id: str, listing: dict[str, DirOp], op: DirOp) -> None:
        entry = listing.get(op.name)
        if entry is None or entry.node_id != op.node_id or op.node_id in self.gone:
            if not self._is_new(op.node_id):
                self.outcome.skipped_removes[op.node_id] += 1
            return
        removing = self.ours.get(op.node_id)
        if op.kind == DIRECTORY and removing is not None and removing.deleted \
                and self.listing(op.node_id):
            self.outcome.skipped_removes[op.node_id] += 1  # rmdir, and not empty any more
            return
        self.outcome.removed[op.node_id] += 1
        self._emit(dir_id, listing, op)

    def _add(self, dir_id: str, listing: dict[str, DirOp], op: DirOp) -> None:
        node_id = op.node_id
        if node_id in self.gone or (not self._is_new(node_id) and self.pairs[node_id] > 0):
            self.pairs[node_id] -= 1
            return
        entry = listing.get(op.name)
        if entry is not None and entry.node_id != node_id:
            if entry.kind != DIRECTORY or not self.listing(entry.node_id):
                self.outcome.lost[entry.node_id] += 1
                self._emit(dir_id, listing, DirOp(op.name, entry.node_id, entry.kind,
                                                  "remove", entry.part_id))
            elif op.kind == DIRECTORY and self._is_new(node_id):
                self.redirect[node_id] = entry.node_id  # mkdir of one name: merged
                self.gone.add(node_id)
                return
            else:
                self.outcome.refused_adds[node_id] += 1
                return
        self.outcome.added[node_id] += 1
        if op.kind == DIRECTORY:
            self.outcome.parent[node_id] = dir_id
        if self._is_new(node_id):
            self.alive_new.add(node_id)
        self._emit(dir_id, listing, op)

    def undo_refused_moves(self) -> None:
        """A node whose move was refused gets its old name back, when still free."""
        for node_id, refused in self.outcome.refused_adds.items():
            if self._is_new(node_id):
                continue
            for dir_id, dir_ops in self.ops.items():
                for op in list(dir_ops):
                    if refused and op.op == "remove" and op.node_id == node_id \
                            and op.name not in self.listings[dir_id]:
                        dir_ops.remove(op)
                        self.listings[dir_id][op.name] = DirOp(op.name, op.node_id, op.kind,
                                                               "add", op.part_id)
                        self.outcome.removed[node_id] -= 1
                        self.outcome.parent.pop(node_id, None)
                        refused -= 1

    def stage(self, merged: dict[str, NodeVersion]) -> None:
        """Stage the rebased versions, entries and listings in the view."""
        view, outcome = self.view, self.outcome
        now = time.time_ns()
        versions: dict[str, NodeVersion] = {}
        for node_id, v in merged.items():
            if self._is_new(node_id):
                if node_id in self.alive_new or node_id == ROOT_ID:
                    versions[node_id] = v.evolve(part_id=self.redirect.get(v.part_id,
                                                                           v.part_id))
                continue
            versions[node_id] = v
        touched = set(outcome.added) | set(outcome.removed) | set(outcome.lost) | \
            set(outcome.skipped_removes) | set(outcome.refused_adds)
        for node_id in touched - self.gone:
            if self._is_new(node_id):
                continue
            newer = view._newest(node_id)
            if newer is None or newer.deleted:
                continue
            v = versions.get(node_id) or view._carry(newer).evolve(
                version=newer.version + 1, ctime_ns=now, entries=(), snapshot=False)
            net = outcome.added[node_id] - outcome.removed[node_id] - outcome.lost[node_id]
            if v.kind == DIRECTORY:
                names = 1 + net
                v = v.evolve(nlink=1)
            else:
                names = newer.nlink + net
                part = v.part_id if names == 1 and outcome.added[node_id] else newer.part_id
                v = v.evolve(nlink=max(names, 1), part_id=part)
            if names <= 0:
                v = v.evolve(deleted=True, content=b"", inline=True, size=0, blake3="")
            elif v.deleted:
                v = v.evolve(deleted=False)
                if newer.kind != DIRECTORY:
                    v = view._carry(v.evolve(content=None, **{a: getattr(newer, a) for a in
                                                              ("blake3", "size", "inline")}))
            versions[node_id] = v
        for dir_id in self.ops:
            if dir_id not in versions:
                newer = view._newest(dir_id)
                assert newer is not None
                versions[dir_id] = newer.evolve(version=newer.version + 1, mtime_ns=now,
                                                ctime_ns=now, entries=(), snapshot=False)
        view._pending.update(versions)
        for dir_id, dir_ops in self.ops.items():
            view._pending_ops[dir_id] = [self._placed(dir_id, op, versions) for op in dir_ops]
            view._pending_listings[dir_id] = {
                name: self._placed(dir_id, op, versions)
                for name, op in self.listings[dir_id].items()}
        for dir_id, v in versions.items():
            if v.kind == DIRECTORY and dir_id not in self.ops and self._is_new(dir_id):
                view._pending_listings[dir_id] = self.listings.get(dir_id, {})
        for node_id, parent in outcome.parent.items():
            if node_id in versions and not versions[node_id].deleted:
                view._pending_parents[node_id] = parent

    @staticmethod
    def _placed(dir_id: str, op: DirOp, versions: dict[str, NodeVersion]) -> DirOp:
        """``op`` naming the partition its node's rebased rows are in."""
        v = versions.get(op.node_id)
        if v is None or op.kind == DIRECTORY:
            return op
        part = "" if v.part_id == dir_id else v.part_id
        return op if op.part_id == part else DirOp(op.name, op.node_id, op.kind, op.op, part)
