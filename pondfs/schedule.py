"""Schedules: ``pond run NAME`` started by systemd timers (or cron, without systemd).

:func:`install` writes two units into the units directory: ``pondfs-NAME.service`` (a
oneshot running ``python -m pondfs.cli --pond POND run NAME``, with an environment file for
secrets such as ``HYDROVU_CLIENT_SECRET``) and ``pondfs-NAME.timer`` (``OnCalendar=`` or
every DURATION, ``Persistent=true`` so a run missed while the machine was off happens at
boot). systemd never starts a oneshot service again while it runs, so runs never overlap.
When systemd runs (and the units directory is its own), the timer is enabled and started.

The units directory is ``$PONDFS_UNIT_DIR`` if set, else ``/etc/systemd/system`` for root
and ``~/.config/systemd/user`` for others. Without systemd, :func:`crontab_line` is the
equivalent crontab entry, kept from overlapping by ``flock``.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .durations import format_duration, parse_duration
from .tinyfs import FsError

log = logging.getLogger(__name__)

#: The environment variable that overrides the units directory.
UNIT_DIR_ENV = "PONDFS_UNIT_DIR"
PREFIX = "pondfs-"


def systemd_running() -> bool:
    """Whether this machine was booted with systemd (as ``sd_booted`` tells)."""
    return Path("/run/systemd/system").is_dir()


def unit_dir() -> tuple[Path, bool]:
    """The units directory, and whether it is systemd's own (not an override)."""
    override = os.environ.get(UNIT_DIR_ENV)
    if override:
        return Path(override), False
    if os.geteuid() == 0:
        return Path("/etc/systemd/system"), True
    return Path.home() / ".config/systemd/user", True


@dataclass(frozen=True)
class Schedule:
    """When to run: ``every`` seconds, or the systemd calendar spec ``on_calendar``."""

    every: float | None = None
    on_calendar: str | None = None

    @classmethod
    def parse(cls, every: str | None, on_calendar: str | None) -> Schedule:
        """From ``--every DURATION`` or ``--on-calendar SPEC`` (one of them)."""
        if (every is None) == (on_calendar is None):
            raise FsError(errno.EINVAL, "give --every DURATION or --on-calendar SPEC")
        if every is None:
            return cls(on_calendar=on_calendar)
        try:
            seconds = parse_duration(every)
        except ValueError as exc:
            raise FsError(errno.EINVAL, f"--every: {exc}") from None
        if seconds < 60:
            raise FsError(errno.EINVAL, f"--every: at least 1 minute, not {every}")
        return cls(every=seconds)

    def timer_lines(self) -> list[str]:
        """The ``[Timer]`` lines that say when."""
        if self.on_calendar is not None:
            return [f"OnCalendar={self.on_calendar}"]
        assert self.every is not None
        return ["OnBootSec=1min", f"OnUnitActiveSec={format_duration(self.every)}"]

    def cron_fields(self) -> str:
        """The five crontab time fields; FsError for what cron cannot say."""
        if self.every is None:
            raise FsError(errno.EINVAL, "--on-calendar needs systemd: without it, use "
                          "--every DURATION (whole minutes dividing an hour, hours dividing "
                          "a day, or days)")
        minutes = int(self.every // 60)
        if self.every % 60 == 0 and minutes < 60 and 60 % minutes == 0:
            return f"*/{minutes} * * * *"
        hours = minutes // 60
        if minutes % 60 == 0 and hours < 24 and 24 % hours == 0:
            return f"0 */{hours} * * *"
        if minutes % 1440 == 0:
            return f"0 0 */{minutes // 1440} * *"
        raise FsError(errno.EINVAL, f"cron cannot run every {format_duration(self.every)}: "
                      "use minutes dividing an hour, hours dividing a day, or days")


def command_line(pond: str, name: str) -> list[str]:
    """The command a scheduled run runs: ``python -m pondfs.cli --pond POND run NAME``."""
    return [sys.executable, "-m", "pondfs.cli", "--pond", pond, "run", name]


def env_file(directory: Path, name: str) -> Path:
    """Where the secrets of ``name``'s runs are kept (``KEY=value`` lines, mode 0600)."""
    return directory / f"{PREFIX}{name}.env"


def service_text(pond: str, name: str, environment: Path) -> str:
    """The service unit of ``name``."""
    return "\n".join([
        "[Unit]",
        f"Description=pondfs: pond run {name} on {pond}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"EnvironmentFile=-{environment}",
        f"Environment=POND={pond}",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in command_line(pond, name)),
        "",
    ])


