"""The commands of S3 backups: backup (push, list, verify, forget) and restore."""

from __future__ import annotations

import argparse

from .. import pond
from ..durations import parse_duration
from .common import Commands, iso_time
from .errors import CommandError


def add_commands(commands: Commands) -> None:
    """Add backup and restore."""
    command = commands.add

    p = command("backup", cmd_backup,
                "back up the pond to S3; list, verify and forget restore points",
                description=BACKUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Each action is a subcommand of its own, so options may come before the optional URL
    # (`push -j 1 URL`: one parser with an optional positional after the action takes
    # the URL for an unknown argument).
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("url", nargs="?", metavar="URL",
                         help="s3://bucket/prefix (push: default every declared target)")
    options.add_argument("--to", metavar="TARGET",
                         help="push: to this declared target (kind: backup resource) only")
    options.add_argument("-j", "--jobs", type=int, default=16,
                         help="transfers at once (default 16)")
    options.add_argument("--quick", action="store_true",
                         help="verify sizes only, download nothing")
    options.add_argument("--at", type=int, metavar="TXN",
                         help="verify this restore point only")
    options.add_argument("--keep-last", type=int, metavar="N",
                         help="forget: keep the N newest restore points")
    options.add_argument("--keep-within", metavar="DURATION",
                         help="forget: keep the restore points pushed within DURATION of the "
                              "newest (90s, 30m, 12h, 7d, 2w, 1d12h)")
    options.add_argument("--dry-run", action="store_true",
                         help="forget: list what would be deleted, delete nothing")
    options.add_argument("--abort-uploads-after", metavar="DURATION",
                         help="push: abort unfinished multipart uploads idle for this long "
                              "(default 1h; 0 aborts every one)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("push", "list", "verify", "forget"):
        actions.add_parser(action, parents=[options], help="see pond backup --help")
    p.set_defaults(pond_optional=True, names_action=True)

    p = command("restore", cmd_restore, "make a new pond from an S3 backup",
                description="Restore the backup at URL into the new directory DIR, verifying "
                            "every hash; DIR appears only once the pond is whole and checked.")
    p.add_argument("url", metavar="URL", help="s3://bucket/prefix")
    p.add_argument("dir", metavar="DIR", help="a directory that does not exist yet")
    p.add_argument("--at", metavar="TXN|TIME",
                         help="restore point (see pond backup list; default the newest), or an "
                        "ISO time: the newest restore point at or before it")
    p.add_argument("-j", "--jobs", type=int, default=16, help="transfers at once (default 16)")
    p.set_defaults(pond_optional=True)


BACKUP_HELP = """\
Back up the pond to S3 (s3://bucket/prefix); list, verify and thin out backups.

  push    upload what the bucket lacks (data first, the log last), then a manifest of the
          pond as of its newest transaction: a restore point. Without URL: to every
          target the pond declares (kind: backup; --to TARGET: that one), each push
          followed by the target's forget rules. Every push is recorded in the pond
          (pond status shows it), failed or not. Interrupted pushes resume;
          multipart uploads a killed push left are aborted once idle for longer than
          --abort-uploads-after (default 1h: livelier ones may be another push's).
  list    the restore points: transactions, their times, files and sizes
  verify  every file of every restore point (of --at TXN only) is there with its size and
          BLAKE3 hash (each is downloaded); exit 1 on any problem
  forget  delete the restore points not kept by --keep-last N and/or --keep-within
          DURATION (of the newest; the newest is always kept), then every file no kept
          point needs; --dry-run lists what would go and deletes nothing

push and forget take the backup's lock (backup.lock below the prefix): one at a time, and
never a forget while a push runs. Endpoint, region and credentials come from the usual AWS
settings (environment, profile, AWS_ENDPOINT_URL). Restore with pond restore URL DIR.
"""

#: The options of pond backup that only some actions take.
_BACKUP_OPTIONS = {"quick": "verify", "at": "verify", "keep_last": "forget",
                   "keep_within": "forget", "dry_run": "forget",
                   "abort_uploads_after": "push", "to": "push"}


def cmd_backup(args: argparse.Namespace) -> int:
    """pond backup push|list|verify|forget URL (see BACKUP_HELP)."""
    from .. import backup  # boto3 is slow to import: only the S3 commands pay for it

    for option, action in _BACKUP_OPTIONS.items():
        if getattr(args, option) not in (None, False) and args.action != action:
            flag = "--" + option.replace("_", "-")
            raise CommandError(f"{flag} is an option of pond backup {action}")
    if args.action == "push":
        return _push(args)
    if args.url is None:
        raise CommandError(f"pond backup {args.action} needs the backup's URL")
    if args.action == "list":
        points = backup.list_backups(args.url)
        print(f"{'txn':>6}  {'pond time':19}  {'pushed (UTC)':20}  {'files':>7}  "
              f"{'size':>10}  {'uploaded':>10}")
        for p in points:
            print(f"{p.txn:>6}  {iso_time(p.txn_time_ns)[:19]}  {p.pushed_at:20}  "
                  f"{p.files:>7}  {backup.human_bytes(p.bytes):>10}  "
                  f"{backup.human_bytes(p.uploaded_bytes):>10}")
        return 0
    if args.action == "forget":
        within = (None if args.keep_within is None
                  else _seconds(args.keep_within, "--keep-within"))
        result = backup.forget(args.url, keep_last=args.keep_last, keep_within=within,
                               dry_run=args.dry_run, jobs=args.jobs)
        for relative in result.deleted if result.dry_run else ():
            print(f"would delete: {relative}")
        print(result.describe())
        return 0
    report = backup.verify(args.url, jobs=args.jobs, quick=args.quick, at=args.at)
    for problem in report.problems:
        print(f"problem: {problem}")
    print(report.describe())
    return 0 if report.ok else 1


def _push(args: argparse.Namespace) -> int:
    """pond backup push [URL | --to TARGET]: push, and record each push in the pond."""
    from .. import backup, backup_targets, runs

    location = pond.pond_location(args.pond)
    backup.check_pushable(location)  # bad input: refused before any push is recorded
    if args.url is not None and args.to is not None:
        raise CommandError("give a URL or --to TARGET, not both")
    after = (backup.ABORT_UPLOADS_AFTER if args.abort_uploads_after is None
             else _seconds(args.abort_uploads_after, "--abort-uploads-after"))
    if args.url is not None:
        targets = [(args.url, backup_targets.Target(args.url, None, None,
                                                    backup_targets.DEFAULT_MAX_AGE))]
    else:
        with pond.open_fs(location) as fs:
            targets = backup_targets.declared(fs)
        if args.to is not None:
            targets = [(path, t) for path, t in targets if path == args.to]
            if not targets:
                raise CommandError(f"{args.to}: not a declared backup target (kind: backup)")
        if not targets:
            raise CommandError("no URL given and the pond declares no backup target "
                               "(kind: backup)")
    lines, records = [], []
    for name, target in targets:
        line, record = backup_targets.push(location, name, target, jobs=args.jobs,
                                           abort_uploads_after=after)
        lines.append(line)
        records.append(record)
    runs.commit_records(location, "pond " + " ".join(args.argv), records, lock_wait=args.wait)
    named = [line if args.url is not None else f"{name}: {line}"  # a URL given needs no name
             for (name, _), line in zip(targets, lines, strict=True)]
    for line, run in zip(named, records, strict=True):
        if run["ok"]:
            print(line)
    failed = [line for line, run in zip(named, records, strict=True) if not run["ok"]]
    if failed:
        raise CommandError("; ".join(failed))
    return 0


def _seconds(text: str, option: str) -> float:
    """The duration ``text`` that ``option`` was given, in seconds."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


def cmd_restore(args: argparse.Namespace) -> int:
    """pond restore URL DIR: a new pond from the backup's restore point."""
    from .. import backup

    print(backup.restore(args.url, args.dir, at=args.at, jobs=args.jobs).describe())
    return 0
