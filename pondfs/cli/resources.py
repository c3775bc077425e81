"""The commands of resources (dynamic nodes) and collectors: apply, mknod, describe, run."""

from __future__ import annotations

import argparse
import os
import sys
import time

from ..tinyfs import DYNAMIC, FsError
from .common import Commands, add_at, reading, writing
from .errors import CommandError


def add_commands(commands: Commands) -> None:
    """Add apply, mknod, describe and run."""
    command = commands.add

    p = command("apply", cmd_apply, "create or update the resources declared in YAML files",
                description="Create or update every resource (apiVersion, kind, name, desc, "
                            "path, spec) in the YAML files, as one transaction; unchanged "
                            "resources write nothing. Everything is checked first.")
    p.add_argument("-f", "--file", dest="files", action="append", required=True,
                   metavar="FILE", help="a YAML file of one or more resources (repeatable)")

    p = command("mknod", cmd_mknod, "make one dynamic node from a spec file")
    p.add_argument("kind", metavar="KIND", help="its kind (glob, HydroVu, ...)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--config", required=True, metavar="FILE", help="the spec, in YAML")

    p = command("describe", cmd_describe,
                "show a resource (dynamic node) as a YAML document: kind, desc, spec, "
                "and what it reads and makes")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_at(p)

    p = command("run", cmd_run, "run a collector (or --all of them) as one transaction, or "
                "a pipeline's steps",
                description="Collect what is new since the last run into the pond, as one "
                            "transaction that records the run (pond status reads it). "
                            "Progress shows on a terminal only. A source that fails keeps "
                            "what it had collected; the command then exits 1. A pipeline "
                            "(kind: pipeline) runs its steps in order, a line each; a step "
                            "that fails skips the rest and exits 1.")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="the collector's or pipeline's node (a bare NAME is /etc/NAME)")
    p.add_argument("--all", action="store_true", help="every collector, in path order")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def cmd_apply(args: argparse.Namespace) -> int:
    """pond apply -f FILE...: create or update the declared resources."""
    from .. import resources
    from ..dynamic import depends
    from ..kinds import KINDS

    loaded = resources.load(args.files, KINDS)
    with writing(args) as fs:
        loaded, warnings = depends.order(fs, loaded)
        applied = resources.apply(fs, loaded, os.getuid(), os.getgid())
        KINDS.verify(fs, loaded)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for done in applied:
        print(f"{done.action:<9} {done.resource.path} ({done.resource.kind}, node "
              f"{done.node_id})")
    print(f"transaction {args.txn}" if args.txn else "nothing changed: no transaction")
    return 0


def cmd_mknod(args: argparse.Namespace) -> int:
    """pond mknod KIND PATH --config FILE: one dynamic node from a spec file."""
    from .. import resources
    from ..dynamic import depends
    from ..kinds import KINDS

    try:
        with open(args.config, "rb") as f:
            spec = resources.parse_spec(f.read(), args.config)
    except OSError as exc:
        raise CommandError(f"{args.config}: {exc.strerror}") from None
    try:
        settings = KINDS.settings(args.kind, spec)
    except (FsError, resources.SpecError) as exc:
        raise CommandError(f"{args.config}: {exc}") from None
    with writing(args) as fs:
        one = resources.Resource(args.kind, args.path.rstrip("/").rsplit("/", 1)[-1],
                                 args.path, "", spec, args.config, settings)
        _, warnings = depends.order(fs, [one])
        node_id = resources.make_node(fs, args.kind, args.path, one.config, uid=os.getuid(),
                                      gid=os.getgid())
        KINDS.verify(fs, [one])
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"created {args.path} ({args.kind}, node {node_id}) in transaction {args.txn}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    """pond describe PATH...: each resource as a YAML document."""
    from .. import resources
    from ..kinds import KINDS

    with reading(args) as fs:
        for i, path in enumerate(args.paths):
            print(("---\n" if i else "") + resources.document(fs, path, KINDS), end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """pond run PATH | --all: collect what is new, or run a pipeline; exit status 1 if a
    source or a step failed."""
    from .. import collectors, runs

    if bool(args.path) == args.all:
        raise CommandError("give a collector's PATH or --all")
    if args.path and not args.path.startswith("/"):
        args.path = f"/etc/{args.path}"
    if args.path and _is_pipeline(args):
        return _run_pipeline(args)
    records: list[dict] = []
    with writing(args, records) as fs:
        paths = collectors.find(fs) if args.all else [args.path]
        reports = []
        for path in paths:
            progress = (collectors.TerminalProgress(sys.stderr, f"{path}: ")
                        if sys.stderr.isatty() else None)
            started = time.time_ns()
            reports.append(collectors.run(fs, path, progress))
            records.append(runs.collector_record(reports[-1], started))
        changed = fs.dirty
    if not args.quiet:
        for report in reports:
            if report.error is None:  # a run that failed whole says so on stderr below
                print(report.summary())
        print(f"transaction {args.txn}" if changed else
              f"nothing new: the run is recorded in transaction {args.txn}")
    failures = [failure for report in reports for failure in report.failures]
    if failures:
        kept = f" (what was collected is in transaction {args.txn})" if changed else ""
        raise CommandError("; ".join(failures) + kept)
    return 0


def _is_pipeline(args: argparse.Namespace) -> bool:
    with reading(args) as fs:
        node_id = fs.resolve(args.path, follow=False)
        return fs.get(node_id).kind == DYNAMIC and fs.dynamic_config(node_id)[0] == "pipeline"


def _run_pipeline(args: argparse.Namespace) -> int:
    """pond run PIPELINE: its steps, a line each; the pipeline's record committed last."""
    from .. import pipelines, pond, runs
    from ..kinds import KINDS
    from ..resources import stored

    def last_txn() -> int:
        with pond.open_fs(args.location) as fs:
            return fs.as_of

    def changes_since(txn: int) -> bool:
        with pond.open_fs(args.location) as fs:
            return bool(runs.History(fs.transactions()).changes_after(txn))

    with reading(args) as fs:
        steps = stored(fs, args.path, KINDS).settings
    results, record = pipelines.run(
        args.location, args.path, steps, lock_wait=args.wait, changes_since=changes_since,
        last_txn=last_txn, say=lambda line: None if args.quiet else print(line, flush=True))
    txn = runs.commit_records(args.location, "pond " + " ".join(args.argv), [record],
                              lock_wait=args.wait)
    if not args.quiet:
        print(f"pipeline {args.path}: {'ok' if record['ok'] else 'failed'} (recorded in "
              f"transaction {txn})")
    if not record["ok"]:
        raise CommandError(record["error"])
    return 0
