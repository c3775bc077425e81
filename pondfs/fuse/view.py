"""Calling a tinyfs view from the mount's trio event loop: one call at a time, on the loop
when tinyfs can answer from memory, in a worker thread when it may read persistence."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio

from ..tinyfs import FS, Stat

#: Worker threads doing blocking work (commits, content, persistence reads).
WORKER_THREADS = 4

T = TypeVar("T")


class ServedView:
    """The view a mount serves (``fs``, replaced when a follower moves on) and the one lock
    that serializes calls into it.

    A call runs directly on the event loop when ``inline`` (tinyfs answers from memory,
    :meth:`FS.loaded`) and in a worker thread otherwise, so a slow call never stalls the
    mount.
    """

    def __init__(self, fs: FS):
        self.fs = fs
        self.lock = trio.Lock()
        self.limiter = trio.CapacityLimiter(WORKER_THREADS)

    def busy(self) -> bool:
        """Whether a call holds the view now (a caller may then not run inline)."""
        return self.lock.locked()

    async def call(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """``fn(*args)`` serialized with every other call: on the event loop when ``inline``
        (it needs no persistence read), else in a worker thread."""
        if inline and not self.lock.locked():
            return fn(*args)  # atomic: no await between the check and the call
        async with self.lock:
            if inline:
                return fn(*args)
            return await trio.to_thread.run_sync(partial(fn, *args), limiter=self.limiter)

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, not serialized (it must not touch view state)."""
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=self.limiter)

    def loaded(self, *node_ids: str) -> bool:
        """Whether tinyfs holds all of ``node_ids`` in memory."""
        return all(self.fs.loaded(n) for n in node_ids)

    async def stat(self, node_id: str) -> Stat:
        """The attributes of ``node_id``."""
        return await self.call(self.fs.stat, node_id, inline=self.loaded(node_id))
