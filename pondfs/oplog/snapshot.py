"""A local pond as files: those one snapshot consists of, to copy the pond file by file
(``pond backup push``), and a new pond put together from such a copy (``pond backup
restore``).

A snapshot is one Delta table version: the data files it adds up to, the content objects its
rows name, and the log entries up to that version, all immutable; the log's
``_last_checkpoint`` pointer, the one file that is rewritten, travels as text.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterable
from pathlib import Path

from pondfs.tinyfs import FsError, Snapshot, SnapshotFile

from .layout import DELTA_LOG, LAST_CHECKPOINT, LOG_FILE_RE, OBJECTS, OPLOG, object_path
from .objects import ObjectStore
from .storage import LocalStorage


def list_snapshot(root: Path, *, pond_id: str, version: int, txn: int, txn_time_ns: int,
                  data_files: Iterable[tuple[str, int]], objects: Iterable[str]) -> Snapshot:
    """The files of table ``version`` (pond transaction ``txn``) of the local pond at
    ``root``: ``data_files`` (path below the table, size), the content ``objects`` its rows
    name, and its log entries up to ``version``. FsError naming an object that is missing."""
    data = [SnapshotFile(f"{OPLOG}/{path}", size) for path, size in data_files]
    for digest in sorted(o for o in objects if o):
        path = object_path(digest)
        try:
            size = (root / path).stat().st_size
        except FileNotFoundError:
            raise FsError(errno.EIO, f"content object {digest} is referenced by the pond but "
                          f"missing ({root / path}): run pond check") from None
        data.append(SnapshotFile(path, size, digest))
    log = []
    for entry in (root / DELTA_LOG).iterdir():
        match = LOG_FILE_RE.fullmatch(entry.name)
        if match and int(match.group(1)) <= version:
            log.append(SnapshotFile(f"{DELTA_LOG}/{entry.name}", entry.stat().st_size))
    log.sort(key=lambda f: f.path)
    return Snapshot(root=root, pond_id=pond_id, version=version, txn=txn,
                    txn_time_ns=txn_time_ns, data=data, log=log,
                    hint=_last_checkpoint(root, version))


def _last_checkpoint(root: Path, version: int) -> str | None:
    """The log's ``_last_checkpoint`` pointer, if it points no later than ``version``."""
    try:
        text = (root / DELTA_LOG / LAST_CHECKPOINT).read_text()
        return text if int(json.loads(text)["version"]) <= version else None
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def prepare_copy(root: Path) -> None:
    """Make the directories of a new local pond at ``root`` that a snapshot's files will
    then be copied into (each at its ``path`` below ``root``)."""
    LocalStorage(root).prepare()
    (root / DELTA_LOG).mkdir(parents=True, exist_ok=True)


def finish_copy(root: Path, hint: str | None) -> None:
    """Complete the pond at ``root`` whose snapshot files have been copied in: write the
    snapshot's ``hint`` back, and leave content objects read-only, as the object store
    does."""
    if hint is not None:
        (root / DELTA_LOG / LAST_CHECKPOINT).write_text(hint)
    ObjectStore(root / OBJECTS).seal()
