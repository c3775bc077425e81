"""The ``pond`` command: a versioned filesystem from the shell.

Every command that changes the pond is one transaction: it commits whole at the end or
leaves the pond exactly as it was. Errors print one line on stderr and exit non-zero.

Start-up time is most of a small command's time, so modules only some commands need
(DataFusion for ``query``, YAML resources and collectors, tqdm for a terminal's progress
bars, boto3 for backups) are imported by those commands.

The commands live in groups, one module each, and each group adds its own sub-parsers:
:mod:`.files` (init, ls, cat, stat, mkdir, rm, mv, ln), :mod:`.copy` (cp), :mod:`.history`
(log, show, query), :mod:`.maintenance` (check, maintain), :mod:`.resources` (apply, mknod,
describe, run), :mod:`.status` (status), :mod:`.schedule` (schedule), :mod:`.site` and
:mod:`.backup` (backup, restore); :mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__, pond
from . import backup, copy, files, history, maintenance, resources, schedule, site, status
from .common import Commands, split_side
from .errors import CommandError, ending

log = logging.getLogger("pondfs.cli")

#: The command groups, in the order ``pond --help`` lists their commands.
GROUPS = (files, copy, history, maintenance, status, resources, schedule, site, backup)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pond`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="pond", description="A versioned filesystem for environmental data.",
        epilog="The pond is --pond PATH (a directory or s3://bucket/prefix), or $POND. "
               "Commands that change the pond are one transaction each; read commands "
               "accept --at TXN.")
    parser.add_argument("--pond", metavar="PATH",
                        help="the pond: a directory or s3://bucket/prefix (default: $POND)")
    parser.add_argument("--wait", type=_seconds, default=pond.DEFAULT_WAIT, metavar="SECONDS",
                        help="how long a command that changes the pond waits for another "
                             "writer's commit (the writer lock) before it fails naming it "
                             f"(default: {pond.DEFAULT_WAIT:.0f})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"pondfs {__version__}")
    commands = Commands(parser)
    for group in GROUPS:
        group.add_commands(commands)
    return parser


def _seconds(text: str) -> float:
    """A ``--wait`` value: a number of seconds, 0 or more."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return seconds


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    """An empty path names nothing (as in POSIX); tinyfs would resolve it to the root."""
    for attr in ("paths", "sources", "dest", "source", "link", "path"):
        value = getattr(args, attr, None)
        for path in value if isinstance(value, list) else [value]:
            if path is not None and split_side(path)[1] == "":
                raise CommandError(f"{path!r}: no such file or directory (the path is "
                                   "empty)")


def run(argv: list[str] | None = None) -> int:
    """Run one ``pond`` command; its exit status. The one place that prints a command's
    error (see :mod:`.errors`)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="pond: %(levelname)s: %(message)s")
    try:
        _refuse_empty_paths(args)
        if not getattr(args, "pond_optional", False):
            args.location = pond.pond_location(args.pond)
        return args.func(args)
    except BaseException as exc:
        error = ending(exc)
        if error is None:
            raise
        if error.message:
            print(f"{error.prefix or _speaker(args)}: {error.message}", file=sys.stderr)
        return error.exit_code


def _speaker(args: argparse.Namespace) -> str:
    """Who an error line names: ``pond cp``, or with the action of a command that has
    actions and names it (``pond backup push``)."""
    action = getattr(args, "action", None) if getattr(args, "names_action", False) else None
    return " ".join(["pond", args.command] + ([action] if action else []))


def main() -> None:
    """Console entry point. Exits without interpreter teardown, which Delta Lake has been
    seen to abort in, so a success is never reported as a crash."""
    code = run()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 141
    sys.stderr.flush()
    os._exit(code)
