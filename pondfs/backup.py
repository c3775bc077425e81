"""Backups of a pond in S3: push, list, verify, forget, and restore into a new directory.

A backup at ``s3://bucket/prefix`` mirrors the pond's own layout, so it reads like one::

    <prefix>/pond.json                      which pond this is (its Delta table id)
    <prefix>/<the pond's files>             its Delta table (data files, log entries) and
                                            content objects, at their paths in the pond
    <prefix>/manifests/<txn>.json           one per push: every file of that snapshot, with
                                            size and BLAKE3 hash
    <prefix>/summaries/<txn>.json           the manifest without its files, for list
    <prefix>/backup.lock                    while a push or forget runs (a lease)

A pond's files never change once written (its checkpoint pointer aside, which the manifest
carries inline: see :class:`~pondfs.tinyfs.persistence.Snapshot`), so a push lists the
bucket once and uploads only what it lacks: data files and objects first, then the log
entries, then the manifest. A backup therefore never names a file that is not there, and an
interrupted push simply resumes. A push reads one snapshot, the Delta version current when
it starts, and needs no writer lock.

Restore points are the pushed transactions (``pond backup list``). A restore downloads one
manifest's files into a temporary directory beside the target, verifying every size and
hash, checks the result as a pond, and only then renames it into place: it never leaves a
half-restored pond. Transactions between two pushes are in the later restore point's history
and readable with ``--at``; restoring one of them as the newest would mean rewriting the log.

Push and forget hold the backup's lock, one at a time. A push first aborts multipart uploads
a killed push left (idle for longer than a safety age: livelier ones may be a live push's).
Forget deletes old manifests and then every pond file no remaining manifest names.

The identity, manifests and summaries are read and written by :mod:`pondfs.backup_manifests`.
What S3 refuses is an :class:`~pondfs.s3.S3Error`; anything else that keeps a backup from
being made, read or restored is a :class:`~pondfs.backup_manifests.BackupError`. Endpoint,
region and credentials come from boto3's usual chain (environment, profile,
``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from .backup_manifests import (
    IDENTITY,
    SUMMARIES,
    BackupError,
    FileEntry,
    Manifest,
    RestorePoint,
    check_identity,
    load_manifest,
    manifest_name,
    manifest_txns,
    restore_point_listing,
    summary_name,
    write_identity,
)
from .locations import is_s3_url
from .progress import progress_bar
from .s3 import DEFAULT_JOBS, MULTIPART_THRESHOLD, Bucket, S3Error, S3Location, Stored
from .tinyfs import Snapshot, SnapshotFile, content_hash, hasher, iso_time_ns, stream_hash

log = logging.getLogger(__name__)

#: Log entries uploaded as one wave: all of a wave are up before the next begins, so the
#: bucket's log has gaps only within the wave in flight.
LOG_WAVE = 64

_LOCK = "backup.lock"

#: Multipart uploads idle for this long (seconds) are taken for a killed push's and aborted.
ABORT_UPLOADS_AFTER = 3600.0

T = TypeVar("T")


# ---------------------------------------------------------------------- the pond side


def _snapshot(root: Path) -> Snapshot:
    """Pin the newest state of the pond at ``root`` and list the files it consists of."""
    from .oplog import open_pond

    store = open_pond(root)
    try:
        return store.snapshot()
    finally:
        store.close()


def _hash_file(path: Path) -> str:
    with open(path, "rb") as f:
        return stream_hash(f)


# ---------------------------------------------------------------------- push


@dataclass
class PushResult:
    """What a push did."""

    location: S3Location
    txn: int
    files: int
    bytes: int
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    aborted_uploads: int = 0

    def describe(self) -> str:
        """One line: what went up (or that nothing had to), and any uploads aborted."""
        aborted = (f"; aborted {self.aborted_uploads} interrupted multipart upload(s)"
                   if self.aborted_uploads else "")
        if self.up_to_date:
            return f"nothing to push: transaction {self.txn} is already backed up at " \
                   f"{self.location}{aborted}"
        rate = self.uploaded_bytes / self.seconds if self.seconds else 0.0
        return (f"pushed transaction {self.txn} to {self.location}: uploaded "
                f"{self.uploaded_files} of {self.files} files ({human_bytes(self.uploaded_bytes)}"
                f" of {human_bytes(self.bytes)}) in {self.seconds:.1f} s "
                f"({human_bytes(rate)}/s){aborted}")


def check_pushable(pond_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`BackupError` if the pond at ``pond_dir`` is not one a push copies."""
    if is_s3_url(os.fspath(pond_dir)):
        raise BackupError(f"{pond_dir} is a pond in S3: pond backup push copies a pond on a "
                          "local disk (copy a bucket with the store's own replication)",
                          errno.EINVAL)


