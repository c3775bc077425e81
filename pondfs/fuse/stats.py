"""How many FUSE requests of each kind a mount served, so the cost per operation of a tool
run through the mount can be seen (``benchmarks/bench_tools.py`` reads them).

Every handler of :class:`pondfs.fuse_ops.PondOperations` counts itself on entry (one dict
increment, whether it then succeeds or fails); the daemon logs the counts at INFO when it
unmounts, as one line that :func:`counts_in_log` finds again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

#: What the unmount log line starts with; the counts follow as a JSON object.
LOG_PREFIX = "operations served: "


class OperationCounts:
    """Requests served per handler name (``lookup``, ``getattr``, ``write``, ...)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, operation: str) -> None:
        """One more ``operation`` served."""
        counts = self.counts
        counts[operation] = counts.get(operation, 0) + 1

    @property
    def total(self) -> int:
        """Requests of every kind."""
        return sum(self.counts.values())

    def log_line(self) -> str:
        """The counts as the daemon logs them: :data:`LOG_PREFIX` and a JSON object, the
        most frequent operation first."""
        ordered = dict(sorted(self.counts.items(), key=lambda item: (-item[1], item[0])))
        return LOG_PREFIX + json.dumps(ordered, separators=(",", ":"))


def counts_in_log(lines: Iterable[str]) -> dict[str, int] | None:
    """The counts of the last unmount logged in ``lines`` (a daemon's log), or None if no
    unmount logged any."""
    found = None
    for line in lines:
        at = line.find(LOG_PREFIX)
        if at >= 0:
            found = json.loads(line[at + len(LOG_PREFIX):])
    return found
