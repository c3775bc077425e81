"""Declared backup targets: ``kind: backup`` resources, which ``pond backup push`` (with no
URL) pushes to, each push followed by the target's forget rules::

    apiVersion: pondfs/v1
    kind: backup
    name: offsite                  # the node is /etc/offsite unless `path` says otherwise
    spec:
      url: s3://bucket/noyo        # where (endpoint and credentials: the usual AWS settings)
      keep_last: 30                # optional forget rules, as pond backup forget's options
      keep_within: 90d
      max_age: 1d                  # pond status reports a newest push older than this

Each push (and its forget) is recorded in the pond (:mod:`pondfs.runs`), failed or not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from . import resources
from .kinds import KINDS, Kind
from .resources import Fields, SpecError
from .runs import BACKUP, record
from .tinyfs import FS

log = logging.getLogger(__name__)

#: How old a target's newest push may be by default before ``pond status`` reports it.
DEFAULT_MAX_AGE = 86400.0


@dataclass(frozen=True)
class Target:
    """A checked backup target spec."""

    url: str
    keep_last: int | None
    keep_within: float | None
    max_age: float

    @property
    def forgets(self) -> bool:
        """Whether the target has forget rules."""
        return self.keep_last is not None or self.keep_within is not None


def _validate(spec: dict) -> Target:
    fields = Fields(spec, "spec")
    url = fields.get("url", str)
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise SpecError(fields.field("url"), f"must be s3://bucket[/prefix], not {url!r}")
    keep_last = fields.get("keep_last", int, None)
    if keep_last is not None and keep_last < 1:
        raise SpecError(fields.field("keep_last"), f"must be at least 1, not {keep_last}")
    keep_within = fields.duration("keep_within", None)
    max_age = fields.duration("max_age", DEFAULT_MAX_AGE)
    assert max_age is not None
    fields.done()
    return Target(url, keep_last, keep_within, max_age)


KIND = Kind("backup", _validate, declared=True)


def declared(fs: FS, under: str = "/") -> list[tuple[str, Target]]:
    """Every declared backup target in the pond (below ``under``): (its path, its
    settings), by path."""
    return [(path, resources.stored(fs, path, KINDS).settings)
            for path, kind in resources.find(fs, under) if kind == KIND.name]


def push(location: str, name: str, target: Target, *, jobs: int,
         abort_uploads_after: float) -> tuple[str, dict[str, Any]]:
    """Push the pond to ``target`` (declared as ``name``), then apply its forget rules; one
    line saying what happened (or the error) and the run's record (its ``error`` says why
    it failed)."""
    from . import backup

    started = time.time_ns()
    try:
        result = backup.push(location, target.url, jobs=jobs,
                             abort_uploads_after=abort_uploads_after)
        line = result.describe()
        if target.forgets:
            forgot = backup.forget(target.url, keep_last=target.keep_last,
                                   keep_within=target.keep_within, jobs=jobs)
            line += "; " + forgot.describe()
    except OSError as exc:  # BackupError, S3 and file errors
        error = str(exc.strerror or exc)
        return error, record(BACKUP, name, started_ns=started, error=error, url=target.url,
                             max_age=target.max_age)
    return line, record(BACKUP, name, started_ns=started, url=target.url,
                        pushed_txn=result.txn, max_age=target.max_age)