def push(pond_dir: str | os.PathLike[str], url: str, *, jobs: int = DEFAULT_JOBS,
         progress: bool = True, abort_uploads_after: float = ABORT_UPLOADS_AFTER) -> PushResult:
    """Back up the pond at ``pond_dir`` to ``url``: upload what the bucket lacks, then a
    manifest of the snapshot. See the module docstring for the order and why.

    A push holds the backup's lock (see :func:`_backup_lock`) and first aborts the multipart
    uploads below ``url`` idle for ``abort_uploads_after`` seconds: pushes killed mid-way
    leave them, and the store keeps (and bills) their parts until they are aborted."""
    started = time.monotonic()
    check_pushable(pond_dir)
    root = Path(pond_dir)
    location = S3Location.parse(url)
    snapshot = _snapshot(root)
    bucket = Bucket(location, jobs)
    with _backup_lock(bucket, "pond backup push") as still_locked:
        aborted = abort_interrupted_uploads(bucket, abort_uploads_after)
        result = _push_snapshot(bucket, snapshot, jobs, progress, still_locked)
    result.aborted_uploads = aborted
    result.seconds = time.monotonic() - started
    log.info("%s", result.describe())
    return result


def _push_snapshot(bucket: Bucket, snapshot: Snapshot, jobs: int, progress: bool,
                   still_locked: Callable[[], None]) -> PushResult:
    """Upload what ``bucket`` lacks of ``snapshot``, then its manifest, if the lock is still
    held then (a forget that took over a lost lock may have deleted what it names)."""
    location = bucket.location
    remote = bucket.listing()
    remote.pop(_LOCK, None)
    latest = _check_push_target(bucket, remote, snapshot)
    result = PushResult(location, snapshot.txn, len(snapshot.data) + len(snapshot.log),
                        sum(f.size for f in snapshot.data + snapshot.log))
    if latest is not None and latest.txn > snapshot.txn:
        raise BackupError(f"{location} holds transaction {latest.txn}, newer than this "
                          f"pond's {snapshot.txn}: is this the right pond?")
    known = {f.path: f for f in latest.files} if latest else {}
    hashes = _log_hashes(snapshot, known)
    # Data files and objects have unique names: present with the right size means done.
    # Log entries no manifest covers yet go up again: they are small, and an interrupted
    # push may have left some.
    data = [f for f in snapshot.data if remote.get(f.path) != f.size]
    log_entries = [f for f in snapshot.log
                   if f.path not in known or remote.get(f.path) != f.size]
    if latest is not None and latest.txn == snapshot.txn and (
            latest.table_version != snapshot.version or not (data or log_entries)):
        # Backed up already. (After pond maintain the same transaction has other data
        # files: not worth a second copy. With the same files, a push repairs what is
        # missing from the bucket, e.g. after deleting a file verify found corrupt.)
        result.up_to_date = True
        return result
    total = sum(f.size for f in data + log_entries)
    with progress_bar("push", total, enabled=progress) as bar, ThreadPoolExecutor(jobs) as pool:
        def upload(f: SnapshotFile) -> str:
            return _upload(bucket, snapshot.root, f, bar.update)

        for f, digest in zip(data, _parallel(pool, upload, data), strict=True):
            hashes[f.path] = digest
        for start in range(0, len(log_entries), LOG_WAVE):
            _parallel(pool, upload, log_entries[start:start + LOG_WAVE])
    for f in snapshot.data:
        if f.path not in hashes:
            hashes[f.path] = f.blake3 or _known_or_hashed(known, snapshot.root, f)
    manifest = Manifest(
        table_id=snapshot.pond_id, txn=snapshot.txn, table_version=snapshot.version,
        txn_time_ns=snapshot.txn_time_ns,
        pushed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        host=socket.gethostname(),
        files=[FileEntry(f.path, f.size, hashes[f.path]) for f in snapshot.data + snapshot.log],
        last_checkpoint=snapshot.hint,
        uploaded_files=len(data) + len(log_entries), uploaded_bytes=total,
    )
    still_locked()
    bucket.put_bytes(manifest.name, manifest.to_json())
    bucket.put_bytes(summary_name(manifest.txn), RestorePoint.of(manifest).to_json())
    result.uploaded_files, result.uploaded_bytes = manifest.uploaded_files, total
    return result


