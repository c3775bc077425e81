"""Progress bars for a person at a terminal: on stderr, and only when stderr is a terminal
(cron, pipes and logs see nothing). tqdm is imported only once a bar is shown, so commands
that show none do not pay its start-up time."""

from __future__ import annotations

import sys
from typing import Protocol


class ProgressBar(Protocol):
    """What a progress bar offers: a context (the bar goes when it ends) and ``update``."""

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc_info: object) -> object: ...

    def update(self, n: int = 1) -> None:
        """``n`` more units are done."""


def progress_bar(desc: str, total: int | None, unit: str = "B", *,
                 enabled: bool = True) -> ProgressBar:
    """A bar of ``total`` ``unit`` (None: a count without an end) and their rate, labelled
    ``desc``: bytes count in KiB, MiB, ..., other units one by one. Shown when ``enabled``
    and stderr is a terminal, and cleared when done; otherwise it shows nothing."""
    if not (enabled and sys.stderr.isatty()):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=unit == "B", unit_divisor=1024, desc=desc,
                file=sys.stderr, leave=False)


class _NoBar:
    """A progress bar that shows nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None
