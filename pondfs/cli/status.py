"""``pond status``: how the pond is doing, with Nagios-style exit codes."""

from __future__ import annotations

import argparse
import json
import sys

from .common import Commands, iso_time

#: Exit statuses, as monitoring plugins use them (Nagios, Icinga, ...).
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3


def add_commands(commands: Commands) -> None:
    """Add status."""
    p = commands.add(
        "status", cmd_status, "the pond's health: size, transactions, collectors, backups, "
        "mounts, maintenance; exit 1 with a line per problem",
        description="Report the pond from what its runs recorded (no data is rescanned). "
                    "Exit status 0 when all is well; 1 (WARNING) with one 'problem:' line "
                    "each on stderr when a collector's last runs failed, a device is "
                    "silent longer than its collector's silent_after, a backup target's "
                    "newest push is older than its max_age, or the quick check finds a "
                    "problem; 2 (CRITICAL) when the pond cannot be read.")
    p.add_argument("-o", "--output", choices=["text", "json", "prometheus"], default="text")
    p.add_argument("--failures", type=int, default=1, metavar="N",
                   help="report a collector whose last N runs failed (default 1)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the quick check of the pond's invariants")


def cmd_status(args: argparse.Namespace) -> int:
    """pond status: facts on stdout, problems on stderr; Nagios-style exit status."""
    from .. import status as pond_status
    from .errors import CommandError

    if args.failures < 1:
        raise CommandError(f"--failures must be at least 1, not {args.failures}", UNKNOWN)
    try:
        found = pond_status.gather(args.location, failures=args.failures, check=args.check)
    except OSError as exc:
        raise CommandError(f"{exc.strerror or exc}", CRITICAL) from None
    if args.output == "json":
        print(json.dumps({**found.facts, "problems": found.problems}, indent=2))
    elif args.output == "prometheus":
        print(pond_status.prometheus(found), end="")
    else:
        print("\n".join(_text(found.facts)))
    for problem in found.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return OK if found.ok else WARNING


def _text(facts: dict) -> list[str]:
    """The facts for people, a line each."""
    size, txns = facts["size"], facts["transactions"]
    lines = [f"pond {facts['pond']}",
             f"size: {size['rows']} rows in {size['data_files']} data files "
             f"({_bytes(size['data_bytes'])}), {_maybe(size['objects'])} objects "
             f"({_bytes(size['object_bytes'])}), cache {_bytes(size['cache_bytes'])}"]
    if txns["newest"]:
        lines.append(f"transactions: {txns['count']}, newest {txns['newest']} at "
                     f"{iso_time(txns['newest_time_ns'])[:19]} ({_ago(txns['newest_age_s'])})")
    for c in facts["collectors"]:
        state = "ok" if c["last_ok"] else f"failed ({c['failed_in_a_row']} in a row): " \
                                          f"{c['last_error']}"
        lines.append(f"collector {c['name']}: last run {_ago(c['last_age_s'])} in transaction "
                     f"{c['last_txn']}: {state}; {c['last_rows']} rows, "
                     f"{len(c['devices'])} devices")
        for d in c["devices"]:
            newest = "no readings" if d["newest"] is None else \
                f"newest reading {_ago(d['age_s'])}"
            lines.append(f"  device {d['name']}: {newest}"
                         + (f"; last error: {d['error']}" if d["error"] else ""))
    for b in facts["backups"]:
        if b["pushed_txn"] is None:
            lines.append(f"backup {b['name']}: never pushed"
                         + (f" (last error: {b['last_error']})" if b["last_error"] else ""))
            continue
        lag = "up to date" if not b["lag_txns"] else \
            f"{b['lag_txns']} transactions behind ({_ago(b['lag_s'])} of changes)"
        lines.append(f"backup {b['name']}: pushed transaction {b['pushed_txn']} "
                     f"{_ago(b['age_s'])}, {lag}"
                     + ("" if b["last_ok"] else f"; last push failed: {b['last_error']}"))
    for p in facts["pipelines"]:
        lines.append(f"pipeline {p['name']}: last run {_ago(p['last_age_s'])}: "
                     + ("ok" if p["last_ok"] else f"failed: {p['last_error']}"))
    for m in facts["mounts"]:
        lines.append(f"mount {m['mountpoint']}: {m['mode']}, pid {m['pid']} on {m['host']}, "
                     f"since {iso_time(m['since_ns'])[:19]}")
    if not facts["mounts"]:
        lines.append("mounts: none")
    maintain = facts["maintain"]
    last = "never" if maintain["last_txn"] is None else _ago(maintain["last_age_s"])
    lines.append(f"maintain: last run {last}; {'due' if maintain['due'] else 'not due'} "
                 f"({maintain['extra_files']} small files to merge, "
                 f"{maintain['log_entries_since_checkpoint']} log entries since the last "
                 "checkpoint)")
    return lines


def _maybe(value: int | None) -> str:
    return "?" if value is None else str(value)


def _bytes(value: int | None) -> str:
    if value is None:
        return "? bytes"
    from ..backup import human_bytes

    return human_bytes(value)


def _ago(seconds: float | None) -> str:
    from ..durations import format_duration

    return "never" if seconds is None else f"{format_duration(max(seconds, 0))} ago"