def _check_push_target(bucket: Bucket, remote: dict[str, int],
                       snapshot: Snapshot) -> Manifest | None:
    """Make sure ``bucket`` backs up this very pond (writing its identity on the first
    push); the newest manifest there, if any."""
    if IDENTITY in remote:
        table_id = check_identity(bucket, remote)
        if table_id != snapshot.pond_id:
            raise BackupError(f"{bucket.location} holds the backup of another pond "
                              f"(table {table_id}; this pond is table {snapshot.pond_id})")
    else:
        if remote:
            raise BackupError(f"{bucket.location} is not empty and holds no pond backup: "
                              "choose another prefix")
        write_identity(bucket, snapshot.pond_id)
    txns = manifest_txns(remote)
    return load_manifest(bucket, txns[-1]) if txns else None


def _log_hashes(snapshot: Snapshot, known: dict[str, FileEntry]) -> dict[str, str]:
    """Hashes of the pond's log entries, which must equal those already backed up: a pond
    restored from an old backup and changed since has a history of its own."""
    hashes = {}
    for f in snapshot.log:
        digest = _hash_file(snapshot.root / f.path)
        backed_up = known.get(f.path)
        if backed_up is not None and backed_up.blake3 != digest:
            raise BackupError(
                f"this pond's history differs from the backup at {f.path}: it is another "
                "copy of the pond that has changed since; push it to another prefix")
        hashes[f.path] = digest
    return hashes


def _known_or_hashed(known: dict[str, FileEntry], root: Path, f: SnapshotFile) -> str:
    backed_up = known.get(f.path)
    if backed_up is not None and backed_up.size == f.size:
        return backed_up.blake3
    return _hash_file(root / f.path)


def _upload(bucket: Bucket, root: Path, f: SnapshotFile, progress: Callable[[int], None]) -> str:
    """Upload one file; its hash (a content object must hash to its name)."""
    path = root / f.path
    try:
        if f.size < MULTIPART_THRESHOLD:
            data = path.read_bytes()
            digest = content_hash(data)
            _check_local(f, digest, len(data))
            bucket.put_bytes(f.path, data)
            progress(len(data))
        else:
            digest = _hash_file(path)
            _check_local(f, digest, path.stat().st_size)
            bucket.put_file(f.path, path, progress)
    except FileNotFoundError:
        raise BackupError(f"{path} vanished during the push (pond maintain?): "
                          "push again") from None
    log.debug("uploaded %s (%d bytes)", f.path, f.size)
    return digest


def _check_local(f: SnapshotFile, digest: str, size: int) -> None:
    if f.blake3 is not None and digest != f.blake3:
        raise BackupError(f"content object {f.blake3} in the pond is corrupt (its bytes hash "
                          f"to {digest}): run pond check")
    if size != f.size:
        raise BackupError(f"{f.path} changed size during the push: push again")


def _parallel(pool: ThreadPoolExecutor, func: Callable[[Any], T], items: list) -> list[T]:
    """``func`` of each item on ``pool``, results in order. The first error (or Ctrl-C)
    cancels what has not started, waits for what has, and is raised."""
    futures = [pool.submit(func, item) for item in items]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and not f.cancelled()
                       and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)
        raise
    return [future.result() for future in futures]


# ---------------------------------------------------------------------- lock, interrupted uploads


