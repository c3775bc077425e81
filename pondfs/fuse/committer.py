"""The group committer of a read-write mount: staged changes become pond transactions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

import trio

from ..tinyfs import FsError
from .view import ServedView

log = logging.getLogger(__name__)

#: Group commit: after this many quiet seconds, or this many intervals after the first
#: staged change, or once this many changes are staged, whichever comes first.
COMMIT_INTERVAL = 0.5
MAX_DELAY_INTERVALS = 10
COMMIT_AFTER_CHANGES = 5000


class GroupCommitter:
    """Commits what the mount staged in ``view`` as few transactions: once no
    change has come for ``interval`` seconds, at least every ``MAX_DELAY_INTERVALS``
    intervals while changes keep coming, and as soon as ``COMMIT_AFTER_CHANGES`` are
    staged; :meth:`run` is the task doing it. ``mountpoint`` names the mount in commit
    messages.

    Files created and not yet closed or synced are *held* (:meth:`hold`): commits leave
    them out, so a crash never leaves a state nobody closed. Each commit holds the pond's
    writer lock for itself alone and, holding it, first calls ``follow`` (the mount's
    :meth:`PondFollower.follow`), so other writers' commits are shown before this one's
    changes are rebased onto them.
    """

    def __init__(self, view: ServedView, mountpoint: str, interval: float = COMMIT_INTERVAL,
                 follow: Callable[[], Awaitable[object]] | None = None):
        self.view = view
        self.follow = follow
        self.mountpoint = mountpoint
        self.interval = interval
        #: Transactions committed, and the error of the last commit if it failed.
        self.commits = 0
        self.error: FsError | None = None
        self._held: set[str] = set()
        self._committing = trio.Lock()
        self._staged = 0
        self._first_change = self._last_change = 0.0
        self._soon = trio.Event()

    def staged(self, count: int = 1) -> None:
        """Count changes staged for the next group commit; ask for it early when many."""
        now = trio.current_time()
        if self._staged == 0:
            self._first_change = now
        self._last_change = now
        self._staged += count
        if self._staged >= COMMIT_AFTER_CHANGES:
            self._soon.set()

    def hold(self, node_id: str) -> None:
        """Leave the new node ``node_id`` out of commits until :meth:`release`."""
        self._held.add(node_id)

    def release(self, node_id: str) -> None:
        """``node_id`` was closed or synced: the next commit takes it."""
        if node_id in self._held:
            self._held.discard(node_id)
            self.staged()

    def release_all(self) -> None:
        """Every held node goes into the next commit (an unmount closes every file)."""
        self._held.clear()

    async def commit(self, why: str, *, durable: bool = False) -> int | None:
        """Commit everything staged and not held as one pond transaction; its number, or
        None when there was nothing. ``durable`` makes the store fsync what the commit
        wrote, and what earlier commits wrote (fsync and unmount ask for it; group commits
        do not: an fsync'ed commit costs ~100 ms more), even when there is nothing new to
        commit. A failure is raised (and kept, so the next commit retries it).

        Only numbering the staged versions holds the view's lock: the store commit runs
        while the mount goes on serving and staging changes for the next commit (the
        two-phase commit of :class:`pondfs.tinyfs.Commit`). Commits run one at a time,
        and once begun a commit is seen through even if its caller is cancelled.
        """
        async with self._committing:
            with trio.CancelScope(shield=True):
                txn = await self._commit(f"mount {self.mountpoint}: {why}".strip(), durable)
            return txn

    async def _commit(self, command: str, durable: bool) -> int | None:
        view = self.view
        fs = view.fs
        if not fs.dirty:
            if durable:
                await view.thread(fs.store.sync)
            return None
        with ExitStack() as lock:
            # Waiting for another writer's commit blocks no call into the view.
            try:
                await view.thread(lock.enter_context, fs.writer_lock(command))
            except FsError as exc:
                self.error = exc
                raise
            staged = 0
            try:
                if self.follow is not None:
                    # Other writers' commits first, with the kernel told (begin_commit
                    # would rebase onto them too, silently).
                    await self.follow()
                async with view.lock:
                    staged, self._staged = self._staged, 0
                    commit = await trio.to_thread.run_sync(
                        fs.begin_commit, command, frozenset(self._held), limiter=view.limiter)
                if commit is None:
                    if durable:
                        await view.thread(fs.store.sync)
                    return None
                await view.thread(commit.store, durable)
            except BaseException as exc:
                self._staged += staged
                if isinstance(exc, FsError):
                    self.error = exc
                raise
            finally:
                await view.thread(lock.close)
        async with view.lock:
            txn = commit.finish()  # folds rows into memory: no persistence, no await
        self.error = None
        self.commits += 1
        log.debug("committed transaction %s (%d changes, %s)", txn, staged, command)
        return txn

    async def run(self) -> None:
        """Commit staged changes when they have been quiet for ``interval`` seconds, are
        ``MAX_DELAY_INTERVALS`` intervals old, or are many; runs until cancelled."""
        while True:
            with trio.move_on_after(self.interval / 2):
                await self._soon.wait()
            self._soon = trio.Event()
            now = trio.current_time()
            quiet = now - self._last_change >= self.interval
            old = now - self._first_change >= self.interval * MAX_DELAY_INTERVALS
            if not (quiet or old or self._staged >= COMMIT_AFTER_CHANGES):
                continue
            try:
                await self.commit("group commit")
            except Exception:
                log.exception("group commit failed; retrying in %s s", self.interval)
