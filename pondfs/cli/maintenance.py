"""The commands that keep a pond healthy: check and maintain."""

from __future__ import annotations

import argparse
import time

from .. import pond
from ..progress import progress_bar
from ..tinyfs import Checker
from .common import Commands, add_at, reading


def add_commands(commands: Commands) -> None:
    """Add check and maintain."""
    command = commands.add

    p = command("check", cmd_check, "verify every invariant of the pond; exit 1 on problems")
    p.add_argument("--quick", action="store_true", help="skip content hashes")
    add_at(p)

    p = command("maintain", cmd_maintain,
                "checkpoint, compact small files, remove unreferenced old data")
    p.add_argument("--retention-hours", type=float, default=168.0,
                   help="keep unreferenced data younger than this (default 168)")


def cmd_check(args: argparse.Namespace) -> int:
    """pond check: every invariant of the pond; exit status 1 on any problem."""
    with reading(args) as fs, progress_bar("check", None, "version") as bar:
        report = Checker(fs, verify_content=not args.quick,
                         progress=lambda n: bar.update(1)).run()
    for problem in report.problems:
        print(f"problem: {problem}")
    for note in report.notes:
        print(f"note: {note}")
    state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"pond check: {report.nodes} nodes, {report.versions} versions: {state}")
    return 0 if report.ok else 1


def cmd_maintain(args: argparse.Namespace) -> int:
    """pond maintain: checkpoint, compact, remove unreferenced old data; the run is
    recorded in the pond (pond status says when maintain last ran)."""
    from .. import runs

    started = time.time_ns()
    error = None
    try:
        report = pond.maintain(args.location, retention_hours=args.retention_hours,
                               holder="pond maintain", lock_wait=args.wait)
    except OSError as exc:  # recorded, then reported as any command's error
        error = str(exc)
        raise
    finally:
        record = runs.record(runs.MAINTAIN, "maintain", started_ns=started, error=error,
                             retention_hours=args.retention_hours)
        runs.commit_records(args.location, "pond " + " ".join(args.argv), [record],
                            lock_wait=args.wait)
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0