@contextmanager
def _backup_lock(bucket: Bucket, holder: str) -> Iterator[Callable[[], None]]:
    """Hold the backup's lock, ``<prefix>/backup.lock``, while the context is open: a lease
    object renewed in the background (see :mod:`pondfs.oplog.lease`). Push and forget take
    it, so forget never deletes what a push in progress is about to name; a command that
    finds it held fails in one line naming the holder. A crashed holder's lease runs out
    after ``POND_LOCK_LEASE`` seconds (default 60). Yields a check that raises once the
    lease has been lost (call it before writing what others rely on)."""
    from .oplog.lease import S3Lease
    from .tinyfs import PondLocked

    with ExitStack() as stack:
        lease = S3Lease(bucket, _LOCK, holder)
        try:
            stack.enter_context(lease)
        except PondLocked as exc:
            raise BackupError(f"{bucket.location} is in use by another backup command: "
                              f"{exc.holder}; try again when it has finished (a crashed one's "
                              "lock lapses after its lease, default 60 s)", errno.EAGAIN) from None
        yield lease.check


def abort_interrupted_uploads(bucket: Bucket, idle_for: float) -> int:
    """Abort the multipart uploads below ``bucket``'s location that made no progress for
    ``idle_for`` seconds or more (by the store's clock: see
    :meth:`~pondfs.s3.Bucket.uploads_in_progress`); how many. Livelier ones may belong to a
    push still running elsewhere (one whose lock lease ran out while it stalled)."""
    stale = [u for u in bucket.uploads_in_progress() if u.idle >= idle_for]
    for upload in stale:
        bucket.abort_upload(upload)
        log.info("aborted the multipart upload of %s, idle for %.0f s", upload.relative,
                 upload.idle)
    return len(stale)


# ---------------------------------------------------------------------- list



def list_backups(url: str) -> list[RestorePoint]:
    """The restore points at ``url``, oldest first."""
    bucket = Bucket(S3Location.parse(url))
    listing = restore_point_listing(bucket)
    check_identity(bucket, listing)

    def point(txn: int) -> RestorePoint:
        name = summary_name(txn)
        if name in listing:
            try:
                return RestorePoint.from_json(bucket.get_bytes(name), name)
            except (BackupError, S3Error) as exc:
                log.warning("%s; reading its manifest instead", exc)
        return RestorePoint.of(load_manifest(bucket, txn))

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(point, manifest_txns(listing)))


