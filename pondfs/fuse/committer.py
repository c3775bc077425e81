"""The group committer of a read-write mount: staged changes become pond transactions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

import trio

from ..tinyfs import FS, FsError
from .view import ServedView

log = logging.getLogger(__name__)

#: Group commit: after this many quiet seconds, or this many intervals after the first
#: staged change, or once this many changes are staged, whichever comes first.
COMMIT_INTERVAL = 0.5
MAX_DELAY_INTERVALS = 10
COMMIT_AFTER_CHANGES = 5000

#: A sync that commits for others first waits for as many syncs as were under way when the
#: last durable commit ended, up to this share of that commit's duration: the fsyncs that
#: commit released come back (threads writing and syncing in a loop), and share the next
#: commit instead of missing it by a few ms and waiting for one more.
GATHER_SHARE = 0.5


class GroupCommitter:
    """Commits what the mount staged in ``view`` as few transactions: once no
    change has come for ``interval`` seconds, at least every ``MAX_DELAY_INTERVALS``
    intervals while changes keep coming, and as soon as ``COMMIT_AFTER_CHANGES`` are
    staged; :meth:`run` is the task doing it. ``mountpoint`` names the mount in commit
    messages.

    Files created and not yet closed or synced are *held* (:meth:`hold`): commits leave
    them out, so a crash never leaves a state nobody closed. Each commit holds the pond's
    writer lock for itself alone and, holding it, first calls ``follow`` (the mount's
    :meth:`PondFollower.follow`) if another writer committed meanwhile, so their commits
    are shown before this one's changes are rebased onto them. fsyncs call :meth:`sync`,
    which commits durably and shares one commit among concurrent callers.
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
        self._committing = trio.Lock()  # fair: waiters take it in the order they came
        #: Commits begun (numbered as they take the pending changes), and the number of the
        #: last one that ended durable: what :meth:`sync` waits for.
        self._begun = 0
        self._durable_upto = 0
        #: Syncs under way now; how many were when the last durable commit ended, and
        #: its seconds (see :data:`GATHER_SHARE`).
        self._syncing = 0
        self._syncing_at_end = 0
        self._last_seconds = 0.0
        self._sync_came = trio.Event()
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
                txn = await self._commit(why, durable)
            return txn

    async def sync(self, why: str) -> None:
        """Return once everything staged before this call is committed durably (an fsync):
        by the first durable commit begun after the call, whoever asked for it.

        Concurrent syncs share commits (group commit): a sync arriving while a commit is in
        flight waits for it to end; then the first of those that waited commits durably
        for all of them (after gathering a few more: :data:`GATHER_SHARE`), and the others
        return as soon as that commit has. A failed commit leaves its waiters to try again
        in turn. Cancelling the caller does not stop a commit once begun (see
        :meth:`commit`).
        """
        wanted = self._begun + 1  # anything earlier may have taken its changes already
        self._syncing += 1
        self._sync_came.set()
        try:
            async with self._committing:
                if self._durable_upto >= wanted:
                    return
                await self._gather()
                with trio.CancelScope(shield=True):
                    await self._commit(why, durable=True)
        finally:
            self._syncing -= 1

    async def _gather(self) -> None:
        """Wait for as many syncs as were under way when the last durable commit ended, up
        to :data:`GATHER_SHARE` of its duration; a lone fsync never waits."""
        with trio.move_on_after(self._last_seconds * GATHER_SHARE):
            while self._syncing < self._syncing_at_end:
                self._sync_came = trio.Event()
                await self._sync_came.wait()

    async def _commit(self, why: str, durable: bool) -> int | None:
        # From here on, every change staged before is either in this commit or held.
        self._begun += 1
        begun = self._begun
        start = trio.current_time()
        txn = await self._commit_begun(f"mount {self.mountpoint}: {why}".strip(), durable)
        if durable:
            self._durable_upto = begun
            self._syncing_at_end = self._syncing
            self._last_seconds = trio.current_time() - start
        return txn

    async def _commit_begun(self, command: str, durable: bool) -> int | None:
        view = self.view
        fs = view.fs
        if not fs.dirty:
            if durable:
                await view.thread(fs.store.sync)
            return None
        with ExitStack() as lock:
            # Waiting for another writer's commit blocks no call into the view.
            try:
                newest = await view.thread(_take_writer_lock, lock, fs, command)
            except FsError as exc:
                self.error = exc
                raise
            staged = 0
            try:
                if self.follow is not None and newest > fs.as_of:
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


def _take_writer_lock(lock: ExitStack, fs: FS, command: str) -> int:
    """Take ``fs``'s writer lock for one commit (into ``lock``); the newest transaction then
    (taking it refreshes the store: nobody else committed if it is ``fs.as_of``)."""
    lock.enter_context(fs.writer_lock(command))
    return fs.store.last_txn()
