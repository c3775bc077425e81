"""The single-writer lock of a pond in S3: a lease object, ``<prefix>/lock``.

There is no ``flock`` on a bucket, and no process that outlives a crashed holder to release a
lock for it, so the lock is a lease:

- A writer takes it by creating the object with a conditional PUT (If-None-Match: \\*): of
  writers racing for a free pond exactly one succeeds. The object holds the writer's
  one-line description (pid, host, what it is, since when) and its lease time.
- While it holds the lock, a thread renews the lease every third of the lease time by
  rewriting the object with If-Match on the ETag it last wrote.
- A lock not renewed for its lease time (the store's Last-Modified against the store's own
  Date: clients' clocks do not matter) was left by a crashed writer. The next writer takes
  it over with If-Match on the stale ETag, so of several such writers one wins, and logs
  a warning naming the holder it replaced. The lease time is ``POND_LOCK_LEASE`` seconds
  (default 60), so a crashed writer blocks others for a minute at most.
- Releasing deletes the object, If-Match the writer's own ETag.

The lease is what gives a second writer a clear error; what keeps the pond whole even if
a holder stalls beyond its lease (a suspended laptop) is Delta's own conditional PUT of
each log entry: a pond commit is made without retries on a newer table version (see
``OplogPersistence.commit``), so a writer whose snapshot is no longer the newest fails
instead of committing. A holder that learns its lease was taken refuses to commit at all.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from types import TracebackType

from pondfs.s3 import Bucket, S3Error
from pondfs.tinyfs import FsError, PondLocked

from .lock import FINISHING_MARK, Deadline, holder_line

log = logging.getLogger(__name__)

#: Seconds a lease lasts without renewal, unless POND_LOCK_LEASE says otherwise.
DEFAULT_LEASE = 60.0
_POLL = 0.2


def lease_seconds() -> float:
    """The lease time this process takes locks with: ``POND_LOCK_LEASE`` or the default."""
    text = os.environ.get("POND_LOCK_LEASE", "")
    try:
        seconds = float(text) if text else DEFAULT_LEASE
    except ValueError:
        raise FsError(errno.EINVAL,
                      f"POND_LOCK_LEASE must be a number of seconds, not {text!r}") from None
    if seconds <= 0:
        raise FsError(errno.EINVAL, f"POND_LOCK_LEASE must be positive, not {text!r}")
    return seconds


def _parse(data: bytes) -> tuple[str, float]:
    """The holder's description and lease time from a lock object's bytes."""
    try:
        body = json.loads(data)
        return str(body["holder"]), float(body["lease_seconds"])
    except (ValueError, KeyError, TypeError):
        return data.decode(errors="replace").strip() or "an unknown writer", DEFAULT_LEASE


class S3Lease:
    """Holds the lease object ``key`` in ``bucket`` while the context is open, or raises
    PondLocked naming the holder once it has waited ``wait`` seconds for it. Not reentrant,
    like :class:`~pondfs.oplog.lock.WriterLock`.
    """

    def __init__(self, bucket: Bucket, key: str, holder: str, wait: float = 0.0):
        self.bucket = bucket
        self.key = key
        self.holder = holder
        self.wait = wait
        self.lease = lease_seconds()
        self._line = ""
        self._etag: str | None = None
        self._finishing = False
        self._lost: str | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        line = self._line + (FINISHING_MARK if self._finishing else "")
        return json.dumps({"holder": line, "lease_seconds": self.lease}).encode()

    def __enter__(self) -> None:
        self._line = holder_line(self.holder)
        deadline = Deadline(self.wait)
        while True:
            etag = self.bucket.put_new(self.key, self._body())
            if etag is not None:
                break
            found = self.bucket.get_versioned(self.key)
            if found is None:
                continue  # released meanwhile: try again
            data, stale_etag, age = found
            text, lease = _parse(data)
            if age > lease:
                etag = self.bucket.replace(self.key, self._body(), stale_etag)
                if etag is not None:
                    log.warning("took over the writer lock of %s, whose lease ran out %.0f s "
                                "ago (a crashed writer?): %s", self.bucket.location,
                                age - lease, text)
                    break
                continue  # another writer took it over first: look again
            if deadline.passed(text):
                log.debug("%s/%s is locked by %s", self.bucket.location, self.key, text)
                raise PondLocked(text)
            time.sleep(_POLL)
        self._etag = etag
        self._lost = None
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_until_released,
                                         name="pond-lease", daemon=True)
        self._renewer.start()
        log.debug("took writer lock %s/%s: %s", self.bucket.location, self.key, self._line)

    def _renew_until_released(self) -> None:
        """Rewrite the lease every third of its time until released or lost."""
        renewed = time.monotonic()
        while not self._stop.wait(self.lease / 3):
            try:
                with self._mutex:
                    if self._stop.is_set() or self._etag is None:
                        return
                    etag = self.bucket.replace(self.key, self._body(), self._etag)
                    if etag is None:
                        self._lost = "another writer took the lock over"
                        log.error("writer lock %s/%s lost: %s", self.bucket.location,
                                  self.key, self._lost)
                        return
                    self._etag = etag
                renewed = time.monotonic()
            except S3Error as exc:
                log.warning("could not renew the writer lock lease: %s", exc)
                if time.monotonic() - renewed > self.lease:
                    self._lost = f"its lease ran out ({exc})"
                    log.error("writer lock %s/%s lost: %s", self.bucket.location, self.key,
                              self._lost)
                    return

    def check(self) -> None:
        """FsError when this writer no longer holds the lock (its lease was taken over or
        could not be renewed in time): it must not commit."""
        if self._lost is not None:
            raise FsError(errno.EAGAIN, f"lost the writer lock of {self.bucket.location}: "
                          f"{self._lost}; nothing more is committed")

    def finishing(self) -> None:
        """Tell writers that want the lock that this holder releases it shortly (they wait
        for it then, up to ``FINISHING_WAIT`` seconds)."""
        with self._mutex:
            if self._etag is None or self._lost is not None:
                return
            self._finishing = True
            etag = self.bucket.replace(self.key, self._body(), self._etag)
            if etag is not None:
                self._etag = etag

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        with self._mutex:
            etag, self._etag = self._etag, None
            self._finishing = False
        if etag is not None and self._lost is None:
            self.bucket.delete(self.key, etag)
            log.debug("released writer lock %s/%s", self.bucket.location, self.key)


def lease_holder(bucket: Bucket, key: str) -> str | None:
    """The description of the writer holding the lease ``key``, or None when it is free or
    its lease has run out."""
    found = bucket.get_versioned(key)
    if found is None:
        return None
    data, _, age = found
    text, lease = _parse(data)
    return None if age > lease else text
