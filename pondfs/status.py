"""``pond status``: how a pond is doing, from what its runs recorded.

:func:`gather` reads the transaction rows (with the run records of :mod:`pondfs.runs`), the
Delta log's summary of the data files, the object and cache directories and the registry of
active mounts (:mod:`pondfs.mounts`); it rescans no data, so it stays fast however large the
pond is. It returns a :class:`Status`: the facts as one JSON-able mapping and the problems,
one line each, that need someone's attention:

* a collector whose last ``failures`` runs all failed;
* a device silent for longer than its collector's ``silent_after`` (default 6 h);
* a declared or used backup target whose newest successful push is older than its
  ``max_age`` (default 1 day), or that was never pushed to;
* a problem the quick checker (``pond check --quick``) finds, when ``check`` is asked for.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import mounts, runs
from .backup_targets import DEFAULT_MAX_AGE
from .durations import format_duration

log = logging.getLogger(__name__)

#: Files beyond one per partition, or log entries since the last checkpoint, at which
#: ``pond maintain`` is due.
MAINTAIN_DUE_AT = 100


@dataclass
class Status:
    """The facts (a JSON-able mapping) and the problems, one line each."""

    facts: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def gather(location: str, *, failures: int = 1, check: bool = False,
           now_ns: int | None = None) -> Status:
    """The status of the pond at ``location`` (see the module docstring)."""
    from . import backup_targets, pond, resources
    from .tinyfs import Checker

    now_ns = time.time_ns() if now_ns is None else now_ns
    with pond.open_fs(location) as fs:
        store = fs.store
        history = runs.History(fs.transactions(), keep=max(failures, 1))
        summary = store.table_summary()  # type: ignore[attr-defined]
        disk = store.disk_dir()
        try:
            targets = dict(backup_targets.declared(fs, resources.DEFAULT_DIR))
        except OSError as exc:
            log.warning("could not read the declared backup targets: %s", exc)
            targets = {}
        problems: list[str] = []
        if check:
            report = Checker(fs, verify_content=False).run()
            problems += [f"check: {p}" for p in report.problems]
        objects = _objects(store)
        cache_dir = store.cache_dir()
        cache = 0 if cache_dir is None else _bytes(Path(cache_dir))
    facts: dict[str, Any] = {"pond": location, "time_ns": now_ns}
    facts["size"] = {**summary, **objects, "cache_bytes": cache}
    facts["transactions"] = _transactions(history, now_ns)
    facts["collectors"] = [_collector(state, failures, now_ns, problems)
                           for _, state in sorted(history.collectors.items())]
    names = sorted(set(targets) | set(history.of_type(runs.BACKUP)))
    facts["backups"] = [_backup(history, name, targets.get(name), now_ns, problems)
                        for name in names]
    facts["pipelines"] = [_last_run(history, runs.PIPELINE, name, now_ns)
                          for name in history.of_type(runs.PIPELINE)]
    facts["mounts"] = mounts.active(disk) if disk is not None else []
    facts["maintain"] = _maintain(history, summary, now_ns)
    facts["check"] = {"ran": check, "problems": sum(p.startswith("check: ") for p in problems)}
    return Status(facts, problems)


def _transactions(history: runs.History, now_ns: int) -> dict[str, Any]:
    newest = history.transactions[0] if history.transactions else None
    return {"count": len(history.transactions), "newest": newest.txn if newest else 0,
            "newest_time_ns": newest.timestamp_ns if newest else None,
            "newest_age_s": _age(newest.timestamp_ns, now_ns) if newest else None}


def _age(then_ns: int, now_ns: int) -> float:
    return round((now_ns - then_ns) / 1e9, 3)


def _last_run(history: runs.History, type_: str, name: str, now_ns: int) -> dict[str, Any]:
    found = history.newest(type_, name)
    assert found is not None
    txn, rec = found
    return {"name": name, "last_txn": txn, "last_ok": rec["ok"], "last_error": rec["error"],
            "last_started_ns": rec["started_ns"],
            "last_age_s": _age(rec["started_ns"], now_ns)}


def _collector(state: runs.CollectorState, failures: int, now_ns: int,
               problems: list[str]) -> dict[str, Any]:
    last_txn, last = state.runs[0]
    in_a_row = state.failed_in_a_row()
    if in_a_row >= failures:
        problems.append(f"collector {state.name}: the last {in_a_row} run(s) failed: "
                        f"{last['error']}")
    silent_after = float(last.get("silent_after") or runs.DEFAULT_SILENT_AFTER)
    devices = []
    for device in sorted(state.devices.values(), key=lambda d: d.name):
        age = None if device.newest is None else round(now_ns / 1e9 - device.newest, 3)
        devices.append({"name": device.name, "newest": device.newest, "age_s": age,
                        "error": device.error})
        if age is not None and age > silent_after:
            problems.append(f"collector {state.name}: device {device.name} silent for "
                            f"{format_duration(age)} (expected every "
                            f"{format_duration(silent_after)})")
    return {"name": state.name, "last_txn": last_txn, "last_ok": last["ok"],
            "last_error": last["error"], "last_started_ns": last["started_ns"],
            "last_age_s": _age(last["started_ns"], now_ns), "last_rows": last.get("rows", 0),
            "failed_in_a_row": in_a_row, "silent_after_s": silent_after, "devices": devices}


def _backup(history: runs.History, name: str, target: Any, now_ns: int,
            problems: list[str]) -> dict[str, Any]:
    last = history.newest(runs.BACKUP, name)
    good = history.newest(runs.BACKUP, name, ok=True)
    max_age = target.max_age if target is not None else float(
        (last[1] if last else {}).get("max_age") or DEFAULT_MAX_AGE)
    facts: dict[str, Any] = {"name": name, "declared": target is not None,
                             "max_age_s": max_age, "last_ok": last[1]["ok"] if last else None,
                             "last_error": last[1]["error"] if last else None,
                             "pushed_txn": None, "pushed_ns": None, "age_s": None,
                             "lag_txns": None, "lag_s": None}
    if good is None:
        problems.append(f"backup {name}: never pushed")
        return facts
    txn, rec = good
    pushed = rec["pushed_txn"]
    behind = history.changes_after(pushed)
    age = _age(rec["started_ns"], now_ns)
    facts.update(pushed_txn=pushed, pushed_ns=rec["started_ns"], age_s=age,
                 lag_txns=len(behind),
                 lag_s=_age(behind[-1].timestamp_ns, now_ns) if behind else 0.0)
    if age > max_age:
        problems.append(f"backup {name}: the newest push is {format_duration(age)} old "
                        f"(limit {format_duration(max_age)})")
    return facts


def _maintain(history: runs.History, summary: dict[str, int], now_ns: int) -> dict[str, Any]:
    found = history.newest(runs.MAINTAIN, "maintain", ok=True)
    due = (summary["extra_files"] >= MAINTAIN_DUE_AT
           or summary["log_entries_since_checkpoint"] >= MAINTAIN_DUE_AT)
    return {"last_txn": found[0] if found else None,
            "last_started_ns": found[1]["started_ns"] if found else None,
            "last_age_s": _age(found[1]["started_ns"], now_ns) if found else None,
            "due": due, "extra_files": summary["extra_files"],
            "log_entries_since_checkpoint": summary["log_entries_since_checkpoint"]}


def _objects(store: Any) -> dict[str, int | None]:
    """How many content objects, and their bytes (a local pond's; None in S3)."""
    root = getattr(store.objects, "root", None)
    if root is None:
        return {"objects": None, "object_bytes": None}
    count = size = 0
    for entry in _files(Path(root)):
        count += 1
        size += entry.stat().st_size
    return {"objects": count, "object_bytes": size}


def _bytes(root: Path) -> int:
    return sum(entry.stat().st_size for entry in _files(root))


def _files(root: Path) -> Iterator[os.DirEntry]:
    """Every file below ``root`` (none if it is missing)."""
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _files(Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            yield entry


def prometheus(status: Status) -> str:
    """The status in Prometheus's text exposition format (``pondfs_`` metrics), for
    node_exporter's textfile collector."""
    facts = status.facts
    lines: list[str] = []

    def metric(name: str, help_text: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        lines.append(f"# HELP pondfs_{name} {help_text}")
        lines.append(f"# TYPE pondfs_{name} gauge")
        for labels, value in samples:
            if value is None:
                continue
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"pondfs_{name}{{{text}}} {float(value):g}" if text else
                         f"pondfs_{name} {float(value):g}")

    pond = {"pond": facts["pond"]}
    size = facts["size"]
    for key, help_text in (("rows", "rows of the operation log"),
                           ("data_files", "data files of the operation log"),
                           ("data_bytes", "bytes of the operation log's data files"),
                           ("objects", "content objects"),
                           ("object_bytes", "bytes of the content objects"),
                           ("cache_bytes", "bytes of the derived cache")):
        metric(key, help_text, [(pond, size[key])])
    txns = facts["transactions"]
    metric("transactions", "transactions committed", [(pond, txns["count"])])
    metric("newest_transaction_age_seconds", "age of the newest transaction",
           [(pond, txns["newest_age_s"])])
    collectors = facts["collectors"]
    metric("collector_last_run_ok", "1 if the collector's last run succeeded",
           [(pond | {"collector": c["name"]}, c["last_ok"]) for c in collectors])
    metric("collector_last_run_age_seconds", "age of the collector's last run",
           [(pond | {"collector": c["name"]}, c["last_age_s"]) for c in collectors])
    metric("collector_failed_runs", "the collector's failed runs in a row",
           [(pond | {"collector": c["name"]}, c["failed_in_a_row"]) for c in collectors])
    metric("collector_last_run_rows", "rows the collector's last run added",
           [(pond | {"collector": c["name"]}, c["last_rows"]) for c in collectors])
    metric("device_newest_reading_age_seconds", "age of the device's newest reading",
           [(pond | {"collector": c["name"], "device": d["name"]}, d["age_s"])
            for c in collectors for d in c["devices"]])
    backups = facts["backups"]
    metric("backup_age_seconds", "age of the target's newest successful push",
           [(pond | {"target": b["name"]}, b["age_s"]) for b in backups])
    metric("backup_lag_transactions", "transactions that changed the pond since the push",
           [(pond | {"target": b["name"]}, b["lag_txns"]) for b in backups])
    metric("mounts", "active mounts", [(pond, len(facts["mounts"]))])
    metric("maintain_due", "1 if pond maintain is due", [(pond, facts["maintain"]["due"])])
    metric("maintain_age_seconds", "age of the last pond maintain",
           [(pond, facts["maintain"]["last_age_s"])])
    metric("problems", "problems pond status reports", [(pond, len(status.problems))])
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