# ---------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    """What ``verify`` found; ``problems`` name each missing or bad file."""

    location: S3Location
    manifests: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing is wrong."""
        return not self.problems

    def describe(self) -> str:
        """One line: what was verified, and ok or how many problems."""
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return (f"backup verify {self.location}: {self.manifests} restore point(s), "
                f"{self.files} files, {human_bytes(self.bytes)}: {state}")


def verify(url: str, *, jobs: int = DEFAULT_JOBS, quick: bool = False,
           progress: bool = True, at: int | None = None) -> VerifyReport:
    """Check that every file any manifest names (restore point ``at``'s only, if given) is
    in the bucket with its size and, unless ``quick``, its hash (downloaded and hashed as a
    stream)."""
    location = S3Location.parse(url)
    bucket = Bucket(location, jobs)
    listing = bucket.listing()
    table_id = check_identity(bucket, listing)
    report = VerifyReport(location)
    txns = manifest_txns(listing)
    if at is not None:
        txns = [_choose(location, txns, at)]
    manifests = [load_manifest(bucket, txn) for txn in txns]
    report.manifests = len(manifests)
    if not manifests:
        report.problems.append("no restore points: nothing was ever pushed completely")
    files: dict[str, FileEntry] = {}
    for manifest in manifests:
        if manifest.table_id != table_id:
            report.problems.append(f"{manifest.name}: of another pond (table "
                                   f"{manifest.table_id})")
        report.problems.extend(_summary_problem(bucket, listing, manifest))
        for f in manifest.files:
            seen = files.setdefault(f.path, f)
            if seen != f:
                report.problems.append(f"{f.path}: manifests disagree on its size or hash")
    report.files = len(files)
    report.bytes = sum(f.size for f in files.values())
    present = []
    for f in files.values():
        size = listing.get(f.path)
        if size is None:
            report.problems.append(f"missing: {f.path}")
        elif size != f.size:
            report.problems.append(f"wrong size: {f.path} ({size} bytes, backed up {f.size})")
        else:
            present.append(f)
    if not quick:
        with progress_bar("verify", sum(f.size for f in present), enabled=progress) as bar, \
                ThreadPoolExecutor(jobs) as pool:
            found = _parallel(pool, lambda f: _remote_problem(bucket, f, bar.update), present)
        report.problems.extend(p for p in found if p)
    for problem in report.problems:
        log.warning("backup verify %s: %s", location, problem)
    return report


def _summary_problem(bucket: Bucket, listing: dict[str, int], manifest: Manifest) -> list[str]:
    """What is wrong with the summary of ``manifest`` that ``pond backup list`` shows, if it
    has one (none: nothing wrong, list reads the manifest)."""
    name = summary_name(manifest.txn)
    if name not in listing:
        return []
    try:
        if RestorePoint.from_json(bucket.get_bytes(name), name) == RestorePoint.of(manifest):
            return []
    except (BackupError, S3Error) as exc:
        return [str(exc)]
    return [f"{name}: disagrees with {manifest.name} (push again to rewrite it, or delete it)"]


def _remote_problem(bucket: Bucket, f: FileEntry, progress: Callable[[int], None]) -> str:
    """What is wrong with the bucket's copy of ``f`` ('' when nothing)."""
    digest = hasher()
    size = 0
    for chunk in bucket.get_chunks(f.path):
        digest.update(chunk)
        size += len(chunk)
        progress(len(chunk))
    return _mismatch(f, size, digest.hexdigest())


def _mismatch(f: FileEntry, size: int, digest: str) -> str:
    if size != f.size:
        return f"wrong size: {f.path} ({size} bytes, backed up {f.size})"
    if digest != f.blake3:
        return f"corrupt: {f.path} (its bytes hash to {digest}, backed up {f.blake3})"
    return ""


# ---------------------------------------------------------------------- forget and prune


@dataclass
class ForgetResult:
    """What ``forget`` removed (or, with ``dry_run``, would remove)."""

    location: S3Location
    kept: list[int]
    forgotten: list[int]
    deleted: list[str]
    deleted_bytes: int
    dry_run: bool = False

    def describe(self) -> str:
        """One line: the restore points kept and forgotten, and what was pruned."""
        verb = "would forget" if self.dry_run else "forgot"
        gone = "would delete" if self.dry_run else "deleted"
        return (f"{verb} {len(self.forgotten)} restore point(s) at {self.location} "
                f"({_ranges(self.forgotten) or 'none'}), kept {len(self.kept)} "
                f"({_ranges(self.kept)}); {gone} {len(self.deleted)} file(s) no kept restore "
                f"point needs ({human_bytes(self.deleted_bytes)})")


def forget(url: str, *, keep_last: int | None = None, keep_within: float | None = None,
           dry_run: bool = False, jobs: int = DEFAULT_JOBS,
           progress: bool = True) -> ForgetResult:
    """Forget old restore points and prune what only they needed, like restic's
    ``forget --prune``.

    Kept are the ``keep_last`` newest restore points and those pushed at most
    ``keep_within`` seconds before the newest (by the store's clock); at least one policy
    must be given, and the newest point is always kept. The other manifests are deleted
    first, then every Delta file and content object below the backup that no kept manifest
    names (a kept point's log entries included: a restore downloads exactly its manifest's
    files), so an interrupted forget leaves only unreferenced files, which the next one
    removes. Files of interrupted pushes are unreferenced too. A forget holds the backup's
    lock, as a push does; ``dry_run`` takes no lock, deletes nothing, and says what would go.
    Only the pond's files may be pruned: anything else below the prefix is left alone.
    """
    from .oplog.layout import SNAPSHOT_PREFIXES

    if keep_last is None and keep_within is None:
        raise BackupError("say which restore points to keep: --keep-last N and/or "
                          "--keep-within DURATION", errno.EINVAL)
    if keep_last is not None and keep_last < 1:
        raise BackupError(f"--keep-last must be at least 1 (the newest restore point is "
                          f"always kept), not {keep_last}", errno.EINVAL)
    if keep_within is not None and keep_within < 0:
        raise BackupError(f"--keep-within must not be negative, not {keep_within}",
                          errno.EINVAL)
    location = S3Location.parse(url)
    bucket = Bucket(location, jobs)
    check_identity(bucket, restore_point_listing(bucket))  # no lock taken where none is
    with ExitStack() as stack:
        still_locked = (None if dry_run
                        else stack.enter_context(_backup_lock(bucket, "pond backup forget")))
        stored = {entry.relative: entry for entry in bucket.entries()}
        listing = {relative: entry.size for relative, entry in stored.items()}
        check_identity(bucket, listing)
        txns = manifest_txns(listing)
        if not txns:
            raise BackupError(f"{location} has no restore point: nothing to forget",
                              errno.ENOENT)
        kept = _kept_points(txns, stored, keep_last, keep_within)
        with ThreadPoolExecutor(8) as pool:
            needed = set().union(*pool.map(lambda txn: _needed_files(bucket, txn), kept))
        forgotten = [txn for txn in txns if txn not in kept]
        kept_summaries = {summary_name(txn) for txn in kept}
        points = [manifest_name(txn) for txn in forgotten] + sorted(
            relative for relative in listing
            if relative.startswith(SUMMARIES) and relative not in kept_summaries)
        pruned = sorted(relative for relative in listing
                        if relative.startswith(SNAPSHOT_PREFIXES) and relative not in needed)
        deleted = points + pruned
        result = ForgetResult(location, kept, forgotten, deleted,
                              sum(listing[relative] for relative in deleted), dry_run)
        if still_locked is not None:
            still_locked()
            bucket.delete_many(points)
            with progress_bar("prune", len(pruned), "file", enabled=progress) as bar:
                bucket.delete_many(pruned, bar.update)
    log.info("%s", result.describe())
    return result


def _kept_points(txns: list[int], stored: dict[str, Stored], keep_last: int | None,
                 keep_within: float | None) -> list[int]:
    """The restore points (of ``txns``, oldest first) a forget keeps: the union of the
    ``keep_last`` newest and those whose manifest was written at most ``keep_within``
    seconds before the newest one's (Last-Modified: the store's clock)."""
    kept = set(txns[-keep_last:]) if keep_last is not None else set()
    if keep_within is not None:
        def written(txn: int) -> datetime:
            return stored[manifest_name(txn)].modified

        newest = written(txns[-1])
        kept.update(t for t in txns if (newest - written(t)).total_seconds() <= keep_within)
    return sorted(kept)


def _needed_files(bucket: Bucket, txn: int) -> set[str]:
    """Every file restore point ``txn`` needs: its manifest and the files it names."""
    manifest = load_manifest(bucket, txn)
    return {manifest.name} | {f.path for f in manifest.files}


# ---------------------------------------------------------------------- restore


@dataclass
class RestoreResult:
    """What a restore made."""

    location: S3Location
    target: Path
    txn: int
    files: int
    bytes: int
    seconds: float

    def describe(self) -> str:
        """One line: what was restored where, and how fast."""
        rate = self.bytes / self.seconds if self.seconds else 0.0
        return (f"restored transaction {self.txn} from {self.location} into {self.target}: "
                f"{self.files} files, {human_bytes(self.bytes)} in {self.seconds:.1f} s "
                f"({human_bytes(rate)}/s); pond check ok")


def restore(url: str, target: str | os.PathLike[str], *, at: int | str | None = None,
            jobs: int = DEFAULT_JOBS, progress: bool = True) -> RestoreResult:
    """Make a new pond at ``target`` from the backup at ``url``, as of its newest restore
    point or of transaction ``at`` (which must be one: see ``list_backups``; an ISO time
    picks the newest restore point of a transaction at or before it)."""
    from .oplog.snapshot import finish_copy, prepare_copy

    started = time.monotonic()
    location = S3Location.parse(url)
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} already exists: restore makes a new pond", errno.EEXIST)
    bucket = Bucket(location, jobs)
    listing = bucket.listing()
    check_identity(bucket, listing)
    manifest = load_manifest(bucket, _choose(location, manifest_txns(listing),
                                             _point_at(url, at)))
    problems = [p for p in (_listed_problem(listing, f) for f in manifest.files) if p]
    if problems:
        raise _restore_failed(problems)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(work, 0o777 & ~umask)  # mkdtemp made it private; a pond directory is not
        prepare_copy(work)
        with progress_bar("restore", manifest.total_bytes, enabled=progress) as bar, \
                ThreadPoolExecutor(jobs) as pool:
            found = _parallel(pool, lambda f: _download(bucket, f, work, bar.update),
                              manifest.files)
        problems = [p for p in found if p]
        if problems:
            raise _restore_failed(problems)
        finish_copy(work, manifest.last_checkpoint)
        _check_restored(work, manifest)
        os.sync()  # the pond's files are on disk before its name appears
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = RestoreResult(location, target, manifest.txn, len(manifest.files),
                           manifest.total_bytes, time.monotonic() - started)
    log.info("%s", result.describe())
    return result


