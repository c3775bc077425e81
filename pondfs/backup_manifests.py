"""What a backup holds besides the pond's own files: which pond it is of, and its restore
points (see :mod:`pondfs.backup` for the whole layout)::

    <prefix>/pond.json                      which pond this is (its Delta table id)
    <prefix>/manifests/<txn>.json           one per push: every file of that snapshot, with
                                            size and BLAKE3 hash
    <prefix>/summaries/<txn>.json           the manifest without its files, for list

Each is a JSON document whose ``format`` says what it is; one that does not read as what it
should be is a :class:`BackupError` naming it, never a traceback.
"""

from __future__ import annotations

import builtins
import dataclasses
import errno
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from .s3 import Bucket
from .tinyfs import FsError

IDENTITY = "pond.json"
MANIFESTS = "manifests/"
SUMMARIES = "summaries/"
_MANIFEST_RE = re.compile(r"(\d{12})\.json")
_FORMAT = "pondfs-backup"


class BackupError(FsError):
    """A backup cannot be made, read or restored: the bucket holds another pond's backup or
    none, a manifest is unreadable, the pond's history differs from the backup's, a restored
    pond fails its check, ... The message (one line) names the backup, file or transaction.
    (What S3 itself refuses is an :class:`~pondfs.s3.S3Error`.)"""

    def __init__(self, message: str, err: int = errno.EIO):
        super().__init__(err, message)


@dataclass(frozen=True)
class FileEntry:
    """One file of a pond snapshot: its path below the pond directory, size and hash."""

    path: str
    size: int
    blake3: str


