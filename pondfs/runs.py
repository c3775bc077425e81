"""Run records: what each run of a collector, a pipeline, a backup push or a maintain did,
kept in the pond itself, where ``pond status`` reads them.

A record is a small JSON mapping carried by the transaction of the run
(:attr:`pondfs.tinyfs.TxnInfo.runs`, in the transaction row), so it costs no extra file and
stays as long as the pond's history does. Every record has ``type`` (``collector``,
``pipeline``, ``backup``, ``maintain``), ``name`` (the collector's or pipeline's path, the
backup's URL), ``ok``, ``error`` (one line, or None), ``started_ns`` and ``seconds``; each
type adds its own fields (:func:`collector_record`, ...). A run that changes nothing, or
that fails before it could change anything, commits a transaction carrying only its record
(:func:`commit_records`), so failures are recorded too.

:class:`History` reads the records back from the transactions, newest first: nothing is
rescanned, so asking costs one read of the transaction rows whatever the data's size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .tinyfs import TxnInfo

if TYPE_CHECKING:
    from .collectors import RunReport

log = logging.getLogger(__name__)

COLLECTOR = "collector"
PIPELINE = "pipeline"
BACKUP = "backup"
MAINTAIN = "maintain"

#: Seconds a device may be silent by default before ``pond status`` reports it (6 h).
DEFAULT_SILENT_AFTER = 6 * 3600.0


def record(type_: str, name: str, *, started_ns: int, error: str | None = None,
           **details: Any) -> dict[str, Any]:
    """A record of a run of ``type_`` called ``name`` that started at ``started_ns``
    (``time.time_ns()``) and ends now; ``error`` (None: it succeeded) and the type's own
    ``details``."""
    return {"type": type_, "name": name, "ok": error is None, "error": error,
            "started_ns": started_ns, "seconds": round((time.time_ns() - started_ns) / 1e9, 3),
            **details}


def collector_record(report: RunReport, started_ns: int) -> dict[str, Any]:
    """The record of one collector run: rows, and per device its rows, newest reading
    (epoch seconds) and error; ``silent_after`` is the collector's expected interval."""
    failures = report.failures
    devices = {s.name: {"rows": s.rows, "newest": s.newest, "error": s.error}
               for s in report.sources}
    return record(COLLECTOR, report.path, started_ns=started_ns,
                  error="; ".join(failures) if failures else None, rows=report.rows,
                  devices=devices, silent_after=report.silent_after)


def commit_records(location: str, command: str, records: list[dict[str, Any]], *,
                   lock_wait: float) -> int:
    """Commit a transaction carrying only ``records`` (a run that wrote nothing to the
    pond: a push, a maintain, a pipeline's summary); its number."""
    from . import pond

    with pond.open_fs(location, write=True, holder=command, lock_wait=lock_wait) as fs:
        txn = fs.commit(command, runs=records)
    assert txn is not None
    return txn


@dataclass
class DeviceState:
    """What the records say of one device of a collector."""

    name: str
    newest: int | None = None  # epoch seconds of its newest reading
    error: str | None = None  # of its last run


@dataclass
class CollectorState:
    """A collector's last runs (newest first, as (txn, record)) and its devices."""

    name: str
    runs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    devices: dict[str, DeviceState] = field(default_factory=dict)

    @property
    def last(self) -> dict[str, Any]:
        """The newest run's record."""
        return self.runs[0][1]

    def failed_in_a_row(self) -> int:
        """How many of the newest runs failed, one after the other."""
        count = 0
        for _, rec in self.runs:
            if rec["ok"]:
                break
            count += 1
        return count


class History:
    """Every run record of a pond's transactions, grouped by what ran.

    ``transactions`` may come in any order; ``keep`` is how many runs of each collector are
    kept (newest first), enough to tell how many failed in a row.
    """

    def __init__(self, transactions: Iterable[TxnInfo], keep: int = 10):
        self.transactions = sorted(transactions, key=lambda t: t.txn, reverse=True)
        self.collectors: dict[str, CollectorState] = {}
        #: The newest record of each other type, by name: (txn, record).
        self.latest: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        #: The newest successful record of each other type, by name: (txn, record).
        self.latest_ok: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        for info in self.transactions:
            for rec in info.runs or ():
                self._add(info.txn, rec, keep)

    def _add(self, txn: int, rec: dict[str, Any], keep: int) -> None:
        if rec.get("type") == COLLECTOR:
            state = self.collectors.setdefault(rec["name"], CollectorState(rec["name"]))
            if len(state.runs) < keep:
                state.runs.append((txn, rec))
            for name, device in rec.get("devices", {}).items():
                known = state.devices.get(name)
                if known is None:
                    state.devices[name] = DeviceState(name, device.get("newest"),
                                                      device.get("error"))
                elif known.newest is None:
                    known.newest = device.get("newest")
            return
        key = (rec.get("type", ""), rec.get("name", ""))
        self.latest.setdefault(key, (txn, rec))
        if rec.get("ok"):
            self.latest_ok.setdefault(key, (txn, rec))

    def newest(self, type_: str, name: str, ok: bool = False) -> tuple[int, dict] | None:
        """The newest (txn, record) of ``type_`` called ``name`` (the newest successful one
        if ``ok``), or None."""
        return (self.latest_ok if ok else self.latest).get((type_, name))

    def of_type(self, type_: str) -> list[str]:
        """The names with records of ``type_``, sorted."""
        return sorted(name for t, name in self.latest if t == type_)

    def changes_after(self, txn: int) -> Sequence[TxnInfo]:
        """The transactions after ``txn`` that changed the pond (not only records)."""
        return [t for t in self.transactions if t.txn > txn and t.rows > 0]
