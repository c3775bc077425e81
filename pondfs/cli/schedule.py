"""``pond schedule``: run a pipeline or collector on a timer (install, list, remove)."""

from __future__ import annotations

import argparse
import os

from .common import Commands


def add_commands(commands: Commands) -> None:
    """Add schedule."""
    p = commands.add(
        "schedule", cmd_schedule, "run pond run NAME on a systemd timer (or print the "
        "crontab line)",
        description="install writes pondfs-NAME.service (pond run NAME on this pond, with "
                    "pondfs-NAME.env for secrets) and pondfs-NAME.timer (Persistent=true; "
                    "runs never overlap) into the units directory ($PONDFS_UNIT_DIR, "
                    "else systemd's) and, when systemd runs, enables the timer; without "
                    "systemd it also prints the crontab line (with flock). list shows the "
                    "installed schedules; remove stops and deletes one.")
    p.add_argument("action", choices=["install", "list", "remove"])
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="what pond run runs (a pipeline or collector; bare: /etc/NAME)")
    p.add_argument("--every", metavar="DURATION", help="install: run every DURATION (1h)")
    p.add_argument("--on-calendar", metavar="SPEC",
                   help="install: a systemd calendar spec (daily, *-*-* 03:00)")
    p.set_defaults(pond_optional=True, names_action=True)


def cmd_schedule(args: argparse.Namespace) -> int:
    """pond schedule install|list|remove."""
    from .. import pond, schedule
    from .errors import CommandError

    if args.action == "list":
        for name, when in schedule.installed():
            print(f"{name}: {when}")
        return 0
    if args.name is None:
        raise CommandError(f"pond schedule {args.action} needs a NAME")
    if args.action == "remove":
        for path in schedule.remove(args.name):
            print(f"removed {path}")
        return 0
    timing = schedule.Schedule.parse(args.every, args.on_calendar)
    location = pond.pond_location(args.pond)
    if "://" not in location:
        location = os.path.abspath(location)
    done = schedule.install(location, args.name, timing)
    print(f"wrote {done.service} and {done.timer}; secrets go in {done.environment}")
    if done.enabled:
        print(f"enabled {done.timer.name}")
    else:
        reason = "systemd is not running" if not schedule.systemd_running() else \
            f"${schedule.UNIT_DIR_ENV} is set"
        print(f"not enabled ({reason}); the crontab line for the same schedule:")
        try:
            print(schedule.crontab_line(location, args.name, timing, done.environment))
        except OSError as exc:
            print(f"(none: {exc.strerror})")
    return 0