@dataclass
class Manifest:
    """What one push backed up: a whole pond snapshot as of transaction ``txn``."""

    table_id: str
    txn: int
    table_version: int
    txn_time_ns: int
    pushed_at: str
    host: str
    files: list[FileEntry]
    last_checkpoint: str | None = None
    uploaded_files: int = 0
    uploaded_bytes: int = 0

    @property
    def name(self) -> str:
        """Where this manifest is, below the backup's prefix."""
        return manifest_name(self.txn)

    @property
    def total_bytes(self) -> int:
        """The size of the snapshot: every file's."""
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        """The manifest object's bytes."""
        body = {
            "format": _FORMAT + "-manifest", "version": 1,
            "table_id": self.table_id, "txn": self.txn, "table_version": self.table_version,
            "txn_time_ns": self.txn_time_ns, "pushed_at": self.pushed_at, "host": self.host,
            "last_checkpoint": self.last_checkpoint,
            "uploaded_files": self.uploaded_files, "uploaded_bytes": self.uploaded_bytes,
            "files": [{"path": f.path, "size": f.size, "blake3": f.blake3} for f in self.files],
        }
        return json.dumps(body, indent=0).encode()

    @classmethod
    def from_json(cls, data: bytes, name: str) -> Manifest:
        """The manifest in ``data`` (the object ``name``), or BackupError."""
        try:
            body = _document(data, "manifest")
            files = [FileEntry(_safe_path(f["path"]), int(f["size"]), str(f["blake3"]))
                     for f in body["files"]]
            return cls(
                table_id=body["table_id"], txn=int(body["txn"]),
                table_version=int(body["table_version"]),
                txn_time_ns=int(body["txn_time_ns"]), pushed_at=body["pushed_at"],
                host=body.get("host", ""), files=files,
                last_checkpoint=body.get("last_checkpoint"),
                uploaded_files=int(body.get("uploaded_files", 0)),
                uploaded_bytes=int(body.get("uploaded_bytes", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"manifest {name} is unreadable: {exc}") from None


def _safe_path(path: str) -> str:
    """``path`` if it stays below the pond directory (manifests come from a bucket)."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"bad path {path!r}")
    return str(pure)


def manifest_txns(listing: dict[str, int]) -> list[int]:
    """The transactions that have a manifest, oldest first."""
    txns = []
    for relative in listing:
        if relative.startswith(MANIFESTS):
            match = _MANIFEST_RE.fullmatch(relative[len(MANIFESTS):])
            if match:
                txns.append(int(match.group(1)))
    return sorted(txns)


def manifest_name(txn: int) -> str:
    """Where the manifest of restore point ``txn`` is, below the backup's prefix."""
    return f"{MANIFESTS}{txn:012d}.json"


def load_manifest(bucket: Bucket, txn: int) -> Manifest:
    """The manifest of restore point ``txn``, or BackupError if it is unreadable."""
    name = manifest_name(txn)
    return Manifest.from_json(bucket.get_bytes(name), name)


def check_identity(bucket: Bucket, listing: dict[str, int]) -> str:
    """The table id the backup at ``bucket`` is of, or BackupError when it holds none."""
    if IDENTITY not in listing:
        raise BackupError(f"{bucket.location} holds no pond backup", errno.ENOENT)
    try:
        return json.loads(bucket.get_bytes(IDENTITY))["table_id"]
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{bucket.location}/{IDENTITY} is unreadable") from None


def write_identity(bucket: Bucket, table_id: str) -> None:
    """Say that the backup at ``bucket`` is of the pond whose Delta table is ``table_id``
    (the first push does)."""
    identity = {"format": _FORMAT, "version": 1, "table_id": table_id}
    bucket.put_bytes(IDENTITY, json.dumps(identity).encode())



@dataclass(frozen=True)
class RestorePoint:
    """One restore point as ``pond backup list`` shows it: its manifest without the files,
    with their count and total size.

    A manifest names every file of its snapshot (~180 bytes each: 1.8 MB for 10,000 files),
    so each push also writes this summary, ``summaries/<txn>.json`` (a few hundred bytes),
    and listing downloads only those. A restore point without one (pushed by an older
    pondfs, or whose summary is unreadable) is read from its manifest instead."""

    txn: int
    txn_time_ns: int
    pushed_at: str
    host: str
    files: int
    bytes: int
    uploaded_files: int
    uploaded_bytes: int

    @classmethod
    def of(cls, manifest: Manifest) -> RestorePoint:
        """The summary of ``manifest``."""
        return cls(manifest.txn, manifest.txn_time_ns, manifest.pushed_at, manifest.host,
                   len(manifest.files), manifest.total_bytes, manifest.uploaded_files,
                   manifest.uploaded_bytes)

    def to_json(self) -> builtins.bytes:  # (``bytes`` here is the field)
        """The summary object's bytes."""
        return json.dumps({"format": _FORMAT + "-summary", "version": 1,
                           **dataclasses.asdict(self)}).encode()

    @classmethod
    def from_json(cls, data: builtins.bytes, name: str) -> RestorePoint:
        """The summary in ``data`` (the object ``name``), or BackupError."""
        try:
            body = _document(data, "summary")
            return cls(int(body["txn"]), int(body["txn_time_ns"]), str(body["pushed_at"]),
                       str(body["host"]), int(body["files"]), int(body["bytes"]),
                       int(body["uploaded_files"]), int(body["uploaded_bytes"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{name} is unreadable: {exc}") from None


def _document(data: bytes, kind: str) -> dict[str, Any]:
    """The JSON object in ``data`` if it is a pondfs backup ``kind`` (manifest, summary);
    ValueError otherwise (a JSON list or number included)."""
    body = json.loads(data)
    if not isinstance(body, dict) or body.get("format") != f"{_FORMAT}-{kind}":
        raise ValueError(f"not a pondfs backup {kind}")
    return body


def summary_name(txn: int) -> str:
    """Where the summary of restore point ``txn`` is, below the backup's prefix."""
    return f"{SUMMARIES}{txn:012d}.json"


def restore_point_listing(bucket: Bucket) -> dict[str, int]:
    """Sizes of the backup's manifests, summaries and ``pond.json``, by relative path: what
    listing its restore points needs, without listing the pond's files (10,000 keys are
    10 LIST requests)."""
    listing = {entry.relative: entry.size
               for under in (MANIFESTS, SUMMARIES) for entry in bucket.entries(under)}
    identity = bucket.head(IDENTITY)
    if identity is not None:
        listing[IDENTITY] = identity.size
    return listing

