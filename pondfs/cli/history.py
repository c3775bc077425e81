"""The commands of the pond's history: log, show, query read it; diff compares two
transactions; revert undoes one; tag names one (see :mod:`pondfs.tinyfs.history`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import pyarrow as pa

from .common import Commands, add_at, iso_time, reading, writing
from .errors import CommandError


def add_commands(commands: Commands) -> None:
    """Add log, show, query, diff, revert and tag."""
    command = commands.add

    outputs = ["table", "csv", "json"]
    p = command("log", cmd_log, "transactions newest first, or the versions of one path")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("-n", dest="limit", type=int, metavar="N", help="at most N lines")
    p.add_argument("-o", "--output", choices=outputs, default="table")
    add_at(p)

    p = command("show", cmd_show, "raw oplog rows (of one path, or all)")
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument("-o", "--output", choices=outputs, default="table")
    add_at(p)

    p = command("query", cmd_query, "run DataFusion SQL over pond files and the oplog",
                description="Run SQL. FROM '/path' or FROM '/glob/*.series' reads table and "
                            "series files; the table oplog holds the oplog's rows.")
    p.add_argument("sql", metavar="SQL")
    p.add_argument("-o", "--output", choices=outputs, default="table")
    add_at(p)

    p = command("diff", cmd_diff, "what changed between two transactions",
                description="What changed from transaction A to B (default: with A alone, "
                            "what A changed; else the newest): + added, - removed, "
                            "M modified, R old -> new renamed, T kind or format changed. "
                            "A and B are numbers, tags or ISO times.")
    p.add_argument("a", metavar="A")
    p.add_argument("rest", nargs="*", metavar="[B] [PATH]",
                   help="B, then pond paths (each starts with /)")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")

    p = command("revert", cmd_revert, "one new transaction undoing another",
                description="Undo what transaction TXN changed (below PATHs only, if given) "
                            "as one new transaction; refused when a later transaction "
                            "changed the same paths, unless --force. With --to N, put "
                            "PATHs back as they were at N.")
    p.add_argument("rest", nargs="*", metavar="[TXN] [PATH]")
    p.add_argument("--to", metavar="N", help="put PATHs back as they were at N")
    p.add_argument("--force", action="store_true",
                   help="revert even what later transactions changed again")

    p = command("tag", cmd_tag, "name a transaction; list or remove tags",
                description="pond tag NAME [TXN] tags TXN (default the newest); pond tag "
                            "lists the tags; pond tag -d NAME removes one. Each is a "
                            "transaction of its own.")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("txn", nargs="?", metavar="TXN")
    p.add_argument("-d", "--delete", action="store_true", help="remove tag NAME")


def cmd_log(args: argparse.Namespace) -> int:
    """pond log [PATH]: the transactions newest first, or the versions of PATH."""
    with reading(args) as fs:
        if args.path is None:
            rows = [{"txn": t.txn, "time": iso_time(t.timestamp_ns)[:19], "user": t.user,
                     "rows": t.rows, "command": t.command} for t in fs.transactions()]
        else:
            node_id = fs.resolve(args.path, follow=False)
            rows = [{"version": v.version, "txn": v.txn, "time": iso_time(v.timestamp_ns)[:19],
                     "kind": v.kind, "format": v.format, "size": v.size, "links": v.nlink,
                     "blake3": v.blake3[:12], "min_time": v.min_time, "max_time": v.max_time,
                     "removed": v.deleted}
                    for v in reversed(fs.versions(node_id))]
        if args.limit is not None:
            rows = rows[: args.limit]
        _print_table(pa.Table.from_pylist(rows) if rows else pa.table({}), args.output)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """pond show [PATH]: the raw oplog rows (of PATH's node only)."""
    from ..query import oplog_table

    with reading(args) as fs:
        table = oplog_table(fs)
        if args.path is not None:
            node_id = fs.resolve(args.path, follow=False)
            table = table.filter(pa.compute.equal(table.column("node_id"), node_id))
        table = table.sort_by([("txn", "ascending"), ("node_id", "ascending"),
                               ("version", "ascending")])
        _print_table(table, args.output)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """pond query SQL: the result of DataFusion SQL over pond files and the oplog."""
    from ..query import run_query

    with reading(args) as fs:
        _print_table(run_query(fs, args.sql), args.output)
    return 0


def _print_table(table: pa.Table, output: str) -> None:
    import pyarrow.csv as pacsv

    from ..query import format_json, format_table

    if output == "csv":
        pacsv.write_csv(table, sys.stdout.buffer)
    elif output == "json":
        print(format_json(table))
    elif table.num_columns:
        print(format_table(table))


def _split_txn(rest: list[str]) -> tuple[str | None, list[str]]:
    """A transaction (a number, tag or time: no '/') if ``rest`` starts with one, and the
    paths after it."""
    if rest and "/" not in rest[0]:
        return rest[0], rest[1:]
    return None, rest


def cmd_diff(args: argparse.Namespace) -> int:
    """pond diff A [B] [PATH...]: what changed from A to B (A alone: what A changed)."""
    import json

    from ..tinyfs import diff, resolve_at

    b_spec, paths = _split_txn(args.rest)
    with reading(args) as fs:
        a = resolve_at(fs.store, args.a)
        if b_spec is None:
            if a < 2:
                raise CommandError(f"transaction {a} made the pond: name a B to compare with")
            a, b = a - 1, a
        else:
            b = resolve_at(fs.store, b_spec)
        changes = diff(fs, a, b, paths)
    if args.output == "json":
        print(json.dumps([{k: v for k, v in dataclasses.asdict(c).items()
                           if v not in ("", None)} for c in changes], indent=1))
    else:
        for change in changes:
            print(change.line())
    return 0


def cmd_revert(args: argparse.Namespace) -> int:
    """pond revert TXN [PATH...] | --to N PATH...: one transaction undoing TXN, or putting
    PATHs back as they were at N."""
    from ..tinyfs import resolve_at, revert, revert_to

    if args.to is not None:
        if not args.rest:
            raise CommandError("--to N needs the paths to put back")
        with writing(args) as fs:
            revert_to(fs, resolve_at(fs.store, args.to), args.rest)
        _say_committed(args)
        return 0
    spec, paths = _split_txn(args.rest)
    if spec is None:
        raise CommandError("say which transaction to revert (pond revert TXN [PATH...])")
    with writing(args) as fs:
        undone = revert(fs, resolve_at(fs.store, spec), paths, force=args.force)
        if not undone:
            raise CommandError(f"transaction {spec} changed nothing"
                               f"{' below ' + ', '.join(paths) if paths else ''}: "
                               "nothing to revert")
    _say_committed(args)
    return 0


def _say_committed(args: argparse.Namespace) -> None:
    txn = getattr(args, "txn", None)
    print(f"transaction {txn}" if txn is not None else "nothing changed")


def cmd_tag(args: argparse.Namespace) -> int:
    """pond tag [NAME [TXN]] | -d NAME: tag a transaction, list tags, or remove one."""
    from .. import pond
    from ..tinyfs import delete_tag, set_tag, tags

    command = "pond " + " ".join(args.argv)
    if args.name is None:
        if args.delete:
            raise CommandError("-d needs the NAME of the tag to remove")
        with reading(args) as fs:
            found = tags(fs.store)
            times = {t.txn: t.timestamp_ns for t in fs.transactions() if t.txn in
                     set(found.values())}
        for name, txn in sorted(found.items(), key=lambda item: (item[1], item[0])):
            print(f"{name}\t{txn}\t{iso_time(times.get(txn, 0))[:19]}")
        return 0
    if args.delete and args.txn is not None:
        raise CommandError("-d takes a NAME only")
    with pond.open_fs(args.location, write=True, holder=command, lock_wait=args.wait) as fs:
        if args.delete:
            delete_tag(fs, args.name, command)
        else:
            set_tag(fs, args.name, args.txn or str(fs.store.last_txn()), command)
    return 0
