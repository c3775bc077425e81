"""The commands that read the pond's history and data: log, show, query."""

from __future__ import annotations

import argparse
import sys

import pyarrow as pa

from .common import Commands, add_at, iso_time, reading


def add_commands(commands: Commands) -> None:
    """Add log, show and query."""
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
