"""A commit in flight (:class:`Commit`), and the changes one commit holds back.

:meth:`FS.begin_commit <pondfs.tinyfs.fs.FS.begin_commit>` makes a :class:`Commit`; the module
docstring of :mod:`pondfs.tinyfs.fs` tells how the three phases of a commit share the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .persistence import Persistence
from .records import DirOp, NodeVersion, TxnInfo


class CommittingView(Protocol):
    """What a :class:`Commit` needs of the view it commits: its store, and the two ways the
    persistence commit ends."""

    store: Persistence

    def _committed_in_flight(self, commit: Commit) -> None: ...

    def _failed_in_flight(self, commit: Commit) -> None: ...


@dataclass
class HeldChanges:
    """Pending changes kept out of one commit (:meth:`FS.begin_commit`'s ``hold``): versions
    set aside whole, directories committed without some entry changes (``amended``: their
    pending version as it was), and per directory the held entry changes and the listing
    with them."""

    versions: dict[str, NodeVersion] = field(default_factory=dict)
    amended: dict[str, NodeVersion] = field(default_factory=dict)
    ops: dict[str, list[DirOp]] = field(default_factory=dict)
    listings: dict[str, dict[str, DirOp]] = field(default_factory=dict)


def held_op_indexes(ops: list[DirOp], hold: set[str]) -> tuple[set[int], set[int]]:
    """Which entry changes in ``ops`` one commit holds back, and which it drops.

    Held: those that name a held node, with the removal of the entry a held node's entry
    replaced (a rename over an existing name). A held change that a later change of the same
    name, not held, supersedes is not held back (it would be replayed after that change):
    the replaced entry's removal commits now, and a held node's own entry there (which came
    and went before the other took the name) is dropped."""
    held: set[int] = set()
    last_of_name: dict[str, int] = {}
    for i, op in enumerate(ops):
        if op.node_id in hold:
            held.add(i)
            before = last_of_name.get(op.name)
            if op.op == "add" and before is not None and ops[before].op == "remove":
                held.add(before)
        last_of_name[op.name] = i
    last_kept = {op.name: i for i, op in enumerate(ops) if i not in held}
    dropped = {i for i in held if last_kept.get(ops[i].name, -1) > i and ops[i].node_id in hold}
    superseded = {i for i in held if last_kept.get(ops[i].name, -1) > i}
    return held - superseded, dropped


class Commit:
    """A commit in flight: the rows of transaction ``info.txn``, numbered and moved out of
    the pending changes by :meth:`FS.begin_commit`, not yet in persistence.

    :meth:`store` writes them (without the view's lock: other threads keep reading and
    staging meanwhile) and :meth:`finish` folds them into the view's committed state;
    :meth:`complete` does both. If :meth:`store` fails, the view keeps the rows in flight and
    the next commit writes them again (see the module docstring).
    """

    def __init__(self, fs: CommittingView, info: TxnInfo, rows: list[NodeVersion],
                 followed: list[NodeVersion] | None = None):
        self.fs = fs
        self.info = info
        self.rows = rows
        #: Versions other writers committed that the view was rebased onto first.
        self.followed = followed or []
        self._stored = False

    @property
    def txn(self) -> int:
        return self.info.txn

    def store(self, durable: bool = False) -> None:
        """Phase two: the persistence commit; ``durable`` then syncs the store, so the
        transaction survives a power loss before this returns."""
        try:
            self.fs.store.commit(self.rows, self.info)
            if durable:
                self.fs.store.sync()
        except BaseException:
            self.fs._failed_in_flight(self)
            raise
        self._stored = True

    def finish(self) -> int:
        """Phase three: fold the committed rows into the view; the transaction number."""
        assert self._stored, "finish() before store()"
        self.fs._committed_in_flight(self)
        return self.info.txn

    def complete(self) -> int:
        """:meth:`store`, then :meth:`finish`."""
        self.store()
        return self.finish()
