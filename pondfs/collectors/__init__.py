"""Collectors: bring data from outside (HydroVu, ...) into the pond as new versions.

A collector is a resource (see :mod:`pondfs.resources`) of an executable kind (see
:mod:`pondfs.kinds`: a :class:`~pondfs.kinds.Kind` with ``run``, and ``makes`` naming where
its runs write). Its node in the pond is a read-only file showing its configuration (secrets
as ``${env:...}`` references); ``pond run PATH`` runs it inside the command's one
transaction. Where its data goes and how it resumes is each collector's business; a
collector keeps no state outside the pond, so a failed or lost run is simply followed by one
that resumes. A collector's module is imported only when it is validated or run, so every
``pond`` command does not pay for HTTP libraries.
"""

from __future__ import annotations

import errno
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from .. import resources
from ..kinds import KINDS
from ..resources import SpecError, parse_spec
from ..runs import DEFAULT_SILENT_AFTER
from ..tinyfs import DYNAMIC, FS, FsError


class CollectorError(Exception):
    """A collector could not do (part of) its work; the message says what and where."""


@dataclass
class SourceReport:
    """What a run did for one source (a device): rows appended, or why it failed;
    ``newest`` is the time of its newest reading in the pond after the run."""

    name: str
    pages: int = 0
    rows: int = 0
    first: int | None = None
    last: int | None = None
    newest: int | None = None
    limited: bool = False
    error: str | None = None


@dataclass
class RunReport:
    """What one run of one collector did; ``silent_after`` is how long its sources may go
    without a new reading before ``pond status`` reports them (the collector's spec)."""

    path: str
    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    silent_after: float = DEFAULT_SILENT_AFTER

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sources)

    @property
    def failures(self) -> list[str]:
        """One message per failure (the whole run, or each source that failed)."""
        if self.error is not None:
            return [f"{self.path}: {self.error}"]
        return [f"{self.path}: {s.error}" for s in self.sources if s.error]

    def summary(self) -> str:
        """One line for a person: sources, rows, rate, and what held anything back."""
        if self.error is not None:
            return f"{self.path}: failed: {self.error}"
        new = sum(1 for s in self.sources if s.rows)
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        line = (f"{self.path}: {len(self.sources)} devices, {new} with new data, "
                f"{self.rows} rows in {sum(s.pages for s in self.sources)} pages, "
                f"{self.seconds:.1f} s ({rate:,.0f} rows/s)")
        limited = [s.name for s in self.sources if s.limited]
        if limited:
            line += f"; stopped at the per-run limit for {', '.join(limited)} (more next run)"
        failed = sum(1 for s in self.sources if s.error)
        if failed:
            line += f"; {failed} failed"
        return line


class Progress:
    """Where a collector reports progress; this one shows nothing (cron, pipes)."""

    def update(self, source: str, pages: int, rows: int) -> None:
        """``source`` has given ``pages`` pages and ``rows`` rows so far in this run."""

    def close(self) -> None:
        """The run is over."""


class TerminalProgress(Progress):
    """One self-rewriting status line (devices, pages, rows, rows/s) on a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, label: str = ""):
        self.stream = stream
        self.label = label
        self.started = time.monotonic()
        self.done_rows = 0
        self.sources: dict[str, int] = {}

    def update(self, source: str, pages: int, rows: int) -> None:
        self.sources[source] = rows
        total = sum(self.sources.values())
        rate = total / max(time.monotonic() - self.started, 1e-6)
        self.stream.write(f"\r\033[K{self.label}device {len(self.sources)} {source}: "
                          f"page {pages}, {total} rows, {rate:,.0f} rows/s")
        self.stream.flush()

    def close(self) -> None:
        if self.sources:
            self.stream.write("\r\033[K")
            self.stream.flush()


def run(fs: FS, path: str, progress: Progress | None = None) -> RunReport:
    """Run the collector whose node is at ``path``; its failures are in the report."""
    node_id = fs.resolve(path, follow=False)
    stored = fs.get(node_id)
    kind, config = fs.dynamic_config(node_id) if stored.kind == DYNAMIC else ("", b"")
    if not KINDS.executable(kind):
        raise FsError(errno.EINVAL, f"{path} is not a collector (see pond describe {path})")
    run_kind = KINDS.get(kind).run
    assert run_kind is not None
    progress = progress or Progress()
    started = time.monotonic()
    settings = None
    try:
        settings = KINDS.settings(kind, parse_spec(config, path))
        report = run_kind(fs, node_id, path, settings, progress)
    except (CollectorError, SpecError) as exc:
        report = RunReport(path, error=str(exc), silent_after=getattr(
            settings, "silent_after", DEFAULT_SILENT_AFTER))
    finally:
        progress.close()
    report.seconds = time.monotonic() - started
    return report


def find(fs: FS) -> list[str]:
    """The path of every collector node in the pond, sorted (computed directories are not
    entered)."""
    return [path for path, kind in resources.find(fs) if KINDS.executable(kind)]