def _point_at(url: str, at: int | str | None) -> int | None:
    """The transaction ``at`` names: a number as it is, an ISO time the newest restore
    point's transaction at or before it (tags live inside the pond: BackupError)."""
    if at is None or isinstance(at, int) or at.isdigit():
        return None if at is None else int(at)
    ns = iso_time_ns(at)
    if ns is None:
        raise BackupError(f"--at {at!r}: a restore point's transaction number or an ISO time "
                          "(a tag is read inside the pond: restore, then pond cat --at TAG)",
                          errno.EINVAL)
    before = [p.txn for p in list_backups(url) if p.txn_time_ns <= ns]
    if not before:
        raise BackupError(f"no restore point at or before {at}", errno.ENOENT)
    return before[-1]


def _choose(location: S3Location, txns: list[int], at: int | None) -> int:
    """The restore point ``at`` (the newest when None), or BackupError listing them."""
    if not txns:
        raise BackupError(f"{location} has no restore point: no push has finished yet")
    if at is None:
        return txns[-1]
    if at in txns:
        return at
    later = [t for t in txns if t > at]
    hint = (f"; restore point {later[0]} holds it (restore that, then read it with "
            f"pond --at {at})" if later else "")
    raise BackupError(f"transaction {at} is not a restore point at {location} (restore "
                      f"points: {_ranges(txns)}){hint}", errno.ENOENT)


