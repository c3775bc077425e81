"""The registry of a pond's active mounts, which ``pond status`` lists.

A mount daemon registers itself once mounted (:func:`register`): one small JSON file per
daemon, ``<pond>/mounts/<pid>.json`` (for a pond in S3, below its local directory), holding
its pid, host, mount point, mode and since when; it removes the file when it unmounts. A
daemon killed before it could is recognised by its pid no longer running (:func:`active`
skips and removes such files), so the registry never lies for long.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The registry's directory below the pond's local directory.
MOUNTS_DIR = "mounts"


def register(pond_dir: Path, mountpoint: str, mode: str) -> Path:
    """Register this process as mounting the pond at ``mountpoint`` in ``mode`` (``rw``,
    ``ro``); the file to :func:`unregister` at unmount."""
    directory = pond_dir / MOUNTS_DIR
    directory.mkdir(exist_ok=True)
    path = directory / f"{os.getpid()}.json"
    entry = {"pid": os.getpid(), "host": socket.gethostname(), "mountpoint": mountpoint,
             "mode": mode, "since_ns": time.time_ns()}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(entry))
    temporary.replace(path)
    return path


def unregister(path: Path) -> None:
    """Remove a registration (the mount is over)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def active(pond_dir: Path) -> list[dict[str, Any]]:
    """The registered mounts whose daemon still runs (on this host; another host's are
    listed as they are), by mount point."""
    found = []
    directory = pond_dir / MOUNTS_DIR
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written or removed
        if entry.get("host") == socket.gethostname() and not _running(int(entry["pid"])):
            log.debug("removing the registration of mount daemon %s, gone", entry["pid"])
            unregister(path)
            continue
        found.append(entry)
    return sorted(found, key=lambda e: e["mountpoint"])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