def timer_text(name: str, schedule: Schedule) -> str:
    """The timer unit of ``name``."""
    return "\n".join([
        "[Unit]",
        f"Description=pondfs: run {name} on schedule",
        "",
        "[Timer]",
        *schedule.timer_lines(),
        "Persistent=true",
        f"Unit={PREFIX}{name}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def _systemd_quote(arg: str) -> str:
    """An ExecStart word: double-quoted when it holds spaces or quotes; % doubled."""
    arg = arg.replace("%", "%%")
    if any(c in arg for c in " \t\"'\\"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def crontab_line(pond: str, name: str, schedule: Schedule, environment: Path) -> str:
    """The crontab entry doing what the timer would: flock keeps runs from overlapping."""
    lock = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"{PREFIX}{name}.lock"
    run = " ".join(shlex.quote(a) for a in command_line(pond, name))
    inner = f"set -a; [ -r {shlex.quote(str(environment))} ] && . " \
            f"{shlex.quote(str(environment))}; exec {run}"
    return f"{schedule.cron_fields()} flock -n {shlex.quote(str(lock))} sh -c " \
           f"{shlex.quote(inner)}"


@dataclass(frozen=True)
class Installed:
    """What :func:`install` did: the unit files, the environment file, whether the timer
    was enabled."""

    service: Path
    timer: Path
    environment: Path
    enabled: bool


def _name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "._-" for c in name) or name[0] in ".-":
        raise FsError(errno.EINVAL, f"{name!r} is not a schedule name (letters, digits, "
                      "'.', '_', '-')")
    return name


def install(pond: str, name: str, schedule: Schedule) -> Installed:
    """Write (or rewrite) the units of ``name`` and, under systemd, enable its timer."""
    directory, own = unit_dir()
    directory.mkdir(parents=True, exist_ok=True)
    service = directory / f"{PREFIX}{_name(name)}.service"
    timer = directory / f"{PREFIX}{name}.timer"
    environment = env_file(directory, name)
    if not environment.exists():
        fd = os.open(environment, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# Secrets for pond run {name} (KEY=value lines), e.g.\n"
                    "# HYDROVU_CLIENT_ID=...\n# HYDROVU_CLIENT_SECRET=...\n")
    service.write_text(service_text(pond, name, environment))
    timer.write_text(timer_text(name, schedule))
    enabled = own and systemd_running()
    if enabled:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", timer.name)
    return Installed(service, timer, environment, enabled)


def installed() -> list[tuple[str, str]]:
    """Every installed schedule: (name, its timer's When lines)."""
    directory, _ = unit_dir()
    found = []
    for timer in sorted(directory.glob(f"{PREFIX}*.timer")) if directory.is_dir() else ():
        when = [line for line in timer.read_text().splitlines()
                if line.startswith(("OnCalendar=", "OnUnitActiveSec="))]
        found.append((timer.name[len(PREFIX):-len(".timer")], ", ".join(when)))
    return found


def remove(name: str) -> list[Path]:
    """Stop and remove the units of ``name`` (the environment file is kept: it holds
    secrets someone put there); the files removed."""
    directory, own = unit_dir()
    timer = directory / f"{PREFIX}{_name(name)}.timer"
    service = directory / f"{PREFIX}{name}.service"
    if not timer.exists() and not service.exists():
        raise FsError(errno.ENOENT, f"no schedule {name} in {directory}")
    if own and systemd_running():
        _systemctl("disable", "--now", timer.name)
    removed = []
    for path in (timer, service):
        if path.exists():
            path.unlink()
            removed.append(path)
    if own and systemd_running():
        _systemctl("daemon-reload")
    return removed


def _systemctl(*args: str) -> None:
    user = [] if os.geteuid() == 0 else ["--user"]
    done = subprocess.run(["systemctl", *user, *args], capture_output=True, text=True)
    if done.returncode:
        raise FsError(errno.EIO, f"systemctl {' '.join(args)}: "
                      f"{done.stderr.strip() or done.returncode}")