def _ranges(numbers: Iterable[int]) -> str:
    shown = [str(n) for n in numbers]
    return ", ".join(shown if len(shown) <= 12 else shown[:5] + ["..."] + shown[-5:])


def _listed_problem(listing: dict[str, int], f: FileEntry) -> str:
    size = listing.get(f.path)
    if size is None:
        return f"missing: {f.path}"
    if size != f.size:
        return f"wrong size: {f.path} ({size} bytes, backed up {f.size})"
    return ""


def _restore_failed(problems: list[str]) -> BackupError:
    shown = problems[:20] + ([f"and {len(problems) - 20} more"] if len(problems) > 20 else [])
    return BackupError("backup is damaged, nothing restored: " + "; ".join(shown))


def _download(bucket: Bucket, f: FileEntry, root: Path, progress: Callable[[int], None]) -> str:
    """Download ``f`` below ``root``, verifying it; what is wrong with it ('' when nothing)."""
    path = root / f.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if f.size >= MULTIPART_THRESHOLD:
        bucket.get_file(f.path, path, progress)
        return _mismatch(f, path.stat().st_size, _hash_file(path))
    digest = hasher()
    size = 0
    with open(path, "wb") as out:
        for chunk in bucket.get_chunks(f.path):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
            progress(len(chunk))
    return _mismatch(f, size, digest.hexdigest())


def _check_restored(root: Path, manifest: Manifest) -> None:
    """The restored pond is whole: its newest transaction is the manifest's, every object
    it names is there, and ``pond check`` (without rehashing what was just verified)
    finds nothing."""
    from . import pond
    from .oplog import OplogPersistence
    from .tinyfs import Checker

    with pond.open_fs(str(root)) as fs:
        assert isinstance(fs.store, OplogPersistence)  # a pond on disk
        if fs.store.last_txn() != manifest.txn:
            raise BackupError(f"restored pond ends at transaction {fs.store.last_txn()}, "
                              f"the backup at {manifest.txn}")
        report = Checker(fs, verify_content=False).run()
        missing = sorted({digest for digest in fs.store.referenced_objects() if digest}
                         - set(fs.store.object_ids()))
    problems = report.problems + [f"content object {digest} is missing" for digest in missing]
    if problems:
        raise BackupError("restored pond fails its check, nothing restored: "
                          + "; ".join(problems[:20]))


# ---------------------------------------------------------------------- helpers


def human_bytes(n: float) -> str:
    """``n`` bytes for people: 1.5 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
